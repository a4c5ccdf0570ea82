"""compute.corruptions and `python -m compute corrupt`: contract, reproducibility, fidelity to CIFAR-10-C,
Tiny-ImageNet-C (64 px) and ImageNet-C (224 px), and the generator quirks of reference/benchmarks.md
section 3 (each quirk test would fail without the quirk).

Constants in the fidelity tests are copied from reference/cifar10c.md and benchmarks.md on purpose (not
imported from the modules), so a typo in a module's table fails here.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage, stats

from compute import corruptions
from compute.__main__ import main as compute_main
from compute.corruptions import _filters, _random, blur, constants, weather
from compute.datasets import cifar10c
from store import vocabulary

CANONICAL = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)
# Corruptions without random draws: the seed must not matter.
DETERMINISTIC = {"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression",
                 "gaussian_blur", "saturate"}
pytestmark = pytest.mark.usefixtures("one_thread")  # small batches: faster on one thread (tests/compute/conftest.py)


@pytest.fixture(scope="module")
def images(digits) -> np.ndarray:
    """8 images: 4 grey digits and 4 smooth colour fields (colour corruptions need colour)."""
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.uniform(0, 1, (4, 3, 4, 4))).float()
    colour = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    colour = (colour * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return np.concatenate([digits.test.images[:4], colour])


def truncate(x: np.ndarray) -> np.ndarray:
    """The original's np.uint8(x * 255), with our tolerance of 2**-10 level for float rounding below a level."""
    return np.floor(np.clip(x, 0, 1) * 255 + 2.0**-10)


def grey(count: int, level: int = 128, size: int = 32) -> np.ndarray:
    return np.full((count, size, size, 3), level, dtype=np.uint8)


# --- the contract -------------------------------------------------------------------------------------

def test_names_families_and_registry_follow_the_reference():
    assert corruptions.NAMES == CANONICAL
    assert CANONICAL[:15] == vocabulary.COMMON_CORRUPTIONS
    assert tuple(corruptions.REGISTRY) == CANONICAL
    members = [name for family in vocabulary.FAMILIES.values() for name in family]
    assert sorted(members) == sorted(CANONICAL) and len(members) == len(set(members))
    assert set(vocabulary.FAMILIES["noise"]) == {"gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"}
    assert set(vocabulary.FAMILIES["weather"]) == {"snow", "frost", "fog", "brightness", "spatter"}


@pytest.mark.parametrize("name", CANONICAL)
def test_shape_dtype_and_same_seed_same_images(name, images):
    out = corruptions.corrupt(images, name, 3, seed=7)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)
    assert np.array_equal(out, corruptions.corrupt(images, name, 3, seed=7))


@pytest.mark.parametrize("name", CANONICAL)
def test_seed_changes_random_corruptions_only(name, images):
    first = corruptions.corrupt(images, name, 4, seed=0)
    second = corruptions.corrupt(images, name, 4, seed=1)
    assert np.array_equal(first, second) == (name in DETERMINISTIC)


@pytest.mark.parametrize("name", CANONICAL)
def test_batching_does_not_change_a_sample(name, images):
    whole = corruptions.corrupt(images, name, 5, seed=3)
    assert np.array_equal(corruptions.corrupt(images, name, 5, seed=3, batch_size=3), whole)
    tail = corruptions.corrupt(images[3:], name, 5, seed=3, sample_ids=np.arange(3, 8))
    assert np.array_equal(tail, whole[3:])
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    single = corruptions.corrupt_tensor(x[5:6], name, 5, seed=3, sample_ids=torch.tensor([5]))
    assert np.array_equal(corruptions.to_uint8(single).permute(0, 2, 3, 1).numpy(), whole[5:6])


def test_sample_id_not_position_chooses_the_noise():
    images = grey(2)
    swapped = corruptions.corrupt(images, "gaussian_noise", 3, sample_ids=[1, 0])
    plain = corruptions.corrupt(images, "gaussian_noise", 3)
    assert np.array_equal(swapped[0], plain[1]) and not np.array_equal(plain[0], plain[1])


def mean_change(images: np.ndarray, name: str) -> list[float]:
    return [float(np.abs(corruptions.corrupt(images, name, s).astype(float) - images).mean()) for s in range(1, 6)]


def non_decreasing(values: list[float], tolerance: float = 0.05) -> bool:
    return all(later >= earlier - tolerance for earlier, later in zip(values[:-1], values[1:], strict=True))


@pytest.mark.parametrize("name", sorted(set(CANONICAL) - {"glass_blur", "frost", "elastic_transform", "spatter",
                                                         "saturate"}))
def test_higher_severity_changes_the_image_more(name, images):
    # motion_blur 3 -> 4 only adds kernel taps with weights below 1e-9 (radius 6 -> 8 at sigma 2): equal.
    assert non_decreasing(mean_change(images, name))


