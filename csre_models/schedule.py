"""The optimisers and learning-rate schedule of the reference recipes.

One parameter group over all parameters (encoder and CSRE head alike, weight decay on everything), with
either optimiser of the references:

* ``sgd``: SGD with Nesterov momentum, as CTR-GCN, 2s-AGCN, Hyperformer, BlockGCN and the CSRE release;
* ``adam``: Adam (betas 0.9, 0.999, eps 1e-8, L2 weight decay added to the gradient), as HCN.

The learning rate is set once per epoch. The GCN recipes' ``adjust_learning_rate`` (warm-up, then a
step decay) and HCN's ``ExponentialLR`` are both this rule, the latter with no warm-up, no steps and
``epoch_decay`` its gamma::

    lr(e) = base * (e + 1) / warmup                                                  for e < warmup
    lr(e) = base * decay ** #{s in steps : e >= s} * epoch_decay ** (e - warmup)     afterwards
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["OPTIMIZERS", "WarmupStepDecay", "build_optimizer"]

#: The optimisers :func:`build_optimizer` knows.
OPTIMIZERS = ("sgd", "adam")


class WarmupStepDecay:
    """The factor ``lr(e) / base`` of the reference rule, for :class:`~torch.optim.lr_scheduler.LambdaLR`.

    A class rather than a closure so that the scheduler's ``state_dict`` records its settings.
    """

    def __init__(self, warmup_epochs: int, steps: Sequence[int], decay: float, epoch_decay: float = 1.0):
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
        self.warmup_epochs = warmup_epochs
        self.steps = sorted(int(step) for step in steps)
        self.decay = decay
        self.epoch_decay = epoch_decay

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return (epoch + 1) / self.warmup_epochs
        return (self.decay ** sum(epoch >= step for step in self.steps)
                * self.epoch_decay ** (epoch - self.warmup_epochs))


def build_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float, warmup_epochs: int,
                    steps: Sequence[int], decay: float, optimizer: str = "sgd",
                    epoch_decay: float = 1.0) -> Tuple[torch.optim.Optimizer, LambdaLR]:
    """``optimizer`` (:data:`OPTIMIZERS`; ``momentum`` is SGD's) over ``model``'s parameters and its
    per-epoch schedule, positioned at epoch 0.

    Call ``scheduler.step()`` once at the end of every epoch.
    """
    if optimizer == "sgd":
        built = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=True,
                                weight_decay=weight_decay)
    elif optimizer == "adam":
        built = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8,
                                 weight_decay=weight_decay)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    return built, LambdaLR(built, WarmupStepDecay(warmup_epochs, steps, decay, epoch_decay))
