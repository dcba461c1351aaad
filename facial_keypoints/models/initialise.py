"""Starting and freezing weights: He initialisation for PReLU, the output layer at the mean face, frozen
layers that stay in eval mode."""
from __future__ import annotations

import torch
from torch import nn


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