def test_severities_whose_constants_are_not_monotone(images):
    """Where CIFAR-10-C's constants trade one effect for another, the change is monotone per effect."""
    # glass blur: severities 4-5 sweep twice, 1-3 once; a larger sigma blurs the swapped pixels back.
    glass = mean_change(images, "glass_blur")
    assert min(glass[3:]) > max(glass[:3])
    # spatter: 1-3 water drops, 4-5 mud, each growing with severity
    spatter = mean_change(images, "spatter")
    assert non_decreasing(spatter[:3]) and non_decreasing(spatter[3:])
    # saturate: 1-2 desaturate (x0.3, x0.1), 3-5 oversaturate (x1.5, x2 + 0.1, x2.5 + 0.2)
    saturate = mean_change(images[4:], "saturate")
    assert saturate[1] > saturate[0] and non_decreasing(saturate[2:])
    # elastic: the affine jitter shrinks (2.56 -> 0.96 px) as the displacement field grows, and the
    # jitter dominates the pixel change at 32 px; the local field grows from nothing to alpha 3.2.
    elastic = mean_change(images, "elastic_transform")
    assert elastic[0] > elastic[4]
    # frost: the change is frost_weight * texture - (1 - image_weight) * image, a difference of two
    # growing terms; test_frost_blends_image_and_texture_with_the_reference_weights checks both weights.


@pytest.mark.parametrize("bad_name", ["gaussian", "Fog", "", "labels"])
def test_unknown_corruption_is_named_in_the_error(bad_name):
    with pytest.raises(ValueError, match=f"unknown corruption '{bad_name}'.*gaussian_noise"):
        corruptions.corrupt(grey(1), bad_name, 1)


@pytest.mark.parametrize("severity", [0, 6, -1, 2.0, True, "3"])
def test_severity_outside_1_to_5_is_named_in_the_error(severity):
    with pytest.raises(ValueError, match=f"severity must be one of 1, 2, 3, 4, 5, got {severity!r}"):
        corruptions.corrupt(grey(1), "fog", severity)


@pytest.mark.parametrize("images", [
    np.zeros((2, 32, 32, 3), dtype=np.float32),  # not uint8
    np.zeros((32, 32, 3), dtype=np.uint8),  # one image without the batch axis
    np.zeros((2, 3, 32, 32), dtype=np.uint8),  # channels first
    torch.zeros(2, 32, 32, 3, dtype=torch.uint8),  # a tensor, not an array
])
def test_wrong_dtype_or_shape_is_refused(images):
    with pytest.raises(ValueError, match="uint8 array of shape"):
        corruptions.corrupt(images, "fog", 1)


@pytest.mark.parametrize(("height", "width"), [(32, 24), (64, 32), (31, 31), (16, 16), (8, 8)])
def test_images_not_square_or_below_32_pixels_are_refused(height, width):
    with pytest.raises(ValueError, match=f"square images of at least 32x32 pixels.*got shape {height}x{width}"):
        corruptions.corrupt(np.zeros((1, height, width, 3), dtype=np.uint8), "fog", 1)
    with pytest.raises(ValueError, match=f"got shape {height}x{width}"):
        corruptions.corrupt_tensor(torch.zeros(1, 3, height, width), "fog", 1)


def test_wrong_ids_are_refused():
    with pytest.raises(ValueError, match="sample_ids must be 2 integers"):
        corruptions.corrupt(grey(2), "fog", 1, sample_ids=[0])
    with pytest.raises(ValueError, match="non-negative"):
        corruptions.corrupt(grey(2), "fog", 1, sample_ids=[0, -1])
    with pytest.raises(ValueError, match="float tensor of shape"):
        corruptions.corrupt_tensor(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "fog", 1)


def test_corrupt_tensor_keeps_dtype_device_and_accepts_channels_last(images):
    x = torch.from_numpy(images).permute(0, 3, 1, 2).to(torch.float64) / 255
    out = corruptions.corrupt_tensor(x.contiguous(memory_format=torch.channels_last), "snow", 2)
    assert out.dtype == torch.float64 and out.shape == x.shape
    assert torch.equal(out, corruptions.corrupt_tensor(x, "snow", 2))
    assert corruptions.corrupt_tensor(x[:0], "snow", 2).shape == (0, 3, 32, 32)


@pytest.mark.parametrize("name", CANONICAL)
def test_larger_images_are_corrupted_with_scaled_constants(name):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    out = corruptions.corrupt(images, name, 5)
    assert out.shape == images.shape and not np.array_equal(out, images)


# --- every corruption at 64 and 224 px (Tiny-ImageNet-C, ImageNet-C) --------------------------------

