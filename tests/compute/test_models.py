"""Every architecture meets the model contract, trains a few batches, and round-trips a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compute import checkpoint, models
from compute.datasets.base import ImageSet
from compute.models.base import ContractError, check_contract
from compute.train import TrainConfig, accuracy, augment, channel_stats, train

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.3]


@pytest.fixture(scope="module")
def tiny_data() -> ImageSet:
    rng = np.random.default_rng(0)
    return ImageSet(rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 16))


# The ResNet-50 variants share every line of their code with the ResNet-18 ones (only torchvision's depth
# differs) and take a minute to train here; tests/compute/test_byo_zoo.py builds them.
@pytest.mark.slow  # training: one epoch of every architecture
@pytest.mark.parametrize("arch", [name for name in models.NAMES if not name.startswith("resnet50")])
def test_contract_training_and_checkpoint_round_trip(arch, tiny_data, tmp_path) -> None:
    torch.manual_seed(0)
    model = models.build(arch, 10, MEAN, STD)
    check_contract(model)
    x = torch.rand(4, 3, 32, 32)
    model.eval()
    features = model.forward_features(x)
    assert features.shape == (4, model.classifier.in_features)
    torch.testing.assert_close(model(x), model.classifier(features))
    before = [p.detach().clone() for p in model.parameters()]
    losses = train(model, tiny_data, TrainConfig(epochs=1, batch_size=8), torch.device("cpu"))
    assert np.isfinite(losses).all()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    path = tmp_path / f"{arch}.pt"
    checkpoint.save(path, model, arch=arch, num_classes=10, mean=MEAN, std=STD, dataset="t", hparams={"x": 1})
    loaded, meta = checkpoint.load(path)
    assert meta["arch"] == arch and meta["hparams"] == {"x": 1}
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_normalisation_lives_inside_the_model() -> None:
    model = models.build("small_cnn", 3, MEAN, STD)
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(model.normalize(x), (x - torch.tensor(MEAN).view(1, 3, 1, 1))
                               / torch.tensor(STD).view(1, 3, 1, 1))


def test_unknown_architecture_is_named() -> None:
    with pytest.raises(ValueError, match="unknown architecture 'resnet9'.*small_cnn"):
        models.build("resnet9", 10, MEAN, STD)


def test_contract_check_names_what_is_missing() -> None:
    with pytest.raises(ContractError, match="forward_features"):
        check_contract(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)))

    class ConvHead(nn.Module):
        def forward_features(self, x):
            return x

        classifier = nn.Conv2d(3, 2, 1)

    with pytest.raises(ContractError, match="classifier must be an nn.Linear"):
        check_contract(ConvHead())


def test_checkpoint_errors_name_the_file_and_the_tensor(tmp_path) -> None:
    model = models.build("small_cnn", 10, MEAN, STD)
    good = tmp_path / "good.pt"
    checkpoint.save(good, model, arch="small_cnn", num_classes=10, mean=MEAN, std=STD, dataset="t", hparams={})
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:500])
    with pytest.raises(checkpoint.CheckpointError, match="truncated.pt is not a readable torch file"):
        checkpoint.load(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save(model.state_dict(), foreign)
    with pytest.raises(checkpoint.CheckpointError, match="not a prunescope checkpoint"):
        checkpoint.load(foreign)
    payload = checkpoint.read(good)
    payload["state_dict"]["classifier.weight"] = torch.zeros(7, 128)
    wrong = tmp_path / "wrong.pt"
    torch.save(payload, wrong)
    with pytest.raises(checkpoint.CheckpointError, match=r"'classifier.weight' has shape \(7, 128\)"):
        checkpoint.load(wrong)
    payload = checkpoint.read(good)
    payload["arch"] = "resnet18"
    torch.save(payload, wrong)
    with pytest.raises(checkpoint.CheckpointError, match="does not match architecture 'resnet18'"):
        checkpoint.load(wrong)


def test_augment_crops_within_the_padding_and_keeps_shape() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    out = augment(x, padding=2, flip=False, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # every output pixel is either padding (0) or a pixel of the same image and channel
    for n in range(2):
        for c in range(3):
            values = set(out[n, c].flatten().tolist()) - {0.0}
            assert values <= set(x[n, c].flatten().tolist())
    assert torch.equal(augment(x, 0, False, torch.Generator()), x)


def test_training_learns_a_separable_problem() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 64)
    images = np.where(labels[:, None, None, None] == 1, 220, 30).astype(np.uint8) * np.ones((64, 32, 32, 3), np.uint8)
    data = ImageSet(images, labels)
    mean, std = channel_stats(images)
    torch.manual_seed(0)
    model = models.build("small_cnn", 2, mean, std)
    train(model, data, TrainConfig(epochs=3, batch_size=16, lr=0.05), torch.device("cpu"))
    assert accuracy(model, data, torch.device("cpu")) == 1.0
