"""ImageNet-style ResNet-18 / ResNet-50 (torchvision's layers), with a stem for the input size.

    resnet18_imagenet, resnet50_imagenet   torchvision's stem: 7x7 stride-2 conv + 3x3 stride-2 max-pool,
                                           for 224-px input (ImageNet); 7x7 final map
    resnet18_64, resnet50_64               3x3 stride-1 conv, no max-pool (the usual Tiny-ImageNet
                                           adaptation): 64-px input keeps an 8x8 final map
The rest is torchvision's ResNet (BasicBlock / Bottleneck stages, global average pool), so
`resnet*_imagenet` state dicts load torchvision weights after renaming (`fc.` -> `classifier.`, the
others under `body.`); nothing is downloaded here: weights start random.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18, resnet50

from compute.models.base import ContractModel, Normalize

BUILDERS = {"resnet18": resnet18, "resnet50": resnet50}


class ImageNetResNet(ContractModel):
    depth = "resnet18"
    small_input = False

    def __init__(self, num_classes: int, mean, std) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        net = BUILDERS[self.depth](weights=None, num_classes=num_classes)
        if self.small_input:
            net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        self.body = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3,
                                  net.layer4, net.avgpool, nn.Flatten())
        self.classifier = net.fc


class ResNet18ImageNet(ImageNetResNet):
    depth, small_input = "resnet18", False


class ResNet50ImageNet(ImageNetResNet):
    depth, small_input = "resnet50", False


class ResNet18Small(ImageNetResNet):
    depth, small_input = "resnet18", True


class ResNet50Small(ImageNetResNet):
    depth, small_input = "resnet50", True
