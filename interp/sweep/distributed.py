"""Distribution over an existing launcher (``torchrun``, ``accelerate launch``): ranks, devices, sharding.

Design
------
The launcher starts one process per GPU (per node) and sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` (and ``MASTER_ADDR`` / ``MASTER_PORT``); a sweep reads them and needs nothing else
from the launcher. Work is split by prompt, statically: rank ``r`` of ``w`` takes the prompts at
positions ``p`` with ``p % w == r`` (round robin, so tag-ordered prompt sets stay balanced) and skips
the samples already done. The split needs no communication and does not depend on what is done, so a
rerun with another number of ranks still covers every prompt exactly once.

The store is created by rank 0; the others wait for it to appear (its atomic creation is the marker),
which lets their first generation overlap the wait. A process group (gloo, which runs on CPU and
beside CUDA) is used for one thing only: the barrier before rank 0 prints the sweep's summary. Its
timeout is long (ranks can finish hours apart).
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, position: int) -> bool:
        """Whether the prompt at ``position`` of the sweep's prompt list is this rank's."""
        return position % self.world_size == self.rank


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def from_env() -> DistInfo:
    """Rank, world size and local rank from the launcher's environment (1 process without one)."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank if world > 1 else 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"RANK={rank} and WORLD_SIZE={world} are inconsistent")
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def device_for(info: DistInfo, requested: str = "auto") -> torch.device:
    """``auto``: ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; anything else as given."""
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", info.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def init_process_group(info: DistInfo, timeout_s: float) -> bool:
    """Join the launcher's process group (gloo) if there are several ranks; True if this call created it."""
    if info.world_size <= 1 or not torch.distributed.is_available():
        return False
    if torch.distributed.is_initialized():
        return False
    for name in ("MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={info.world_size} but {name} is not set: start with torchrun or accelerate")
    torch.distributed.init_process_group(
        backend="gloo",
        rank=info.rank,
        world_size=info.world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )
    return True


def barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def destroy(created: bool) -> None:
    if created and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