def colour_fields(count: int, size: int, seed: int = 0) -> np.ndarray:
    """Smooth colour images with some detail: uint8 (count, size, size, 3)."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.uniform(0, 1, (count, 3, 6, 6))).float()
    smooth = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    detail = torch.from_numpy(rng.uniform(-0.1, 0.1, (count, 3, size, size))).float()
    return ((smooth + detail).clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def images_64() -> np.ndarray:
    return colour_fields(3, 64, seed=1)


@pytest.fixture(scope="module")
def images_224() -> np.ndarray:
    return colour_fields(2, 224, seed=2)


@pytest.mark.parametrize("size", [64, 224])
@pytest.mark.parametrize("name", CANONICAL)
def test_every_corruption_at_64_and_224_px_is_deterministic_and_batch_independent(name, size, images_64, images_224):
    images = images_64 if size == 64 else images_224
    out = corruptions.corrupt(images, name, 3, seed=5)
    assert out.shape == images.shape and out.dtype == np.uint8 and not np.array_equal(out, images)
    assert np.array_equal(corruptions.corrupt(images, name, 3, seed=5, batch_size=1), out)
    tail = corruptions.corrupt(images[1:], name, 3, seed=5, sample_ids=np.arange(1, len(images)))
    assert np.array_equal(tail, out[1:])


@pytest.mark.parametrize("severity", [1, 2])
def test_elastic_wide_displacement_blur_at_224_px_is_batch_independent(severity, images_224):
    # sigma 170.8 and 19.52 (Q9): the dense-matrix path of the separable blur
    out = corruptions.corrupt(images_224, "elastic_transform", severity)
    assert np.array_equal(corruptions.corrupt(images_224[1:], "elastic_transform", severity, sample_ids=[1]), out[1:])


def test_dense_and_sparse_separable_blurs_agree(monkeypatch):
    x = torch.from_numpy(np.random.default_rng(7).uniform(-1, 1, (2, 2, 40, 40)).astype(np.float32))
    sparse = _filters.gaussian_blur(x, 3.0, _filters.SYMMETRIC, truncate=3.0)
    monkeypatch.setattr(_filters, "DENSE_AXIS_FRACTION", 0.0)
    assert (_filters.gaussian_blur(x, 3.0, _filters.SYMMETRIC, truncate=3.0) - sparse).abs().max() < 1e-5


def direct(images: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """A family function's result as uint8, without the JPEG storage of 64 and 224 px (for constants)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    rng = _random.SampleRandom(seed, name, torch.arange(len(images)))
    return corruptions.to_uint8(corruptions.REGISTRY[name](x, severity, rng)).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize(("size", "severity", "std"), [(64, 1, 0.04), (64, 5, 0.18), (224, 1, 0.08), (224, 2, 0.12)])
