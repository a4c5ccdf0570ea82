"""compute.geometry against a brute-force float64 reference written from the definitions in paper.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from compute import geometry


def reference(features: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, labels: np.ndarray) -> dict:
    """One sample and one class at a time, in float64, straight from the definitions."""
    n, c = len(features), len(weight)
    b = np.zeros(c) if bias is None else bias.astype(np.float64)
    out = {k: [] for k in ("pred", "loss", "confidence", "p_true", "feature_norm", "weight_norm_true",
                           "angle_true", "angle_pred", "angle_nearest_wrong", "margin", "angles", "logits")}
    for i in range(n):
        x = features[i].astype(np.float64)
        y = int(labels[i])
        logits = [float(np.dot(weight[k].astype(np.float64), x) + b[k]) for k in range(c)]
        top = max(logits)
        log_z = top + math.log(sum(math.exp(v - top) for v in logits))
        pred = logits.index(top)
        norm_x = math.sqrt(sum(v * v for v in x))
        angles = []
        for k in range(c):
            w = weight[k].astype(np.float64)
            norm_w = math.sqrt(sum(v * v for v in w))
            cos = 0.0 if norm_x == 0 or norm_w == 0 else float(np.dot(w, x)) / (norm_w * norm_x)
            angles.append(math.degrees(math.acos(min(1.0, max(-1.0, cos)))))
        distances = []
        for j in range(c):
            if j == y:
                continue
            diff = weight[y].astype(np.float64) - weight[j].astype(np.float64)
            length = math.sqrt(sum(v * v for v in diff))
            if length > 0:
                distances.append((float(np.dot(diff, x)) + b[y] - b[j]) / length)
        out["pred"].append(pred)
        out["logits"].append(logits)
        out["loss"].append(log_z - logits[y])
        out["confidence"].append(math.exp(logits[pred] - log_z))
        out["p_true"].append(math.exp(logits[y] - log_z))
        out["feature_norm"].append(norm_x)
        out["weight_norm_true"].append(math.sqrt(float(np.dot(weight[y], weight[y]))))
        out["angles"].append(angles)
        out["angle_true"].append(angles[y])
        out["angle_pred"].append(angles[pred])
        out["angle_nearest_wrong"].append(min(a for k, a in enumerate(angles) if k != y))
        out["margin"].append(min(distances) if distances else math.inf)
    return {k: np.array(v) for k, v in out.items()}


def run(features, weight, bias, labels) -> geometry.Geometry:
    return geometry.compute(torch.from_numpy(features), torch.from_numpy(weight),
                            None if bias is None else torch.from_numpy(bias), torch.from_numpy(labels))


def assert_matches(result: geometry.Geometry, expected: dict, labels: np.ndarray, rtol: float = 2e-4) -> None:
    np.testing.assert_array_equal(result.pred.numpy(), expected["pred"])
    np.testing.assert_array_equal(result.correct.numpy(), expected["pred"] == labels)
    for name in ("loss", "confidence", "p_true", "feature_norm", "weight_norm_true", "margin", "logits"):
        np.testing.assert_allclose(getattr(result, name).double().numpy(), expected[name], rtol=rtol,
                                   atol=rtol * max(1.0, float(np.abs(expected[name][np.isfinite(expected[name])]).max(initial=0))),
                                   err_msg=name)
    # arccos is ill-conditioned near 0 and 180 degrees: compare angles with an absolute tolerance.
    for name in ("angle_true", "angle_pred", "angle_nearest_wrong", "angles"):
        np.testing.assert_allclose(getattr(result, name).double().numpy(), expected[name], atol=0.05, err_msg=name)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("seed", range(5))
def test_random_inputs_match_the_float64_reference(seed: int, with_bias: bool) -> None:
    rng = np.random.default_rng(seed)
    n, d, c = 64, int(rng.integers(2, 40)), int(rng.integers(2, 12))
    features = (rng.normal(size=(n, d)) * rng.uniform(0.1, 10)).astype(np.float32)
    weight = rng.normal(size=(c, d)).astype(np.float32)
    bias = rng.normal(size=c).astype(np.float32) if with_bias else None
    labels = rng.integers(0, c, size=n)
    result = run(features, weight, bias, labels)
    assert_matches(result, reference(features, weight, bias, labels), labels)
    assert result.finite.all()


def test_logit_decomposition_holds() -> None:
    """logit_c = |W_c| |x| cos(theta_c) + b_c: the identity the whole tool rests on."""
    rng = np.random.default_rng(7)
    features = rng.normal(size=(32, 16)).astype(np.float32)
    weight = rng.normal(size=(5, 16)).astype(np.float32)
    bias = rng.normal(size=5).astype(np.float32)
    result = run(features, weight, bias, rng.integers(0, 5, size=32))
    rebuilt = (np.linalg.norm(weight, axis=1)[None] * result.feature_norm.numpy()[:, None]
               * np.cos(np.deg2rad(result.angles.numpy())) + bias[None])
    np.testing.assert_allclose(rebuilt, result.logits.numpy(), rtol=1e-3, atol=1e-3)


def test_margin_is_negative_exactly_when_misclassified() -> None:
    rng = np.random.default_rng(3)
    features = rng.normal(size=(500, 8)).astype(np.float32)
    weight = rng.normal(size=(4, 8)).astype(np.float32)
    labels = rng.integers(0, 4, size=500)
    result = run(features, weight, None, labels)
    clear = result.margin.abs() > 1e-4
    assert torch.equal((result.margin[clear] > 0), result.correct[clear])
    assert (~result.correct).any() and result.correct.any()


def test_ties_pick_the_first_class_like_the_reference() -> None:
    weight = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)  # classes 0 and 1 identical
    features = np.array([[2, 1], [0, 0], [1, 1]], dtype=np.float32)
    labels = np.array([1, 2, 0])
    result = run(features, weight, None, labels)
    expected = reference(features, weight, None, labels)
    assert_matches(result, expected, labels)
    assert result.pred.tolist() == [0, 0, 0]
    # identical rows have no boundary between them; the margin of sample 0 is to class 2 only.
    assert math.isclose(result.margin[0].item(), 1 / math.sqrt(2), rel_tol=1e-5)


def test_zero_feature_is_ninety_degrees_from_every_class() -> None:
    weight = np.array([[1, 2], [3, -1], [0, 1]], dtype=np.float32)
    bias = np.array([0.5, -0.5, 0.0], dtype=np.float32)
    features = np.zeros((2, 2), dtype=np.float32)
    labels = np.array([0, 2])
    result = run(features, weight, bias, labels)
    np.testing.assert_allclose(result.angles.numpy(), 90.0)
    assert result.feature_norm.tolist() == [0.0, 0.0]
    assert result.finite.all()
    assert_matches(result, reference(features, weight, bias, labels), labels)


def test_huge_norms_stay_finite_and_accurate() -> None:
    rng = np.random.default_rng(11)
    features = (rng.normal(size=(16, 6)) * 1e18).astype(np.float32)
    weight = rng.normal(size=(3, 6)).astype(np.float32)
    labels = rng.integers(0, 3, size=16)
    result = run(features, weight, None, labels)
    expected = reference(features, weight, None, labels)
    np.testing.assert_allclose(result.angles.numpy(), expected["angles"], atol=0.05)
    np.testing.assert_allclose(result.feature_norm.numpy(), expected["feature_norm"], rtol=1e-5)
    np.testing.assert_allclose(result.margin.numpy(), expected["margin"], rtol=1e-3)


def test_non_finite_features_are_flagged_not_dropped() -> None:
    features = np.array([[1, 2], [np.nan, 1], [np.inf, 0]], dtype=np.float32)
    weight = np.array([[1, 0], [0, 1]], dtype=np.float32)
    result = run(features, weight, None, np.array([0, 1, 0]))
    assert result.finite.tolist() == [True, False, False]
    assert len(result.margin) == 3


def test_single_class_classifier_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 2 classes"):
        run(np.ones((2, 3), np.float32), np.ones((1, 3), np.float32), None, np.zeros(2, np.int64))


class _Projection(torch.nn.Module):
    """A random model of the project's contract: features = a fixed linear map of the pixels."""

    def __init__(self, num_classes: int, bias: bool, seed: int, dim: int = 24) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.project = torch.nn.Parameter(torch.randn(3 * 8 * 8, dim, generator=generator), requires_grad=False)
        self.classifier = torch.nn.Linear(dim, num_classes, bias=bias)
        torch.nn.init.normal_(self.classifier.weight, generator=generator)
        if bias:
            torch.nn.init.normal_(self.classifier.bias, std=2.0, generator=generator)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.project

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


