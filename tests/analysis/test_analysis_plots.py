"""Figures: a session figure and the study figure are written as PNGs with drawn content."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib import image as mpimg

from cpm_session.analysis.plots import session_figure, study_figure
from cpm_session.sim.synth import SynthTruth, write_session

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def drawn_fraction(png: Path) -> float:
    """Return the share of pixels that are not white."""
    img = mpimg.imread(png)[..., :3]
    return float((img.min(axis=2) < 0.95).mean())


def test_session_figure_from_synthetic_and_real_sessions(tmp_path: Path) -> None:
    p = write_session(tmp_path / "d", "P001", "baseline", truth=SynthTruth(withdrawal_s=30.0))
    out = session_figure(p, tmp_path / "s.png")
    assert out.read_bytes()[:8] == PNG_MAGIC
    h, w = mpimg.imread(out).shape[:2]
    assert (w, h) == (1100, 990)
    assert drawn_fraction(out) > 0.03
    engine = pytest.importorskip("cpm_session.sim.world")
    q = engine.run_simulated_visit(tmp_path / "e", "P002", "baseline", seed=2)
    assert drawn_fraction(session_figure(q, tmp_path / "e.png")) > 0.03


def test_session_figure_of_empty_folder_still_draws(tmp_path: Path) -> None:
    d = tmp_path / "P001" / "baseline-20260101T000000Z"
    d.mkdir(parents=True)
    (d / "events.jsonl").write_bytes(b"")
    assert session_figure(d, tmp_path / "x.png").exists()


def test_study_figure(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    wide = pd.DataFrame({"participant": [f"P{i:03d}" for i in range(12)], "arm": ["drug", "placebo"] * 6,
                         "cpm_abs_base": rng.normal(0, 8, 12), "cpm_abs_post": rng.normal(5, 8, 12)})
    wide.loc[3, "cpm_abs_post"] = np.nan
    out = study_figure(wide, tmp_path / "study.png", reference="placebo")
    assert out.read_bytes()[:8] == PNG_MAGIC and drawn_fraction(out) > 0.03
    empty = study_figure(wide.iloc[0:0], tmp_path / "empty.png")
    assert empty.exists()
