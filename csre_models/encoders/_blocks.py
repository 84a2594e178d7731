"""Building blocks shared by the skeleton encoders.

- Initialisers used across the CTR-GCN family (:func:`conv_init`, :func:`bn_init`,
  :func:`conv_branch_init`, :func:`init_graph_conv_weights`, :func:`init_multiscale_weights`).
- Temporal convolutions: :class:`TemporalConv` (a ``(k, 1)`` convolution + BN, also the strided 1x1
  shortcut of a block) and :class:`MultiScaleTemporalConv` (CTR-GCN's MS-TCN, also used by Hyperformer
  and BlockGCN).
- Shortcuts: :func:`block_shortcut` and :func:`channel_shortcut`.
- :class:`GraphTemporalBlock` (and :func:`graph_temporal_blocks` for a chain of them):
  ``relu(temporal(spatial(x)) + shortcut(x))``, the block of CTR-GCN, 2s-AGCN and BlockGCN
  (attributes ``gcn1``, ``tcn1``, ``residual`` as in the official state dicts).
- :class:`SkeletonEncoder`: the interface every encoder implements; :class:`GraphEncoder`: its
  specialisation for the ten-block GCNs (input BatchNorm, blocks ``l1``..``l10``, mean-pooling head).

Module attribute names follow the official repositories, so an official state dict loads by key.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn as nn

from skeldata.layouts import get_layout


def conv_init(conv: nn.Conv2d) -> None:
    """Kaiming-normal weights (fan-out), zero bias."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.constant_(conv.bias, 0)


def bn_init(bn: nn.modules.batchnorm._BatchNorm, scale: float) -> None:
    """BatchNorm with constant gamma ``scale`` and zero beta."""
    nn.init.constant_(bn.weight, scale)
    nn.init.constant_(bn.bias, 0)


def conv_branch_init(conv: nn.Conv2d, branches: int) -> None:
    """Normal weights with std ``sqrt(2 / (out * in * k * branches))``, zero bias: a conv whose output
    is summed over ``branches`` parallel branches."""
    out_channels, in_channels, kernel = conv.weight.shape[:3]
    nn.init.normal_(conv.weight, 0, math.sqrt(2.0 / (out_channels * in_channels * kernel * branches)))
    nn.init.constant_(conv.bias, 0)


def init_graph_conv_weights(module: nn.Module, output_bn: nn.BatchNorm2d) -> None:
    """Graph-convolution initialisation: Kaiming-normal (fan-out) convs, BN gamma 1, except
    ``output_bn`` whose gamma 1e-6 nearly switches the graph branch off at the start of training."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            conv_init(m)
        elif isinstance(m, nn.BatchNorm2d):
            bn_init(m, 1)
    bn_init(output_bn, 1e-6)


def init_multiscale_weights(module: nn.Module) -> None:
    """MS-TCN initialisation: Kaiming-normal (fan-out) convs, BN gamma ~ N(1, 0.02), zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            conv_init(m)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.constant_(m.bias, 0)


