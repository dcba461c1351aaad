"""The classifier's second look: unsure rows get the mean of their logits and their mirrored crop's."""
import numpy as np
import torch
from torch.utils.data import Dataset

from facial_keypoints.engine import make_loader, run_inference
from facial_keypoints.face_decision import UNSURE, softmax_face_probability, unsure_rows, with_mirror_opinion
from facial_keypoints.models import create_model


def logits_for(probabilities):
    p = np.asarray(probabilities, dtype=np.float64)
    return np.stack([np.zeros_like(p), np.log(p / (1 - p))], axis=1).astype(np.float32)


def test_only_rows_inside_the_band_are_unsure():
    logits = logits_for([0.001, 0.02, 0.5, 0.98, 0.999])
    np.testing.assert_allclose(softmax_face_probability(logits), [0.001, 0.02, 0.5, 0.98, 0.999], atol=1e-6)
    assert unsure_rows(logits, UNSURE).tolist() == [1, 2, 3]
    assert unsure_rows(logits, (0.4, 0.6)).tolist() == [2]


def test_mirror_opinion_averages_the_unsure_rows_and_asks_once():
    logits = logits_for([0.001, 0.3, 0.999, 0.7])
    asked = []

    def mirrored(rows):
        asked.append(list(rows))
        return np.array([[0.0, 4.0], [0.0, -4.0]], np.float32)[: len(rows)]

    combined = with_mirror_opinion(logits, mirrored)
    assert asked == [[1, 3]]
    np.testing.assert_array_equal(combined[[0, 2]], logits[[0, 2]])
    np.testing.assert_allclose(combined[1], (logits[1] + [0.0, 4.0]) / 2)
    np.testing.assert_allclose(combined[3], (logits[3] + [0.0, -4.0]) / 2)
    assert combined is not logits and np.isclose(logits[1, 1], np.log(0.3 / 0.7))  # the input is not changed


def test_nobody_unsure_means_no_second_pass():
    def never(rows):
        raise AssertionError("the mirror was asked")
    logits = logits_for([0.0001, 0.9999])
    np.testing.assert_array_equal(with_mirror_opinion(logits, never), logits)


class Crops(Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "keypoints": torch.zeros(42), "face": torch.tensor(1.0), "index": i}


def test_run_inference_keeps_the_single_pass_and_the_deployed_decision():
    torch.manual_seed(3)
    model = create_model("face_keypoints", input_size=32, backbone="fast_heatmap").eval()
    images = torch.randn(5, 1, 32, 32)
    with torch.no_grad():
        keypoints, plain = model(images)
        _, mirrored = model(torch.flip(images, dims=[3]))
    loader = make_loader(Crops(images), 2, shuffle=False)
    single = run_inference(model, loader, "cpu")
    both = run_inference(model, loader, "cpu", mirror_band=(0.0, 1.0))
    np.testing.assert_allclose(single["face_prob"], torch.softmax(plain, 1)[:, 1].numpy(), atol=1e-5)
    np.testing.assert_allclose(both["face_prob_plain"], single["face_prob"], atol=1e-7)
    np.testing.assert_allclose(both["face_prob"], torch.softmax((plain + mirrored) / 2, 1)[:, 1].numpy(), atol=1e-5)
    np.testing.assert_allclose(both["pred"], single["pred"])  # keypoints from the plain pass