def test_gaussian_noise_std_per_resolution(size, severity, std):
    images = grey(max(1, 20_000 // size**2 * 4), size=size)
    noise = (direct(images, "gaussian_noise", severity).astype(float) - images) / 255
    assert noise.std() == pytest.approx(std, rel=0.03)


@pytest.mark.parametrize(("size", "severity", "amount"), [(64, 5, 0.14), (224, 3, 0.09)])
def test_impulse_noise_amount_per_resolution(size, severity, amount):
    out = direct(grey(2, size=size), "impulse_noise", severity)
    assert ((out == 0) | (out == 255)).mean() == pytest.approx(amount, rel=0.05)


@pytest.mark.parametrize(("size", "severity", "photons"), [(64, 5, 15), (224, 3, 12)])  # counts above photons clip at 1
def test_shot_noise_photons_per_resolution(size, severity, photons):
    x = torch.full((2, 3, size, size), 128 / 255)
    counts = torch.round(corruptions.REGISTRY["shot_noise"](
        x, severity, _random.SampleRandom(0, "shot_noise", torch.arange(2))) * photons).numpy()
    mean = 128 / 255 * photons
    assert counts.mean() == pytest.approx(mean, rel=0.02) and counts.var() == pytest.approx(mean, rel=0.05)


@pytest.mark.parametrize(("size", "severity", "factor"), [(64, 1, 0.4), (224, 5, 0.05)])
def test_contrast_factor_per_resolution(size, severity, factor, images_64, images_224):
    images = images_64 if size == 64 else images_224
    x = images.astype(float) / 255
    means = x.mean(axis=(1, 2), keepdims=True)
    difference = direct(images, "contrast", severity) - truncate((x - means) * factor + means)
    assert np.abs(difference).max() <= 1 and (difference != 0).mean() < 0.01


@pytest.mark.parametrize(("size", "severity", "small"), [(64, 1, 57), (64, 5, 32), (224, 1, 134), (224, 5, 56)])
def test_pixelate_targets_per_resolution(size, severity, small, images_64, images_224):
    images = images_64 if size == 64 else images_224
    expected = np.stack([np.asarray(Image.fromarray(image).resize((small, small), Image.BOX)
                                    .resize((size, size), Image.BOX)) for image in images])
    assert np.array_equal(direct(images, "pixelate", severity), expected)


def pillow_jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    decoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        decoded.append(np.asarray(Image.open(buffer).convert("RGB")))
    return np.stack(decoded)


@pytest.mark.parametrize(("size", "severity", "quality"), [(64, 1, 65), (224, 5, 7)])
def test_jpeg_quality_per_resolution(size, severity, quality, images_64, images_224):
    images = images_64 if size == 64 else images_224
    assert np.array_equal(direct(images, "jpeg_compression", severity), pillow_jpeg(images, quality))


@pytest.mark.parametrize(("size", "severity", "sigma"), [(64, 5, 1.5), (224, 5, 6.0)])
def test_gaussian_blur_sigma_per_resolution(size, severity, sigma, images_64, images_224):
    images = (images_64 if size == 64 else images_224)[:1]
    expected = truncate(ndimage.gaussian_filter(images / 255, sigma=(0, sigma, sigma, 0), mode="nearest"))
    difference = direct(images, "gaussian_blur", severity) - expected
    assert np.abs(difference).max() <= 1 and (difference != 0).mean() < 0.01


@pytest.mark.parametrize(("size", "severity", "image_weight"), [(64, 2, 0.9), (224, 2, 0.8), (224, 5, 0.6)])
def test_frost_image_weight_per_resolution(size, severity, image_weight, images_64, images_224):
    dim = (images_64 if size == 64 else images_224)[:1] // 3
    frost_only = direct(np.zeros_like(dim), "frost", severity).astype(float)
    expected = np.floor(image_weight * dim) + frost_only
    assert np.abs(direct(dim, "frost", severity) - expected).max() <= 1


def test_elastic_constants_at_224_are_multiples_of_244():
    # the original's typo (Q9): 244 * (2, .7, .1), (2, .08, .2), (.05, .01, .02), (.07, .01, .02), (.12, .01, .02)
    expected = [(488, 170.8, 24.4), (488, 19.52, 48.8), (12.2, 2.44, 4.88), (17.08, 2.44, 4.88), (29.28, 2.44, 4.88)]
    assert np.allclose(constants.ELASTIC_TRANSFORM[224], expected)


@pytest.mark.parametrize(("size", "base"), [(32, 32), (44, 32), (46, 64), (64, 64), (119, 64), (120, 224),
                                            (224, 224), (512, 224)])
def test_other_sizes_use_the_nearest_published_resolution(size, base):
    assert constants.base_resolution(size) == base
    assert constants.pixel_scale(size) == size / base


@pytest.mark.parametrize("size", [64, 224])
def test_64_and_224_px_results_are_stored_as_quality_85_jpeg(size, images_64, images_224):
    # Tiny-ImageNet-C and ImageNet-C saved every image as a JPEG of quality 85 (Q10); CIFAR-10-C did not
    images = images_64 if size == 64 else images_224
    stored = pillow_jpeg(direct(images, "pixelate", 1), 85)
    assert np.array_equal(corruptions.corrupt(images, "pixelate", 1), stored)
    assert not np.array_equal(stored, direct(images, "pixelate", 1))


def test_to_uint8_truncates_and_keeps_exact_levels():
    levels = torch.arange(256, dtype=torch.float32)
    assert torch.equal(corruptions.to_uint8(levels / 255), levels.to(torch.uint8))  # Q6: exact levels survive
    assert corruptions.to_uint8(torch.tensor([(7 + 0.9) / 255, 254.99 / 255, 1.7, -0.2])).tolist() == [7, 254, 255, 0]


def test_spatter_liquid_layer_wraps_around_above_255():
    liquid = torch.tensor([0.5, 256.5 / 255, 300.2 / 255, 0.0])
    assert weather.liquid_levels(liquid).tolist() == [127, 0, 44, 0]  # np.uint8 on x86-64 (Q13)


# --- fidelity to the reference constants ------------------------------------------------------------

def residuals(images: np.ndarray, name: str, severity: int) -> np.ndarray:
    return (corruptions.corrupt(images, name, severity).astype(float) - images) / 255


@pytest.mark.parametrize(("severity", "std"), [(1, 0.04), (3, 0.08), (5, 0.10)])
def test_gaussian_noise_has_the_reference_std(severity, std):
    noise = residuals(grey(40), "gaussian_noise", severity)
    # truncation to uint8 (Q6) loses half a level on average; rounding would not
    assert noise.mean() == pytest.approx(-0.5 / 255, abs=0.0006)
    assert noise.std() == pytest.approx(std, rel=0.03)


@pytest.mark.parametrize(("severity", "std"), [(1, 0.06), (5, 0.20)])
def test_speckle_noise_scales_with_the_intensity(severity, std):
    noise = residuals(grey(40, level=100), "speckle_noise", severity)
    assert noise.std() == pytest.approx(100 / 255 * std, rel=0.03)


@pytest.mark.parametrize(("severity", "photons"), [(1, 500), (5, 50)])
def test_shot_noise_counts_are_poisson(severity, photons):
    level = 128
    x = torch.full((40, 3, 32, 32), level / 255)
    counts = torch.round(corruptions.corrupt_tensor(x, "shot_noise", severity) * photons).to(torch.int64).numpy()
    mean = level / 255 * photons
    assert counts.mean() == pytest.approx(mean, rel=0.01)
    assert counts.var() == pytest.approx(mean, rel=0.03)
    values, frequency = np.unique(counts, return_counts=True)
    total_variation = 0.5 * np.abs(frequency / counts.size - stats.poisson.pmf(values, mean)).sum()
    assert total_variation < 0.01


def test_shot_noise_leaves_black_black_and_is_exact_in_the_tails():
    assert not corruptions.corrupt(grey(2, level=0), "shot_noise", 5).any()
    from compute.corruptions.noise import shot_noise_counts
    uniform = torch.tensor([1e-9, 0.5, 1 - 1e-9], dtype=torch.float64)
    levels = torch.full((3,), 200)
    expected = stats.poisson.ppf(uniform.numpy(), 200 / 255 * 50)
    assert shot_noise_counts(levels, uniform, 50).tolist() == expected.tolist()


@pytest.mark.parametrize(("severity", "fraction"), [(1, 0.01), (5, 0.07)])
def test_impulse_noise_replaces_the_reference_fraction(severity, fraction):
    out = corruptions.corrupt(grey(200), "impulse_noise", severity)
    salt, pepper = (out == 255).mean(), (out == 0).mean()
    assert salt + pepper == pytest.approx(fraction, rel=0.06)
    assert salt == pytest.approx(pepper, rel=0.15)


@pytest.mark.parametrize(("severity", "factor"), [(1, 0.75), (5, 0.15)])
def test_contrast_scales_deviations_from_each_channel_mean(severity, factor, images):
    x = images.astype(float) / 255
    means = x.mean(axis=(1, 2), keepdims=True)
    expected = truncate((x - means) * factor + means)  # truncated, as np.uint8 did
    difference = corruptions.corrupt(images, "contrast", severity) - expected
    assert np.abs(difference).max() <= 1 and (difference != 0).mean() < 0.01


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation of (..., 3) images: (max - min) / max, 0 for black."""
    top = rgb.max(axis=-1).astype(float)
    return np.where(top > 0, (top - rgb.min(axis=-1)) / np.maximum(top, 1), 0)


@pytest.mark.parametrize(("severity", "shift"), [(1, 0.05), (5, 0.30)])
def test_brightness_adds_to_hsv_value(severity, shift, images):
    out = corruptions.corrupt(images, "brightness", severity).astype(float)
    value_before, value_after = images.max(axis=-1) / 255, out.max(axis=-1) / 255
    assert np.abs(value_after - np.minimum(value_before + shift, 1)).max() <= 1 / 255 + 1e-9
    # saturation kept where nothing clipped
    kept = value_before + shift < 0.99
    assert np.abs(saturation(images)[kept] - saturation(out)[kept]).max() < 0.03


@pytest.mark.parametrize(("severity", "factor", "offset"), [(2, 0.1, 0.0), (4, 2.0, 0.1)])
def test_saturate_scales_hsv_saturation(severity, factor, offset, images):
    colour = images[4:]
    out = corruptions.corrupt(colour, "saturate", severity).astype(float)
    expected = np.clip(saturation(colour.astype(float)) * factor + offset, 0, 1)
    assert np.abs(saturation(out) - expected).mean() < 0.01


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_pixelate_equals_pillows_box_resize(severity, images):
    small = int(32 * (0.95, 0.90, 0.85, 0.75, 0.65)[severity - 1])
    expected = np.stack([np.asarray(Image.fromarray(image).resize((small, small), Image.BOX)
                                    .resize((32, 32), Image.BOX)) for image in images])
    assert np.array_equal(corruptions.corrupt(images, "pixelate", severity), expected)


@pytest.mark.parametrize("severity", [1, 2, 3, 4, 5])
def test_jpeg_equals_pillows_encoder_at_the_reference_quality(severity, images):
    quality = (80, 65, 58, 50, 40)[severity - 1]
    expected = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        expected.append(np.asarray(Image.open(buffer).convert("RGB")))
    assert np.array_equal(corruptions.corrupt(images, "jpeg_compression", severity), np.stack(expected))


@pytest.mark.parametrize(("severity", "sigma"), [(1, 0.4), (5, 1.0)])
def test_gaussian_blur_matches_scipy(severity, sigma, images):
    x = images.astype(float) / 255
    expected = truncate(ndimage.gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest"))
    difference = corruptions.corrupt(images, "gaussian_blur", severity) - expected
    assert np.abs(difference).max() <= 1 and (difference != 0).mean() < 0.01


def scipy_clipped_zoom(image: np.ndarray, zoom: float) -> np.ndarray:
    """The original's clipped_zoom, with scipy (order 1)."""
    size = image.shape[0]
    crop = int(np.ceil(size / zoom))
    top = (size - crop) // 2
    zoomed = ndimage.zoom(image[top:top + crop, top:top + crop], (zoom, zoom, 1), order=1)
    trim = (zoomed.shape[0] - size) // 2
    return zoomed[trim:trim + size, trim:trim + size]


@pytest.mark.parametrize(("severity", "count"), [(1, 7), (2, 12), (5, 26)])
def test_zoom_blur_matches_scipy_zooms_with_numpys_factor_count(severity, count, images):
    # np.arange(1, 1.06, .01) has 7 values, 1.00 .. 1.06, and np.arange(1, 1.11, .01) 12 (Q4)
    stop = (1.06, 1.11, 1.16, 1.21, 1.26)[severity - 1]
    zooms = np.arange(1, stop, 0.01)  # the original's factors
    assert len(zooms) == count and np.allclose(zooms, [1 + i * 0.01 for i in range(count)])
    assert blur.zoom_factors(stop, 0.01) == tuple(zooms)
    expected = []
    for image in images.astype(np.float32) / 255:
        total = image + sum(scipy_clipped_zoom(image, zoom) for zoom in zooms)
        expected.append(truncate(total / (len(zooms) + 1)))
    difference = corruptions.corrupt(images, "zoom_blur", severity) - np.stack(expected)
    assert np.abs(difference).max() <= 1 and (difference != 0).mean() < 0.01
    # without the extra factor the images differ (the test can fail)
    if severity == 1:
        fewer = [(image + sum(scipy_clipped_zoom(image, z) for z in zooms[:-1])) / count
                 for image in images.astype(np.float32) / 255]
        assert np.abs(truncate(np.stack(fewer)) - np.stack(expected)).max() >= 1


@pytest.mark.parametrize(("size", "severity", "count", "last"), [
    (64, 1, 7, 1.06), (224, 1, 12, 1.11), (224, 2, 16, 1.15), (224, 3, 11, 1.20), (224, 4, 13, 1.24), (224, 5, 11, 1.30),
])
def test_zoom_factors_per_resolution(size, severity, count, last):
    zooms = blur.zoom_factors(*constants.setting(constants.ZOOM_BLUR, size, severity))
    assert len(zooms) == count and zooms[0] == 1 and zooms[-1] == pytest.approx(last)


def test_defocus_kernel_is_the_originals_smoothed_disk():
    # radius 0.3 holds only the centre pixel, so severity 1 is the 3x3 gaussian of sigma 0.4
    kernel = blur.disk_kernel(0.3, 0.4)
    taps = np.exp(-np.arange(-1, 2) ** 2 / (2 * 0.4**2))
    assert np.allclose(kernel, np.outer(taps, taps) / np.outer(taps, taps).sum())
    wide = blur.disk_kernel(1.5, 0.1)  # 32 px severity 5: the 3x3 disk (1 + 1 <= 2.25), barely smoothed
    assert wide.sum() == pytest.approx(1) and np.allclose(wide, wide.T)
    assert np.allclose(wide[1:4, 1:4], 1 / 9, atol=1e-3)
    # 224 px (Q8): the disk fills its 17x17 (radius 8) or 21x21 (radius 10) array, and the 3x3 / 5x5
    # anti-alias blur with reflect-101 borders folds mass back in
    pixels = {3: 29, 4: 49, 6: 113, 8: 197, 10: 317}
    for radius, count in pixels.items():
        half = 8 if radius <= 8 else radius
        offsets = np.arange(-half, half + 1)
        assert ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).sum() == count
    assert blur.disk_kernel(8, 0.5).sum() == pytest.approx(1.0130, abs=2e-4)
    assert blur.disk_kernel(10, 0.5).sum() == pytest.approx(1.0108, abs=2e-4)
    assert blur.disk_kernel(6, 0.5).sum() == pytest.approx(1.0, abs=1e-6)


def test_defocus_brightens_a_flat_image_at_224_severities_4_and_5():
    flat = grey(1, level=128, size=224)
    assert (corruptions.corrupt(flat, "defocus_blur", 3)[0, 100:120, 100:120] == 128).all()
    brighter = corruptions.corrupt(flat, "defocus_blur", 4)[0, 100:120, 100:120]
    assert brighter.min() == brighter.max() == 129  # 128 * 1.013 = 129.66, truncated


def test_defocus_matches_a_direct_reflect_101_correlation():
    rng = np.random.default_rng(5)
    image = rng.uniform(0, 1, (1, 3, 40, 40))
    kernel = blur.disk_kernel(3, 0.5)
    radius = kernel.shape[0] // 2
    padded = np.pad(image, ((0, 0), (0, 0), (radius, radius), (radius, radius)), mode="reflect")
    expected = sum(kernel[a, b] * padded[..., a:a + 40, b:b + 40] for a in range(2 * radius + 1)
                   for b in range(2 * radius + 1))
    out = _filters.correlate_fft(torch.from_numpy(image).float(), kernel, _filters.REFLECT_101)
    assert np.abs(out.numpy() - expected).max() < 1e-5


def test_motion_blur_is_a_one_sided_gaussian_line():
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 1, (1, 1, 32, 32)).astype(np.float32)
    steps = np.arange(13)  # radius 6: 2 * 6 + 1 taps
    weights = np.exp(-steps**2 / (2 * 1.5**2))
    weights /= weights.sum()
    padded = np.pad(image[0, 0], ((0, 0), (0, 12)), mode="edge")
    horizontal = sum(w * padded[:, i:i + 32] for i, w in enumerate(weights))
    out = _filters.motion_blur(torch.from_numpy(image), 6, 1.5, torch.tensor([0.0], dtype=torch.float64))
    assert np.allclose(out[0, 0].numpy(), horizontal, atol=1e-6)
    down = _filters.motion_blur(torch.from_numpy(image), 6, 1.5, torch.tensor([90.0], dtype=torch.float64))
    assert np.allclose(down[0, 0].numpy(), _filters.motion_blur(
        torch.from_numpy(image.transpose(0, 1, 3, 2).copy()), 6, 1.5,
        torch.tensor([0.0], dtype=torch.float64))[0, 0].numpy().T, atol=1e-6)


