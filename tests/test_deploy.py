"""Training away from the photos (crop packs) and the int8 ONNX model."""
import numpy as np
import onnx
import pytest
import torch

from facial_keypoints.cli import main as cli
from facial_keypoints.data.crop_cache import load_crops
from facial_keypoints.models.checkpoint import load_checkpoint, load_model, make_checkpoint, save_checkpoint
from facial_keypoints.training.crop_pack import CropPackError, read_pack, write_pack
from facial_keypoints.data.lists import records_from_labels
from facial_keypoints.runtime.export import export_onnx
from facial_keypoints.data.list_files import read_list, write_list
from facial_keypoints.models.networks import create_model
from facial_keypoints.runtime.quantize import float_nodes, quantize_onnx
from facial_keypoints.runtime.loading import OnnxModel, derived_path, load, resolve_backend
from facial_keypoints.training.command import new_model_config
from facial_keypoints.training.flags import build_parser
from facial_keypoints.training.data import training_sets
from facial_keypoints.data.transforms import crops_to_batch, eval_transform
from facial_keypoints.weights import DEFAULT_CHECKPOINT

from conftest import REPO


@pytest.fixture
def train_list(synthetic_root, tmp_path):
    root, _ = synthetic_root
    write_list(tmp_path / "train.txt", records_from_labels(root, 0.25))
    return root, tmp_path / "train.txt"


def test_a_pack_holds_the_lists_crops_and_refuses_another_list(train_list, tmp_path):
    root, path = train_list
    records = read_list(path)
    pack = write_pack(tmp_path / "pack.npz", records, root, 112, cache_dir=tmp_path / "cache", progress=False)
    expected = load_crops([(r.image, r.box) for r in records], root, 112, tmp_path / "cache", progress=False)
    assert np.array_equal(read_pack(pack, records, 112), expected)
    records[0].box = records[0].box + 1
    with pytest.raises(CropPackError, match="another list"):
        read_pack(pack, records, 112)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(CropPackError, match="not a crop pack"):
        read_pack(tmp_path / "junk.npz", records, 112)