def temporal_length(frames: int, strides: Sequence[int]) -> int:
    """Frames left after a chain of 'same'-padded temporal convolutions with these strides."""
    for stride in strides:
        frames = -(-frames // stride)
    return frames


class TemporalConv(nn.Module):
    """Convolution over time only (kernel ``(k, 1)``, 'same' padding for the dilation) followed by BN."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1):
        super().__init__()
        padding = dilation * (kernel_size - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=(kernel_size, 1),
                              padding=(padding, 0), stride=(stride, 1), dilation=(dilation, 1))
        self.bn = nn.BatchNorm2d(out_channels)
        conv_init(self.conv)
        bn_init(self.bn, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class MultiScaleTemporalConv(nn.Module):
    """CTR-GCN's multi-scale temporal convolution (MS-TCN), without an inner residual.

    ``len(dilations) + 2`` parallel branches, each with ``out_channels / branches`` channels and each
    starting with a 1x1 conv + BN: one dilated ``(kernel_size, 1)`` convolution branch per dilation, a
    3-frame max-pool branch and a plain (strided) 1x1 branch. Their outputs are concatenated.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 1,
                 dilations: Sequence[int] = (1, 2)):
        super().__init__()
        num_branches = len(dilations) + 2
        if out_channels % num_branches:
            raise ValueError(f"out_channels={out_channels} is not a multiple of the {num_branches} branches")
        width = out_channels // num_branches

        def reduce() -> Tuple[nn.Module, ...]:
            return (nn.Conv2d(in_channels, width, kernel_size=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))

        branches = [nn.Sequential(*reduce(), TemporalConv(width, width, kernel_size, stride, dilation))
                    for dilation in dilations]
        branches.append(nn.Sequential(*reduce(),
                                      nn.MaxPool2d(kernel_size=(3, 1), stride=(stride, 1), padding=(1, 0)),
                                      nn.BatchNorm2d(width)))
        branches.append(nn.Sequential(nn.Conv2d(in_channels, width, kernel_size=1, stride=(stride, 1)),
                                      nn.BatchNorm2d(width)))
        self.branches = nn.ModuleList(branches)
        init_multiscale_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class NoShortcut(nn.Module):
    """A shortcut that adds nothing."""

    def forward(self, x: torch.Tensor) -> float:
        return 0.0


def block_shortcut(in_channels: int, out_channels: int, stride: int, enabled: bool = True) -> nn.Module:
    """Shortcut of a graph-temporal block: identity when the shape is kept, else a strided 1x1 conv + BN."""
    if not enabled:
        return NoShortcut()
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return TemporalConv(in_channels, out_channels, kernel_size=1, stride=stride)


def channel_shortcut(in_channels: int, out_channels: int) -> nn.Module:
    """Shortcut around a graph convolution: identity, or a 1x1 conv + BN when the width changes."""
    if in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size=1), nn.BatchNorm2d(out_channels))


class GraphTemporalBlock(nn.Module):
    """``relu(tcn1(gcn1(x)) + residual(x))``: a spatial graph convolution, then a temporal convolution.

    ``stride`` is the temporal stride of ``tcn1`` (also used by the shortcut); ``out_channels`` is the
    width of the output. ``spatial_name`` is the attribute of the spatial part (``gcn1``; Hyperformer's
    official state dicts call it ``vit1``).
    """

    def __init__(self, gcn: nn.Module, tcn: nn.Module, in_channels: int, out_channels: int, stride: int = 1,
                 residual: bool = True, spatial_name: str = "gcn1"):
        super().__init__()
        self.spatial_name = spatial_name
        self.add_module(spatial_name, gcn)
        self.tcn1 = tcn
        self.residual = block_shortcut(in_channels, out_channels, stride, enabled=residual)
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = getattr(self, self.spatial_name)
        return self.relu(self.tcn1(spatial(x)) + self.residual(x))


#: Samples per convolution call on the CPU. oneDNN ran the same convolutions faster on chunks of 32 than on the
#: 128 person maps of a recipe batch (64 samples x 2 persons), one thread: a 2s-AGCN forward + backward took
#: 76.7 s whole and 58.4 s chunked (1.31x); HCN's conv2 + conv3 2.13 s whole, 0.98 s chunked
#: (``docs/performance.md``).
CPU_CONV_CHUNK = 32


