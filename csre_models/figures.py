"""Figures of evaluation results (matplotlib, the optional ``plot`` extra).

:func:`plot_confusion_matrix` draws a confusion matrix as a person reads one: true actions down the
side, predicted actions along the bottom, both by name, each row normalised to the share of that
action's samples, so that a class with few samples is as visible as one with many. Cells and fonts
shrink with the class count: the ten NW-UCLA actions get their percentages written in the cells, the
60 and 120 NTU actions still get every name, in small type.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

__all__ = ["plot_confusion_matrix", "row_normalised"]

#: Up to this many classes, every cell shows its percentage.
ANNOTATE_UP_TO = 20


def row_normalised(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of the true class predicted as each class); empty rows 0."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)


def plot_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], out: Union[str, Path],
                          title: Optional[str] = None, purpose: str = "--confusion") -> None:
    """Write ``matrix`` (rows true label, columns predicted, counts) to the image ``out``, row-normalised.

    ``purpose`` names the option that asked for it in the error raised when matplotlib is missing.
    """
    from skeldata.show import import_pyplot

    plt = import_pyplot(purpose)
    classes = len(class_names)
    shares = row_normalised(matrix)
    cell = 0.5 if classes <= ANNOTATE_UP_TO else 0.2 if classes <= 60 else 0.14
    font = 9 if classes <= ANNOTATE_UP_TO else 5 if classes <= 60 else 3.5
    label_space = 0.0085 * font * max(len(name) for name in class_names) + 0.8     # inches: ~0.6 em a character
    side = classes * cell
    fig, ax = plt.subplots(figsize=(side + label_space + 1.2, side + label_space + 0.6), layout="constrained")
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ticks = np.arange(classes)
    ax.set_xticks(ticks, class_names, rotation=90, fontsize=font)
    ax.set_yticks(ticks, class_names, fontsize=font)
    ax.set_xlabel("predicted action", fontsize=max(font, 7))
    ax.set_ylabel("true action", fontsize=max(font, 7))
    if classes <= ANNOTATE_UP_TO:
        for (row, column), share in np.ndenumerate(shares):
            if share > 0:
                ax.text(column, row, f"{100 * share:.0f}", ha="center", va="center", fontsize=font - 1,
                        color="white" if share > 0.5 else "black")
    colourbar = fig.colorbar(image, ax=ax, shrink=0.6)
    colourbar.set_label("share of the true action's samples", fontsize=max(font, 7))
    colourbar.ax.tick_params(labelsize=max(font, 6))
    if title:
        ax.set_title(title, fontsize=max(font + 1, 8))
    fig.savefig(out, dpi=150 if classes <= 60 else 200)
    plt.close(fig)
