"""The CSRE loss's row-wise selections: the compiled kernels against torch, on both paths."""
import numpy as np
import pytest
import torch

from csre_models import row_selection
from csre_models.row_selection import first_distinct_per_row, has_compiled_selection, largest_per_row

needs_compiled = pytest.mark.skipif(not has_compiled_selection(),
                                    reason="csre_models._select_c is not built (no C compiler at install)")


@pytest.fixture(params=["compiled", "torch"])
def path(request, monkeypatch):
    """Run a test on the compiled kernels and on the torch fallback."""
    if request.param == "compiled" and not has_compiled_selection():
        pytest.skip("csre_models._select_c is not built (no C compiler at install)")
    if request.param == "torch":
        monkeypatch.setattr(row_selection, "_select_c", None)
    return request.param


def first_k_in_total_order(values: torch.Tensor, k: int):
    """The k entries of every row that come first by (larger value, then lower column), in column order."""
    chosen = values.sort(dim=1, descending=True, stable=True).indices[:, :k].sort(dim=1).values
    return values.gather(1, chosen), chosen


def random_rows(kind: str, generator: torch.Generator) -> torch.Tensor:
    rows = int(torch.randint(1, 5, (1,), generator=generator))
    columns = int(torch.randint(1, 3000, (1,), generator=generator))
    if kind == "ties":                                        # a handful of values: ties at the k-th place
        return torch.randint(0, 4, (rows, columns), generator=generator).float()
    values = torch.randn(rows, columns, generator=generator)
    if kind == "mostly -inf":                                 # the hard negatives' masked similarities
        values[torch.rand(rows, columns, generator=generator) < 0.9] = float("-inf")
    elif kind == "ascending":                                 # the largest at the end, far from a sample's guess
        values = values.sort(dim=1).values
    elif kind == "descending":
        values = values.sort(dim=1, descending=True).values
    return values


@needs_compiled
@pytest.mark.parametrize("kind", ["random", "ties", "mostly -inf", "ascending", "descending"])
def test_compiled_top_k_takes_the_first_entries_in_value_then_column_order(kind):
    generator = torch.Generator().manual_seed(len(kind))
    for _ in range(150):
        values = random_rows(kind, generator)
        k = int(torch.randint(1, values.shape[1] + 1, (1,), generator=generator))
        top_values, top_columns = largest_per_row(values, k)
        expected_values, expected_columns = first_k_in_total_order(values, k)
        assert torch.equal(top_columns, expected_columns), (values.shape, k)
        assert torch.equal(top_values, expected_values)


def test_largest_per_row_selects_what_topk_selects(path):
    generator = torch.Generator().manual_seed(3)
    similarities = torch.randn(64, 40_091, generator=generator)         # the hard negatives' shape
    similarities[:, :700] = float("-inf")
    top_values, top_columns = largest_per_row(similarities, 512)
    expected = similarities.topk(512, dim=1)
    assert torch.equal(top_columns.sort(dim=1).values, expected.indices.sort(dim=1).values)
    assert torch.equal(top_values.sort(dim=1).values, expected.values.sort(dim=1).values)
    assert torch.equal(similarities.gather(1, top_columns), top_values)


def test_a_row_with_nan_is_left_to_torch(path):
    values = torch.arange(20, dtype=torch.float32).repeat(3, 1)
    values[1, 4] = float("nan")
    top_values, top_columns = largest_per_row(values, 3)
    expected = values.topk(3, dim=1, sorted=False)
    assert torch.equal(top_columns.sort(dim=1).values, expected.indices.sort(dim=1).values)
    assert 4 in top_columns[1].tolist()                    # torch ranks NaN first


def test_largest_per_row_of_non_contiguous_and_other_inputs(path):
    values = torch.randn(300, 5).t()                        # a transposed view
    assert torch.equal(largest_per_row(values, 7)[1].sort(dim=1).values,
                       values.topk(7, dim=1).indices.sort(dim=1).values)
    doubles = values.double()                               # not float32: torch's kernel
    assert torch.equal(largest_per_row(doubles, 7)[1].sort(dim=1).values,
                       doubles.topk(7, dim=1).indices.sort(dim=1).values)
    with pytest.raises(RuntimeError):                       # k past the row: torch's own error
        largest_per_row(values, 301)


def test_first_distinct_keeps_the_first_distinct_draws_in_draw_order(path):
    draws = torch.tensor([[5, 3, 5, 9, 3, 1, 7],
                          [2, 2, 2, 2, 8, 2, 2]])
    kept, complete = first_distinct_per_row(draws, 4)
    assert kept.tolist() == [[5, 3, 9, 1], [2, 8, 2, 2]]    # the second row is padded with its first draw
    assert complete.tolist() == [True, False]


def test_first_distinct_with_fewer_draws_than_wanted(path):
    kept, complete = first_distinct_per_row(torch.tensor([[4, 6]]), 3)
    assert kept.tolist() == [[4, 6, 4]] and complete.tolist() == [False]


def test_first_distinct_compiled_and_torch_agree(monkeypatch):
    if not has_compiled_selection():
        pytest.skip("csre_models._select_c is not built (no C compiler at install)")
    generator = torch.Generator().manual_seed(7)
    cases = []
    for _ in range(300):
        shape = tuple(int(s) for s in torch.randint(1, 200, (2,), generator=generator))
        cases.append((torch.randint(0, int(torch.randint(1, 300, (1,), generator=generator)), shape,
                                    generator=generator),
                      int(torch.randint(1, 200, (1,), generator=generator))))
    compiled = [first_distinct_per_row(draws, count) for draws, count in cases]
    monkeypatch.setattr(row_selection, "_select_c", None)
    for (draws, count), (kept, complete) in zip(cases, compiled):
        expected_kept, expected_complete = first_distinct_per_row(draws, count)
        assert torch.equal(kept, expected_kept) and torch.equal(complete, expected_complete)


def test_first_distinct_rejects_an_empty_request(path):
    with pytest.raises(ValueError, match="count >= 1"):
        first_distinct_per_row(torch.zeros((2, 3), dtype=torch.long), 0)


@needs_compiled
def test_compiled_kernels_check_their_buffers():
    values = np.zeros((2, 10), np.float32)
    with pytest.raises(ValueError, match="out_indices holds 24 bytes, expected 32"):
        row_selection._select_c.top_k(values, 2, 10, 2, np.zeros((2, 2), np.float32), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="1 <= k <= columns"):
        row_selection._select_c.top_k(values, 2, 10, 11, np.zeros((2, 11), np.float32), np.zeros((2, 11), np.int64))
    with pytest.raises(ValueError, match="complete holds 1 bytes, expected 2"):
        row_selection._select_c.first_distinct(np.zeros((2, 4), np.int64), 2, 4, 3, np.zeros((2, 3), np.int64),
                                               np.zeros(1, np.uint8))
