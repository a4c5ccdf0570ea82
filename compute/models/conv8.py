"""Conv8 (Ramanujan et al. / Diffenderfer et al.): 8 conv layers, then two 256-unit layers and the classifier.

The features are the output of the second 256-unit layer (after ReLU).
"""

from torch import nn

from compute.models.base import ContractModel, Normalize


class Conv8(ContractModel):
    def __init__(self, num_classes: int, mean, std, image_size: int = 32) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        layers: list[nn.Module] = []
        cin = 3
        for cout in (64, 128, 256, 512):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.ReLU(),
                       nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2)]
            cin = cout
        spatial = image_size // 16
        self.body = nn.Sequential(
            *layers, nn.Flatten(),
            nn.Linear(512 * spatial * spatial, 256, bias=False), nn.ReLU(),
            nn.Linear(256, 256, bias=False), nn.ReLU(),
        )
        self.classifier = nn.Linear(256, num_classes, bias=False)
