"""Training on several processes with torch.distributed, as ``torchrun`` starts them.

``torchrun --nproc_per_node N -m facial_keypoints train ...`` sets ``WORLD_SIZE``, ``RANK``
and ``LOCAL_RANK``; ``Distributed.from_environment()`` joins that group (gloo on the CPU, nccl on
GPUs) and everything else reads its fields. Without torchrun it is one process, and training runs
exactly as before.

Each process takes every ``world_size``-th sample of the epoch's permutation (``ShardedShuffle``, a
DistributedSampler reseeded each epoch), so one step's samples over all processes are the same
contiguous slice of the same permutation a single process with the global batch takes, and batch
norm sees them all (SyncBatchNorm on GPUs, ``CpuSyncBatchNorm`` on the CPU): the runs differ only by
the order in which float sums are taken.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
from torch.utils.data import DistributedSampler


@dataclass
class Distributed:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    backend: str | None = None

    @classmethod
    def from_environment(cls, no_cuda: bool = False) -> "Distributed":
        """Join torchrun's process group when ``WORLD_SIZE`` > 1, else a single process."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        import torch.distributed as dist
        cuda = torch.cuda.is_available() and not no_cuda
        backend = "nccl" if cuda else "gloo"
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if cuda:
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend)
        return cls(world_size, dist.get_rank(), local_rank, backend)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes checkpoints, histories and plots."""
        return self.rank == 0

    def device(self, default: torch.device) -> torch.device:
        """This process's device: its own GPU under nccl, else ``default``."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else default

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``model`` in DistributedDataParallel, its batch norm synchronised across processes (in place:
        ``model`` itself is what DDP holds); as is in a single process."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel
        if device.type == "cuda":
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            model = convert_to_cpu_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def sampler(self, dataset, seed: int):
        """Each process's share of the data, shuffled by ``seed`` plus the epoch (``set_epoch``)."""
        return ShardedShuffle(dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed)

    def mean(self, total: float, count: int) -> float:
        """The mean over all processes of values whose local sum and count are given."""
        if not self.enabled:
            return total / max(count, 1)
        import torch.distributed as dist
        both = torch.tensor([total, count], dtype=torch.float64)
        if self.backend == "nccl":
            both = both.cuda()
        dist.all_reduce(both)
        return float(both[0] / both[1].clamp(min=1))

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist
            dist.barrier()

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist
            if dist.is_initialized():
                dist.destroy_process_group()


class ShardedShuffle(DistributedSampler):
    """A DistributedSampler over the very permutation a one-process shuffling DataLoader draws from a
    generator seeded with ``seed + epoch``: so N processes with batch B train on the same samples,
    step by step, as one process with batch N x B (tests/test_distributed.py checks it)."""

    def __iter__(self):
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        # a one-process DataLoader draws its workers' base seed from the generator before shuffling
        torch.empty((), dtype=torch.int64).random_(generator=generator)
        indices = torch.randperm(len(self.dataset), generator=generator).tolist()
        padding = self.total_size - len(indices)  # as DistributedSampler: repeat the first ones to even out
        indices += (indices * (1 + padding // max(len(indices), 1)))[:padding]
        return iter(indices[self.rank:self.total_size:self.num_replicas])


class CpuSyncBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover every process's batch, on the CPU.

    PyTorch's SyncBatchNorm runs on GPUs only; this sums the per-channel count, sum and sum of
    squares with a differentiable all-reduce (torch.distributed.nn), so the forward pass and the
    gradients are those of one batch norm over the whole step's batch. Evaluation uses the running
    statistics, as BatchNorm does; they are updated as BatchNorm updates them (unbiased variance).
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected a batch of at least 2 dimensions, got {x.dim()}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.track_running_stats:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce
        dims = [0, *range(2, x.dim())]
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype)
        with warnings.catch_warnings():  # its deprecation points to a private module without this autograd
            warnings.simplefilter("ignore", FutureWarning)
            stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        channels = x.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total
        var = (stats[channels:2 * channels] / total - mean * mean).clamp(min=0)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
            unbiased = var.detach() * total / (total - 1).clamp(min=1)
            self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_to_cpu_sync_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with every BatchNorm layer replaced, in place, by a ``CpuSyncBatchNorm`` sharing its
    weights and running statistics (checkpoints keep the same keys)."""
    for name, child in module.named_children():
        if isinstance(child, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(child, CpuSyncBatchNorm):
            synced = CpuSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                      child.track_running_stats)
            synced.weight, synced.bias = child.weight, child.bias
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                setattr(synced, buffer, getattr(child, buffer))
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            convert_to_cpu_sync_batchnorm(child)
    return module
