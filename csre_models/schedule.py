"""The optimiser and learning-rate schedule of the reference recipes.

SGD with Nesterov momentum over all parameters (encoder and CSRE head alike, one group, weight decay on
everything), as CTR-GCN, Hyperformer and the CSRE release do. The learning rate is set once per epoch by
the rule of their ``adjust_learning_rate``::

    lr(e) = base * (e + 1) / warmup                 for e < warmup
    lr(e) = base * decay ** #{s in steps : e >= s}   afterwards
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["WarmupStepDecay", "build_optimizer"]


class WarmupStepDecay:
    """The factor ``lr(e) / base`` of the reference rule, for :class:`~torch.optim.lr_scheduler.LambdaLR`.

    A class rather than a closure so that the scheduler's ``state_dict`` records its settings.
    """

    def __init__(self, warmup_epochs: int, steps: Sequence[int], decay: float):
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        self.warmup_epochs = warmup_epochs
        self.steps = sorted(int(step) for step in steps)
        self.decay = decay

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        return self.decay ** sum(epoch >= step for step in self.steps)


def build_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float, warmup_epochs: int,
                    steps: Sequence[int], decay: float) -> Tuple[torch.optim.SGD, LambdaLR]:
    """SGD (Nesterov) over ``model``'s parameters and its per-epoch schedule, positioned at epoch 0.

    Call ``scheduler.step()`` once at the end of every epoch.
    """
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True,
                                weight_decay=weight_decay)
    return optimizer, LambdaLR(optimizer, WarmupStepDecay(warmup_epochs, steps, decay))