def original_glass_sweep(image: np.ndarray, shifts: np.ndarray, max_shift: int) -> np.ndarray:
    """The original's loop on an (H, W, C) array, literally: its "swap" line as Python runs it (Q1)."""
    x = image.copy()
    size = x.shape[0]
    k = 0
    for h in range(size - max_shift, max_shift, -1):
        for w in range(size - max_shift, max_shift, -1):
            dy, dx = shifts[k]
            k += 1
            h_prime, w_prime = h + dy, w + dx
            x[h, w], x[h_prime, w_prime] = x[h_prime, w_prime], x[h, w]
    return x


def test_the_originals_swap_line_copies():
    x = np.array([[[1, 1, 1], [2, 2, 2]]], dtype=np.uint8)
    x[0, 0], x[0, 1] = x[0, 1], x[0, 0]  # both right-hand items are views: no swap happens
    assert x.tolist() == [[[2, 2, 2], [2, 2, 2]]]


def test_motion_blur_through_the_fft_equals_the_tap_by_tap_sum(monkeypatch):
    rng = np.random.default_rng(6)
    image = torch.from_numpy(rng.uniform(0, 1, (3, 3, 48, 48)).astype(np.float32))
    angles = torch.tensor([-40.0, 10.0, -120.0], dtype=torch.float64)
    taps = _filters.motion_blur(image, 15, 5, angles)
    monkeypatch.setattr(_filters, "MOTION_FFT_MIN_SIZE", 32)
    assert (_filters.motion_blur(image, 15, 5, angles) - taps).abs().max() < 1e-5


