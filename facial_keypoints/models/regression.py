"""Networks that regress the 42 coordinates with a last linear layer: the course's stage-1 CNN, ResNet-18,
MobileNetV3 and the compact residual trunk the heatmap networks share."""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from facial_keypoints.keypoints import NUM_POINTS
from facial_keypoints.models.initialise import init_weights
from facial_keypoints.models.registry import KeypointNet, register


@register("stage1")
class Stage1Net(KeypointNet):
    """The course's stage-1 network (its prototxt, layer names kept).

    1x112x112 -> conv 8 k5 s2 (54) -> pool (27) -> conv 16 k3 (25) -> conv 16 k3 (23)
    -> pool (12) -> conv 24 k3 (10) -> conv 24 k3 (8) -> pool (4) -> conv 40 k3 p1
    -> conv 80 k3 p1 -> 80x4x4 -> fc 128 -> fc 128 -> fc 42, PReLU after each
    layer but the last; AvgPool(2, 2, ceil_mode=True).  With ``batch_norm`` a
    BatchNorm follows every conv and hidden fc (stage 2's "+BN").
    """

    batch_norm = False
    embedding_dim = 128

    def __init__(self, input_size: int = 112):
        super().__init__()
        if input_size != 112:
            raise ValueError("the stage-1 network is defined for 112x112 inputs")
        layers = OrderedDict()
        for spec in STAGE1_LAYERS:
            if isinstance(spec, str):
                layers[spec] = nn.AvgPool2d(kernel_size=2, stride=2, ceil_mode=True)
                continue
            name, cin, cout, kernel, stride, padding = spec
            layers[f"conv{name}"] = nn.Conv2d(cin, cout, kernel, stride, padding, bias=not self.batch_norm)
            if self.batch_norm:
                layers[f"bn{name}"] = nn.BatchNorm2d(cout)
            layers[f"prelu{name}"] = nn.PReLU()
        self.features = nn.Sequential(layers)
        head = OrderedDict()
        for name, cin in (("ip1", 80 * 4 * 4), ("ip2", 128)):
            head[name] = nn.Linear(cin, 128, bias=not self.batch_norm)
            if self.batch_norm:
                head[f"bn_{name}"] = nn.BatchNorm1d(128)
            head[f"prelu{name}"] = nn.PReLU()
        head["ip3"] = nn.Linear(128, 2 * NUM_POINTS)
        self.head = nn.Sequential(head)
        init_weights(self, prelu_slope=0.25)
        # Start near the frame centre, not at 0 (training then sets the mean face, see init_output).
        nn.init.constant_(self.output_layer.bias, input_size / 2)

    def forward_with_embedding(self, x: torch.Tensor):
        x = self.features(x)
        x = x.view(x.size(0), -1)  # (N, 80, 4, 4) -> (N, 1280)
        embedding = self.head[:-1](x)  # through ip2 and its PReLU
        return self.output_layer(embedding), embedding

    @property
    def output_layer(self) -> nn.Linear:
        """The last layer (a property, not a second name for it, so the state_dict holds it once)."""
        return self.head.ip3


@register("stage1_bn")
class Stage1BNNet(Stage1Net):
    """The stage-1 layout with batch normalisation after every conv and hidden fc."""
    batch_norm = True


