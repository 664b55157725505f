"""summarize's per-session cache (record/cache.py): same rows as a fresh read, and any change is seen."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from cpm_session.analysis import summary_cache
from cpm_session.analysis.summarize import default_protocol_dirs, summarize
from cpm_session.record import cache as rcache
from cpm_session.record.amend import amend_session
from cpm_session.record.cache import default_cache_dir
from cpm_session.record.folder import iter_session_dirs
from cpm_session.sim.synth import SynthTruth, write_session


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cache") / "data"
    for k in range(6):
        write_session(root, f"P{k // 2 + 1:03d}", "baseline" if k % 2 == 0 else "post", seed=k,
                      truth=SynthTruth(cpm_effect=0.1 + 0.05 * k))
    return root


def rows(root: Path, **kw):  # type: ignore[no-untyped-def]
    return summary_cache.read_rows(root, list(iter_session_dirs(root)), default_protocol_dirs(root), True, **kw)


def fresh_copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cache"))
    return dst


def test_head_hash_is_the_chain_head(data: Path) -> None:
    for d in iter_session_dirs(data):
        hdr = json.loads((d / "session.json").read_text(encoding="utf-8"))
        assert rcache.head_hash(d / "events.jsonl") == hdr["log_final_sha256"]
    assert rcache.head_hash(data / "nothing.jsonl") == "0" * 64


def test_warm_run_equals_a_fresh_read(tmp_path: Path, data: Path) -> None:
    root = fresh_copy(data, tmp_path / "d")
    r1, w1, s1 = rows(root)
    assert (s1.hits, s1.misses, s1.written) == (0, 6, 6)
    cached = sorted(default_cache_dir(root, "summary").glob("*.json"))
    assert len(cached) == 6
    assert not any(p.name.startswith(".") for p in root.iterdir())  # nothing is written into the data folder
    r2, w2, s2 = rows(root)
    assert (s2.hits, s2.misses, s2.written) == (6, 0, 0)
    assert r2 == r1 and w2 == w1
    pd.testing.assert_frame_equal(summarize(root).table, summarize(root, use_cache=False).table)


def test_any_change_to_a_session_is_seen(tmp_path: Path, data: Path) -> None:
    root = fresh_copy(data, tmp_path / "d")
    rows(root)
    dirs = list(iter_session_dirs(root))
    # 1. a rating edited by hand in the derived table: the integrity check must run again and fail
    rc = dirs[0] / "ratings.csv"
    text = rc.read_text(encoding="utf-8").splitlines()
    cells = text[1].split(",")
    cells[6] = "99.0" if cells[6] != "99.0" else "98.0"
    text[1] = ",".join(cells)
    rc.write_text("\n".join(text) + "\n", encoding="utf-8")
    # 2. an amendment appended to the log (head hash moves)
    amend_session(dirs[1], "results.ts_post_ratings", [1.0], "typo in the CRF", "AB")
    r, w, s = rows(root)
    assert (s.hits, s.misses) == (4, 2)
    by_path = {row["path"]: row for row in r}
    assert by_path[str(dirs[0])]["integrity_ok"] is False
    assert any(str(dirs[0]) in x and "integrity" in x for x in w)
    assert by_path[str(dirs[1])]["amended"] is True and by_path[str(dirs[1])]["ts_post"] == 1.0
    r_fresh, w_fresh, _ = rows(root, use_cache=False)
    assert r == r_fresh and sorted(w) == sorted(w_fresh)


def test_changed_protocol_file_is_seen(tmp_path: Path, write_protocol) -> None:  # type: ignore[no-untyped-def]
    proto = write_protocol({"analysis": {"cpm_threshold_abs": 40.0}})
    root = tmp_path / "d"
    write_session(root, "P001", "baseline", truth=SynthTruth(cpm_effect=0.3, noise_sd=0.5), protocol=str(proto))
    assert summarize(root).table.iloc[0]["cpm_category"] == "none"
    proto.write_text(proto.read_text(encoding="utf-8").replace("cpm_threshold_abs = 40.0", "cpm_threshold_abs = 1.0"),
                     encoding="utf-8")
    r, w, s = rows(root)
    assert s.misses == 1 and r[0]["cpm_category"] == "inhibition" and any("differs from the sha256" in x for x in w)


def test_damaged_cache_entries_are_recomputed(tmp_path: Path, data: Path) -> None:
    root = fresh_copy(data, tmp_path / "d")
    r1, _, _ = rows(root)
    entries = sorted(default_cache_dir(root, "summary").glob("*.json"))
    entries[0].write_text("{not json", encoding="utf-8")
    e = json.loads(entries[1].read_text(encoding="utf-8"))
    e["value"][0]["integrity_ok"] = "forged"
    e["key"] = "0" * 64  # an entry for another state of the folder
    entries[1].write_text(json.dumps(e), encoding="utf-8")
    r2, _, s = rows(root)
    assert s.misses == 2 and r2 == r1


def test_parallel_misses_give_the_same_rows(tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = fresh_copy(data, tmp_path / "d")
    serial, ws, s1 = rows(root, use_cache=False)
    assert s1.workers == 1
    monkeypatch.setattr(rcache, "MIN_PARALLEL", 2)
    par, wp, s2 = rows(root, workers=2)
    assert s2.workers == 2 and s2.written == 6
    assert par == serial and wp == ws


def test_read_only_data_folder_still_summarizes(tmp_path: Path, data: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes through read-only permissions")
    root = fresh_copy(data, tmp_path / "d")
    root.chmod(0o555)
    try:
        r, w, s = rows(root)
    finally:
        root.chmod(0o755)
    assert len(r) == 6 and s.written == 0 and any("summary cache not written" in x for x in w)


def test_unwritable_cache_is_a_warning_not_a_failure(tmp_path: Path, data: Path) -> None:
    root = fresh_copy(data, tmp_path / "d")
    where = default_cache_dir(root, "summary")
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text("a file where the cache folder would go", encoding="utf-8")
    r, w, s = rows(root)
    assert len(r) == 6 and s.written == 0 and sum("summary cache not written" in x for x in w) == 1
