"""HCN (Li et al., IJCAI 2018): hierarchical co-occurrence network.

Equivalent to ``model/HCN.py`` (class ``HCN``) of huguyuehuhu/HCN-pytorch: same parameters, state-dict
keys, initialisation (Xavier-uniform weights, zero biases) and eval logits.

Per person, a position stream (the joints ``x``) and a motion stream (frame differences, resized back
to ``T`` frames by bilinear interpolation) each run

- ``conv1`` (1x1, per joint) and ``conv2`` (3 frames x 1 joint, ``window`` output channels), then
- a transpose that makes the **joints the channels**: ``(N, window, T, V) -> (N, V, T, window)``, so
  ``conv3`` and ``conv4`` (3x3) see every joint at once (the co-occurrence features) over a 2-D map of
  frames x ``window`` conv2 features, each followed by a 2x2 max-pool.

The two streams are concatenated and go through ``conv5`` and ``conv6`` (3x3, 2x2 max-pool each); the
persons are then merged by an element-wise maximum and ``fc7`` (512) and ``fc8`` classify.

Differences from the official code, none of which changes an eval-mode output:

- **Any number of persons.** The official forward takes ``max(person 0, person 1)`` and so needs
  exactly two. Here the persons are folded into the batch (HCN has no BatchNorm, so each person's
  stream is computed exactly as before) and :meth:`HCN.forward_head` takes the maximum over all ``M``
  persons: the official result for ``M = 2``, the person's own map for ``M = 1`` (NW-UCLA).
- **Dropout after fc7** is ``nn.Dropout(0.5)``. The official code applies ``nn.Dropout2d`` to the 2-D
  ``(N, 512)`` activation, which PyTorch treats element-wise (what ``nn.Dropout`` does) and warns about.

Feature map for CSRE. HCN has no ``(N*M, C, T', V)`` map: the joint axis is consumed by ``conv3``.
:meth:`HCN.forward_features` returns the per-person ``conv6`` map with persons folded into the batch,
``(N*M, 256, T/16, window/16)``, and CSRE reads it as ``(C', T', V')`` with

- ``T' = T/16``: axis 2, the frame axis after four 2x2 max-pools (still temporal);
- ``V' = window/16``: axis 3, which descends from ``conv2``'s output channels, not from the joints;
  it stands in for the spatial axis (the reference STFD sizes for HCN are computed this way).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._blocks import CPU_CONV_CHUNK, SkeletonEncoder
from ._registry import register_encoder

#: Four 2x2 max-pools between the input and conv6 divide both map axes by this.
POOLING = 16
#: Person maps per call of the whole convolution stack on the CPU (HCN has no BatchNorm, and its pooling and
#: dropout are per sample): chunking the stack, not only the convolutions (``CPUChunkedConv2d``), measured
#: 1.03x against 0.96x of the official step at batch 64, one thread, alternated in one process.
CHUNK = CPU_CONV_CHUNK


def _conv_stage(in_channels: int, out_channels: int, *tail: nn.Module) -> nn.Sequential:
    """A 3x3 'same' convolution followed by ``tail`` (activation, dropout, pooling)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), *tail)


