"""Model registry: an architecture name maps to a class meeting the contract in `compute.models.base`.

Add an architecture by adding a module and one line in `ARCHITECTURES`.
"""

from __future__ import annotations

from collections.abc import Sequence

from compute.models.base import ContractModel
from compute.models.conv8 import Conv8
from compute.models.resnet import ResNet18, WideResNet18x2
from compute.models.resnet_imagenet import ResNet18ImageNet, ResNet18Small, ResNet50ImageNet, ResNet50Small
from compute.models.small_cnn import SmallCNN
from compute.models.vgg import VGG

ARCHITECTURES: dict[str, type[ContractModel]] = {
    "small_cnn": SmallCNN,
    "resnet18": ResNet18,
    "wrn18_2": WideResNet18x2,
    "vgg16": VGG,
    "conv8": Conv8,
    "resnet18_imagenet": ResNet18ImageNet,
    "resnet50_imagenet": ResNet50ImageNet,
    "resnet18_64": ResNet18Small,
    "resnet50_64": ResNet50Small,
}
NAMES = tuple(ARCHITECTURES)


def build(arch: str, num_classes: int, mean: Sequence[float], std: Sequence[float]) -> ContractModel:
    """A freshly initialised model of architecture `arch`."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(NAMES)}")
    return ARCHITECTURES[arch](num_classes, mean, std)


__all__ = ["ARCHITECTURES", "NAMES", "build"]
