"""Data-parallel training under ``accelerate launch`` (or ``torchrun``) on a multi-GPU machine.

The same loop runs in every process. Each optimizer step's batches are dealt out across the
processes (process *r* takes batches *r*, *r + world*, ...), every process draws the noise of the
batches it takes exactly as a single process would, and the LoRA gradients are summed across
processes before the step, so the weights stay identical everywhere. Only the main process writes
files and reports. In a single process (the app, the Mac) this is all a no-op and nothing is
imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world: int = 1
    device: torch.device | None = None  # the device accelerate gave this process; None: the config's

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def my_batches(self, group: list[Any]) -> list[tuple[int, Any]]:
        """The (position in the group, batch) pairs this process computes."""
        return [(position, batch) for position, batch in enumerate(group) if position % self.world == self.rank]

    def sum_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        """Every process ends with the sum of all processes' gradients (a process with no batch adds zeros)."""
        if not self.active:
            return
        import torch.distributed as dist

        for parameter in parameters:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
            dist.all_reduce(parameter.grad, op=dist.ReduceOp.SUM)

    def sum(self, value: float, device: torch.device) -> float:
        if not self.active:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return float(tensor.item())

    def any(self, flag: bool, device: torch.device) -> bool:
        """True everywhere when it is true in any process (a Ctrl-C seen by one stops them all together)."""
        return self.sum(1.0 if flag else 0.0, device) > 0 if self.active else flag


def from_environment() -> Distributed:
    """This process's place in a launch (``WORLD_SIZE`` set by accelerate/torchrun), or a single process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return Distributed()
    from accelerate import PartialState

    # Joins the process group: NCCL on CUDA; gloo on the CPU, which accelerate only uses when told.
    state = PartialState(cpu=not torch.cuda.is_available())
    device = torch.device(state.device)
    return Distributed(state.process_index, state.num_processes, torch.device("cpu") if device.type == "cpu" else device)
