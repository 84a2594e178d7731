"""Draw the skeleton sequence of one sample: ``skeldata show``.

A PNG is a strip of evenly spaced frames; a GIF is an animation of every frame. Each panel shows the
front view (x to the right, y up) above a smaller top view (x to the right, depth z up), with the
bones of the layout's ``standard`` graph and one colour per body. Axes are equal and fixed over the
whole sequence, so movement and the distance between actors read directly. A body whose coordinates
are all zero in a frame (absent there: the store keeps zeros for it) is not drawn in that frame.

Needs matplotlib (the optional ``plot`` extra); :func:`skeldata._plotting.import_pyplot` says how to install it.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple, Union

import numpy as np

from ._plotting import import_pyplot
from .actions import action_code
from .errors import SkeldataError
from .store import Store

BODY_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
STRIP_FRAMES = 8
GIF_FPS = 30  # the Kinect frame rate

#: Smallest depth span of the top view, as a share of its width (the front view is square).
_MIN_TOP_SHARE = 0.3


def show_sample(store: Store, name: str, out: Union[str, Path], frames: int = STRIP_FRAMES,
                fps: int = GIF_FPS) -> int:
    """Draw sample ``name`` of ``store`` to ``out`` (``.png``: a strip of ``frames`` evenly spaced
    frames; ``.gif``: every frame at ``fps``). Returns the number of frames drawn."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".gif"):
        raise SkeldataError(f"--out {out}: give a .png (a strip of frames) or a .gif (an animation)")
    if frames < 1 or fps < 1:
        raise SkeldataError("--frames and --fps must be at least 1")
    index = store.index_of(name)
    joints = store.sequence(index, "joint")
    plt = import_pyplot("show")
    row = store.samples.iloc[index]
    title = (f"{name}   class {action_code(store.dataset.family, int(row['label']))} "
             f"(label {int(row['label'])})   {len(joints)} frames   {int(row['n_bodies'])} "
             f"{'body' if int(row['n_bodies']) == 1 else 'bodies'}")
    prepared = _Frames(joints, store.layout.edges("standard"))
    if suffix == ".png":
        chosen = np.unique(np.linspace(0, len(joints) - 1, min(frames, len(joints))).round().astype(int))
        _draw_strip(plt, prepared, chosen, title, out)
        return len(chosen)
    _draw_animation(plt, prepared, title, out, fps)
    return len(joints)


def extent(joints: np.ndarray, axis: int) -> Tuple[float, float]:
    """Lowest and highest value of one coordinate over every present body of a sequence."""
    present = joints[_present(joints)]
    if not len(present):
        return -1.0, 1.0
    values = present[..., axis]
    return float(values.min()), float(values.max())


def front_limits(joints: np.ndarray) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """x and y limits of the front view: a square around the skeleton with a small margin, so a
    plot with equal aspect fills its box."""
    (x_lo, x_hi), (y_lo, y_hi) = extent(joints, 0), extent(joints, 1)
    half = max(x_hi - x_lo, y_hi - y_lo, 0.2) / 2 * 1.08
    x_mid, y_mid = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2
    return (x_mid - half, x_mid + half), (y_mid - half, y_mid + half)


def top_limits(joints: np.ndarray, x_limits: Tuple[float, float]) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """x and depth limits of the top view: x as in the front view, depth a band around the skeleton
    at least :data:`_MIN_TOP_SHARE` of the width."""
    z_lo, z_hi = extent(joints, 2)
    half = max((x_limits[1] - x_limits[0]) * _MIN_TOP_SHARE, (z_hi - z_lo) * 1.08) / 2
    z_mid = (z_lo + z_hi) / 2
    return x_limits, (z_mid - half, z_mid + half)


def _present(joints: np.ndarray) -> np.ndarray:
    """``(T, M)`` mask of the bodies that are there (not all zero) in each frame."""
    return np.any(joints != 0, axis=(2, 3))


def _segments(body: np.ndarray, edges: List[Tuple[int, int]], axes: Tuple[int, int]) -> np.ndarray:
    """``(E, 2, 2)`` line segments of the bones of one body ``(V, 3)`` in two coordinates."""
    child, parent = np.array(edges).T
    return np.stack([body[child][:, axes], body[parent][:, axes]], axis=1)


