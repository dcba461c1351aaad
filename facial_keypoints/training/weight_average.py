"""An exponential moving average of a model's weights (``--ema DECAY``), updated after every optimizer step.

The last step's weights carry the noise of the last few batches; their running
average over the last ~1/(1-DECAY) steps does not, and at the same training
cost it usually validates better (Polyak averaging; torchvision's references
call it ``--model-ema``).  Batch-norm statistics are averaged with the weights;
integer buffers (the batch counters) are copied.  The decay ramps up as
``(1+t)/(10+t)`` over the first steps, so the average does not cling to the
starting weights.

Training validates, checkpoints and ships the average: ``applied_to(model)``
puts it into the trained model for a moment (the loss's forward hooks, e.g. a
teacher's heatmap taps, stay on that one model) and gives the model its own
weights back afterwards; those are saved too, for ``--resume``.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


class WeightAverage:
    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema must be between 0 and 1 (exclusive), not {decay}")
        self.decay, self.steps = decay, 0
        self.weights = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.steps) / (10 + self.steps))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """Fold ``model``'s weights after one more optimizer step into the average."""
        self.steps += 1
        keep = self.current_decay()
        for key, value in model.state_dict().items():
            average = self.weights[key]
            if average.dtype.is_floating_point:
                average.lerp_(value.detach().to(average.device), 1.0 - keep)
            else:
                average.copy_(value)

    @contextmanager
    def applied_to(self, model: torch.nn.Module):
        """``model`` holds the average inside the block; yields its own weights, which it gets back after."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.weights)
        try:
            yield own
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "steps": self.steps}

    def load_state_dict(self, state: dict, weights: dict) -> None:
        """Resume: the saved counters and the saved average (a checkpoint's ``model``)."""
        self.decay, self.steps = float(state["decay"]), int(state["steps"])
        self.weights = {k: v.detach().clone().to(self.weights[k].device) for k, v in weights.items()}
