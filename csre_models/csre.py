"""CSRE training head: STFD feature decomposition and the memory-bank contrastive loss.

CSRE (Zhang, Yin, Dang, Pattern Recognition 2025) adds a training-only branch to a skeleton encoder:

* :class:`STFD` splits the encoder's final feature map ``(N*M, C, T', V)`` into a spatial and a temporal
  feature of size ``dim`` per sample (persons averaged).
* :class:`BankContrastLoss` contrasts each feature against a memory bank holding one L2-normalised,
  detached feature per training sample, with hard positives, hard negatives and random negatives.
* :class:`CSREHead` combines one STFD with a spatial and a temporal bank and returns
  ``(L_spa + L_tem) / 2``; :func:`csre_objective` adds it to the classification cross-entropy.
* :class:`CSREModel` puts an encoder and its head into one module for training.

The head is not part of the encoder: at inference the model is the plain encoder
(:func:`encoder_state_dict` takes it out of a training checkpoint).

Semantics follow the official release (zhshj0110/CSRE, ``model/loss.py`` and ``STD_unit`` in
``model/Hyperformer.py``); the differences are deliberate and listed where they occur: T' is taken from the
feature map instead of being fixed at 16, the similarities are computed in float32 even under autocast, the
random negatives come from a seeded generator whose state is checkpointed, the banks are checkpointed, and
under ``torch.distributed`` every rank enqueues the whole global batch.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .distributed import all_gather_rows, rank, world_size
from .row_selection import first_distinct_per_row, largest_per_row

__all__ = [
    "STFD",
    "BankContrastLoss",
    "CSREHead",
    "CSREModel",
    "csre_objective",
    "encoder_state_dict",
    "class_slot_table",
    "hardest_positives",
    "hardest_negatives",
    "bank_similarities",
    "select_random_negatives",
    "sample_distinct",
    "infonce_from_logits",
]

# Official ``STD_unit`` submodule name -> this module's submodule name.
REFERENCE_STFD_NAMES = {
    "conv1": "spatial_reduce",
    "convs": "spatial_project",
    "conv2": "temporal_reduce",
    "convt": "temporal_project",
}


class STFD(nn.Module):
    """Spatial-Temporal Feature Decomposition: an affine map from a feature map to two ``dim`` vectors.

    Spatial branch: mean over frames ``(N*M, C, V)`` -> 1x1 Conv1d ``C -> C/r`` -> flatten channel-major
    ``(N*M, C/r * V)`` -> Linear to ``dim``. The temporal branch is the same with the roles of frames and
    joints swapped. Both outputs are averaged over the ``num_person`` persons folded into the batch, which
    gives ``(N, dim)`` each. There is no nonlinearity and no normalisation (the loss normalises).

    Args:
        channels: C of the feature map.
        frames: T' of the feature map (the official code fixes 16, which breaks NW-UCLA where T' = 13).
        joints: V of the feature map.
        num_person: M, the persons folded into the batch axis of the feature map.
        dim: output size D of both branches.
        reduction: r, the channel reduction of the 1x1 convolutions (C // r channels).
    """

    def __init__(self, channels: int, frames: int, joints: int, num_person: int, dim: int = 256,
                 reduction: int = 8):
        super().__init__()
        reduced = channels // reduction
        if reduced < 1:
            raise ValueError(f"channels // reduction must be at least 1, got {channels} // {reduction}")
        self.channels, self.frames, self.joints = channels, frames, joints
        self.num_person, self.dim = num_person, dim
        self.spatial_reduce = nn.Conv1d(channels, reduced, kernel_size=1)
        self.spatial_project = nn.Linear(reduced * joints, dim)
        self.temporal_reduce = nn.Conv1d(channels, reduced, kernel_size=1)
        self.temporal_project = nn.Linear(reduced * frames, dim)
        # As released: Kaiming-normal (fan_out) projections with zero bias; the convolutions keep PyTorch's
        # default initialisation (the official init loop only matches Conv2d).
        for projection in (self.spatial_project, self.temporal_project):
            nn.init.kaiming_normal_(projection.weight, mode="fan_out")
            nn.init.zeros_(projection.bias)

    @classmethod
    def from_feature_map_shape(cls, feature_map_shape: Sequence[int], num_person: int, **kwargs) -> "STFD":
        """Build for an encoder's ``feature_map_shape``: its last three entries are ``(C, T', V)``."""
        channels, frames, joints = (int(size) for size in feature_map_shape[-3:])
        return cls(channels, frames, joints, num_person, **kwargs)

    def forward(self, feature_map: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Map ``(N*M, C, T', V)`` to the spatial and temporal features, each ``(N, dim)``."""
        expected = (self.channels, self.frames, self.joints)
        if feature_map.dim() != 4 or tuple(feature_map.shape[1:]) != expected:
            raise ValueError(f"expected a feature map (N*M, C, T', V) with (C, T', V) = {expected}, "
                             f"got {tuple(feature_map.shape)}")
        spatial = self.spatial_project(self.spatial_reduce(feature_map.mean(dim=2)).flatten(1))
        temporal = self.temporal_project(self.temporal_reduce(feature_map.mean(dim=3)).flatten(1))
        return self._average_persons(spatial), self._average_persons(temporal)

    def _average_persons(self, features: torch.Tensor) -> torch.Tensor:
        """``(N*M, dim) -> (N, dim)``: mean over the persons of each sample, after the projection."""
        return features.view(-1, self.num_person, self.dim).mean(dim=1)

    def load_reference_state_dict(self, state_dict: Mapping[str, torch.Tensor], prefix: str = "std.") -> None:
        """Load the official ``STD_unit`` weights (``std.conv1.*``, ``std.convs.*``, ``std.conv2.*``,
        ``std.convt.*``) from a whole official CSRE checkpoint; keys outside ``prefix`` are ignored.
        Missing or wrongly shaped STFD keys raise, as ``load_state_dict`` does.
        """
        self.load_state_dict(reference_stfd_to_project_keys(state_dict, prefix))


