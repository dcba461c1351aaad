"""Networks, chosen by name from one registry.

Every model maps a ``(N, 1, 112, 112)`` float image to ``(N, 42)`` keypoint
coordinates ``x0, y0, x1, y1, ...`` in the pixels of that 112x112 frame, so the
training loop, the metrics and the evaluator never need to know which it is.
"""
from __future__ import annotations

import functools
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from facial_keypoints.outputs import KeypointOutput
from facial_keypoints.keypoints import NUM_POINTS

MODELS: dict[str, type[nn.Module]] = {}


def register(name: str):
    def add(cls):
        if name in MODELS:
            raise ValueError(f"model {name!r} registered twice")
        MODELS[name] = cls
        cls.arch = name
        return cls
    return add


def create_model(name: str, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


class KeypointNet(nn.Module):
    """Base of every registered model: ``forward_with_embedding`` returns the (N, 42)
    keypoints and the (N, embedding_dim) vector they were computed from, which
    stage 3's face/non-face head shares."""

    embedding_dim: int

    def forward_with_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_embedding(x)[0]


# The stage-1 layout: (name, in, out, kernel, stride, padding) for convs, "poolN" for AvgPool.
STAGE1_LAYERS = (
    ("1_1", 1, 8, 5, 2, 0), "pool1",
    ("2_1", 8, 16, 3, 1, 0), ("2_2", 16, 16, 3, 1, 0), "pool2",
    ("3_1", 16, 24, 3, 1, 0), ("3_2", 24, 24, 3, 1, 0), "pool3",
    ("4_1", 24, 40, 3, 1, 1), ("4_2", 40, 80, 3, 1, 1),
)


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


def soft_argmax(heatmaps: torch.Tensor, frame_size: int) -> torch.Tensor:
    """(N, K, H, W) logits -> (N, 2K) expected (x, y) in frame pixels (integral regression).

    The softmax over each map is a probability of where the point is; its mean
    position is differentiable and sub-pixel, so the coordinate loss trains the maps.
    The mean is one matrix product with a constant (H*W, 2) grid of pixel centres:
    in ONNX that is a single MatMul, not a chain of shape arithmetic.
    """
    k, h, w = (int(s) for s in heatmaps.shape[1:])
    probs = torch.softmax(heatmaps.float().reshape(-1, k, h * w), dim=-1)
    grid = pixel_grid(h, w, frame_size).to(probs.device)
    return (probs @ grid).reshape(-1, 2 * k)


@functools.cache
def pixel_grid(h: int, w: int, frame_size: int) -> torch.Tensor:
    """(H*W, 2) frame coordinates (x, y) of the centres of an H x W map's cells, row by row."""
    xs = (np.arange(w) + 0.5) * (frame_size / w)
    ys = (np.arange(h) + 0.5) * (frame_size / h)
    gx, gy = np.meshgrid(xs, ys)
    return torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32))


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Nearest upsampling of ``x`` to ``like``'s height and width.

    An exact doubling uses a constant scale factor, which exports to ONNX as one
    Resize with constant scales instead of Shape/Gather/Concat arithmetic (and
    lets the int8 model keep ONNX Runtime's static shape inference).
    """
    h, w = int(like.shape[-2]), int(like.shape[-1])
    if (h, w) == (2 * int(x.shape[-2]), 2 * int(x.shape[-1])):
        return nn.functional.interpolate(x, scale_factor=2.0, mode="nearest")
    return nn.functional.interpolate(x, size=(h, w), mode="nearest")


@register("compact_heatmap")
class CompactHeatmap(KeypointNet):
    """The compact trunk with a heatmap head: a small FPN back up to 28x28, 21 maps, soft-argmax decoding."""

    def __init__(self, input_size: int = 112, width: int = 32, blocks: tuple[int, int, int] = (2, 2, 2),
                 stem: int = 24, fine_width: int | None = None,
                 inner: tuple[int | None, int | None, int | None] = (None, None, None)):
        super().__init__()
        self.input_size = input_size
        self.embedding_dim = 4 * width
        fine = fine_width or width
        self.trunk = CompactTrunk(width, blocks, stem, fine, inner)
        self.lateral2 = nn.Conv2d(2 * width, 2 * width, 1)
        self.reduce3 = nn.Conv2d(4 * width, 2 * width, 1)
        self.smooth2 = conv_bn(2 * width, fine)
        self.lateral1 = nn.Conv2d(fine, fine, 1)
        self.smooth1 = conv_bn(fine, fine)
        self.heatmaps = nn.Conv2d(fine, NUM_POINTS, 1)

    def forward_with_embedding(self, x):
        c1, c2, c3 = self.trunk(x)
        top = self.smooth2(self.lateral2(c2) + upsample_to(self.reduce3(c3), c2))
        top = self.smooth1(self.lateral1(c1) + upsample_to(top, c1))
        return soft_argmax(self.heatmaps(top), self.input_size), c3.mean(dim=(2, 3))


@register("thin_deep48_heatmap")
class ThinDeep48Heatmap(CompactHeatmap):
    """The shipped model's network: the compact heatmap model with fewer channels inside its residual blocks at
    14x14 (48 of 64) and 7x7 (64 of 128), where the 28x28 level that places the keypoints keeps them all.
    Made from a trained compact model by recipes/change_backbone.py --narrow and distilled from it
    (recipes/README.md)."""

    def __init__(self, input_size: int = 112):
        super().__init__(input_size, inner=(None, 48, 64))


@register("face_keypoints")
class FaceAndKeypoints(nn.Module):
    """Stage 3: one backbone, two heads — the backbone's keypoints, and face/non-face logits from its embedding."""

    def __init__(self, input_size: int = 112, backbone: str = "compact_heatmap"):
        super().__init__()
        if backbone == "face_keypoints":
            raise ValueError("the backbone must be a keypoint model")
        self.body = create_model(backbone, input_size=input_size)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.body.embedding_dim, 2))

    @property
    def output_layer(self) -> nn.Module | None:
        """The backbone's last linear layer, where it regresses the points directly."""
        return getattr(self.body, "output_layer", None)

    def forward(self, x):
        keypoints, embedding = self.body.forward_with_embedding(x)
        return KeypointOutput(keypoints, self.classifier(embedding))