@register("resnet18")
class ResNet18(KeypointNet):
    """torchvision's resnet18, one input channel, 42 outputs, trained from scratch (112 px -> 4x4 before pooling)."""

    def __init__(self, input_size: int = 112):
        super().__init__()
        from torchvision.models import resnet18
        self.net = resnet18(weights=None, num_classes=2 * NUM_POINTS)
        self.net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(self.net.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.embedding_dim = self.output_layer.in_features
        nn.init.constant_(self.output_layer.bias, input_size / 2)

    @property
    def output_layer(self) -> nn.Linear:
        return self.net.fc

    def forward_with_embedding(self, x):
        n = self.net  # torchvision's forward, stopping before fc to keep the pooled vector
        x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
        embedding = torch.flatten(n.avgpool(n.layer4(n.layer3(n.layer2(n.layer1(x))))), 1)
        return self.output_layer(embedding), embedding


@register("mobilenet_v3")
class MobileNetV3(KeypointNet):
    """torchvision's mobilenet_v3_small (the compact, mobile-class backbone), one input channel, 42 outputs."""

    def __init__(self, input_size: int = 112):
        super().__init__()
        from torchvision.models import mobilenet_v3_small
        self.net = mobilenet_v3_small(weights=None, num_classes=2 * NUM_POINTS, dropout=0.0)
        first = self.net.features[0][0]
        self.net.features[0][0] = nn.Conv2d(1, first.out_channels, first.kernel_size, first.stride,
                                            first.padding, bias=False)
        nn.init.kaiming_normal_(self.net.features[0][0].weight, mode="fan_out")
        self.embedding_dim = self.output_layer.in_features
        nn.init.constant_(self.output_layer.bias, input_size / 2)

    @property
    def output_layer(self) -> nn.Linear:
        return self.net.classifier[-1]

    def forward_with_embedding(self, x):
        x = self.net.avgpool(self.net.features(x)).flatten(1)
        embedding = self.net.classifier[:-1](x)
        return self.output_layer(embedding), embedding


def conv_bn(cin: int, cout: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, inner: int | None = None):
        """``inner``: channels between the block's two convolutions (default ``cout``)."""
        super().__init__()
        inner = inner or cout
        self.body = nn.Sequential(conv_bn(cin, inner, stride),
                                  nn.Conv2d(inner, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.skip = (nn.Identity() if cin == cout and stride == 1 else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


class CompactTrunk(nn.Module):
    """A small ResNet: 112 -> 28 (w ch) -> 14 (2w ch) -> 7 (4w ch); returns all three maps.

    ``blocks`` residual blocks per level (0 at the 28x28 level skips it) and the
    stem's first width trade accuracy for speed: at batch 1 on a CPU each layer's
    fixed cost matters as much as its arithmetic.
    """

    def __init__(self, width: int = 32, blocks: tuple[int, int, int] = (2, 2, 2), stem: int = 24,
                 fine_width: int | None = None, inner: tuple[int | None, int | None, int | None] = (None, None, None)):
        """``fine_width``: channels at the 28x28 level (default ``width``); at batch 1 on a CPU its
        convolutions cost the most per MAC, so narrowing only that level buys the most time.
        ``inner``: per level, the channels inside its residual blocks (None: the level's width);
        narrowing only the insides keeps every block's input, output and skip at full width."""
        super().__init__()
        fine = fine_width or width
        self.stem = nn.Sequential(conv_bn(1, stem, 2), conv_bn(stem, fine, 2))
        self.layer1 = self._level(fine, fine, blocks[0], 1, inner[0])
        self.layer2 = self._level(fine, 2 * width, blocks[1], 2, inner[1])
        self.layer3 = self._level(2 * width, 4 * width, blocks[2], 2, inner[2])

    @staticmethod
    def _level(cin: int, cout: int, blocks: int, stride: int, inner: int | None = None) -> nn.Module:
        if blocks == 0 and cin == cout and stride == 1:
            return nn.Identity()
        return nn.Sequential(ResidualBlock(cin, cout, stride, inner),
                             *[ResidualBlock(cout, cout, inner=inner) for _ in range(blocks - 1)])

    def forward(self, x):
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        return c1, c2, self.layer3(c2)


@register("compact_resnet")
class CompactResNet(KeypointNet):
    """The compact trunk with direct regression: global average pool -> fc 42."""

    def __init__(self, input_size: int = 112, width: int = 32):
        super().__init__()
        self.trunk = CompactTrunk(width)
        self.embedding_dim = 4 * width
        self.output_layer = nn.Linear(4 * width, 2 * NUM_POINTS)
        nn.init.constant_(self.output_layer.bias, input_size / 2)

    def forward_with_embedding(self, x):
        embedding = self.trunk(x)[2].mean(dim=(2, 3))
        return self.output_layer(embedding), embedding


# The stage-1 layout: (name, in, out, kernel, stride, padding) for convs, "poolN" for AvgPool.
STAGE1_LAYERS = (
    ("1_1", 1, 8, 5, 2, 0), "pool1",
    ("2_1", 8, 16, 3, 1, 0), ("2_2", 16, 16, 3, 1, 0), "pool2",
    ("3_1", 16, 24, 3, 1, 0), ("3_2", 24, 24, 3, 1, 0), "pool3",
    ("4_1", 24, 40, 3, 1, 1), ("4_2", 40, 80, 3, 1, 1),
)