def reference_stfd_to_project_keys(state_dict: Mapping[str, torch.Tensor],
                                   prefix: str = "std.") -> "OrderedDict[str, torch.Tensor]":
    """The ``prefix`` entries of an official checkpoint, renamed to :class:`STFD` keys."""
    renamed = OrderedDict()
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        official_name, _, parameter = key[len(prefix):].partition(".")
        if official_name not in REFERENCE_STFD_NAMES:
            raise KeyError(f"unexpected STFD key {key!r}; known submodules: {sorted(REFERENCE_STFD_NAMES)}")
        renamed[f"{REFERENCE_STFD_NAMES[official_name]}.{parameter}"] = value
    return renamed


def class_slot_table(bank_labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The slots of every class as rows of a padded table.

    Returns ``slots`` ``(num_classes, largest class)`` long, row ``c`` holding the slots of class ``c`` in
    increasing order followed by padding, and ``present`` of the same shape, ``False`` on the padding.
    Gathering an anchor's row gives its candidate positives without scanning all ``M`` slots.
    """
    counts = torch.bincount(bank_labels)
    order = torch.argsort(bank_labels, stable=True)
    sorted_labels = bank_labels[order]
    position_in_class = torch.arange(len(bank_labels)) - (counts.cumsum(0) - counts)[sorted_labels]
    slots = torch.zeros(len(counts), int(counts.max()), dtype=torch.long)
    present = torch.zeros(slots.shape, dtype=torch.bool)
    slots[sorted_labels, position_in_class] = order
    present[sorted_labels, position_in_class] = True
    return slots, present


def hardest_positives(similarities: torch.Tensor, candidate_slots: torch.Tensor,
                      candidate_mask: torch.Tensor, count: int) -> torch.Tensor:
    """Per row, the ``count`` slots of least similarity among the candidates where ``candidate_mask``.

    ``similarities`` is ``(n, M)``; ``candidate_slots`` and ``candidate_mask`` are ``(n, L)`` (an anchor's
    class row of :func:`class_slot_table` and which of those slots are written). Returns ``(n, count)``
    slots, in no particular order.
    """
    candidate_similarities = similarities.gather(1, candidate_slots).masked_fill(~candidate_mask, float("inf"))
    least_similar = candidate_similarities.topk(count, dim=1, largest=False, sorted=False).indices
    return candidate_slots.gather(1, least_similar)


def hardest_negatives(similarities: torch.Tensor, own_slots: torch.Tensor, written: Optional[torch.Tensor],
                      count: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``similarities`` ``(n, M)``, the ``count`` slots of greatest similarity among the negatives:
    the slots not in the row's ``own_slots`` ``(n, L)`` (its class, padding repeating a slot of it) and,
    unless ``written`` is ``None`` (every slot written), written. Returns their similarities and slots
    ``(n, count)``, in no particular order.

    Overwrites ``similarities`` at the excluded slots with ``-inf`` (a copy of this ``(n, M)`` matrix would
    cost a sixth of the loss's time); its entries at negatives keep their values.
    """
    similarities.scatter_(1, own_slots, float("-inf"))
    if written is not None:
        similarities.masked_fill_(~written, float("-inf"))
    return largest_per_row(similarities, count)


def bank_similarities(anchors: torch.Tensor, bank: torch.Tensor, block: int = 1024) -> torch.Tensor:
    """``anchors @ bank.T`` ``(n, M)``, computed one block of bank rows at a time on the CPU.

    Each block's product is written straight into its columns of the result: the block of the bank stays
    in cache while the anchors are multiplied with it. For 64 anchors and a 40,091-row bank this ran
    1.1x as fast as the previous ``bank @ anchors.T`` per block with a transposing copy, and 1.5x as fast
    as one whole product (one thread, docs/performance.md); every entry is the same dot product either
    way. Other devices get the plain product.
    """
    if anchors.device.type != "cpu":
        return anchors @ bank.t()
    out = anchors.new_empty(anchors.shape[0], bank.shape[0])
    for start in range(0, bank.shape[0], block):
        torch.mm(anchors, bank[start:start + block].t(), out=out[:, start:start + block])
    return out


def select_random_negatives(negative_mask: torch.Tensor, count: int,
                            generator: torch.Generator) -> torch.Tensor:
    """For every row, ``count`` slots drawn uniformly without replacement among its ``True`` entries.

    Every slot gets an independent uniform key, non-negatives get -1, and the ``count`` largest keys win:
    the winners form a uniformly random subset of the negatives. Each row must have at least ``count``
    negatives. Memory is one float tensor of the mask's shape ``(n, M)``.
    """
    keys = torch.rand(negative_mask.shape, generator=generator, device=negative_mask.device)
    return largest_per_row(keys.masked_fill_(~negative_mask, -1.0), count)[1]


def sample_distinct(population: torch.Tensor, count: int,
                    generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per row ``i``, ``count`` distinct integers drawn uniformly without replacement from
    ``range(population[i])``, at a cost independent of the population size.

    Draws ``2 * count`` integers with replacement and keeps the first ``count`` distinct ones in draw order.
    Relabelling the values does not change the law of the draws, so the kept set is a uniformly random
    ``count``-subset. Returns the values ``(n, count)`` (in draw order) and ``complete`` ``(n,)``:
    ``False`` where the draws held fewer than ``count`` distinct values (likely only when the population is
    below about ``1.5 * count``); those rows hold in-range values that must be drawn again another way.
    """
    draws = 2 * count
    uniform = torch.rand((len(population), draws), generator=generator, dtype=torch.float64,
                         device=population.device)
    # floor(u * N) is uniform on range(N); the clamp guards the round-up of u * N to N when u is near 1.
    values = torch.minimum((uniform * population[:, None]).long(), population[:, None] - 1)
    return first_distinct_per_row(values, count)


class _SelectedSimilarities(torch.autograd.Function):
    """``anchors[i] . bank[slots[i, j]]``, given as ``selected`` (read from the precomputed ``anchors @ bank.T``).

    The backward gives the anchors ``sum_j grad[i, j] * bank[slots[i, j]]`` with one ``embedding_bag``,
    which touches only the selected bank rows, instead of the ``(n, M) x (M, D)`` product that
    differentiating the full similarity matrix costs. The bank gets no gradient.
    """

    @staticmethod
    def forward(ctx, anchors: torch.Tensor, bank: torch.Tensor, selected: torch.Tensor,
                slots: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(bank, slots)
        return selected.clone()

    @staticmethod
    def backward(ctx, grad_selected: torch.Tensor):
        bank, slots = ctx.saved_tensors
        grad_anchors = F.embedding_bag(slots, bank, per_sample_weights=grad_selected.contiguous(), mode="sum")
        return grad_anchors, None, None, None


def infonce_from_logits(positive_logits: torch.Tensor, hard_negative_logits: torch.Tensor,
                        random_negative_logits: torch.Tensor) -> torch.Tensor:
    """Mean InfoNCE over anchors, positives and the two negative sets, from logits (similarity / T).

    The row of positive ``p`` with negative set ``N`` is ``-log(e^p / (e^p + sum_{k in N} e^k))``, which
    equals ``softplus(logsumexp(N) - p)``: the ``K`` negatives are reduced once per anchor and shared by its
    ``P`` rows, so the ``(n, 2P, 1 + K)`` rows of the official code are never built.

    Args:
        positive_logits: ``(n, P)``.
        hard_negative_logits, random_negative_logits: ``(n, K)``.
    """
    hard_row_losses = F.softplus(hard_negative_logits.logsumexp(dim=1, keepdim=True) - positive_logits)
    random_row_losses = F.softplus(random_negative_logits.logsumexp(dim=1, keepdim=True) - positive_logits)
    return (hard_row_losses.mean() + random_row_losses.mean()) / 2


class BankContrastLoss(nn.Module):
    """CSRE's contrastive loss against a memory bank of one feature per training sample.

    One call ``loss = loss_fn(features, labels, indices)``:

    1. ``z = features / ||features||`` per row (float32, also under autocast).
    2. Enqueue first: ``bank[indices] = z.detach()`` and the slots are marked written. Under
       ``torch.distributed`` the features and indices of all ranks are gathered and enqueued, so every
       rank holds the same bank, equal to the bank of one process that sees the global batch.
    3. Similarities ``z @ bank.T`` ``(n, M)``; gradients reach ``features`` only through ``z``.
    4. For anchor ``i``: positives are written slots of its class (its own slot included), negatives
       written slots of other classes. Anchors with fewer than P positives or K negatives are skipped.
    5. For the others: the P least similar positives (hard positives), the K most similar negatives (hard
       negatives) and K negatives drawn uniformly without replacement (random negatives, may overlap the
       hard ones). Every hard positive forms one InfoNCE row with the hard and one with the random
       negatives: ``2P`` rows of ``1 + K`` logits per anchor, divided by the temperature.
    6. The loss is the mean cross-entropy (target: the positive) over all rows; every remaining anchor has
       the same weight. With no remaining anchor it is an exact zero that is connected to ``features``
       (``backward`` works and gives zero gradients; it is NaN only if ``features`` hold inf or NaN).

    The bank, the written mask, the slot labels and the sampling state are buffers: they move with
    ``.to(device)`` and go into ``state_dict``, so a run resumed from a checkpoint continues with the same
    bank and the same random draws as an uninterrupted run. The random negatives of call ``s`` come from a
    ``torch.Generator`` on the features' device seeded from ``(seed, rank, s)``: the sampling state is
    those integers, independent of the device type (CPU and CUDA generators draw different numbers, so
    the same seed gives other random negatives on another device type).

    Cost: one ``(n, D) x (D, M)`` product; the selections work on ``(n, M)`` tensors (never
    ``(n, M, .)``), the hard positives on the anchor's class only, and the backward reads only the
    ``P + 2K`` selected bank rows per anchor. The bank is overwritten in place on every call, and the
    previous call's graph holds it for its backward: call ``backward`` before the next call (the autograd
    version check raises otherwise).

    Args:
        bank_size: M, the number of slots (the training-set size; ``indices`` are slots).
        dim: D, the feature size.
        bank_labels: ``(M,)`` class of every slot, fixed for the whole training.
        positives: P, hard positives per anchor.
        negatives: K, hard negatives and random negatives per anchor.
        temperature: softmax temperature.
        seed: seed of the random-negative draws.
    """

    def __init__(self, bank_size: int, dim: int = 256, *, bank_labels, positives: int = 128,
                 negatives: int = 512, temperature: float = 0.8, seed: int = 0):
        super().__init__()
        bank_labels = torch.as_tensor(bank_labels, dtype=torch.long)
        if bank_labels.shape != (bank_size,):
            raise ValueError(f"bank_labels must have shape ({bank_size},), got {tuple(bank_labels.shape)}")
        if bank_labels.min() < 0:
            raise ValueError("bank_labels must be non-negative class indices")
        if positives < 1 or negatives < 1 or temperature <= 0:
            raise ValueError(f"need positives >= 1, negatives >= 1 and temperature > 0, got "
                             f"{positives}, {negatives}, {temperature}")
        self.bank_size, self.dim = bank_size, dim
        self.positives, self.negatives, self.temperature = positives, negatives, temperature
        self.num_classes = int(bank_labels.max()) + 1
        self.register_buffer("bank", torch.zeros(bank_size, dim))
        self.register_buffer("written", torch.zeros(bank_size, dtype=torch.bool))
        self.register_buffer("bank_labels", bank_labels)
        self.register_buffer("sampling_seed", torch.tensor(seed, dtype=torch.long))
        self.register_buffer("sampling_step", torch.tensor(0, dtype=torch.long))
        class_slots, class_slot_present = class_slot_table(bank_labels)
        self.register_buffer("class_slots", class_slots, persistent=False)
        self.register_buffer("class_slot_present", class_slot_present, persistent=False)
        # The slots of every class with the padding repeating its first slot: scattering -inf at an anchor's
        # row masks exactly its own class (a few hundred entries instead of a pass over all M).
        self.register_buffer("own_slots", torch.where(class_slot_present, class_slots, class_slots[:, :1]),
                             persistent=False)
        # What the written mask gives once every slot is written (the steady state after the first epoch),
        # so that a call then needs no pass over the M slots of the mask: the class sizes, and every slot
        # listed class by class.
        self.register_buffer("class_sizes", torch.bincount(bank_labels, minlength=self.num_classes),
                             persistent=False)
        self.register_buffer("slots_by_class", class_slots[class_slot_present], persistent=False)

    def extra_repr(self) -> str:
        return (f"bank_size={self.bank_size}, dim={self.dim}, positives={self.positives}, "
                f"negatives={self.negatives}, temperature={self.temperature}")

    def forward(self, features: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """Enqueue ``features`` ``(n, dim)`` at ``indices`` ``(n,)`` and return the loss of these anchors."""
        with torch.autocast(device_type=features.device.type, enabled=False):
            labels, indices = labels.to(self.bank.device), indices.to(self.bank.device)
            anchors = F.normalize(features.float(), dim=1)
            self._enqueue(anchors.detach(), indices)
            all_written = bool(self.written.all())
            written_per_class = self.class_sizes if all_written else self._written_per_class()
            num_positive = written_per_class[labels]
            num_negative = written_per_class.sum() - num_positive
            qualifying = (num_positive >= self.positives) & (num_negative >= self.negatives)
            generator = self._next_generator(features.device)
            if not bool(qualifying.any()):
                return features.sum() * 0.0
            # A full bank does not make every anchor qualify: a class may hold fewer slots than P.
            anchors, labels = anchors[qualifying], labels[qualifying]
            selected, slots = self._select_slots(anchors.detach(), labels, written_per_class, all_written,
                                                 generator)
            similarities = _SelectedSimilarities.apply(anchors, self.bank, selected, slots) / self.temperature
            return infonce_from_logits(*similarities.split([self.positives, self.negatives, self.negatives], 1))

    @torch.no_grad()
    def _select_slots(self, anchors: torch.Tensor, labels: torch.Tensor, written_per_class: torch.Tensor,
                      all_written: bool, generator: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        """The ``(n, P + 2K)`` selected slots of qualifying anchors (hard positives, hard negatives, random
        negatives) and their similarities to the anchors."""
        similarities = bank_similarities(anchors, self.bank)
        candidate_slots = self.class_slots[labels]
        candidate_mask = self.class_slot_present[labels]
        if not all_written:
            candidate_mask = candidate_mask & self.written[candidate_slots]
        positives = hardest_positives(similarities, candidate_slots, candidate_mask, self.positives)
        positive_similarities = similarities.gather(1, positives)
        # From here on ``similarities`` holds the negatives only (-inf elsewhere).
        hard_similarities, hard = hardest_negatives(similarities, self.own_slots[labels],
                                                    None if all_written else self.written, self.negatives)
        random = self._random_negatives(labels, written_per_class, generator)
        selected = torch.cat([positive_similarities, hard_similarities, similarities.gather(1, random)], dim=1)
        return selected, torch.cat([positives, hard, random], dim=1)

    def _random_negatives(self, labels: torch.Tensor, written_per_class: torch.Tensor,
                          generator: torch.Generator) -> torch.Tensor:
        """``(n, K)`` random negatives, uniform without replacement over each anchor's negatives.

        The written slots, listed class by class, put an anchor's negatives before and after its own class's
        block: :func:`sample_distinct` draws positions in that list with the block cut out. Rows it cannot
        complete (few negatives, early in training) fall back to :func:`select_random_negatives`.
        """
        all_written = bool(written_per_class.sum() == self.bank_size)
        written_slots = (self.slots_by_class if all_written
                         else self.class_slots[self.class_slot_present & self.written[self.class_slots]])
        class_start = written_per_class.cumsum(0) - written_per_class
        own_start, own_count = class_start[labels, None], written_per_class[labels, None]
        positions, complete = sample_distinct(len(written_slots) - own_count[:, 0], self.negatives, generator)
        slots = written_slots[positions + own_count * (positions >= own_start)]
        if not bool(complete.all()):
            incomplete = labels[~complete]
            negative_mask = (incomplete[:, None] != self.bank_labels[None, :]) & self.written
            slots[~complete] = select_random_negatives(negative_mask, self.negatives, generator)
        return slots

    @torch.no_grad()
    def _enqueue(self, normalised: torch.Tensor, indices: torch.Tensor) -> None:
        """Write the batch (of every rank, under torch.distributed) into its slots."""
        if world_size() > 1:
            normalised, indices = all_gather_rows(normalised, indices)
        self.bank[indices] = normalised.to(self.bank.dtype)
        self.written[indices] = True

    @torch.no_grad()
    def is_active(self) -> bool:
        """Whether the loss can be non-zero yet: some class has ``positives`` written slots and the other
        classes ``negatives``. Until then (the bank warm-up) every anchor is skipped and the loss is 0."""
        written_per_class = self._written_per_class()
        others = written_per_class.sum() - written_per_class
        return bool(((written_per_class >= self.positives) & (others >= self.negatives)).any())

    def _written_per_class(self) -> torch.Tensor:
        """``(num_classes,)`` number of written slots of every class."""
        return torch.bincount(self.bank_labels[self.written], minlength=self.num_classes)

    def _next_generator(self, device: torch.device) -> torch.Generator:
        """A generator for this call's random negatives; advances the checkpointed sampling step."""
        entropy = [int(self.sampling_seed), rank(), int(self.sampling_step)]
        self.sampling_step += 1
        seed = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0])
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        return generator