def init_weights(model: nn.Module, prelu_slope: float = 0.25) -> None:
    """He initialisation for PReLU, zero biases.

    PyTorch's default (kaiming_uniform with a=sqrt(5)) shrinks the signal at
    every layer of this small net: its outputs barely depend on the input, and
    training settles on the mean face (MSE ~25) instead of learning features.
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, a=prelu_slope, nonlinearity="leaky_relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


@torch.no_grad()
def init_output(model: nn.Module, mean_keypoints: torch.Tensor) -> bool:
    """Make a regression model start at the training set's mean face.

    The last layer's bias becomes the mean (42,) target and its weights shrink
    tenfold, so the first SGD steps see errors of a few pixels instead of tens
    (the first loss drops from ~350 to ~25) and do not blow up.  Models without
    an ``output_layer`` (heatmap heads) are left alone; returns whether it applied.
    """
    layer = getattr(model, "output_layer", None)
    if not isinstance(layer, nn.Linear) or layer.out_features != mean_keypoints.numel():
        return False
    layer.bias.copy_(mean_keypoints.reshape(-1))
    layer.weight.mul_(0.1)
    return True


def freeze(model: nn.Module, names: list[str]) -> list[str]:
    """Stop gradients for every parameter whose dotted name starts with, or has a part equal to, one of ``names``.

    Returns the frozen parameter names; an unknown name is an error, not a silent no-op.
    """
    frozen = []
    for name in names:
        hits = [p for p in model.named_parameters()
                if p[0].startswith(name) or name in p[0].split(".")]
        if not hits:
            layers = sorted({n.rsplit(".", 1)[0] for n, _ in model.named_parameters()})
            raise KeyError(f"no layer named {name!r}; layers: {', '.join(layers)}")
        for param_name, param in hits:
            param.requires_grad_(False)
            frozen.append(param_name)
    # A frozen batch norm must also keep its running statistics and use them: in train mode it
    # would normalise with each batch's statistics and drift its running ones towards the new
    # data, changing what the "frozen" layers compute.  Such a module stays in eval mode.
    frozen_set = set(frozen)
    for module_name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = [f"{module_name}.{n}" for n, _ in module.named_parameters()]
            if params and all(n in frozen_set for n in params):
                module.train = _stay_in_eval.__get__(module)
                module.eval()
    return frozen


def _stay_in_eval(self, mode: bool = True):
    return nn.Module.train(self, False)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