@pytest.mark.parametrize(("size", "max_shift"), [(32, 1), (20, 2), (24, 3)])
def test_glass_blur_sweep_equals_the_originals_loop(size, max_shift):
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 3, size, size)).astype(np.float32)
    visited = blur.sweep_positions(size, max_shift, "cpu")
    shifts = rng.integers(-max_shift, max_shift, (2, len(visited), 2))  # randint(-d, d): -d .. d-1 (Q2)
    out = blur.sweep_copies(torch.from_numpy(images), torch.from_numpy(shifts), max_shift).numpy()
    for n in range(2):
        expected = original_glass_sweep(images[n].transpose(1, 2, 0), shifts[n], max_shift)
        assert np.array_equal(out[n], expected.transpose(2, 0, 1))
        # a real swap would move values the other way too: the results differ
        swapped = images[n].transpose(1, 2, 0).copy()
        for k, position in enumerate(visited.tolist()):
            h, w = divmod(position, size)
            dy, dx = shifts[n, k]
            swapped[[h, h + dy], [w, w + dx]] = swapped[[h + dy, h], [w + dx, w]]
        assert not np.array_equal(out[n], swapped.transpose(2, 0, 1))


def test_glass_blur_offsets_stay_in_minus_d_to_d_minus_1():
    rng = _random.SampleRandom(0, "glass_blur", torch.arange(4))
    shifts = rng.integers("shifts", (1, 500, 2), -2, 2)
    assert set(shifts.unique().tolist()) == {-2, -1, 0, 1}