def test_a_jpeg_pack_is_smaller_close_to_the_crops_and_checked_like_a_lossless_one(train_list, tmp_path):
    root, path = train_list
    records = read_list(path)
    lossless = write_pack(tmp_path / "pack.npz", records, root, 112, cache_dir=tmp_path / "cache", progress=False)
    jpeg = write_pack(tmp_path / "jpeg.npz", records, root, 112, cache_dir=tmp_path / "cache", progress=False,
                      jpeg_quality=95)
    expected = read_pack(lossless, records, 112)
    crops = read_pack(jpeg, records, 112)
    assert crops.shape == expected.shape and crops.dtype == np.uint8
    difference = np.abs(crops.astype(int) - expected.astype(int))
    assert 0 < difference.mean() < 2 and difference.max() < 40  # lossy, but the same faces in the same order
    assert np.abs(crops[1:].astype(int) - expected[:-1].astype(int)).mean() > 5 * difference.mean()
    # (smaller only on photos: the synthetic faces' flat shading deflates to less than their JPEGs)
    with np.load(jpeg) as pack:
        arrays = dict(pack)
    arrays["jpeg"] = arrays["jpeg"][: arrays["jpeg_ends"][0] // 2]  # cut inside the first crop
    np.savez(tmp_path / "cut.npz", **arrays)
    with pytest.raises(CropPackError, match="not a crop pack"):
        read_pack(tmp_path / "cut.npz", records, 112)
    records[0].box = records[0].box + 1
    with pytest.raises(CropPackError, match="another list"):
        read_pack(jpeg, records, 112)


def test_training_from_a_pack_needs_no_photos(train_list, tmp_path, monkeypatch, capsys):
    root, path = train_list
    pack = tmp_path / "pack.npz"
    assert cli(["pack", "--list", str(path), "--out", str(pack), "--data-root", str(root),
                "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    assert f"packed the {len(read_list(path))} crops of {path} into {pack}" in capsys.readouterr().out
    monkeypatch.delenv("FKD_DATA_ROOT", raising=False)
    save = tmp_path / "run"
    assert cli(["train", "--train-list", str(path), "--crops", str(pack), "--data-root", str(tmp_path / "no-such-root"),
                "--cache-dir", str(tmp_path / "cache"), "--arch", "stage1", "--epochs", "1", "--batch-size", "4",
                "--log-interval", "0", "--no-progress", "--save-directory", str(save)]) == 0
    assert load_checkpoint(save / "last.pt")["epoch"] == 1


def test_extra_crops_come_from_their_own_pack_and_must_be_given(train_list, tmp_path):
    root, path = train_list
    from facial_keypoints.data.lists import split_by_photo
    records = read_list(path)
    train, _ = split_by_photo(records, 0.3, 1)
    write_list(tmp_path / "extra.txt", train[:3])  # stand-ins for detector-framed crops of training photos
    packing = ["--data-root", str(root), "--no-progress", "--cache-dir", str(tmp_path / "cache")]
    assert cli(["pack", "--list", str(path), "--out", str(tmp_path / "pack.npz"), *packing]) == 0
    assert cli(["pack", "--list", str(tmp_path / "extra.txt"), "--out", str(tmp_path / "extra.npz"), *packing]) == 0
    args = build_parser().parse_args(["--train-list", str(path), "--save-directory", str(tmp_path / "run"),
                                      "--arch", "stage1"])
    config = new_model_config(args)

    def datasets(extra_crops):
        return training_sets(path, None, config, val_fraction=0.3, split_seed=1,
                             train_transform=eval_transform(config["normalize"]), crops=tmp_path / "pack.npz",
                             extra_list=tmp_path / "extra.txt", extra_crops=extra_crops, progress=False)

    with pytest.raises(ValueError, match="--extra-crops"):
        datasets(None)
    train_set, _ = datasets(tmp_path / "extra.npz")
    assert len(train_set) == len(train) + 3
    assert np.array_equal(train_set.crops[-3:], train_set.crops[:3])  # the same boxes, from the other pack
    assert train_set.keypoint_labelled.tolist() == [True] * len(train) + [False] * 3


def test_the_train_command_refuses_extra_list_crops_without_their_pack_in_one_line(train_list, tmp_path, capsys):
    root, path = train_list
    write_list(tmp_path / "extra.txt", read_list(path))
    assert cli(["pack", "--list", str(path), "--out", str(tmp_path / "pack.npz"), "--data-root", str(root),
                "--no-progress", "--cache-dir", str(tmp_path / "cache")]) == 0
    capsys.readouterr()
    assert cli(["train", "--train-list", str(path), "--crops", str(tmp_path / "pack.npz"), "--extra-list",
                str(tmp_path / "extra.txt"), "--arch", "stage1", "--epochs", "1", "--no-progress",
                "--save-directory", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "error: --crops with --extra-list needs --extra-crops" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_int8_keeps_the_first_conv_and_the_decoding_in_float_and_stays_close(tmp_path):
    torch.manual_seed(0)
    model = create_model("face_keypoints", backbone="test_small_heatmap").eval()
    float_path = export_onnx(model, tmp_path / "model.onnx")
    kept = float_nodes(float_path)
    assert any("heatmaps" in name for name in kept) and any("Softmax" in name for name in kept)
    assert any("stem.0" in name for name in kept)
    crops = np.random.default_rng(0).integers(0, 256, (48, 112, 112)).astype(np.uint8)
    out = quantize_onnx(float_path, tmp_path / "model.int8.onnx", crops)
    batch = crops_to_batch(crops[:8])
    with torch.no_grad():
        expected = model(batch)
    got = OnnxModel(out)(batch)
    assert got[0].shape == expected[0].shape and got[1].shape == expected[1].shape
    assert torch.isfinite(got[0]).all()
    assert (got[0] - expected[0]).abs().mean() < 2.0  # pixels of the 112-px frame
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert "QLinearConv" in ops or "QuantizeLinear" in ops  # the trunk really is 8-bit
    assert not ops & {"Shape", "Gather", "Range"}  # no shape arithmetic left at run time
    with pytest.raises(ValueError, match="calibration"):
        quantize_onnx(float_path, tmp_path / "empty.onnx", crops[:0])


def test_the_int8_backend_says_how_to_make_a_missing_model(tmp_path):
    model = create_model("stage1")
    save_checkpoint(make_checkpoint(model, {"arch": "stage1", "model_kwargs": {}, "input_size": 112,
                                            "expand_ratio": 0.25, "normalize": True}), tmp_path / "m.pt")
    with pytest.raises(FileNotFoundError, match="facial-keypoints quantize"):
        load(tmp_path / "m.pt", "onnx-int8")
    with pytest.raises(FileNotFoundError, match="facial-keypoints export"):
        load(tmp_path / "m.pt", "onnx")  # loading never exports
    assert not list(tmp_path.glob("*.onnx"))
    assert derived_path(tmp_path / "m.pt", "onnx-int8") == tmp_path / "m.int8.onnx"


def test_shipped_int8_model_agrees_with_the_float_one_on_real_faces(real_root, tmp_path):
    records = [r for r in read_list_of_real_faces(real_root)][:40]
    crops = load_crops([(r.image, r.box) for r in records], real_root / "I", 112, tmp_path, progress=False)
    model, payload = load_model(DEFAULT_CHECKPOINT)
    batch = crops_to_batch(crops, payload["config"]["normalize"])
    with torch.no_grad():
        keypoints, logits = model(batch)
    int8 = load(DEFAULT_CHECKPOINT, "onnx-int8")[0](batch)
    int8_keypoints, int8_logits = int8.keypoints, int8.face_logits
    assert (int8_keypoints - keypoints).abs().mean() < 0.6  # pixels of the 112-px frame
    agree = (int8_logits.argmax(1) == logits.argmax(1)).float().mean()
    assert agree >= 0.95 and logits.argmax(1).float().mean() >= 0.9  # these are all faces


def read_list_of_real_faces(real_root):
    return records_from_labels(real_root / "I", 0.25)


def test_quantize_command_writes_beside_the_checkpoint(train_list, tmp_path, capsys):
    root, path = train_list
    model = create_model("face_keypoints", backbone="test_tiny_heatmap")
    checkpoint = tmp_path / "tiny.pt"
    save_checkpoint(make_checkpoint(model, {"arch": "face_keypoints", "model_kwargs": {"backbone": "test_tiny_heatmap"},
                                            "input_size": 112, "expand_ratio": 0.25, "normalize": True}), checkpoint)
    assert cli(["quantize", "--checkpoint", str(checkpoint), "--list", str(path), "--data-root", str(root),
                "--samples", "8", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    assert (tmp_path / "tiny.int8.onnx").is_file() and not list(tmp_path.glob("*.tmp*"))
    assert "mean keypoint coordinate difference" in capsys.readouterr().out
    # --backend auto runs the int8 model made from this checkpoint, and never a stale one.
    assert resolve_backend(checkpoint, "auto") == "onnx-int8"
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # "retrained" after its int8 model was made
    save_checkpoint(make_checkpoint(model, {"arch": "face_keypoints", "model_kwargs": {"backbone": "test_tiny_heatmap"},
                                            "input_size": 112, "expand_ratio": 0.25, "normalize": True}), checkpoint)
    assert resolve_backend(checkpoint, "auto") == "torch"
    assert resolve_backend(checkpoint, "onnx-int8") == "onnx-int8"  # asked for by name: as asked


def test_auto_backend_runs_the_shipped_int8_model_and_torch_elsewhere(tmp_path):
    assert resolve_backend(DEFAULT_CHECKPOINT, "auto") == "onnx-int8"  # its int8 model carries its hash
    model = create_model("stage1")
    save_checkpoint(make_checkpoint(model, {"arch": "stage1", "model_kwargs": {}, "input_size": 112,
                                            "expand_ratio": 0.25, "normalize": True}), tmp_path / "m.pt")
    assert resolve_backend(tmp_path / "m.pt", "auto") == "torch"  # no int8 model beside it
    assert isinstance(load(tmp_path / "m.pt", "auto")[0], torch.nn.Module)


def test_export_writes_a_stamped_onnx_model_that_auto_then_runs(tmp_path, capsys):
    model = create_model("face_keypoints", backbone="test_tiny_heatmap")
    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "test_tiny_heatmap"}, "input_size": 112,
              "expand_ratio": 0.25, "normalize": True}
    save_checkpoint(make_checkpoint(model, config), tmp_path / "m.pt")
    assert cli(["export", "--checkpoint", str(tmp_path / "m.pt")]) == 0
    assert (tmp_path / "m.onnx").is_file() and "of the output's scale" in capsys.readouterr().out
    network, _, backend = load(tmp_path / "m.pt", "auto")
    assert backend == "onnx" and isinstance(network, OnnxModel)


def test_export_and_quantize_never_write_into_the_package(train_list, tmp_path, monkeypatch, capsys):
    """The shipped model's files go to the user cache; an --out inside the package is refused."""
    from facial_keypoints.weights import WEIGHTS_DIR
    root, path = train_list
    monkeypatch.setenv("FKD_CACHE_DIR", str(tmp_path / "user_cache"))
    before = {p.name: p.stat().st_mtime_ns for p in WEIGHTS_DIR.iterdir()}
    assert cli(["export", "--no-check"]) == 0
    written = capsys.readouterr().out.strip().splitlines()[-1].removeprefix("wrote ")
    assert written.startswith(str(tmp_path / "user_cache")) and written.endswith("default.onnx")
    assert cli(["quantize", "--list", str(path), "--data-root", str(root), "--samples", "4",
                "--cache-dir", str(tmp_path / "cache"), "--out", str(WEIGHTS_DIR / "default.int8.onnx")]) == 2
    assert "read-only" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in WEIGHTS_DIR.iterdir()} == before
    assert resolve_backend(DEFAULT_CHECKPOINT, "auto") == "onnx-int8"  # the shipped int8 model comes first


def test_the_package_data_takes_every_shipped_model_file():
    """A wheel (not only the editable install) must carry the int8 twins predict runs by default."""
    import fnmatch
    import tomllib

    from facial_keypoints.weights import WEIGHTS_DIR
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "facial_keypoints"]
    shipped = [p.name for p in WEIGHTS_DIR.iterdir() if p.suffix == ".pt" or p.name.endswith(".int8.onnx")]
    assert "default.int8.onnx" in shipped and "default.pt" in shipped
    for name in shipped:
        assert any(fnmatch.fnmatch(f"weights/{name}", g) for g in globs), f"weights/{name} is left out of the wheel"


def test_evaluating_the_shipped_model_writes_its_figure_outside_the_package(synthetic_root, tmp_path, monkeypatch,
                                                                           capsys):
    """The shipped models' folder may be a read-only site-packages: evaluate's ced.png goes to ./evaluation."""
    from facial_keypoints.weights import WEIGHTS_DIR
    root, _ = synthetic_root
    before = sorted(p.name for p in WEIGHTS_DIR.iterdir())
    monkeypatch.chdir(tmp_path)
    assert cli(["evaluate", "--data", str(root), "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    assert "cumulative error curve: evaluation/ced.png" in capsys.readouterr().out
    assert (tmp_path / "evaluation" / "ced.png").is_file()
    assert sorted(p.name for p in WEIGHTS_DIR.iterdir()) == before


def test_export_of_the_shipped_model_passes_its_own_check_and_agrees_on_real_faces(real_root, tmp_path):
    """The parity check runs (no --no-check) on the shipped model, and the ONNX model it writes gives the
    network's points on real crops to a thousandth of a pixel."""
    assert cli(["export", "--out", str(tmp_path / "shipped.onnx")]) == 0
    records = records_from_labels(real_root / "II", 0.25)[:16]
    batch = crops_to_batch(load_crops([(r.image, r.box) for r in records], real_root / "II", 112,
                                      tmp_path / "cache", progress=False))
    model, _ = load_model(DEFAULT_CHECKPOINT)
    with torch.no_grad():
        expected = model(batch)[0].numpy()
    np.testing.assert_allclose(OnnxModel(tmp_path / "shipped.onnx")(batch)[0].numpy(), expected, atol=1e-3)


def test_export_and_quantize_refuse_to_write_over_their_inputs(train_list, tmp_path, capsys):
    model = create_model("face_keypoints", backbone="test_tiny_heatmap")
    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "test_tiny_heatmap"}, "input_size": 112,
              "expand_ratio": 0.25, "normalize": True}
    save_checkpoint(make_checkpoint(model, config), tmp_path / "m.pt")
    before = (tmp_path / "m.pt").read_bytes()
    assert cli(["export", "--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "m.pt"), "--no-check"]) == 2
    root, train = train_list
    listed = train.read_bytes()
    assert cli(["quantize", "--checkpoint", str(tmp_path / "m.pt"), "--list", str(train), "--out", str(train),
                "--data-root", str(root)]) == 2
    assert cli(["quantize", "--checkpoint", str(tmp_path / "m.pt"), "--list", str(train),
                "--out", str(tmp_path / "m.pt"), "--data-root", str(root)]) == 2
    assert (tmp_path / "m.pt").read_bytes() == before and train.read_bytes() == listed
    assert capsys.readouterr().err.count("is an input of this command") == 3


def test_a_failed_export_check_keeps_the_previous_onnx_model(tmp_path, monkeypatch, capsys):
    model = create_model("face_keypoints", backbone="test_tiny_heatmap")
    config = {"arch": "face_keypoints", "model_kwargs": {"backbone": "test_tiny_heatmap"}, "input_size": 112,
              "expand_ratio": 0.25, "normalize": True}
    save_checkpoint(make_checkpoint(model, config), tmp_path / "m.pt")
    assert cli(["export", "--checkpoint", str(tmp_path / "m.pt")]) == 0
    good = (tmp_path / "m.onnx").read_bytes()
    real_call = OnnxModel.__call__
    monkeypatch.setattr(OnnxModel, "__call__", lambda self, images: tuple(o + 1 for o in real_call(self, images)))
    assert cli(["export", "--checkpoint", str(tmp_path / "m.pt"), "--opset", "18"]) == 2
    assert "not written" in capsys.readouterr().err
    assert (tmp_path / "m.onnx").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.pt"]
