"""Tests of the CSRE head: STFD, BankContrastLoss, CSREHead and the export helpers.

The loss is checked against the official code's recorded output (``shared/reference/csre_loss/case1.pt``)
and against :func:`loop_bank_contrast_loss`, a deliberately plain per-anchor implementation of the official
semantics that is given the same random negatives as the vectorised loss.
"""
from __future__ import annotations

import io
import json
from typing import Callable, List, Tuple

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from conftest import shared_path

from csre_models import create_encoder
from csre_models import csre
from csre_models.csre import (STFD, BankContrastLoss, CSREHead, csre_objective, encoder_state_dict,
                              sample_distinct, select_random_negatives)

RandomChoice = Callable[[int, torch.Tensor], torch.Tensor]


def loop_bank_contrast_loss(features: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor,
                            bank: torch.Tensor, written: torch.Tensor, bank_labels: torch.Tensor,
                            random_choice: RandomChoice, positives: int, negatives: int,
                            temperature: float) -> torch.Tensor:
    """The official loss written anchor by anchor (slow, for reference). Updates ``bank`` and ``written``.

    ``random_choice(q, negative_slots)`` returns the ``negatives`` random-negative slots of the ``q``-th
    qualifying anchor, so a caller can make the random draw explicit.
    """
    normalized = features / features.norm(dim=1, keepdim=True)
    bank[indices] = normalized.detach()
    written[indices] = True
    rows = []
    for anchor, label in zip(normalized, labels):
        same_class = bank_labels == label
        positive_slots = torch.nonzero(same_class & written).flatten()
        negative_slots = torch.nonzero(~same_class & written).flatten()
        if len(positive_slots) < positives or len(negative_slots) < negatives:
            continue
        random_slots = random_choice(len(rows) // 2, negative_slots)
        assert len(set(random_slots.tolist())) == negatives
        assert set(random_slots.tolist()) <= set(negative_slots.tolist())
        similarities = bank @ anchor
        hard_positives = similarities[positive_slots].sort().values[:positives]
        hard_negatives = similarities[negative_slots].sort(descending=True).values[:negatives]
        random_negatives = similarities[random_slots]
        for negative_set in (hard_negatives, random_negatives):
            rows.append(torch.cat([hard_positives[:, None], negative_set.expand(positives, -1)], dim=1))
    if not rows:
        return features.sum() * 0.0
    logits = torch.cat(rows) / temperature
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long))


def random_batch(generator: torch.Generator, bank_labels: torch.Tensor, size: int, dim: int):
    """Features with class structure and random norms, their labels and distinct bank slots."""
    num_classes = int(bank_labels.max()) + 1
    class_centres = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(7))
    indices = torch.randperm(len(bank_labels), generator=generator)[:size]
    labels = bank_labels[indices]
    directions = class_centres[labels] + 1.5 * torch.randn(size, dim, generator=generator)
    norms = 0.5 + 1.5 * torch.rand(size, 1, generator=generator)
    return F.normalize(directions, dim=1) * norms, labels, indices


