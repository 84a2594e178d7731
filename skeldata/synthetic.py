"""Synthetic NTU RGB+D ``.skeleton`` files, for tests, fixtures and benchmarks.

Every file is a plausible Kinect v2 recording: smoothly moving people (a rest pose, a drifting
root, swinging limbs), written in the exact text grammar with 7 significant digits. Each file
follows one *scenario* chosen so that, together, they take every branch of the reference
denoising: single actors with frames that lose the skeleton, a person who vanishes and comes
back, tracking-id switches with 0, 1 or more overlapping frames, short-lived noise bodies, wide
flat "furniture" bodies and a person who is spread-noisy part of the time, two actors entering
late or leaving early, three overlapping people, files with no skeleton at all, and files whose
bodies all live 11 frames or fewer (on which the reference crashes).

    python -m skeldata.synthetic --out DIR --n 50 --seed 0 [--dataset ntu60|ntu120] [--newline lf|crlf]

The same arguments always give the same bytes.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

SCENARIOS = ("single", "gap", "switch", "noise", "furniture", "partial_spread", "pair", "pair_short",
             "crowd", "late_start", "empty", "all_short")
#: Scenarios in a mixed set, with their weights (``all_short`` only when asked for: the reference crashes).
MIX = {"single": 4, "gap": 1, "switch": 2, "noise": 2, "furniture": 2, "partial_spread": 2, "pair": 4,
       "pair_short": 1, "crowd": 1, "late_start": 1}

# Rest pose (metres, body frame: x left, y up, z away from the camera), Kinect v2 joint order.
_REST = np.array([
    [0.0, 0.0, 0.0], [0.0, 0.3, 0.01], [0.0, 0.57, 0.02], [0.0, 0.72, 0.01],
    [0.17, 0.48, 0.03], [0.21, 0.22, 0.05], [0.23, 0.0, 0.02], [0.24, -0.07, 0.01],
    [-0.17, 0.48, 0.03], [-0.21, 0.22, 0.05], [-0.23, 0.0, 0.02], [-0.24, -0.07, 0.01],
    [0.08, -0.05, 0.01], [0.09, -0.45, 0.03], [0.09, -0.85, 0.06], [0.1, -0.9, -0.05],
    [-0.08, -0.05, 0.01], [-0.09, -0.45, 0.03], [-0.09, -0.85, 0.06], [-0.1, -0.9, -0.05],
    [0.0, 0.5, 0.02], [0.25, -0.15, 0.0], [0.22, -0.09, -0.03], [-0.25, -0.15, 0.0], [-0.22, -0.09, -0.03],
])
_LEFT_ARM, _RIGHT_ARM = [5, 6, 7, 21, 22], [9, 10, 11, 23, 24]
_LEFT_SHOULDER, _RIGHT_SHOULDER = 4, 8
_LEAF_JOINTS = [3, 15, 19, 21, 22, 23, 24]
_FIRST_ID = 72057594037927936


@dataclass
class Track:
    """One tracking id: the frames it is seen in and its joint positions there."""

    body_id: int
    frames: np.ndarray
    joints: np.ndarray  # (len(frames), 25, 3)


@dataclass
class Recording:
    name: str
    n_frames: int
    tracks: List[Track] = field(default_factory=list)
    scenario: str = ""


def _rotation_z(angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    zeros, ones = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, -s, zeros], -1), np.stack([s, c, zeros], -1),
                     np.stack([zeros, zeros, ones], -1)], -2)


def person(rng: np.random.Generator, n_frames: int, x0: Optional[float] = None) -> np.ndarray:
    """Joint positions ``(n_frames, 25, 3)`` of a person moving smoothly in front of the camera."""
    t = np.linspace(0.0, 1.0, n_frames)
    scale = rng.uniform(0.85, 1.12)
    root = np.array([rng.uniform(-0.7, 0.7) if x0 is None else x0, rng.uniform(-0.3, 0.1), rng.uniform(2.3, 3.9)])
    drift = rng.uniform(-0.3, 0.3, size=3) * np.array([1.0, 0.1, 1.0])
    freq, phase = rng.uniform(0.5, 2.0), rng.uniform(0, 2 * math.pi)
    pose = np.repeat(_REST[None] * scale, n_frames, axis=0)
    for arm, shoulder, amp in ((_LEFT_ARM, _LEFT_SHOULDER, rng.uniform(0.2, 1.4)),
                               (_RIGHT_ARM, _RIGHT_SHOULDER, -rng.uniform(0.2, 1.4))):
        angle = amp * np.sin(2 * math.pi * freq * t + phase)
        rot = _rotation_z(angle)
        offset = pose[:, arm] - pose[:, shoulder:shoulder + 1]
        pose[:, arm] = pose[:, shoulder:shoulder + 1] + np.einsum("tij,tkj->tki", rot, offset)
    pose[:, :, 1] += 0.05 * np.sin(2 * math.pi * freq * t + phase)[:, None]
    jitter = rng.normal(0.0, 0.004, size=pose.shape)
    return pose + root + drift * t[:, None, None] + jitter


def furniture(rng: np.random.Generator, n_frames: int) -> np.ndarray:
    """A wide, flat, static body: its x extent is far above 0.8 times its y extent."""
    base = np.stack([rng.uniform(-0.9, 0.9, 25), rng.uniform(-0.05, 0.05, 25), rng.uniform(2.0, 2.2, 25)], -1)
    return base[None] + rng.normal(0.0, 0.002, size=(n_frames, 25, 3))


def _spread_noisy(rng: np.random.Generator, pose: np.ndarray, fraction: float) -> np.ndarray:
    """Flatten a share of the frames (arms and legs stretched sideways) so they count as noise."""
    noisy = rng.random(len(pose)) < fraction
    out = pose.copy()
    out[noisy, :, 0] = out[noisy, :1, 0] + (out[noisy, :, 0] - out[noisy, :1, 0]) * 6.0
    out[noisy, :, 1] = out[noisy, :1, 1] + (out[noisy, :, 1] - out[noisy, :1, 1]) * 0.15
    return out


def _span(start: int, stop: int) -> np.ndarray:
    return np.arange(start, stop)


def make_recording(rng: np.random.Generator, name: str, scenario: str, n_frames: int) -> Recording:
    """The tracks of one file of the given scenario."""
    ids = iter(_FIRST_ID + rng.integers(1000, 9000) + 7 * np.arange(16))
    rec = Recording(name, n_frames, scenario=scenario)

    def add(frames: np.ndarray, joints: Optional[np.ndarray] = None) -> None:
        rec.tracks.append(Track(int(next(ids)), frames, person(rng, len(frames)) if joints is None else joints))

    T = n_frames
    if scenario == "single":
        lost = set(rng.choice(T, size=int(rng.integers(0, 4)), replace=False).tolist())
        add(np.array([f for f in range(T) if f not in lost]))
    elif scenario == "gap":
        a = int(rng.integers(T // 4, T // 2))
        b = a + int(rng.integers(2, max(3, T // 4)))
        add(np.concatenate([_span(0, a), _span(b, T)]))
    elif scenario == "switch":
        cut, overlap = int(rng.integers(T // 3, 2 * T // 3)), int(rng.choice([0, 1, 3]))
        whole = person(rng, T)
        add(_span(0, cut + overlap), whole[:cut + overlap])
        add(_span(cut, T), whole[cut:])
    elif scenario == "noise":
        add(_span(0, T))
        for length in rng.choice([1, 3, 7, 11, 12], size=2, replace=False):
            start = int(rng.integers(0, T - length))
            add(_span(start, start + length))
    elif scenario == "furniture":
        add(_span(0, T))
        add(_span(0, T), furniture(rng, T))
    elif scenario == "partial_spread":
        add(_span(0, T))
        add(_span(0, T), _spread_noisy(rng, person(rng, T), rng.uniform(0.2, 0.6)))
    elif scenario == "pair":
        add(_span(0, T), person(rng, T, x0=-0.5))
        start, stop = int(rng.integers(0, T // 4)), T - int(rng.integers(0, T // 4))
        add(_span(start, stop), person(rng, stop - start, x0=0.5))
    elif scenario == "pair_short":
        add(_span(0, T))
        add(_span(2, 2 + int(rng.integers(3, 12))))
    elif scenario == "crowd":
        for x0 in (-0.6, 0.0, 0.6):
            start = int(rng.integers(0, T // 3))
            add(_span(start, T), person(rng, T - start, x0=x0))
    elif scenario == "late_start":
        begin = int(rng.integers(3, T // 3))
        add(_span(begin, T))
        add(_span(0, begin + 12), furniture(rng, begin + 12))
    elif scenario == "all_short":
        add(_span(0, 8))
        add(_span(0, 8))
    elif scenario != "empty":
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    return rec


def _fmt(value: float) -> str:
    """Seven significant digits, the Kinect SDK's exponent style (``-8.967501E-05``)."""
    if value == 0:
        return "0"
    text = "%.7g" % value
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}E{exponent[0]}{exponent[1:].lstrip('0').rjust(2, '0')}"
    return text


