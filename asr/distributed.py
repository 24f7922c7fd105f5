"""Distributed training helpers: process-group set-up from torchrun's environment, and small
collectives that keep ranks in step (agreeing on skips and stops, checking weights match)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


class OutOfSyncError(RuntimeError):
    """DDP ranks ended with different weights."""


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device) -> Dist:
    """Join the process group that torchrun describes in the environment (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if device.type == "cuda" else "gloo"
    # Long waits happen at barriers (a rank building its share of an encoder cache): allow hours.
    dist.init_process_group(backend, timeout=timedelta(hours=3))
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(name)


def agree(flags: list[float], rank: Dist, op=None) -> list[float]:
    """Reduce small flags over DDP ranks (MIN by default), so that every rank takes the same branch."""
    t = torch.tensor(flags, dtype=torch.float64)
    if rank.world_size > 1:
        dist.all_reduce(t, op=op or dist.ReduceOp.MIN)
    return t.tolist()


def check_in_sync(model, rank: Dist) -> None:
    """DDP ranks must end with identical weights; compare a checksum across ranks."""
    if rank.world_size <= 1:
        return
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1).cpu()
    gathered = [torch.zeros_like(checksum) for _ in range(rank.world_size)]
    dist.all_gather(gathered, checksum)
    values = [float(g) for g in gathered]
    # Identical updates keep ranks equal up to rounding in the collectives (about 1e-6 relative
    # after thousands of steps was seen here); a skipped or diverged step differs by far more.
    if max(values) - min(values) > 1e-4 * max(1.0, abs(values[0])):
        raise OutOfSyncError(f"DDP ranks ended with different weights (checksums {values})")
    if rank.main:
        print(f"{rank.world_size} ranks in sync (weight checksum {values[0]:.6f})", file=sys.stderr)