def run_calls(loss_fn: BankContrastLoss, batches) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Loss and feature gradient of every call, in order."""
    results = []
    for features, labels, indices in batches:
        features = features.clone().requires_grad_(True)
        loss = loss_fn(features, labels, indices)
        loss.backward()
        results.append((loss.detach(), features.grad))
    return results


SMALL = dict(positives=6, negatives=24, temperature=0.8)


def small_loss(bank_labels: torch.Tensor, seed: int = 0, **overrides) -> BankContrastLoss:
    return BankContrastLoss(len(bank_labels), dim=16, bank_labels=bank_labels, seed=seed,
                            **{**SMALL, **overrides})


def small_bank_labels(bank_size: int = 300, num_classes: int = 5) -> torch.Tensor:
    return torch.arange(bank_size) % num_classes


def small_batches(count: int, size: int = 40, seed: int = 3, bank_labels=None):
    bank_labels = small_bank_labels() if bank_labels is None else bank_labels
    generator = torch.Generator().manual_seed(seed)
    return [random_batch(generator, bank_labels, size, 16) for _ in range(count)]


# ------------------------------------------------------------------------------------------- the loss

def test_replays_the_official_case():
    case = torch.load(shared_path("reference", "csre_loss", "case1.pt"))
    loss_fn = BankContrastLoss(case["bank_size"], dim=case["dim"], bank_labels=case["bank_labels"],
                               positives=case["positives"], negatives=case["negatives"],
                               temperature=case["temperature"])
    for step in case["steps"]:
        features = step["features"].clone().requires_grad_(True)
        loss = loss_fn(features, step["labels"], step["indices"])
        loss.backward()
        if step["grad"] is None:
            assert loss.item() == 0.0
            continue
        reference = float(step["loss"])
        assert abs(loss.item() - reference) <= 1e-5 * abs(reference)
        assert (features.grad - step["grad"]).abs().max() <= 1e-4 * step["grad"].abs().max()


def record_random_negatives(monkeypatch) -> List[torch.Tensor]:
    """The random-negative slots of every loss call from now on, appended to the returned list."""
    recorded = []
    draw_random_negatives = BankContrastLoss._random_negatives

    def recording_draw(self, *args):
        recorded.append(draw_random_negatives(self, *args))
        return recorded[-1]

    monkeypatch.setattr(BankContrastLoss, "_random_negatives", recording_draw)
    return recorded


def test_matches_the_per_anchor_loop_when_random_negatives_matter(monkeypatch):
    bank_labels = small_bank_labels()
    loss_fn = small_loss(bank_labels)
    recorded = record_random_negatives(monkeypatch)
    bank, written = torch.zeros(len(bank_labels), 16), torch.zeros(len(bank_labels), dtype=torch.bool)
    for call, (features, labels, indices) in enumerate(small_batches(4)):
        features = features.requires_grad_(True)
        loss = loss_fn(features, labels, indices)
        (gradient,) = torch.autograd.grad(loss, features)
        if loss.item() == 0.0:
            continue
        draws = recorded[-1]
        loop_features = features.detach().clone().requires_grad_(True)
        expected = loop_bank_contrast_loss(loop_features, labels, indices, bank, written, bank_labels,
                                           lambda q, negative_slots: draws[q], **SMALL)
        (expected_gradient,) = torch.autograd.grad(expected, loop_features)
        negatives_per_anchor = (written & (bank_labels[None, :] != labels[:, None])).sum(dim=1)
        assert negatives_per_anchor.min() > SMALL["negatives"], "the draw must choose among more than K"
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=0)
        torch.testing.assert_close(gradient, expected_gradient, rtol=0,
                                   atol=1e-4 * expected_gradient.abs().max().item())
    assert len(recorded) >= 2, "the case must have calls with qualifying anchors"


def _labels_with_a_small_class() -> torch.Tensor:
    """Four classes of 74 slots and a fifth of 4, fewer than P = 6: its anchors never qualify."""
    labels = torch.arange(300) % 4
    labels[[0, 75, 150, 225]] = 4
    return labels


@pytest.mark.parametrize("bank_labels", [small_bank_labels(), _labels_with_a_small_class()],
                         ids=["classes-over-P", "a-class-under-P"])
def test_matches_the_per_anchor_loop_with_every_slot_written(monkeypatch, bank_labels):
    """The steady state (every slot written) takes shortcuts past the written mask; same loss as the loop,
    also when a class holds fewer slots than P (a full bank does not make its anchors qualify)."""
    loss_fn = small_loss(bank_labels)
    generator = torch.Generator().manual_seed(5)
    filled = F.normalize(torch.randn(len(bank_labels), 16, generator=generator), dim=1)
    loss_fn.bank.copy_(filled)
    loss_fn.written.fill_(True)
    bank, written = filled.clone(), torch.ones(len(bank_labels), dtype=torch.bool)
    recorded = record_random_negatives(monkeypatch)
    batches = small_batches(2, seed=11, bank_labels=bank_labels)
    if int(bank_labels.max()) == 4:
        assert any((labels == 4).any() for _, labels, _ in batches), "the case needs an anchor of the small class"
    for features, labels, indices in batches:
        features = features.requires_grad_(True)
        loss = loss_fn(features, labels, indices)
        (gradient,) = torch.autograd.grad(loss, features)
        draws = recorded[-1]
        loop_features = features.detach().clone().requires_grad_(True)
        expected = loop_bank_contrast_loss(loop_features, labels, indices, bank, written, bank_labels,
                                           lambda q, negative_slots: draws[q], **SMALL)
        (expected_gradient,) = torch.autograd.grad(expected, loop_features)
        torch.testing.assert_close(loss, expected, rtol=1e-5, atol=0)
        torch.testing.assert_close(gradient, expected_gradient, rtol=0,
                                   atol=1e-4 * expected_gradient.abs().max().item())


def test_random_negatives_change_the_loss():
    bank_labels = small_bank_labels()
    batches = small_batches(3)
    first = run_calls(small_loss(bank_labels, seed=0), batches)
    second = run_calls(small_loss(bank_labels, seed=1), batches)
    assert first[-1][0] > 0
    assert first[-1][0] != second[-1][0]


def test_no_qualifying_anchor_gives_an_exact_zero_that_backpropagates():
    bank_labels = small_bank_labels()
    loss_fn = small_loss(bank_labels, positives=500)
    features, labels, indices = small_batches(1)[0]
    features.requires_grad_(True)
    loss = loss_fn(features, labels, indices)
    loss.backward()
    assert loss.shape == () and loss.item() == 0.0
    assert torch.equal(features.grad, torch.zeros_like(features))
    assert loss_fn.written.sum() == len(indices), "skipped anchors are still enqueued"


def test_enqueues_normalised_detached_features_before_contrasting():
    bank_labels = small_bank_labels()
    loss_fn = small_loss(bank_labels)
    features, labels, indices = small_batches(1)[0]
    loss_fn(features, labels, indices)
    torch.testing.assert_close(loss_fn.bank[indices], F.normalize(features, dim=1))
    assert not loss_fn.bank.requires_grad
    assert loss_fn.written.sum() == len(indices)


def test_same_seed_gives_identical_losses():
    bank_labels = small_bank_labels()
    batches = small_batches(4)
    first = run_calls(small_loss(bank_labels, seed=5), batches)
    second = run_calls(small_loss(bank_labels, seed=5), batches)
    for (loss_a, grad_a), (loss_b, grad_b) in zip(first, second):
        assert torch.equal(loss_a, loss_b) and torch.equal(grad_a, grad_b)


def test_state_dict_round_trip_resumes_identically():
    bank_labels = small_bank_labels()
    batches = small_batches(5)
    uninterrupted = run_calls(small_loss(bank_labels, seed=2), batches)

    interrupted = small_loss(bank_labels, seed=2)
    run_calls(interrupted, batches[:3])
    checkpoint = io.BytesIO()
    torch.save(interrupted.state_dict(), checkpoint)
    checkpoint.seek(0)
    resumed = small_loss(bank_labels, seed=99)   # the seed comes back from the checkpoint
    resumed.load_state_dict(torch.load(checkpoint))
    for (loss_a, grad_a), (loss_b, grad_b) in zip(uninterrupted[3:], run_calls(resumed, batches[3:])):
        assert loss_a > 0
        assert torch.equal(loss_a, loss_b) and torch.equal(grad_a, grad_b)


def test_a_call_before_the_previous_backward_is_refused():
    bank_labels = small_bank_labels()
    loss_fn = small_loss(bank_labels)
    first, second = small_batches(2, size=150)
    earlier_loss = loss_fn(first[0].requires_grad_(True), first[1], first[2])
    loss_fn(*second)                                     # overwrites bank rows the first graph reads
    assert earlier_loss > 0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        earlier_loss.backward()


def test_state_dict_holds_banks_and_sampling_state():
    keys = set(small_loss(small_bank_labels()).state_dict())
    assert keys == {"bank", "written", "bank_labels", "sampling_seed", "sampling_step"}


def assert_uniform(counts: torch.Tensor, expected: float) -> None:
    """Every count within 5 binomial standard deviations of ``expected`` (p small)."""
    assert (counts - expected).abs().max() < 5 * expected ** 0.5, counts


def test_select_random_negatives_draws_uniform_distinct_negatives():
    negative_mask = torch.zeros(1, 40, dtype=torch.bool)
    negative_mask[0, ::2] = True                         # 20 negatives, choose 5
    generator = torch.Generator().manual_seed(0)
    counts = torch.zeros(40)
    for _ in range(2000):
        chosen = select_random_negatives(negative_mask, 5, generator)[0]
        assert len(set(chosen.tolist())) == 5 and negative_mask[0, chosen].all()
        counts[chosen] += 1
    assert_uniform(counts[::2], 2000 * 5 / 20)
    assert counts[1::2].sum() == 0


def test_sample_distinct_draws_uniform_subsets_and_flags_incomplete_rows():
    generator = torch.Generator().manual_seed(0)
    population = torch.tensor([20] * 4000 + [5] * 200 + [4] * 10)
    values, complete = sample_distinct(population, 5, generator)
    assert not complete[-10:].any(), "fewer values than asked for can never complete"
    assert complete[:4000].float().mean() > 0.99 and not complete[4000:4200].all()
    assert ((values >= 0) & (values < population[:, None])).all()
    for row in values[complete]:
        assert len(set(row.tolist())) == 5
    drawn_from_20 = values[:4000][complete[:4000]]
    assert_uniform(torch.bincount(drawn_from_20.flatten(), minlength=20).float(), len(drawn_from_20) * 5 / 20)


@pytest.mark.parametrize("written_slots", [300, 40], ids=["distinct-draws", "fallback-to-keys"])
def test_loss_draws_random_negatives_uniformly_among_the_negatives(written_slots):
    bank_labels = small_bank_labels()
    loss_fn = small_loss(bank_labels)
    loss_fn.written[:written_slots] = True               # 60 or 8 per class: 240 or 32 negatives, K = 24
    labels = torch.tensor([2] * 400)
    generator = torch.Generator().manual_seed(0)
    chosen = loss_fn._random_negatives(labels, loss_fn._written_per_class(), generator)
    negatives = torch.nonzero((bank_labels != 2) & loss_fn.written).flatten()
    assert all(len(set(row.tolist())) == 24 for row in chosen)
    assert set(chosen.flatten().tolist()) <= set(negatives.tolist())
    counts = torch.bincount(chosen.flatten(), minlength=len(bank_labels))[negatives].float()
    assert_uniform(counts, 400 * 24 / len(negatives))


def test_similarities_stay_float32_under_autocast():
    bank_labels = small_bank_labels()
    batches = small_batches(3)
    plain = run_calls(small_loss(bank_labels), batches)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        autocast = run_calls(small_loss(bank_labels), batches)
    for (loss_a, _), (loss_b, _) in zip(plain, autocast):
        assert loss_b.dtype == torch.float32 and torch.equal(loss_a, loss_b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_with_the_same_random_negatives(monkeypatch):
    def first_negatives(self, labels, written_per_class, generator):
        negative_mask = (labels[:, None] != self.bank_labels[None, :]) & self.written
        slots = torch.arange(negative_mask.shape[1], device=negative_mask.device)
        return torch.where(negative_mask, slots, negative_mask.shape[1] + slots).sort(dim=1).values[:, :self.negatives]

    monkeypatch.setattr(BankContrastLoss, "_random_negatives", first_negatives)
    bank_labels = small_bank_labels()
    batches = small_batches(3)
    on_cpu = run_calls(small_loss(bank_labels), batches)
    on_cuda = run_calls(small_loss(bank_labels).cuda(), [tuple(t.cuda() for t in b) for b in batches])
    for (loss_a, grad_a), (loss_b, grad_b) in zip(on_cpu, on_cuda):
        torch.testing.assert_close(loss_b.cpu(), loss_a, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad_b.cpu(), grad_a, rtol=1e-4, atol=1e-4 * grad_a.abs().max().item())


def _distributed_worker(rank: int, world_size: int, init_file: str, results_dir: str) -> None:
    """One rank: enqueue its own batch (sizes differ per rank) and save its loss and bank."""
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        loss_fn, batches = _distributed_setup()
        features, labels, indices = batches[rank]
        loss = loss_fn(features, labels, indices)
        torch.save({"loss": loss.detach(), "bank": loss_fn.bank, "written": loss_fn.written},
                   f"{results_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _distributed_setup():
    """A loss whose bank is already fully written, and one batch per rank (sizes 12 and 9)."""
    bank_labels = small_bank_labels()
    loss_fn = small_loss(bank_labels)
    generator = torch.Generator().manual_seed(11)
    loss_fn.bank.copy_(F.normalize(torch.randn(len(bank_labels), 16, generator=generator), dim=1))
    loss_fn.written.fill_(True)
    slots = torch.randperm(len(bank_labels), generator=generator)[:21]
    features = torch.randn(21, 16, generator=generator)
    batches = [(features[:12], bank_labels[slots[:12]], slots[:12]),
               (features[12:], bank_labels[slots[12:]], slots[12:])]
    return loss_fn, batches


@pytest.mark.slow
def test_distributed_ranks_share_one_bank(tmp_path):
    mp.spawn(_distributed_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    single, batches = _distributed_setup()
    with torch.no_grad():                                # what rank 0 sees: rank 1's batch enqueued too
        single.bank[batches[1][2]] = F.normalize(batches[1][0], dim=1)
    expected_loss = single(*batches[0])
    for result in ranks:
        assert torch.equal(result["bank"], single.bank) and result["written"].all()
    assert torch.equal(ranks[0]["loss"], expected_loss.detach())
    assert ranks[1]["loss"] > 0


# ------------------------------------------------------------------------------------------------ STFD

@pytest.mark.parametrize("channels, joints, frames, expected", [
    (216, 25, 16, 295_622),    # Hyperformer NTU (measured in the official CSRE model)
    (216, 20, 13, 240_326),    # Hyperformer NW-UCLA
    (216, 20, 16, 261_062),    # the official model built for NW-UCLA (T' hard-coded to 16)
    (256, 25, 16, 352_832),    # CTR-GCN, BlockGCN, 2s-AGCN at window 64
    (256, 20, 13, 287_296),    # CTR-GCN, BlockGCN, 2s-AGCN on NW-UCLA
    (256, 25, 75, 836_160),    # 2s-AGCN at window 300
    (256, 4, 4, 82_496),       # HCN window 64 (hypothetical)
    (256, 2, 2, 49_728),       # HCN window 32 (hypothetical)
])
def test_stfd_parameter_count_follows_the_formula(channels, joints, frames, expected):
    stfd = STFD(channels, frames, joints, num_person=2)
    reduced = channels // 8
    formula = 2 * (channels * reduced + reduced) + (reduced * joints * 256 + 256) + (reduced * frames * 256 + 256)
    assert sum(p.numel() for p in stfd.parameters()) == formula == expected


def official_layout_stfd_state(channels: int, frames: int, joints: int, dim: int = 256, seed: int = 0):
    """Random weights under the official ``std.*`` keys with the official shapes."""
    generator = torch.Generator().manual_seed(seed)
    reduced = channels // 8
    shapes = {"conv1.weight": (reduced, channels, 1), "conv1.bias": (reduced,),
              "convs.weight": (dim, reduced * joints), "convs.bias": (dim,),
              "conv2.weight": (reduced, channels, 1), "conv2.bias": (reduced,),
              "convt.weight": (dim, reduced * frames), "convt.bias": (dim,)}
    return {f"std.{name}": torch.randn(shape, generator=generator) for name, shape in shapes.items()}


def official_stfd_forward(state, feature_map: torch.Tensor, num_person: int):
    """The official STD_unit computation and person averaging, written with functional ops."""
    persons_times_batch = feature_map.shape[0]
    spatial = F.conv1d(feature_map.mean(-2), state["std.conv1.weight"], state["std.conv1.bias"])
    spatial = F.linear(spatial.view(persons_times_batch, -1), state["std.convs.weight"], state["std.convs.bias"])
    temporal = F.conv1d(feature_map.mean(-1), state["std.conv2.weight"], state["std.conv2.bias"])
    temporal = F.linear(temporal.view(persons_times_batch, -1), state["std.convt.weight"],
                        state["std.convt.bias"])
    return (spatial.view(-1, num_person, spatial.shape[1]).mean(1),
            temporal.view(-1, num_person, temporal.shape[1]).mean(1))


@pytest.mark.parametrize("channels, frames, joints, num_person", [(216, 16, 25, 2), (216, 13, 20, 1)])
def test_stfd_loads_official_keys_and_computes_the_official_map(channels, frames, joints, num_person):
    state = official_layout_stfd_state(channels, frames, joints)
    state["l10.unrelated.weight"] = torch.zeros(3)       # encoder keys are ignored
    stfd = STFD.from_feature_map_shape((2 * num_person, channels, frames, joints), num_person)
    stfd.load_reference_state_dict(state)
    feature_map = torch.randn(2 * num_person, channels, frames, joints, generator=torch.Generator().manual_seed(1))
    spatial, temporal = stfd(feature_map)
    expected_spatial, expected_temporal = official_stfd_forward(state, feature_map, num_person)
    assert spatial.shape == temporal.shape == (2, 256)
    torch.testing.assert_close(spatial, expected_spatial, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(temporal, expected_temporal, rtol=1e-5, atol=1e-4)


def test_stfd_rejects_a_feature_map_of_another_shape():
    stfd = STFD(216, 16, 25, num_person=2)
    with pytest.raises(ValueError, match=r"\(C, T', V\) = \(216, 16, 25\)"):
        stfd(torch.zeros(4, 216, 13, 25))


def test_stfd_loads_the_official_csre_checkpoint():
    folder = shared_path("reference", "encoders", "csre_hyperformer_ntu60")
    state = torch.load(folder / "state.pt")
    facts = json.loads((folder / "facts.json").read_text())
    stfd = STFD.from_feature_map_shape(facts["feature_map_shape_batch2"], num_person=2)
    stfd.load_reference_state_dict(state)
    assert sum(p.numel() for p in stfd.parameters()) == facts["params_stfd"]
    assert torch.equal(stfd.spatial_reduce.weight, state["std.conv1.weight"])
    assert torch.equal(stfd.spatial_project.weight, state["std.convs.weight"])
    assert torch.equal(stfd.temporal_reduce.bias, state["std.conv2.bias"])
    assert torch.equal(stfd.temporal_project.weight, state["std.convt.weight"])


def test_stfd_reproduces_official_outputs_on_the_hyperformer_feature_map():
    folder = shared_path("reference", "encoders", "csre_hyperformer_ntu60")
    facts = json.loads((folder / "facts.json").read_text())
    encoder = create_encoder(facts["create_encoder"]["name"], **facts["create_encoder"]["kwargs"])
    state = torch.load(folder / "state.pt")
    encoder.load_reference_state_dict(state)
    stfd = STFD.from_feature_map_shape(encoder.feature_map_shape, num_person=2)
    stfd.load_reference_state_dict(state)
    encoder.eval()
    with torch.no_grad():
        spatial, temporal = stfd(encoder.forward_features(torch.load(folder / "input.pt")))
    for output, name in ((spatial, "stfd_s.pt"), (temporal, "stfd_t.pt")):
        reference = torch.load(folder / name)
        assert torch.allclose(output, reference, rtol=1e-4, atol=1e-4 * reference.abs().max())


# ------------------------------------------------------------------------------------- head and export

def small_head(bank_labels: torch.Tensor) -> CSREHead:
    return CSREHead((6, 32, 4, 5), num_person=2, bank_labels=bank_labels, dim=16, **SMALL)


def test_head_returns_the_mean_of_spatial_and_temporal_losses():
    bank_labels = small_bank_labels()
    head, twin = small_head(bank_labels), small_head(bank_labels)
    twin.load_state_dict(head.state_dict())
    generator = torch.Generator().manual_seed(4)
    for _ in range(3):
        indices = torch.randperm(len(bank_labels), generator=generator)[:40]
        feature_map = torch.randn(80, 32, 4, 5, generator=generator)
        loss = head(feature_map, bank_labels[indices], indices)
        spatial, temporal = twin.stfd(feature_map)
        expected = (twin.spatial_contrast(spatial, bank_labels[indices], indices)
                    + twin.temporal_contrast(temporal, bank_labels[indices], indices)) / 2
        assert torch.equal(loss, expected)
    assert loss > 0
    loss.backward()
    assert all(p.grad is not None for p in head.parameters())
    assert not torch.equal(head.spatial_contrast.bank, head.temporal_contrast.bank)


def test_head_parameters_are_the_stfd_and_banks_are_buffers():
    head = small_head(small_bank_labels())
    assert sum(p.numel() for p in head.parameters()) == sum(p.numel() for p in head.stfd.parameters())
    assert "spatial_contrast.bank" in head.state_dict() and "temporal_contrast.written" in head.state_dict()


def test_objective_adds_the_contrastive_term_to_the_cross_entropy():
    logits, labels = torch.randn(4, 3), torch.tensor([0, 2, 1, 1])
    contrast = torch.tensor(0.7)
    cross_entropy = F.cross_entropy(logits, labels)
    torch.testing.assert_close(csre_objective(logits, labels, contrast), cross_entropy + 0.7)
    torch.testing.assert_close(csre_objective(logits, labels, contrast, contrast_weight=2.0), cross_entropy + 1.4)


class TinyEncoder(nn.Module):
    """The encoder interface CSREModel needs: a (N*M, C, T', V) map and logits from it."""
    feature_map_shape = (32, 4, 5)
    num_person = 2

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(3, 32, kernel_size=1)
        self.classifier = nn.Linear(32, 5)

    def forward_features(self, x):
        n, c, t, v, m = x.shape
        return self.features(x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v))

    def forward_head(self, feature_map, num_person):
        pooled = feature_map.mean(dim=(2, 3)).view(-1, num_person, feature_map.shape[1]).mean(dim=1)
        return self.classifier(pooled)