class CSREHead(nn.Module):
    """STFD plus a spatial and a temporal :class:`BankContrastLoss`: the whole training-only CSRE branch.

    ``head(feature_map, labels, indices)`` returns ``(L_spa + L_tem) / 2`` for the encoder's final map
    ``(N*M, C, T', V)``, the labels ``(N,)`` and the bank slots ``(N,)`` (training-set indices).

    Its parameters (the STFD) must be optimised with the encoder's and, under DistributedDataParallel,
    live in the wrapped module so their gradients are reduced. Its banks are buffers (in ``state_dict``).

    Args:
        feature_map_shape: the encoder's ``feature_map_shape``; its last three entries are ``(C, T', V)``.
        num_person: persons per sample folded into the feature map's batch axis.
        bank_labels: ``(M,)`` labels of the training samples, one per bank slot.
        dim, reduction: STFD output size and channel reduction.
        positives, negatives, temperature: see :class:`BankContrastLoss`.
        seed: seed of the random negatives (the temporal bank uses ``seed + 1``).
    """

    def __init__(self, feature_map_shape: Sequence[int], num_person: int, bank_labels, *, dim: int = 256,
                 reduction: int = 8, positives: int = 128, negatives: int = 512, temperature: float = 0.8,
                 seed: int = 0):
        super().__init__()
        bank_labels = torch.as_tensor(bank_labels, dtype=torch.long)
        self.stfd = STFD.from_feature_map_shape(feature_map_shape, num_person, dim=dim, reduction=reduction)
        bank_options = dict(bank_labels=bank_labels, positives=positives, negatives=negatives,
                            temperature=temperature)
        self.spatial_contrast = BankContrastLoss(len(bank_labels), dim, seed=seed, **bank_options)
        self.temporal_contrast = BankContrastLoss(len(bank_labels), dim, seed=seed + 1, **bank_options)

    def is_active(self) -> bool:
        """Whether the contrastive term can be non-zero yet (see :meth:`BankContrastLoss.is_active`)."""
        return self.spatial_contrast.is_active() or self.temporal_contrast.is_active()

    def forward(self, feature_map: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        spatial, temporal = self.stfd(feature_map)
        return (self.spatial_contrast(spatial, labels, indices)
                + self.temporal_contrast(temporal, labels, indices)) / 2


class CSREModel(nn.Module):
    """An encoder with a :class:`CSREHead` beside it: the one module to optimise, to wrap in
    DistributedDataParallel and to checkpoint during training.

    ``model(x, labels, indices)`` runs the encoder once and returns ``(logits, contrast_loss)``: the head
    reads the encoder's final feature map. The encoder is the ``encoder`` child, used alone for evaluation
    and export (:func:`encoder_state_dict`); the head is the ``csre_head`` child.

    The encoder must provide ``forward_features(x, **inputs)`` (the map ``(N*M, C, T', V)``),
    ``forward_head(feature_map, num_person)`` (the logits), ``feature_map_shape`` ``(C, T', V)`` and
    ``num_person``, as the project's encoders do.

    Args:
        encoder: the skeleton encoder.
        bank_labels: ``(M,)`` labels of the training samples, one per bank slot.
        **head_options: keyword arguments of :class:`CSREHead` (``dim``, ``positives``, ``seed``, ...).
    """

    def __init__(self, encoder: nn.Module, bank_labels, **head_options):
        super().__init__()
        self.encoder = encoder
        self.csre_head = CSREHead(encoder.feature_map_shape, encoder.num_person, bank_labels, **head_options)

    def forward(self, x: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor,
                **encoder_inputs) -> Tuple[torch.Tensor, torch.Tensor]:
        num_person = x.shape[-1]
        if num_person != self.csre_head.stfd.num_person:
            raise ValueError(f"the head averages {self.csre_head.stfd.num_person} persons, "
                             f"the input x (N, C, T, V, M) has M = {num_person}")
        feature_map = self.encoder.forward_features(x, **encoder_inputs)
        logits = self.encoder.forward_head(feature_map, num_person)
        return logits, self.csre_head(feature_map, labels, indices)


def csre_objective(logits: torch.Tensor, labels: torch.Tensor, contrast_loss: torch.Tensor,
                   contrast_weight: float = 1.0) -> torch.Tensor:
    """Training objective ``CE(logits, labels) + contrast_weight * contrast_loss``.

    With ``contrast_loss`` from :class:`CSREHead` and weight 1 this is the released code's objective,
    ``CE + (L_spa + L_tem) / 2`` (the paper states ``CE + L_spa + L_tem``: weight 2 here). The released
    code adds the term only when it is positive; the term is never negative and is an exact zero when no
    anchor qualifies, so adding it always gives the same value.
    """
    return F.cross_entropy(logits, labels) + contrast_weight * contrast_loss


def encoder_state_dict(training_state_dict: Mapping[str, torch.Tensor],
                       encoder_prefix: str = "encoder.") -> "OrderedDict[str, torch.Tensor]":
    """The plain encoder's state dict, for inference and export, from a training state dict.

    Training holds the encoder and the :class:`CSREHead` as two children of one module (one optimizer,
    one DistributedDataParallel wrapper, one checkpoint), such as :class:`CSREModel`. This keeps the
    entries under ``encoder_prefix`` with the prefix removed and drops everything else: the STFD weights,
    the banks and the sampling state. Pass ``"module.encoder."`` for a DistributedDataParallel state dict.
    """
    encoder_state = OrderedDict((key[len(encoder_prefix):], value)
                                for key, value in training_state_dict.items() if key.startswith(encoder_prefix))
    if not encoder_state:
        raise KeyError(f"no entry starts with {encoder_prefix!r}; is the encoder stored under another name?")
    return encoder_state