@pytest.mark.parametrize(("num_classes", "with_bias"), [(10, True), (10, False), (1000, True), (1000, False)])
def test_store_format_2_keeps_the_geometry_identity_on_every_stored_class(tmp_path, num_classes, with_bias) -> None:
    """Through extraction and the store: for every class a row keeps, logit_c = |W_c| |x| cos θ_c + b_c with
    the store's derived angle, to 1e-4 of the terms' size, against float64 brute force; the kept classes
    are all classes (10) or the top 10 by logit plus the true class (1,000)."""
    from analysis import queries
    from compute.inference import classifier_record, geometry_table
    from store import layout, writer
    from store.catalog import Catalog

    rng = np.random.default_rng(num_classes + with_bias)
    n = 64
    images = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, n)
    model = _Projection(num_classes, with_bias, seed=num_classes).eval()
    # Written by hand, not synthetic_store: the store must hold this known model's geometry, to check it.
    writer.init_store(tmp_path, dataset="t", class_names=[f"c{i}" for i in range(num_classes)], images=images,
                      labels=labels, corruptions=[], severities=[1])
    writer.upsert_classifiers(tmp_path, {"m": classifier_record(model)})
    table, summary = geometry_table(model, images, labels, torch.device("cpu"), 32)
    writer.write_partition(tmp_path, "m", "clean", 0, table, summary)

    x = (model.forward_features(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)).double().numpy()
    weight = model.classifier.weight.detach().double().numpy()
    bias = (model.classifier.bias.detach().double().numpy() if with_bias else np.zeros(num_classes))
    logits = x @ weight.T + bias
    norms, length = np.linalg.norm(weight, axis=1), np.linalg.norm(x, axis=1)
    catalog = Catalog(tmp_path)
    values = queries.class_values(catalog, "m", "clean", 0)
    assert values.height == n
    for row in values.iter_rows(named=True):
        i, classes = row["sample_id"], np.array(row["classes"])
        if num_classes <= layout.PerClass().all_up_to:
            assert classes.tolist() == list(range(num_classes))
        else:
            top = np.argsort(-logits[i])[:10].tolist()
            assert classes.tolist() == top + ([] if labels[i] in top else [labels[i]])
        rebuilt = norms[classes] * length[i] * np.cos(np.deg2rad(row["angles"])) + bias[classes]
        scale = norms[classes] * length[i] + np.abs(bias[classes])
        assert np.all(np.abs(rebuilt - logits[i, classes]) <= 1e-4 * scale), (i, classes)
        np.testing.assert_allclose(row["logits"], logits[i, classes], rtol=1e-4, atol=1e-4 * scale.max())
    scalars = catalog.query("SELECT * FROM predictions ORDER BY sample_id", name="test")
    expected_cos = (x * weight[labels]).sum(axis=1) / (norms[labels] * length)
    np.testing.assert_allclose(scalars["angle_true"].to_numpy(), np.degrees(np.arccos(expected_cos)), atol=0.05)
    log_z = logits.max(axis=1) + np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1))
    np.testing.assert_allclose(scalars["p_true"].to_numpy(), np.exp(logits[np.arange(n), labels] - log_z),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scalars["confidence"].to_numpy(), np.exp(logits.max(axis=1) - log_z),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(scalars["correct"].to_numpy(), logits.argmax(axis=1) == labels)
    np.testing.assert_allclose(scalars["weight_norm_true"].to_numpy(), norms[labels], rtol=1e-6)
    pred = logits.argmax(axis=1)
    cos_pred = (x * weight[pred]).sum(axis=1) / (norms[pred] * length)
    np.testing.assert_allclose(scalars["angle_pred"].to_numpy(), np.degrees(np.arccos(cos_pred)), atol=0.05)
    # the stored angle_true and the true class's angle derived from its logit describe the same direction
    derived_true = [row["angles"][row["classes"].index(label)] for row, label in
                    zip(values.iter_rows(named=True), labels, strict=True)]
    np.testing.assert_allclose(np.cos(np.deg2rad(derived_true)), np.cos(np.deg2rad(scalars["angle_true"].to_numpy())),
                               atol=1e-4)


def test_stored_classes_keep_the_top_k_and_the_true_class_once() -> None:
    logits = torch.tensor([[0.0, 5.0, 1.0, 3.0], [4.0, 2.0, 1.0, 0.0]])
    classes, kept = geometry.stored_classes(logits, torch.tensor([0, 0]), all_up_to=3, top_k=2)
    assert [c[k].tolist() for c, k in zip(classes, kept, strict=True)] == [[1, 3, 0], [0, 1]]
    classes, kept = geometry.stored_classes(logits, torch.tensor([0, 0]), all_up_to=4, top_k=2)
    assert classes.tolist() == [[0, 1, 2, 3]] * 2 and kept.all()