def test_fog_plasma_is_a_normalised_fractal_per_sample():
    rng = _random.SampleRandom(0, "fog", torch.arange(3))
    heights = weather.plasma_fractal(rng, 32, 2.0)
    assert heights.shape == (3, 32, 32)
    assert heights.amin(dim=(1, 2)).tolist() == [0, 0, 0] and heights.amax(dim=(1, 2)).tolist() == [1, 1, 1]
    assert not torch.equal(heights[0], heights[1])
    # a fractal: neighbours are far more alike than distant pixels
    assert (heights[:, :, 1:] - heights[:, :, :-1]).abs().mean() < 0.5 * (heights[:, :, 16:] - heights[:, :, :16]).abs().mean()


# the frost photographs' sizes after the original's cv2.resize (benchmarks.md table 2.5)
FROST_SHAPES = {
    32: [(120, 180), (63, 112), (63, 112), (70, 105), (99, 132)],
    64: [(180, 270), (94, 168), (94, 168), (105, 158), (148, 198)],
    224: [(600, 900), (315, 560), (315, 560), (350, 527), (495, 660)],
}


@pytest.mark.parametrize("size", [32, 64, 224])
def test_frost_textures_have_the_photographs_sizes_and_colours(size):
    textures, shapes = weather.frost_textures(size)
    assert shapes.tolist() == [list(shape) for shape in FROST_SHAPES[size]]
    assert textures.min() >= 0 and textures.max() <= 1
    expected = [(77.7, 149.1, 165.7), (200.8, 205.4, 214.5), (200.8, 205.4, 214.5), (137.6, 152.8, 165.2),
                (112.4, 123.4, 134.8)]  # mean RGB of frost1 .. frost5
    for texture, (rows, cols), colour in zip(textures, shapes.tolist(), expected, strict=True):
        mean = texture[:, :rows, :cols].mean(dim=(1, 2)) * 255
        assert (mean - torch.tensor(colour)).abs().max() < 6
    assert torch.equal(textures, weather.frost_textures.__wrapped__(size)[0])


def test_frost_crops_differ_per_sample():
    out = corruptions.corrupt(grey(4, level=0), "frost", 1)  # black image: the result is 0.2 * the crop
    assert len({out[i].tobytes() for i in range(4)}) == 4


# cv2.Canny(image, 50, 150) of a 16x16 square of level 200 at rows and columns 8..23 (OpenCV 4.x),
# rows and columns 5..26; non-maximum suppression breaks the ties of the step toward one side.
OPENCV_SQUARE_EDGES = """
......................
......................
....##############....
...#..............#...
..#...............#...
..#...............#...
..#...............#...
..#...............#...
..#...............#...
..#...............#...
..#...............#...
..#...............#...
..#...............#...
..#...............#...
..#...............#...
..#...............#...
..#...............#...
..#...............#...
...################...
......................
......................
......................
"""


def test_spatter_edges_and_distances_match_opencv():
    image = torch.zeros(1, 1, 32, 32)
    image[..., 8:24, 8:24] = 200.0
    edges = weather.canny(image, low=50, high=150)[0, 0]
    expected = torch.zeros(32, 32, dtype=torch.bool)
    rows = OPENCV_SQUARE_EDGES.split()
    expected[5:27, 5:27] = torch.tensor([[mark == "#" for mark in row] for row in rows])
    assert torch.equal(edges, expected)
    distance = weather.chamfer_distance(expected[None, None])[0, 0]  # OpenCV's 5x5 chamfer: 1, 1.4, 2.1969
    assert distance[16, 16] == 7 and distance[8, 8] == 0 and distance[16, 0] == 7
    assert distance[0, 0] == pytest.approx(8 * 1.4, abs=1e-4)  # 8 diagonal moves to (8, 8)
    assert distance[6, 5] == pytest.approx(2.1969 + 1.4, abs=1e-4)  # a knight's move and a diagonal one