class CPUChunkedConv2d(nn.Conv2d):
    """``nn.Conv2d`` that convolves a CPU batch of more than :data:`CPU_CONV_CHUNK` in chunks of that size.

    Each sample's output is what one call gives it (up to the last bits of oneDNN's summation order); the
    parameters and state-dict keys are the ``nn.Conv2d``'s. Other devices take the batch whole."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.shape[0] <= CPU_CONV_CHUNK:
            return super().forward(x)
        return torch.cat([super(CPUChunkedConv2d, self).forward(part) for part in x.split(CPU_CONV_CHUNK)])


def chunk_cpu_convolutions(model: nn.Module) -> nn.Module:
    """Make every plain ``nn.Conv2d`` of ``model`` a :class:`CPUChunkedConv2d` (in place; returns ``model``)."""
    for module in model.modules():
        if type(module) is nn.Conv2d:
            module.__class__ = CPUChunkedConv2d
    return model


#: Temporal strides of the ten blocks of CTR-GCN, 2s-AGCN, Hyperformer and BlockGCN (l5 and l8 halve T).
TEN_BLOCK_STRIDES: Tuple[int, ...] = (1, 1, 1, 1, 2, 1, 1, 2, 1, 1)
#: Output widths of the ten blocks of CTR-GCN and 2s-AGCN.
TEN_BLOCK_WIDTHS: Tuple[int, ...] = (64,) * 4 + (128,) * 3 + (256,) * 3


def graph_temporal_blocks(in_channels: int, make_gcn: Callable[[int, int], nn.Module],
                          make_tcn: Callable[[int, int], nn.Module],
                          widths: Sequence[int] = TEN_BLOCK_WIDTHS, strides: Sequence[int] = TEN_BLOCK_STRIDES,
                          first_residual: bool = False, spatial_name: str = "gcn1") -> List[GraphTemporalBlock]:
    """A chain of :class:`GraphTemporalBlock` with the given output widths and temporal strides.

    ``make_gcn(in, out)`` builds the spatial part (attribute ``spatial_name``) and ``make_tcn(out, stride)``
    the temporal part of a block. The first block has a shortcut only if ``first_residual``.
    """
    inputs = (in_channels, *widths[:-1])
    return [GraphTemporalBlock(make_gcn(cin, cout), make_tcn(cout, stride), cin, cout, stride,
                               residual=first_residual or index > 0, spatial_name=spatial_name)
            for index, (cin, cout, stride) in enumerate(zip(inputs, widths, strides))]

#: State-dict prefix of the CSRE head (STFD); an encoder ignores these keys, the head loads them.
CSRE_HEAD_PREFIX = "std."
_DATA_PARALLEL_PREFIX = "module."


def reference_state(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The encoder's entries of a state dict in an official repository's key layout: a ``module.`` prefix
    (DataParallel checkpoints) stripped and the CSRE head's ``std.*`` keys left out."""
    incoming: Dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith(_DATA_PARALLEL_PREFIX):
            key = key[len(_DATA_PARALLEL_PREFIX):]
        if not key.startswith(CSRE_HEAD_PREFIX):
            incoming[key] = value
    return incoming


