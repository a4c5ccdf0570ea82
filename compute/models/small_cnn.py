"""`small_cnn`: three conv blocks and global pooling, 128-d features. Trains in seconds on digits."""

from torch import nn

from compute.models.base import ContractModel, Normalize


def _block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return layers + [nn.MaxPool2d(2)] if pool else layers


class SmallCNN(ContractModel):
    def __init__(self, num_classes: int, mean, std, width: int = 32) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.body = nn.Sequential(
            *_block(3, width, pool=True),
            *_block(width, 2 * width, pool=True),
            *_block(2 * width, 4 * width, pool=False),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.classifier = nn.Linear(4 * width, num_classes)