class HCN(SkeletonEncoder):
    """HCN on a joint layout; see the module docstring.

    Args:
        num_class, layout, num_person, window, in_channels: as :class:`SkeletonEncoder`; the input must
            have exactly ``window`` frames (``window >= 16``).
        width: channels of conv1 (``out_channel`` of the official code, 64).
    """

    def __init__(self, num_class: int, layout: str = "ntu25", num_person: int = 2, window: int = 64,
                 in_channels: int = 3, width: int = 64):
        super().__init__(num_class, layout, num_person, window, in_channels)
        if window < POOLING:
            raise ValueError(f"HCN needs a window of at least {POOLING} frames, got {window}")
        self.width = width
        for suffix in ("", "m"):  # position stream, motion stream
            setattr(self, f"conv1{suffix}", nn.Sequential(nn.Conv2d(in_channels, width, kernel_size=1), nn.ReLU()))
            setattr(self, f"conv2{suffix}", nn.Conv2d(width, window, kernel_size=(3, 1), padding=(1, 0)))
            setattr(self, f"conv3{suffix}", _conv_stage(self.num_joints, width // 2, nn.MaxPool2d(2)))
            setattr(self, f"conv4{suffix}", _conv_stage(width // 2, width, nn.Dropout2d(0.5), nn.MaxPool2d(2)))
        self.conv5 = _conv_stage(2 * width, 2 * width, nn.ReLU(), nn.Dropout2d(0.5), nn.MaxPool2d(2))
        self.conv6 = _conv_stage(2 * width, 4 * width, nn.ReLU(), nn.Dropout2d(0.5), nn.MaxPool2d(2))
        channels, frames, features = self.feature_map_shape
        self.fc7 = nn.Sequential(nn.Linear(channels * frames * features, 512), nn.ReLU(), nn.Dropout(0.5))
        self.fc8 = nn.Linear(512, num_class)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def _stream(self, x: torch.Tensor, suffix: str) -> torch.Tensor:
        """Position (``suffix=''``) or motion (``'m'``) stream: ``(B, C, T, V)`` -> ``(B, width, window/4, T/4)``,
        frames last (see :meth:`_conv_maps`)."""
        point_level = getattr(self, f"conv2{suffix}")(getattr(self, f"conv1{suffix}")(x))  # (B, window, T, V)
        joints_as_channels = point_level.permute(0, 3, 1, 2)  # (B, V, window, T), channels-last in memory
        return _frames_last(getattr(self, f"conv4{suffix}"), _frames_last(getattr(self, f"conv3{suffix}"),
                                                                          joints_as_channels))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        n, c, t, v, m = x.shape
        if t != self.window:
            raise ValueError(f"HCN was built for window={self.window} frames, got T={t}")
        persons = x.permute(0, 4, 1, 2, 3).reshape(n * m, c, t, v)
        motion = F.interpolate(persons[:, :, 1:] - persons[:, :, :-1], size=(t, v), mode="bilinear",
                               align_corners=False)
        # On the CPU the convolutions run on chunks of at most CHUNK person maps: same values, oneDNN is faster on
        # them (docs/performance.md, "HCN").
        if persons.device.type != "cpu" or len(persons) <= CHUNK:
            return self._conv_maps(persons, motion)
        return torch.cat([self._conv_maps(position, moving)
                          for position, moving in zip(persons.split(CHUNK), motion.split(CHUNK))])

    def _conv_maps(self, position: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """``conv6`` maps of person sequences: ``(B, C, T, V)`` positions and motion ->
        ``(B, 4*width, T/16, window/16)``.

        From ``conv3`` to ``conv6`` the maps are held as ``(B, channels, window', T')``, the official
        ``(B, channels, T', window')`` with its two axes swapped, and convolved with the 3x3 kernels transposed
        to match (the 2x2 pools, ReLU and channel dropout do not care). ``conv2``'s output permuted that way is
        channels-last in memory as it stands, which oneDNN convolves and pools directly: conv3 to conv4,
        forward and backward, ran 1.47x faster than on the official permutation, which every convolution
        must first copy (docs/performance.md, "HCN"). The values are the same up to the order of the sums.
        """
        both = torch.cat((self._stream(position, ""), self._stream(motion, "m")), dim=1)
        return _frames_last(self.conv6, _frames_last(self.conv5, both)).transpose(2, 3)

    def forward_head(self, fmap: torch.Tensor, num_person: int) -> torch.Tensor:
        per_sample = fmap.reshape(-1, num_person, fmap[0].numel()).amax(dim=1)
        return self.fc8(self.fc7(per_sample))

    @property
    def feature_map_shape(self) -> Tuple[int, int, int]:
        side = self.window // POOLING
        return 4 * self.width, side, side


def _frames_last(stage: nn.Sequential, maps: torch.Tensor) -> torch.Tensor:
    """A conv stage (a convolution, then pooling, activations, dropout) on maps whose two spatial axes are
    swapped: the convolution runs with its kernel transposed, so that the result is the stage's result on
    the unswapped maps, swapped."""
    conv, *tail = stage
    out = F.conv2d(maps, conv.weight.transpose(2, 3), conv.bias, conv.stride[::-1], conv.padding[::-1],
                   conv.dilation[::-1], conv.groups)
    for module in tail:
        out = module(out)
    return out


@register_encoder("hcn", published=2018, stgcn_feeder="hcn", stgcn_window=64)
def hcn(num_class: int, layout: str = "ntu25", num_person: int = 2, window: int = 64, **kwargs) -> HCN:
    """HCN (window 64 or 32 in the official configs)."""
    return HCN(num_class, layout, num_person, window, **kwargs)
