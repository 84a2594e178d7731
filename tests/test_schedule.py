"""csre_models.schedule: the reference learning-rate rule, per-epoch decay and the optimisers."""
from __future__ import annotations

import pytest
import torch

from csre_models.schedule import WarmupStepDecay, build_optimizer


def test_schedule_is_the_reference_rule():
    factor = WarmupStepDecay(5, [35, 55], 0.1)
    assert [factor(e) for e in (0, 1, 4, 5, 34)] == [0.2, 0.4, 1.0, 1.0, 1.0]
    assert factor(35) == pytest.approx(0.1) and factor(55) == pytest.approx(0.01) and factor(64) == pytest.approx(0.01)
    optimizer, scheduler = build_optimizer(torch.nn.Linear(2, 2), lr=0.1, momentum=0.9, weight_decay=4e-4,
                                           warmup_epochs=5, steps=[35, 55], decay=0.1)
    assert optimizer.defaults["nesterov"] and optimizer.param_groups[0]["lr"] == pytest.approx(0.02)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)


def test_per_epoch_decay_and_adam():
    hcn = WarmupStepDecay(0, [], 0.1, epoch_decay=0.99)                 # ExponentialLR, gamma 0.99
    assert [hcn(e) for e in (0, 1, 399)] == pytest.approx([1.0, 0.99, 0.99 ** 399])
    both = WarmupStepDecay(2, [3], 0.1, epoch_decay=0.5)                 # decays after the warm-up only
    assert [both(e) for e in range(5)] == pytest.approx([0.5, 1.0, 1.0, 0.05, 0.025])
    optimizer, scheduler = build_optimizer(torch.nn.Linear(2, 2), lr=1e-3, momentum=0.9, weight_decay=1e-4,
                                           warmup_epochs=0, steps=[], decay=0.1, optimizer="adam", epoch_decay=0.99)
    assert isinstance(optimizer, torch.optim.Adam)
    assert (optimizer.defaults["betas"], optimizer.defaults["eps"], optimizer.defaults["weight_decay"]) == \
        ((0.9, 0.999), 1e-8, 1e-4)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    optimizer.step()
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.99e-3)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; known: sgd, adam"):
        build_optimizer(torch.nn.Linear(2, 2), 0.1, 0.9, 0.0, 0, [], 0.1, optimizer="rmsprop")
