"""Vectorised, correctly rounded parsing of plain decimal tokens such as ``-0.2394933``.

The reference scripts turn every coordinate into a Python float (a correctly rounded double) and
then into float32. Parsing token by token in Python is what makes them slow, so this module parses
many tokens at once with numpy and still gives the correctly rounded double of each token:

* A token of the form ``[+-]digits[.digits]`` with at most 15 digits is an integer mantissa ``m``
  (exact in a double, ``m < 2**53``) and a count ``k <= 15`` of fractional digits. ``m / 10**k``
  with both operands exact is one IEEE division, hence correctly rounded (Clinger's fast path).
* Every other token (an exponent, too many digits, anything odd) is reported as not handled, and
  the caller parses it with Python's ``float``, which is also correctly rounded and raises on
  garbage. So the result never depends on which path a token took.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

MAX_TOKEN_CHARS = 24
_MAX_DIGITS = 15
_POW10 = 10.0 ** np.arange(_MAX_DIGITS + 1)
_MINUS, _PLUS, _DOT, _ZERO = ord("-"), ord("+"), ord("."), ord("0")


def parse_plain_decimals(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray
                         ) -> Tuple[np.ndarray, np.ndarray]:
    """Parse the tokens ``buf[starts[i]:ends[i]]`` as decimal numbers.

    Args:
        buf: the text as a ``uint8`` array, followed by at least ``MAX_TOKEN_CHARS`` bytes of padding
            so that reads past a token's end stay inside the array.
        starts, ends: token boundaries (``int64``), one pair per token.

    Returns:
        ``(values, handled)``: float64 values, and a boolean mask of the tokens this fast path parsed.
        Values where ``handled`` is False are meaningless and must be parsed by the caller.
    """
    n = ends - starts
    if n.size == 0:
        return np.zeros(0, dtype=np.float64), np.zeros(0, dtype=bool)
    width = min(int(n.max()), MAX_TOKEN_CHARS)
    cols = np.arange(width, dtype=np.int64)[:, None]
    chars = buf[starts[None, :] + cols]                   # (width, tokens): one row per column
    inside = cols < n[None, :]
    first = chars[0]
    negative = first == _MINUS
    signed = negative | (first == _PLUS)

    digit = chars - np.uint8(_ZERO)                       # wraps around for non-digits
    is_digit = (digit < 10) & inside
    is_dot = (chars == _DOT) & inside
    n_digits = is_digit.sum(axis=0)
    n_dots = is_dot.sum(axis=0)
    handled = ((n <= width) & (n_digits >= 1) & (n_digits <= _MAX_DIGITS) & (n_dots <= 1)
               & (n_digits + n_dots + signed == n))

    # Horner's rule down the columns; exact, since every partial value is an integer below 2**53.
    mantissa = np.zeros(starts.shape, dtype=np.float64)
    for row_digit, row_is_digit in zip(digit, is_digit):
        mantissa = np.where(row_is_digit, mantissa * 10.0 + row_digit, mantissa)

    dot_col = np.where(n_dots > 0, is_dot.argmax(axis=0), n)
    fraction_digits = np.where(n_dots > 0, n - 1 - dot_col, 0)
    fraction_digits = np.clip(fraction_digits, 0, _MAX_DIGITS)
    values = mantissa / _POW10[fraction_digits]
    return np.where(negative, -values, values), handled
