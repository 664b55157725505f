"""Package data: the shipped protocols, example station files and questionnaire definitions.

They install with the wheel and are found with `importlib.resources`, so `cpm-session` works from any
working directory. In a source checkout the top-level `protocols/`, `hardware/` and `questionnaires/`
are links to these folders. A path given on the command line always wins: `resolve()` returns it as
given when it exists, and looks in the package data only for a relative path that does not.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

KINDS = ("protocols", "hardware", "questionnaires")
DEFAULT_PROTOCOL = "protocols/cpm-thermal.toml"
SIM_STATION = "hardware/sim.toml"


def resource_dir(kind: str) -> Path:
    """Return the installed folder of `kind` (one of KINDS)."""
    if kind not in KINDS:
        raise ValueError(f"unknown resource kind {kind!r}; expected one of {KINDS}")
    return Path(str(files(__name__) / kind))


def resolve(path: str | Path) -> Path:
    """Return `path` itself when it exists (or is absolute), else the packaged file of that relative name.

    `protocols/cpm-thermal.toml`, `hardware/sim.toml` and `questionnaires/hads.toml` name packaged files;
    anything else that does not exist is returned unchanged so the caller's error names it."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    parts = p.parts
    if parts and parts[0] in KINDS:
        candidate = resource_dir(parts[0]).joinpath(*parts[1:])
        if candidate.exists():
            return candidate
    return p
