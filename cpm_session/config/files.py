"""Read configuration files as untrusted input: regular files of a sane size only, decoded as UTF-8 TOML."""

from __future__ import annotations

import hashlib
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

MAX_CONFIG_BYTES = 1_000_000
"""A protocol, station or questionnaire file is a few kB; anything above 1 MB is refused unread."""


class ConfigReadError(ValueError):
    """The file cannot be used: the message says why (the caller adds file and key)."""


def read_toml(path: str | Path, max_bytes: int = MAX_CONFIG_BYTES) -> tuple[dict[str, Any], str]:
    """Return (parsed TOML, sha256 of the exact bytes) of a regular file no larger than `max_bytes`."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise ConfigReadError(f"cannot read: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ConfigReadError("not a regular file (a device, folder or pipe is never a configuration file)")
    if st.st_size > max_bytes:
        raise ConfigReadError(f"{st.st_size} bytes, more than the {max_bytes} a configuration file may have")
    try:
        with open(p, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise ConfigReadError(f"cannot read: {e.strerror or e}") from None
    if len(raw) > max_bytes:
        raise ConfigReadError(f"more than the {max_bytes} bytes a configuration file may have")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigReadError(f"not valid UTF-8 TOML: {e}") from None
    return data, hashlib.sha256(raw).hexdigest()