def render(rec: Recording, newline: str = "\r\n") -> bytes:
    """The text of a ``.skeleton`` file for a recording."""
    by_frame: Dict[int, List[Tuple[Track, int]]] = {}
    for track in rec.tracks:
        for k, frame in enumerate(track.frames.tolist()):
            by_frame.setdefault(frame, []).append((track, k))
    lines = [str(rec.n_frames)]
    for frame in range(rec.n_frames):
        present = by_frame.get(frame, [])
        lines.append(str(len(present)))
        for track, k in present:
            xyz = track.joints[k]
            lean = xyz[20, 0] - xyz[0, 0], xyz[20, 2] - xyz[0, 2]
            lines.append(f"{track.body_id} 0 1 1 1 1 0 {_fmt(lean[0])} {_fmt(lean[1])} 2")
            lines.append("25")
            z = np.maximum(xyz[:, 2], 0.3)
            depth = (256 + 365 * xyz[:, 0] / z, 212 - 365 * xyz[:, 1] / z)
            color = (960 + 1060 * (xyz[:, 0] + 0.05) / z, 540 - 1060 * xyz[:, 1] / z)
            for j in range(25):
                quat = "0 0 0 0" if j in _LEAF_JOINTS else "0.9876543 -0.01234567 0.1523 -4.56789E-05"
                lines.append(" ".join([_fmt(xyz[j, 0]), _fmt(xyz[j, 1]), _fmt(xyz[j, 2]),
                                       _fmt(depth[0][j]), _fmt(depth[1][j]), _fmt(color[0][j]), _fmt(color[1][j]),
                                       quat, "2"]))
    return (newline.join(lines) + newline).encode("ascii")


