"""Float32 results computed two ways (sums in another order: another batch, another number of
processes) differ by rounding, in proportion to the size of the values compared. Tolerances are
stated in that unit, not as absolute constants that hold on the machine that chose them."""

from __future__ import annotations

from typing import Any

import numpy as np

EPS32 = 2.0**-23  # the spacing of float32 numbers relative to their size


def _array(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu().double() if hasattr(x, "detach") else x, dtype=np.float64)


def assert_float32_close(actual: Any, expected: Any, k: float, what: str = "") -> None:
    """Every difference within k * EPS32 * the largest |value| compared."""
    a, e = _array(actual), _array(expected)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    scale = max(np.abs(a).max(initial=0), np.abs(e).max(initial=0))
    gap = np.abs(a - e).max(initial=0)
    units = gap / (EPS32 * scale) if scale > 0 else 0.0
    assert units <= k, f"{what}: largest difference {gap:.3g} is {units:.1f} x float32 rounding at {scale:.3g} (allowed: {k})"
