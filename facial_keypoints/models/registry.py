"""Every network by name: ``register`` adds a class, ``create_model`` builds one (``networks`` imports them all)."""
from __future__ import annotations

import torch
from torch import nn


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


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
