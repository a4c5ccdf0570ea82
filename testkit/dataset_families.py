"""Tiny copies of CIFAR-100(-C), Tiny-ImageNet(-C), ImageNet(-C) and image folders, written in the exact
published layouts (file names, folder nesting, text formats), for the loader tests and the end-to-end
tests. Every image is one flat colour that encodes its identity, so a test can tell after JPEG which
file a row came from (`colour_of`), and whether a corrupted row is the copy of the right clean image."""

from __future__ import annotations

import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from testkit.datasets import random_images, write_python2_pickle

# Deliberately not sorted, as the real wnids.txt is not (it begins n02124075, n04067472, n04540053).
TINY_WNIDS = ("n02124075", "n04067472", "n01443537")
TINY_WORDS = {"n02124075": "Egyptian cat", "n04067472": "reel", "n01443537": "goldfish, Carassius auratus",
              "n09999999": "not a Tiny-ImageNet class"}


def colour_of(number: int) -> tuple[int, int, int]:
    """A flat RGB colour unique per number < 216, channels 40 apart: survives JPEG q85 exactly enough."""
    return (40 * (number % 6) + 20, 40 * (number // 6 % 6) + 20, 40 * (number // 36 % 6) + 20)


def flat_image(path: Path, number: int, size: tuple[int, int] = (64, 64), mode: str = "RGB") -> Path:
    """Save a flat image of colour_of(number) (width, height) = size; JPEG q85 for .JPEG, as published."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", size, colour_of(number)).convert(mode)
    if path.suffix.lower() in (".jpeg", ".jpg"):
        image.save(path, quality=85)
    else:
        image.save(path)
    return path


def number_of(image: np.ndarray) -> int:
    """The number whose colour a decoded flat image shows (nearest colour, channel by channel)."""
    r, g, b = (int(np.clip(round((float(image[..., c].mean()) - 20) / 40), 0, 5)) for c in range(3))
    return r + 6 * g + 36 * b


# --- CIFAR-100 ---------------------------------------------------------------------------------------------


def write_cifar100(directory: Path, n_train: int = 12, n_test: int = 7, seed: int = 0):
    """`directory/cifar-100-python/{train,test,meta}` as published; returns (train, test, fine names)."""
    rng = np.random.default_rng(seed)
    folder = directory / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    splits = {}
    for name, count in (("train", n_train), ("test", n_test)):
        images = random_images(rng, count)
        fine = rng.integers(0, 100, count)
        write_python2_pickle(folder / name, {
            b"filenames": [f"img_{i}.png".encode() for i in range(count)], b"batch_label": name.encode(),
            b"fine_labels": [int(v) for v in fine], b"coarse_labels": [int(v) // 5 for v in fine],
            b"data": np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(count, -1)})
        splits[name] = (images, fine.astype(np.int64))
    names = tuple(f"class_{i:02d}" for i in range(100))
    write_python2_pickle(folder / "meta", {b"fine_label_names": [n.encode() for n in names],
                                           b"coarse_label_names": [f"super_{i}".encode() for i in range(20)]})
    return splits["train"], splits["test"], names


def write_cifar100c(folder: Path, labels: np.ndarray, names=("fog",), seed: int = 1) -> dict[str, np.ndarray]:
    """`folder/<name>.npy` (5n, 32, 32, 3) severity-major and `labels.npy` (fine labels x 5)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {name: random_images(rng, 5 * len(labels)) for name in names}
    for name, images in written.items():
        np.save(folder / f"{name}.npy", images)
    np.save(folder / "labels.npy", np.tile(np.asarray(labels, np.uint8), 5))
    return written


# --- Tiny-ImageNet -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tiny:
    folder: Path
    val_numbers: dict[str, int]   # "<wnid>/<file>" -> colour number of the clean val image
    train_count: int


def write_tiny_imagenet(root: Path, per_class_train: int = 2, per_class_val: int = 3) -> Tiny:
    """`root/tiny-imagenet-200/` with wnids.txt (unsorted), words.txt, train/<wnid>/images/<wnid>_<k>.JPEG,
    <wnid>_boxes.txt, val/images/val_<k>.JPEG (flat) and val/val_annotations.txt, test/images/."""
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "wnids.txt").write_text("".join(f"{w}\n" for w in TINY_WNIDS))
    (folder / "words.txt").write_text("".join(f"{w}\t{text}\n" for w, text in TINY_WORDS.items()))
    number = 0
    for wnid in TINY_WNIDS:
        boxes = []
        for k in range(per_class_train):
            flat_image(folder / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", number)
            boxes.append(f"{wnid}_{k}.JPEG\t0\t0\t63\t63\n")
            number += 1
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(boxes))
    # val images interleave the classes, as the real val_annotations.txt does; one greyscale file.
    annotations, val_numbers = [], {}
    for k in range(per_class_val * len(TINY_WNIDS)):
        wnid = TINY_WNIDS[k % len(TINY_WNIDS)]
        name = f"val_{k}.JPEG"
        grey = k == 4  # stored single-channel, as a few real files are: a grey colour (86: r = g = b)
        flat_image(folder / "val" / "images" / name, 86 if grey else number, mode="L" if grey else "RGB")
        val_numbers[f"{wnid}/{name}"] = 86 if grey else number
        annotations.append(f"{name}\t{wnid}\t0\t32\t44\t62\n")
        number += 1
    (folder / "val" / "val_annotations.txt").write_text("".join(annotations))
    flat_image(folder / "test" / "images" / "test_0.JPEG", number)
    return Tiny(folder, val_numbers, per_class_train * len(TINY_WNIDS))


def write_val_bbox_crops(root: Path, per_class: int = 3) -> dict[str, int]:
    """`root/imagenet_val_bbox_crop/<wnid>/test_<k>.JPEG`, the clean images Tiny-ImageNet-C was made from:
    `per_class` crops per class (50 in the real folder), k an ImageNet validation id (the real names run up
    to 50000, e.g. test_1103.JPEG for ILSVRC2012_val_00001103), not 64x64 (bounding-box crops: the generator
    resized them). Returns {"<wnid>/<file>": colour number}."""
    written = {}
    for c, wnid in enumerate(TINY_WNIDS):
        for i in range(per_class):
            key = f"{wnid}/test_{(7919 * (c * per_class + i) + 1103) % 50000}.JPEG"
            number = 120 + c * per_class + i
            flat_image(root / "imagenet_val_bbox_crop" / key, number, (90 + 7 * i, 70 + 5 * c))
            written[key] = number
    return written


def write_tiny_imagenet_c(root: Path, crops: dict[str, int], names=("fog",), severities=(1, 2)) -> dict:
    """`root/Tiny-ImageNet-C/<name>/<severity>/<wnid>/test_<k>.JPEG`: a 64x64 copy of every crop under the
    crop's own name (what make_tinyimagenet_c.py writes), the same files per class folder as the crops,
    nothing else. Returns {(name, severity, key): colour number}, a number per setting and crop."""
    numbers = {}
    for n, name in enumerate(names):
        for severity in severities:
            for i, key in enumerate(crops):
                number = (7 * i + 11 * severity + 13 * n) % 110
                flat_image(root / "Tiny-ImageNet-C" / name / str(severity) / key, number)
                numbers[(name, severity, key)] = number
    return numbers


def write_defective_frost(root: Path, severity: int = 1) -> Path:
    """The frost/<severity>/ of Zenodo record 2536630: 1000 class folders (hendrycks/robustness issue #60),
    holding ImageNet validation file names; two files are enough to show the names."""
    base = root / "Tiny-ImageNet-C" / "frost" / str(severity)
    for wnid in (*TINY_WNIDS, *IMAGENET_WNIDS[:1000 - len(TINY_WNIDS)]):  # the 200 classes are among the 1000
        (base / wnid).mkdir(parents=True, exist_ok=True)
    for wnid in TINY_WNIDS:
        flat_image(base / wnid / "ILSVRC2012_val_00001103.JPEG", 5)
    return base


# --- ImageNet ----------------------------------------------------------------------------------------------

IMAGENET_WNIDS = tuple(f"n{1440764 + 7919 * i:08d}" for i in range(1000))


def write_imagenet_val(root: Path, classes=(0, 5, 999), per_class: int = 2) -> dict[str, int]:
    """`root/val/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG` with all 1000 class folders (most empty) and images
    of several sizes in `classes`; returns {"<wnid>/<file>": colour number}."""
    for wnid in IMAGENET_WNIDS:
        (root / "val" / wnid).mkdir(parents=True, exist_ok=True)
    written, number, serial = {}, 0, 1
    for label in classes:
        for k in range(per_class):
            name = f"ILSVRC2012_val_{serial * 37:08d}.JPEG"
            size = (300 + 40 * k, 260) if k % 2 == 0 else (256, 400)
            flat_image(root / "val" / IMAGENET_WNIDS[label] / name, number, size)
            written[f"{IMAGENET_WNIDS[label]}/{name}"] = number
            number, serial = number + 1, serial + 1
    return written


# --- archives ----------------------------------------------------------------------------------------------


def make_tar(folder: Path, archive: Path, arcname: str) -> Path:
    mode = "w:gz" if archive.name.endswith(".gz") else "w"
    with tarfile.open(archive, mode) as tar:
        tar.add(folder, arcname=arcname)
    return archive


def make_zip(folder: Path, archive: Path, arcname: str) -> Path:
    with zipfile.ZipFile(archive, "w") as packed:
        for path in sorted(folder.rglob("*")):
            packed.write(path, f"{arcname}/{path.relative_to(folder)}")
    return archive
