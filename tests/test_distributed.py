"""Training under torchrun: the sampler, batch norm across processes, and a 2-process run against one process."""
import copy
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from conftest import REPO
from facial_keypoints.models.checkpoint import load_model
from facial_keypoints.training.distributed import CpuSyncBatchNorm, ShardedShuffle, convert_to_cpu_sync_batchnorm


def test_the_processes_batches_together_are_the_batches_of_one_process():
    data, seed, epoch = list(range(41)), 100003, 3
    generator = torch.Generator()
    generator.manual_seed(seed + epoch)
    one = [sorted(b.tolist()) for b in DataLoader(data, batch_size=8, shuffle=True, generator=generator)]
    shares = []
    for rank in range(2):
        sampler = ShardedShuffle(data, num_replicas=2, rank=rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        shares.append([b.tolist() for b in DataLoader(data, batch_size=4, sampler=sampler)])
    together = [sorted(a + b) for a, b in zip(*shares)]
    assert together[:5] == one[:5]  # every full step; the last one is padded, as DistributedSampler pads
    sampler.set_epoch(epoch + 1)
    assert [b.tolist() for b in DataLoader(data, batch_size=4, sampler=sampler)] != shares[1]  # reseeded


@pytest.fixture
def one_process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_cpu_sync_batchnorm_matches_batchnorm_forward_backward_and_running_stats(one_process_group):
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.Flatten(),
                                    torch.nn.Linear(48, 4), torch.nn.BatchNorm1d(4))
    synced = convert_to_cpu_sync_batchnorm(copy.deepcopy(reference))
    assert isinstance(synced[1], CpuSyncBatchNorm) and isinstance(synced[4], CpuSyncBatchNorm)
    assert synced.state_dict().keys() == reference.state_dict().keys()  # checkpoints keep their keys
    x = torch.randn(5, 2, 6, 6)
    for model in (reference, synced):
        model.train()
        model(x).pow(2).sum().backward()
    for (name, a), b in zip(reference.named_parameters(), synced.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name
    for (name, a), b in zip(reference.named_buffers(), synced.buffers()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6), name
    reference.eval(), synced.eval()
    assert torch.allclose(reference(x), synced(x), atol=1e-6)


def history(folder):
    with open(folder / "loss_history.csv", newline="") as handle:
        return np.array([[float(row["train_loss"]), float(row["val_loss"])] for row in csv.DictReader(handle)])


def run(command, cwd):
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_torchrun_on_two_processes_trains_as_one_process_with_the_same_batch(real_root, tmp_path):
    """`facial-keypoints train` on stage1_bn (batch norm), 2 epochs: one process at batch 8 against 2 gloo
    processes at batch 4.

    Both take the same samples step by step, and batch norm sees the whole step's batch, so the
    losses differ only by float32 summation order: 2e-8 relative when measured; the tolerance, 1e-5,
    is far below what one different sample per step or a wrong learning rate changes (above 1e-3).
    """
    data = tmp_path / "data" / "I"
    data.mkdir(parents=True)
    lines = (real_root / "I" / "label.txt").read_bytes().decode().splitlines()[:64]
    for name in {line.split()[0] for line in lines}:
        os.symlink(real_root / "I" / name, data / name)
    (data / "label.txt").write_text("\n".join(lines) + "\n")
    train = [sys.executable, "-m", "facial_keypoints", "train"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                "-m", "facial_keypoints", "train"]  # = torchrun -m facial_keypoints train
    run([sys.executable, REPO / "stage1" / "gen_train_test.py", "--data-root", tmp_path / "data", "--out-dir",
         tmp_path / "lists"], tmp_path)
    # stage 1's recipe, like for like: SGD at 3e-3 on the MSE loss, a constant rate, no augmentation
    common = ["--data-root", tmp_path / "data", "--train-list", tmp_path / "lists" / "train.txt", "--cache-dir",
              tmp_path / "cache", "--no-progress", "--arch", "stage1_bn", "--no-augment", "--scheduler", "none",
              "--warmup-epochs", "0", "--optimizer", "sgd", "--loss", "mse", "--weight-decay", "0",
              "--val-fraction", "0.2", "--log-interval", "0"]
    run([*train, *common, "--lr", "0.003", "--epochs", "2", "--batch-size", "8", "--save-directory", tmp_path / "one"],
        tmp_path)
    run([*torchrun, *common, "--lr", "0.003", "--epochs", "2", "--batch-size", "4", "--lr-scaling", "none",
         "--save-directory", tmp_path / "two"], tmp_path)
    assert np.allclose(history(tmp_path / "two"), history(tmp_path / "one"), rtol=1e-5, atol=0)
    # only rank 0 writes: its checkpoints, history, curve and log, and nothing of rank 1's
    assert {p.name for p in (tmp_path / "two").iterdir()} == {"best.pt", "last.pt", "train.log", "loss_curve.png",
                                                              "loss_history.csv"}
    log = (tmp_path / "two" / "train.log").read_text()
    assert log.count("torchrun: 2 processes") == 1 and log.count("epoch 2: train loss") == 1

    # Stopped after one epoch and resumed: the same curve. Half the rate, scaled by the linear rule.
    resumed = [*torchrun, *common, "--batch-size", "4", "--lr", "0.0015", "--save-directory", tmp_path / "resumed"]
    run([*resumed, "--epochs", "1"], tmp_path)
    run([*resumed, "--epochs", "2", "--resume"], tmp_path)
    assert np.allclose(history(tmp_path / "resumed"), history(tmp_path / "one"), rtol=1e-5, atol=0)
    assert "lr 0.0015 -> 0.003 (linear scaling rule" in (tmp_path / "resumed" / "train.log").read_text()

    model, payload = load_model(tmp_path / "two" / "best.pt")  # an ordinary checkpoint: no DDP, no sync layers
    assert not any(isinstance(m, CpuSyncBatchNorm) for m in model.modules())
    assert payload["args"]["lr"] == payload["args"]["base_lr"] == 0.003  # --lr-scaling none: as given
    report = run([sys.executable, "-m", "facial_keypoints", "evaluate", "--checkpoint", tmp_path / "two" / "best.pt",
                  "--list", tmp_path / "lists" / "test.txt", "--data", tmp_path / "data", "--out", tmp_path / "eval",
                  "--cache-dir", tmp_path / "cache", "--no-progress"], tmp_path)
    summary = json.loads(report.strip().splitlines()[-1])
    assert summary["faces"] == len((tmp_path / "lists" / "test.txt").read_text().splitlines())
    assert summary["nme_io"] == summary["nme_io"]  # a number, not NaN


def test_a_course_script_under_torchrun_refuses_in_one_line_naming_facial_keypoints_train(tmp_path):
    """The stage scripts train in one process; started by torchrun (WORLD_SIZE > 1) they say where to go."""
    result = subprocess.run([sys.executable, REPO / "stage1" / "detector.py", "--phase", "train",
                             "--save-directory", tmp_path / "run"], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, WORLD_SIZE="2", RANK="0", LOCAL_RANK="0"))
    assert result.returncode != 0
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "facial-keypoints train" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
