"""Choosing temperatures on a program grid (Medoc stations)."""

from __future__ import annotations

import pytest

from cpm_session.program_grid import note, snap

GRID = [40.0, 40.5, 41.0, 41.5, 42.0]


@pytest.mark.parametrize("t, mode, expected", [
    (40.5, "nearest", 40.5), (40.74, "nearest", 40.5), (40.76, "nearest", 41.0), (40.75, "nearest", 40.5),
    (40.99, "down", 40.5), (41.0, "down", 41.0), (39.0, "nearest", 40.0), (39.0, "down", 40.0),
    (45.0, "nearest", 42.0), (45.0, "down", 42.0), (40.499999, "down", 40.5),
])
def test_snap(t: float, mode: str, expected: float) -> None:
    assert snap(t, GRID, mode=mode) == expected  # type: ignore[arg-type]


def test_bad_input_and_note() -> None:
    with pytest.raises(ValueError, match="no program"):
        snap(41.0, [])
    with pytest.raises(ValueError):
        snap(float("nan"), GRID)
    assert note(41.0, 41.0) == "" and note(41.3, 41.5) == "41.30 °C is not on the thermode's program grid: 41.50 °C used"