@pytest.mark.parametrize(("severity", "image_weight", "frost_weight"), [(1, 1.0, 0.2), (3, 0.9, 0.4), (5, 0.75, 0.45)])
def test_frost_blends_image_and_texture_with_the_reference_weights(severity, image_weight, frost_weight, images):
    dim = images // 2  # no clipping
    frost_only = corruptions.corrupt(np.zeros_like(dim), "frost", severity).astype(float)
    expected = np.floor(image_weight * dim) + frost_only  # each truncated: off by at most one
    assert np.abs(corruptions.corrupt(dim, "frost", severity) - expected).max() <= 1
    # the same crop at every severity (the draws do not depend on it), scaled by the frost weight
    severity_1 = corruptions.corrupt(np.zeros_like(dim), "frost", 1).astype(float)
    assert frost_only.mean() == pytest.approx(severity_1.mean() * frost_weight / 0.2, rel=0.01)


def lowbias32(word: int) -> int:
    """Chris Wellons' lowbias32 hash in plain Python integers."""
    word ^= word >> 16
    word = (word * 0x7FEB352D) & 0xFFFFFFFF
    word ^= word >> 15
    word = (word * 0x846CA68B) & 0xFFFFFFFF
    return word ^ (word >> 16)


def test_random_bits_match_the_reference_hash_and_are_uniform():
    words = np.random.default_rng(4).integers(0, 2**32, 1000)
    mixed = _random._mix(_random._to_int32(torch.from_numpy(words)))
    assert _random._to_unsigned(mixed).tolist() == [lowbias32(int(w)) for w in words]
    rng = _random.SampleRandom(0, "test", torch.arange(64))
    uniform = rng.uniform("u", (1000,))
    assert uniform.min() > 0 and uniform.max() < 1 and abs(uniform.mean() - 0.5) < 0.005
    normal = rng.normal("n", (1000,), dtype=torch.float64)
    assert abs(normal.mean()) < 0.01 and abs(normal.std() - 1) < 0.01
    integers = rng.integers("i", (1000,), -2, 3)
    assert set(integers.unique().tolist()) == {-2, -1, 0, 1, 2}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", CANONICAL)
def test_cuda_gives_the_cpu_images(name, images):
    cpu = corruptions.corrupt(images, name, 3)
    cuda = corruptions.corrupt(images, name, 3, device="cuda")
    difference = np.abs(cpu.astype(int) - cuda)
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", CANONICAL)
def test_cuda_gives_the_cpu_images_at_224_px(name, images_224):
    # a one-level difference before the JPEG storage step can move a whole 8x8 block by a few levels
    cpu = corruptions.corrupt(images_224, name, 3)
    cuda = corruptions.corrupt(images_224, name, 3, device="cuda")
    assert (cpu != cuda).mean() < 0.02


# --- the command --------------------------------------------------------------------------------------

def test_corrupt_command_writes_the_published_layout_and_resumes(tmp_path, digits, capsys):
    out = tmp_path / "digits-c"
    arguments = ["corrupt", "--out", str(out), "--limit", "6", "--names", "fog", "contrast", "--seed", "2",
                 "--batch-size", "4", "--device", "cpu"]
    assert compute_main([*arguments, "--severities", "1", "4"]) == 0
    assert not (out / "fog.npy").exists()  # two of five blocks: not published yet
    assert compute_main(arguments) == 0
    images, labels = digits.test.images[:6], digits.test.labels[:6]
    for name in ("fog", "contrast"):
        written = np.load(out / f"{name}.npy")
        assert written.shape == (30, 32, 32, 3) and written.dtype == np.uint8
        for severity in range(1, 6):
            block = written[(severity - 1) * 6:severity * 6]
            assert np.array_equal(block, corruptions.corrupt(images, name, severity, seed=2))
        assert np.array_equal(cifar10c.load_corrupted(out, name, 3).images, written[12:18])
    assert np.array_equal(np.load(out / "labels.npy"), np.tile(labels.astype(np.uint8), 5))
    assert json.loads((out / "corrupt.json").read_text())["seed"] == 2
    assert sorted(path.name for path in out.iterdir()) == ["contrast.npy", "corrupt.json", "fog.npy", "labels.npy"]

    before = (out / "fog.npy").stat().st_mtime_ns
    capsys.readouterr()
    assert compute_main(arguments) == 0
    assert "0 files written, 2 already complete" in capsys.readouterr().out
    assert (out / "fog.npy").stat().st_mtime_ns == before


def test_corrupt_command_refuses_mixing_settings_and_unknown_names(tmp_path, capsys):
    out = str(tmp_path / "c")
    assert compute_main(["corrupt", "--out", out, "--limit", "2", "--names", "contrast"]) == 0
    assert compute_main(["corrupt", "--out", out, "--limit", "2", "--names", "contrast", "--seed", "1"]) == 2
    assert "holds images made with" in capsys.readouterr().err
    assert compute_main(["corrupt", "--out", out, "--limit", "2", "--names", "blurry"]) == 2
    assert "unknown corruptions ['blurry']" in capsys.readouterr().err


def test_corrupt_command_help_explains_the_layout(capsys):
    with pytest.raises(SystemExit):
        compute_main(["corrupt", "--help"])
    text = capsys.readouterr().out
    assert "severity-major" in text and "labels.npy" in text and "--severities" in text
