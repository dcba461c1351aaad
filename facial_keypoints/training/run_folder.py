"""A training run's folder: its lock, its checkpoints, its history and loss curve, and resuming from it."""
from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path

from facial_keypoints.atomic import atomic_output, process_alive
from facial_keypoints.models.checkpoint import CheckpointError, load_checkpoint, make_checkpoint, on_cpu, save_checkpoint
from facial_keypoints.evaluation.plots import plot_loss_curves
from facial_keypoints.training.loop import Progress


class SaveDirectoryBusy(RuntimeError):
    pass


@contextlib.contextmanager
def save_directory_lock(folder: Path):
    """Hold ``folder/.lock`` (this process's pid and start time) while a run trains into ``folder``.

    A second run into a folder a live run holds is refused: the last to finish would silently
    overwrite the other's best.pt.  A lock whose process is gone (a crash, a kill) is taken over,
    and so is one whose pid now belongs to another process (the start times differ).
    """
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    while True:
        try:
            handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                fields = lock.read_text().split()
                holder, started = int(fields[0]), (fields[1] if len(fields) > 1 else None)
            except (OSError, ValueError, IndexError):
                holder, started = 0, None
            if holder and holder != os.getpid() and process_alive(holder) and started in (None, _start_time(holder)):
                raise SaveDirectoryBusy(f"{folder} is in use by another training run (pid {holder}, {lock}); "
                                        "wait for it, or give --save-directory another folder") from None
            lock.unlink(missing_ok=True)  # left by a run that no longer exists
    os.write(handle, f"{os.getpid()} {_start_time(os.getpid()) or ''}".strip().encode())
    os.close(handle)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


    return True


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux /proc), which a reused pid does not share;
    None where /proc is not there."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name before it may hold spaces


class RunFolder:
    """Writes ``loss_history.csv``, ``loss_curve.png``, ``last.pt`` every epoch and ``best.pt`` when the
    validation figure improves.  ``config`` rebuilds the model; ``settings`` (the run's flags, as plain
    values) are stored in every checkpoint, so a finetune knows the rate it continues from."""

    def __init__(self, folder: Path, config: dict, settings: dict, loss_label: str, save_model: bool = True):
        self.folder, self.config, self.settings = Path(folder), config, settings
        self.loss_label, self.save_model = loss_label, save_model

    def end_of_epoch(self, net, history, *, optimizer, scheduler=None, average=None, own_weights=None,
                     is_best: bool = False) -> None:
        self.write_history(history)
        if not self.save_model:
            return
        payload = make_checkpoint(net, self.config, optimizer=optimizer, scheduler=scheduler, args=self.settings,
                                  epoch=history[-1]["epoch"], history=history,
                                  metrics={k: v for k, v in history[-1].items() if k.startswith("val_")})
        if average is not None:  # "model" holds the average; the trained weights are beside it, for --resume
            payload.update(raw_model=on_cpu(own_weights), ema=average.state_dict())
        save_checkpoint(payload, self.folder / "last.pt")
        if is_best:
            save_checkpoint(payload, self.folder / "best.pt")

    def write_history(self, history: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(self.folder / "loss_history.csv") as tmp, open(tmp, "w", newline="") as handle:
            # every key of any epoch (a run resumed from an older checkpoint may add one)
            writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(k for h in history for k in h)))
            writer.writeheader()
            writer.writerows(history)
        plot_loss_curves(history, self.folder / "loss_curve.png", f"{self.loss_label} (112-px frame)")

    def resume(self, net, optimizer, scheduler=None, average=None, force: bool = False) -> Progress:
        """Load ``last.pt`` into the model, optimizer, schedule and weight average; refuse a checkpoint
        of another network, list or backbone (unless ``force``), or one trained with or without --ema."""
        path = self.folder / "last.pt"
        payload = load_checkpoint(path)
        if payload["config"]["arch"] != self.config["arch"]:
            raise CheckpointError(f"{path} holds a {payload['config']['arch']!r} model, not {self.config['arch']!r}")
        before = payload.get("args", {})
        changed = [f"--{key.replace('_', '-')} {before.get(key)} -> {self.settings.get(key)}"
                   for key in ("train_list", "backbone") if key in before and key in self.settings
                   and str(before[key]) != str(self.settings[key])]
        if changed and not force:
            raise CheckpointError(f"{path} was trained with other settings ({'; '.join(changed)}); "
                                  "resuming would mix two runs: give the same flags, or --force-resume")
        if (average is None) != (payload.get("ema") is None):
            how = "with" if payload.get("ema") else "without"
            raise CheckpointError(f"{path} was trained {how} --ema: resume it the same way")
        if average is not None:
            average.load_state_dict(payload["ema"], payload["model"])
        net.load_state_dict(payload["raw_model"] if average is not None else payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        if scheduler is not None and payload.get("scheduler"):
            scheduler.load_state_dict(payload["scheduler"])
        return Progress(history=payload["history"], start_epoch=payload["epoch"] + 1)
