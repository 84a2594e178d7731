"""Row-wise selections of the CSRE loss: the k largest entries of every row, and the first distinct draws.

On CPU tensors both run in the compiled ``csre_models._select_c`` (built at install wherever a C compiler
exists); elsewhere (CUDA, no compiler) torch's kernels give the same selections:

- :func:`largest_per_row` for the hard negatives (512 of 40,091 similarities per anchor). torch.topk on
  the CPU heap-sorts every row; the compiled kernel thresholds each row from a sample and selects among
  the ~2k entries above it: 9 against 25 ms for 64 rows (docs/performance.md).
- :func:`first_distinct_per_row` for the random negatives' draws, without the sort of every row that
  the torch version needs.

The sets are the same on both paths, except among equal values at the k-th place, where the compiled
kernel keeps the lower columns and torch.topk does not say which it keeps. Order within a row: see each
function.
"""
from typing import Tuple

import torch

try:
    from . import _select_c
except ImportError:  # pragma: no cover - built at install time wherever a C compiler exists
    _select_c = None

__all__ = ["largest_per_row", "first_distinct_per_row", "has_compiled_selection"]


def has_compiled_selection() -> bool:
    """Whether the compiled kernels (``csre_models._select_c``) are built."""
    return _select_c is not None


def _compiled_applies(values: torch.Tensor, dtype: torch.dtype) -> bool:
    return (_select_c is not None and values.device.type == "cpu" and values.dtype == dtype
            and values.dim() == 2 and values.shape[0] > 0)


def largest_per_row(values: torch.Tensor, k: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest entries of every row of ``values`` ``(n, m)`` and their columns, both ``(n, k)``.

    Like ``values.topk(k, dim=1, sorted=False)``: no gradient, and no order promised. A CPU float32
    input goes through the compiled kernel, which returns every row's entries in increasing column order
    and, among equal values at the k-th place, the lower columns; rows holding NaN go to torch.topk.
    """
    if not (_compiled_applies(values, torch.float32) and 1 <= k <= values.shape[1]):
        return values.topk(k, dim=1, sorted=False)
    rows, columns = values.shape
    source = values.detach().contiguous()
    top_values = torch.empty((rows, k), dtype=torch.float32)
    top_columns = torch.empty((rows, k), dtype=torch.long)
    if _select_c.top_k(source.numpy(), rows, columns, k, top_values.numpy(), top_columns.numpy()):
        return top_values, top_columns
    return values.topk(k, dim=1, sorted=False)  # a NaN: torch decides where it goes


def first_distinct_per_row(values: torch.Tensor, count: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per row of the integer draws ``values`` ``(n, d)``, the first ``count`` distinct values in draw order.

    Returns them ``(n, count)`` and ``complete`` ``(n,)``: ``False`` where a row holds fewer than
    ``count`` distinct values; such a row is padded with values it drew.
    """
    rows, draws = values.shape
    if count < 1 or draws < 1:
        raise ValueError(f"need count >= 1 and at least one draw per row, got count={count}, draws={draws}")
    if _compiled_applies(values, torch.long):
        source = values.contiguous()
        kept = torch.empty((rows, count), dtype=torch.long)
        complete = torch.empty(rows, dtype=torch.bool)
        _select_c.first_distinct(source.numpy(), rows, draws, count, kept.numpy(), complete.numpy())
        return kept, complete
    if draws < count:  # repeats of the first draw add no distinct value, and give topk `count` entries
        values = torch.cat([values, values[:, :1].expand(rows, count - draws)], dim=1)
        draws = count
    sorted_values, draw_index = values.sort(dim=1, stable=True)
    first_occurrence = torch.ones_like(sorted_values, dtype=torch.bool)
    first_occurrence[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    draw_index = draw_index.masked_fill(~first_occurrence, draws)        # repeats sort after every first
    earliest = draw_index.topk(count, dim=1, largest=False, sorted=True)
    kept = torch.where(earliest.values < draws, sorted_values.gather(1, earliest.indices), values[:, :1])
    return kept, first_occurrence.sum(dim=1) >= count
