"""Shared fixtures: repository paths, a loaded protocol and station, quick protocol variants."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
THERMAL = ROOT / "protocols" / "cpm-thermal.toml"
PRESSURE = ROOT / "protocols" / "cpm-pressure.toml"
SIM_STATION = ROOT / "hardware" / "sim.toml"


def toml_dumps(data: dict[str, Any]) -> str:
    """Write a (flat-ish) TOML document: top-level tables of scalars and lists."""
    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)

    out = []
    for table, body in data.items():
        if isinstance(body, dict):
            out.append(f"[{table}]")
            out.extend(f"{k} = {val(v)}" for k, v in body.items())
            out.append("")
        else:
            out.insert(0, f"{table} = {val(body)}")
    return "\n".join(out) + "\n"


@pytest.fixture
def protocol_data() -> dict[str, Any]:
    """Return the standard thermal protocol as a dict to modify."""
    return tomllib.loads(THERMAL.read_text(encoding="utf-8"))


@pytest.fixture
def write_protocol(tmp_path: Path) -> Callable[..., Path]:
    """Return a function writing a modified copy of a protocol file; returns its path."""
    def _write(changes: dict[str, dict[str, Any]] | None = None, base: Path = THERMAL, name: str = "p.toml") -> Path:
        data = tomllib.loads(base.read_text(encoding="utf-8"))
        for table, kv in (changes or {}).items():
            data.setdefault(table, {}).update(kv)
        p = tmp_path / name
        p.write_text(toml_dumps(data), encoding="utf-8")
        return p
    return _write


@pytest.fixture(autouse=True)
def _own_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own summary cache folder (the real one is the user's ~/.cache/cpm-session)."""
    monkeypatch.setenv("CPM_SESSION_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