class _View:
    """One projection of the skeleton in an axes: a line collection and joint dots per body."""

    def __init__(self, ax, num_bodies: int, axes: Tuple[int, int], limits, edges, label: str, small: bool):
        from matplotlib.collections import LineCollection
        self.ax, self.axes, self.edges = ax, axes, edges
        self.bones, self.dots = [], []
        for body in range(num_bodies):
            colour = BODY_COLOURS[body % len(BODY_COLOURS)]
            lines = LineCollection([], colors=colour, linewidths=1.2 if small else 2.0, capstyle="round")
            ax.add_collection(lines)
            self.bones.append(lines)
            self.dots.append(ax.plot([], [], "o", color=colour, markersize=1.5 if small else 2.5)[0])
        ax.set_xlim(*limits[0])
        ax.set_ylim(*limits[1])
        ax.set_aspect("equal", adjustable="box")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("#bbbbbb")
        ax.text(0.03, 0.97, label, transform=ax.transAxes, fontsize=6 if small else 7, va="top", color="#777777")

    def update(self, frame: np.ndarray, present: np.ndarray) -> None:
        for body, (lines, dots) in enumerate(zip(self.bones, self.dots)):
            if present[body]:
                lines.set_segments(_segments(frame[body], self.edges, self.axes))
                dots.set_data(frame[body][:, self.axes[0]], frame[body][:, self.axes[1]])
            else:
                lines.set_segments([])
                dots.set_data([], [])


class _Frames:
    """A sequence prepared for drawing: joints, which bodies are present, bone edges, view limits."""

    def __init__(self, joints: np.ndarray, edges: List[Tuple[int, int]]):
        self.joints = joints
        self.present = _present(joints)
        self.edges = edges
        self.front = front_limits(joints)
        self.top = top_limits(joints, self.front[0])
        #: Height of the top view relative to the (square) front view.
        self.top_share = (self.top[1][1] - self.top[1][0]) / (self.top[0][1] - self.top[0][0])

    def views(self, fig, front_cell, top_cell, small: bool) -> List[_View]:
        bodies = self.joints.shape[1]
        return [_View(fig.add_subplot(front_cell), bodies, (0, 1), self.front, self.edges, "front x-y", small),
                _View(fig.add_subplot(top_cell), bodies, (0, 2), self.top, self.edges, "top x-z", small)]

    def draw(self, views: List[_View], t: int) -> None:
        for view in views:
            view.update(self.joints[t], self.present[t])


def _draw_strip(plt, frames: _Frames, chosen: np.ndarray, title: str, out: Path) -> None:
    width = 1.7
    fig = plt.figure(figsize=(width * len(chosen) + 0.2, width * (1 + frames.top_share) + 0.6),
                     layout="constrained")
    grid = fig.add_gridspec(2, len(chosen), height_ratios=(1, frames.top_share))
    for column, t in enumerate(chosen):
        views = frames.views(fig, grid[0, column], grid[1, column], small=True)
        frames.draw(views, t)
        views[0].ax.set_title(f"frame {t + 1}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.savefig(out, dpi=150)
    plt.close(fig)


def _draw_animation(plt, frames: _Frames, title: str, out: Path, fps: int) -> None:
    from matplotlib.animation import FuncAnimation, PillowWriter
    width = 3.4
    fig = plt.figure(figsize=(width, width * (1 + frames.top_share) + 0.8), layout="constrained")
    grid = fig.add_gridspec(2, 1, height_ratios=(1, frames.top_share))
    views = frames.views(fig, grid[0, 0], grid[1, 0], small=False)
    fig.suptitle(title.replace("   class", "\nclass"), fontsize=8)
    counter = views[0].ax.text(0.97, 0.03, "", transform=views[0].ax.transAxes, ha="right", va="bottom",
                               fontsize=7, color="#555555")
    total = len(frames.joints)

    def draw(t: int):
        frames.draw(views, t)
        counter.set_text(f"frame {t + 1}/{total}")

    animation = FuncAnimation(fig, draw, frames=total, interval=1000 / fps)
    animation.save(out, writer=PillowWriter(fps=fps), dpi=100)
    plt.close(fig)