def tiny_model(bank_labels: torch.Tensor):
    return csre.CSREModel(TinyEncoder(), bank_labels, dim=16, **SMALL)


def test_model_runs_the_encoder_once_for_logits_and_head():
    bank_labels = small_bank_labels()
    model = tiny_model(bank_labels)
    generator = torch.Generator().manual_seed(5)
    for _ in range(3):
        indices = torch.randperm(len(bank_labels), generator=generator)[:40]
        x = torch.randn(40, 3, 4, 5, 2, generator=generator)
        logits, contrast = model(x, bank_labels[indices], indices)
        objective = csre_objective(logits, bank_labels[indices], contrast)
        objective.backward()
    assert logits.shape == (40, 5) and contrast > 0
    assert all(p.grad is not None for p in model.parameters())
    with pytest.raises(ValueError, match="M = 1"):
        model(x[..., :1], bank_labels[indices], indices)


def test_encoder_state_dict_drops_the_head():
    model = tiny_model(small_bank_labels())
    exported = encoder_state_dict(model.state_dict())
    assert list(exported) == list(model.encoder.state_dict())
    TinyEncoder().load_state_dict(exported)
    with pytest.raises(KeyError, match="module.encoder"):
        encoder_state_dict(model.state_dict(), encoder_prefix="module.encoder.")
