"""Stage 3's network: one keypoint backbone, two heads (keypoints, and face/non-face logits)."""
from __future__ import annotations

from torch import nn

from facial_keypoints.models.registry import create_model, register
from facial_keypoints.outputs import InferenceOutput, KeypointOutput


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


class WithPointSpread(nn.Module):
    """A trained two-headed heatmap model whose outputs add each point's spread (``point_spread``): what
    ``export`` writes and the torch backend runs. Training keeps the two outputs it learns from."""

    def __init__(self, model: FaceAndKeypoints):
        super().__init__()
        self.model = model

    def forward(self, x):
        keypoints, embedding, spread = self.model.body.forward_with_spread(x)
        return InferenceOutput(keypoints, self.model.classifier(embedding), spread)


def for_inference(model: nn.Module) -> nn.Module:
    """``model`` with the point spread among its outputs where its backbone has heatmaps, else as it is."""
    if isinstance(model, FaceAndKeypoints) and hasattr(model.body, "forward_with_spread"):
        return WithPointSpread(model).train(model.training)  # exporters restore the wrapper's mode on all of it
    return model