class SkeletonEncoder(nn.Module):
    """Interface of every skeleton encoder.

    ``forward(x)`` maps ``x`` float32 ``(N, C, T, V, M)`` to logits ``(N, num_class)``, and is by
    construction ``forward_head(forward_features(x), M)``. Subclasses implement
    :meth:`forward_features`, :meth:`forward_head` and :attr:`feature_map_shape`.

    Args:
        num_class: number of classes.
        layout: joint layout name (``ntu25``, ``ucla20``).
        num_person: bodies per sample, M.
        window: frames per sample, T.
        in_channels: coordinates per joint, C.
    """

    def __init__(self, num_class: int, layout: str, num_person: int, window: int, in_channels: int = 3):
        super().__init__()
        if num_person < 1:
            raise ValueError(f"num_person must be at least 1, got {num_person}")
        self.num_class = num_class
        self.layout = get_layout(layout)
        self.num_joints = self.layout.num_joints
        self.num_person = num_person
        self.window = window
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x), x.shape[-1])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The final feature map ``(N*M, C', T', V')`` before global pooling (what CSRE's STFD reads)."""
        raise NotImplementedError

    def forward_head(self, fmap: torch.Tensor, num_person: int) -> torch.Tensor:
        """Logits ``(N, num_class)`` from the map of :meth:`forward_features` (persons folded into N)."""
        raise NotImplementedError

    @property
    def feature_map_shape(self) -> Tuple[int, int, int]:
        """``(C', T', V')`` of :meth:`forward_features` for the configured window."""
        raise NotImplementedError

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ``ValueError`` naming the mismatch when ``x`` does not fit this encoder."""
        if x.dim() != 5:
            raise ValueError(f"expected input (N, C, T, V, M), got shape {tuple(x.shape)}")
        _, channels, _, joints, persons = x.shape
        expected = {"C": (channels, self.in_channels), "V": (joints, self.num_joints),
                    "M": (persons, self.num_person)}
        wrong = [f"{axis}={got} (expected {want})" for axis, (got, want) in expected.items() if got != want]
        if wrong:
            raise ValueError(f"input shape {tuple(x.shape)} does not fit this {type(self).__name__}: "
                             + ", ".join(wrong))

    def load_reference_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load a state dict in the official repository's key layout.

        A ``module.`` prefix (DataParallel checkpoints) is stripped and the CSRE head's ``std.*`` keys
        are skipped. Every other key must be one of this encoder's, with the same shape, and every key
        of this encoder (BatchNorm buffers included) must be present; otherwise a ``KeyError`` or
        ``ValueError`` lists the offending keys and nothing is loaded.
        """
        incoming = reference_state(state_dict)
        own = self.state_dict()
        unknown = sorted(set(incoming) - set(own))
        missing = sorted(set(own) - set(incoming))
        if unknown or missing:
            raise KeyError(f"state dict does not match {type(self).__name__}: "
                           f"unknown keys {unknown}; missing keys {missing}")
        mismatched = [f"{key}: got {tuple(value.shape)}, expected {tuple(own[key].shape)}"
                      for key, value in incoming.items() if value.shape != own[key].shape]
        if mismatched:
            raise ValueError(f"state dict shapes do not match {type(self).__name__}: " + "; ".join(mismatched))
        self.load_state_dict(incoming)


class GraphEncoder(SkeletonEncoder):
    """A ten-block GCN: input BatchNorm over (person, joint, channel), blocks ``l1``..``l10`` on
    ``(N*M, C, T, V)``, then mean over frames, joints and persons, optional dropout and ``fc``.

    Args:
        blocks: the blocks in order; each has ``out_channels`` and a temporal ``stride``.
        drop_out: dropout probability before ``fc`` (0 disables it).
        Other arguments as :class:`SkeletonEncoder`.
    """

    def __init__(self, blocks: Sequence[nn.Module], num_class: int, layout: str, num_person: int, window: int,
                 in_channels: int = 3, drop_out: float = 0.0):
        super().__init__(num_class, layout, num_person, window, in_channels)
        self.data_bn = nn.BatchNorm1d(num_person * in_channels * self.num_joints)
        bn_init(self.data_bn, 1)
        self.block_names = [f"l{i}" for i in range(1, len(blocks) + 1)]
        for name, block in zip(self.block_names, blocks):
            self.add_module(name, block)
        self.drop_out = nn.Dropout(drop_out) if drop_out else nn.Identity()
        self.fc = nn.Linear(blocks[-1].out_channels, num_class)
        nn.init.normal_(self.fc.weight, 0, math.sqrt(2.0 / num_class))

    def blocks(self) -> Sequence[nn.Module]:
        """The blocks ``l1``..``lN`` in order."""
        return [getattr(self, name) for name in self.block_names]

    def normalise_input(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, T, V, M)`` -> BatchNorm per (person, joint, channel) -> ``(N*M, C, T, V)``."""
        self.check_input(x)
        n, c, t, v, m = x.shape
        x = self.data_bn(x.permute(0, 4, 3, 1, 2).reshape(n, m * v * c, t))
        return x.view(n, m, v, c, t).permute(0, 1, 3, 4, 2).reshape(n * m, c, t, v)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalise_input(x)
        for block in self.blocks():
            x = block(x)
        return x

    def forward_head(self, fmap: torch.Tensor, num_person: int) -> torch.Tensor:
        channels = fmap.shape[1]
        pooled = fmap.reshape(-1, num_person, channels, fmap.shape[2] * fmap.shape[3]).mean(3).mean(1)
        return self.fc(self.drop_out(pooled))

    @property
    def feature_map_shape(self) -> Tuple[int, int, int]:
        blocks = self.blocks()
        frames = temporal_length(self.window, [block.stride for block in blocks])
        return blocks[-1].out_channels, frames, self.num_joints
