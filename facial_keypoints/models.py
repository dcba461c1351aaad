"""Networks, chosen by name from one registry.

Every model maps a ``(N, 1, 112, 112)`` float image to ``(N, 42)`` keypoint
coordinates ``x0, y0, x1, y1, ...`` in the pixels of that 112x112 frame, so the
training loop, the metrics and the evaluator never need to know which it is.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .keypoints import NUM_POINTS

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


@register("stage1")
class Stage1Net(nn.Module):
    """The course's stage-1 network (its prototxt, layer names kept).

    1x112x112 -> conv 8 k5 s2 (54) -> pool (27) -> conv 16 k3 (25) -> conv 16 k3 (23)
    -> pool (12) -> conv 24 k3 (10) -> conv 24 k3 (8) -> pool (4) -> conv 40 k3 p1
    -> conv 80 k3 p1 -> 80x4x4 -> fc 128 -> fc 128 -> fc 42, PReLU after each
    layer but the last; AvgPool(2, 2, ceil_mode=True).
    """

    def __init__(self, input_size: int = 112):
        super().__init__()
        if input_size != 112:
            raise ValueError("the stage-1 network is defined for 112x112 inputs")
        pool = lambda: nn.AvgPool2d(kernel_size=2, stride=2, ceil_mode=True)  # noqa: E731
        self.features = nn.Sequential(OrderedDict([
            ("conv1_1", nn.Conv2d(1, 8, kernel_size=5, stride=2)), ("prelu1_1", nn.PReLU()),
            ("pool1", pool()),
            ("conv2_1", nn.Conv2d(8, 16, kernel_size=3)), ("prelu2_1", nn.PReLU()),
            ("conv2_2", nn.Conv2d(16, 16, kernel_size=3)), ("prelu2_2", nn.PReLU()),
            ("pool2", pool()),
            ("conv3_1", nn.Conv2d(16, 24, kernel_size=3)), ("prelu3_1", nn.PReLU()),
            ("conv3_2", nn.Conv2d(24, 24, kernel_size=3)), ("prelu3_2", nn.PReLU()),
            ("pool3", pool()),
            ("conv4_1", nn.Conv2d(24, 40, kernel_size=3, padding=1)), ("prelu4_1", nn.PReLU()),
            ("conv4_2", nn.Conv2d(40, 80, kernel_size=3, padding=1)), ("prelu4_2", nn.PReLU()),
        ]))
        self.head = nn.Sequential(OrderedDict([
            ("ip1", nn.Linear(80 * 4 * 4, 128)), ("preluip1", nn.PReLU()),
            ("ip2", nn.Linear(128, 128)), ("preluip2", nn.PReLU()),
            ("ip3", nn.Linear(128, 2 * NUM_POINTS)),
        ]))
        init_weights(self, prelu_slope=0.25)
        self.output_layer = self.head.ip3
        # Start near the frame centre, not at 0 (training then sets the mean face, see init_output).
        nn.init.constant_(self.output_layer.bias, input_size / 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = x.view(x.size(0), -1)  # (N, 80, 4, 4) -> (N, 1280)
        return self.head(x)


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
    return frozen


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