def sample_names(rng: np.random.Generator, n: int, dataset: str) -> List[str]:
    max_setup, max_action, max_performer = (17, 60, 40) if dataset == "ntu60" else (32, 120, 106)
    names = set()
    while len(names) < n:
        names.add("S%03dC%03dP%03dR%03dA%03d" % (rng.integers(1, max_setup + 1), rng.integers(1, 4),
                                                  rng.integers(1, max_performer + 1), rng.integers(1, 3),
                                                  rng.integers(1, max_action + 1)))
    return sorted(names)


def write_set(out: Path, n: int, seed: int = 0, dataset: str = "ntu60", newline: str = "\r\n",
              scenarios: Optional[Sequence[str]] = None, frames: Tuple[int, int] = (30, 120)) -> Dict[str, str]:
    """Write ``n`` files to ``out`` and return ``{name: scenario}``.

    With ``scenarios`` given, file ``i`` has ``scenarios[i % len(scenarios)]``; otherwise every
    scenario of ``MIX`` appears once first, then they follow ``MIX``'s weights.
    """
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    mix = list(MIX)
    weights = np.array([MIX[s] for s in mix], dtype=float)
    plan = {}
    for i, name in enumerate(sample_names(rng, n, dataset)):
        if scenarios:
            scenario = scenarios[i % len(scenarios)]
        elif i < len(mix):
            scenario = mix[i]
        else:
            scenario = mix[rng.choice(len(mix), p=weights / weights.sum())]
        rec = make_recording(rng, name, scenario, int(rng.integers(frames[0], frames[1] + 1)))
        (out / f"{name}.skeleton").write_bytes(render(rec, newline))
        plan[name] = scenario
    return plan


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", choices=["ntu60", "ntu120"], default="ntu60")
    parser.add_argument("--newline", choices=["lf", "crlf"], default="crlf")
    parser.add_argument("--scenarios", help="comma-separated scenarios to cycle through")
    parser.add_argument("--min-frames", type=int, default=30)
    parser.add_argument("--max-frames", type=int, default=120)
    args = parser.parse_args(argv)
    plan = write_set(args.out, args.n, args.seed, args.dataset, "\n" if args.newline == "lf" else "\r\n",
                     args.scenarios.split(",") if args.scenarios else None, (args.min_frames, args.max_frames))
    print(f"wrote {len(plan)} files to {args.out}")


if __name__ == "__main__":
    main()
