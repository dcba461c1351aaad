import os
import stat

import numpy as np
import pytest
import torch

from facial_keypoints.atomic import atomic_output
from facial_keypoints.models.checkpoint import (CheckpointError, load_checkpoint, load_model, make_checkpoint,
                                         save_checkpoint)
from facial_keypoints.models.networks import create_model

CONFIG = {"arch": "stage1", "model_kwargs": {}, "input_size": 112, "expand_ratio": 0.25, "normalize": True}


def test_round_trip_gives_the_same_model(tmp_path):
    torch.manual_seed(0)
    model = create_model("stage1").eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    payload = make_checkpoint(model, CONFIG, optimizer=optimizer, args={"lr": 0.1, "path": tmp_path}, epoch=3,
                              metrics={"val_loss": 1.5}, history=[{"epoch": 1, "val_loss": 2.0}])
    save_checkpoint(payload, tmp_path / "best.pt")
    back, loaded = load_model(tmp_path / "best.pt")
    x = torch.randn(2, 1, 112, 112)
    torch.testing.assert_close(back(x), model(x))
    assert loaded["epoch"] == 3 and loaded["args"]["path"] == str(tmp_path) and loaded["optimizer"] is not None
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temporary file left behind
    # It is a plain weights-only file.
    torch.load(tmp_path / "best.pt", weights_only=True)


def test_refuses_files_that_are_not_our_checkpoints(tmp_path):
    # Seeded noise, plain and behind a pickle header: the unpickler fails in many ways on it
    # (an unseeded single try once hit an IndexError that escaped as a traceback).
    rng = np.random.default_rng(0)
    for n in range(300):
        noise = rng.integers(0, 256, 300, dtype=np.uint8).tobytes()
        (tmp_path / "noise.pt").write_bytes(noise if n % 2 else b"\x80\x02" + noise)
        with pytest.raises(CheckpointError, match="not a readable checkpoint|not a facial_keypoints checkpoint"):
            load_checkpoint(tmp_path / "noise.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a facial_keypoints checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    torch.save(create_model("stage1").state_dict(), tmp_path / "bare_state_dict.pt")
    with pytest.raises(CheckpointError, match="not a facial_keypoints checkpoint"):
        load_checkpoint(tmp_path / "bare_state_dict.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_refuses_a_truncated_checkpoint(tmp_path):
    save_checkpoint(make_checkpoint(create_model("stage1"), CONFIG), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")


def test_refuses_weights_of_another_architecture(tmp_path):
    payload = make_checkpoint(create_model("stage1"), CONFIG)
    payload["model"]["head.ip3.weight"] = torch.zeros(10, 128)
    save_checkpoint(payload, tmp_path / "odd.pt")
    with pytest.raises(CheckpointError, match="do not fit architecture 'stage1'"):
        load_model(tmp_path / "odd.pt")
    payload["config"]["arch"] = "no_such_net"
    save_checkpoint(payload, tmp_path / "unknown.pt")
    with pytest.raises(CheckpointError, match="unknown architecture 'no_such_net'"):
        load_model(tmp_path / "unknown.pt")


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    save_checkpoint({"format": "x", "n": 1}, tmp_path / "last.pt")

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError):
        save_checkpoint({"format": "x", "n": 2}, tmp_path / "last.pt")
    monkeypatch.undo()
    assert torch.load(tmp_path / "last.pt", weights_only=True)["n"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_atomic_output_leaves_the_old_file_on_error_and_plain_permissions_on_success(tmp_path):
    target = tmp_path / "model.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["model.bin"]
    umask = os.umask(0)
    os.umask(umask)
    with atomic_output(tmp_path / "new" / "model.bin") as tmp:
        tmp.write_bytes(b"new")
    written = tmp_path / "new" / "model.bin"
    assert written.read_bytes() == b"new"
    assert stat.S_IMODE(written.stat().st_mode) == 0o666 & ~umask  # not mkstemp's owner-only 0600


def _adam_after_steps(model, steps=2):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(steps):
        optimizer.zero_grad()
        model(torch.ones(2, 1, 112, 112)).pow(2).mean().backward()
        optimizer.step()
    return optimizer


def _all_tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _all_tensors(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _all_tensors(v)


@pytest.mark.parametrize("device", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_the_optimizer_state_is_saved_on_the_cpu_and_resumes_the_same_steps(tmp_path, device):
    # A checkpoint written on a GPU must load with a plain torch.load on a CPU machine, and the
    # state moved through the CPU must still continue training exactly (its tuples and lists kept).
    torch.manual_seed(0)
    model = create_model("stage1").to(device)
    optimizer = _adam_after_steps(model)
    save_checkpoint(make_checkpoint(model, CONFIG, optimizer=optimizer), tmp_path / "last.pt")
    payload = torch.load(tmp_path / "last.pt", map_location=None, weights_only=True)
    tensors = list(_all_tensors(payload["optimizer"]))
    assert tensors and all(t.device.type == "cpu" for t in tensors)

    twin = create_model("stage1").to(device)
    twin.load_state_dict(model.state_dict())
    twin_optimizer = torch.optim.Adam(twin.parameters(), lr=1e-2)
    twin_optimizer.load_state_dict(payload["optimizer"])
    assert twin_optimizer.param_groups[0]["betas"] == (0.8, 0.95)
    for m, o in ((model, optimizer), (twin, twin_optimizer)):
        o.zero_grad()
        m(torch.ones(2, 1, 112, 112, device=device)).pow(2).mean().backward()
        o.step()
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
