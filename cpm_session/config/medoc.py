"""Station settings of a Medoc thermode (`[thermode] model = "medoc"`), validated when the station loads.

    [thermode]
    model = "medoc"
    host = "192.168.0.43"        # the MMS computer (Settings > External Control shows it)
    port = 20121                 # MMS default
    command_spacing_s = 0.3      # MMS misses commands sent faster than this
    retries = 3                  # on a refused or reset connection
    neutral_c = 32.0             # the baseline every mapped program uses
    programs = { "40.0" = 33, "40.5" = 34 }   # temperature (°C) -> 8-bit program code in MMS
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cpm_session.errors import StationFileError

MEDOC_KEYS = ("host", "port", "command_spacing_s", "retries", "pretest_timeout_s", "end_timeout_s",
              "trigger_retries", "length_order", "layout", "neutral_c", "programs", "snap", "idle_poll_s")

DEFAULT_PORT = 20121
"""MMS's external-control TCP port unless set otherwise in MMS."""
RESERVED_PROGRAM_CODES = frozenset(range(2, 15))
"""8-bit words the addendum reserves for action codes: they cannot be assigned to programs."""


def check_program_code(code: int) -> None:
    """Raise ValueError unless `code` is an 8-bit word MMS can assign to a program."""
    if not isinstance(code, int) or isinstance(code, bool) or not 1 <= code <= 255:
        raise ValueError(f"program code must be an integer 1..255 (an 8-bit word), got {code!r}")
    if code in RESERVED_PROGRAM_CODES:
        raise ValueError(f"program code {code} ({code:08b}) is reserved for an MMS action code (2..14)")



class MedocSettings(BaseModel):
    """The validated `[thermode]` table of a Medoc station."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535)
    timeout_s: float = Field(default=2.0, gt=0, le=30)
    command_spacing_s: float = Field(default=0.3, ge=0, le=5)
    retries: int = Field(default=3, ge=0, le=20)
    pretest_timeout_s: float = Field(default=30.0, gt=0, le=300)
    end_timeout_s: float = Field(default=30.0, gt=0, le=600)
    """Longest wait for a previous test to end (after its expected end) before the next is selected."""
    trigger_retries: int = Field(default=2, ge=0, le=10)
    idle_poll_s: float = Field(default=1.0, gt=0, le=60)
    length_order: Literal["little", "big"] = "little"
    layout: Literal["auto", "full", "short"] = "auto"
    neutral_c: float | None = Field(default=None, ge=20.0, le=40.0)
    programs: dict[float, int]
    snap: Literal["off", "down"] = "off"

    @field_validator("programs", mode="before")
    @classmethod
    def _parse_programs(cls, v: Any) -> dict[float, int]:
        if not isinstance(v, dict) or not v:
            raise ValueError("a table of temperature -> program code, e.g. { \"40.0\" = 33 }")
        out: dict[float, int] = {}
        codes: dict[int, float] = {}
        for key, code in v.items():
            try:
                t = float(key)
            except (TypeError, ValueError):
                raise ValueError(f"temperature key {key!r} is not a number") from None
            if not math.isfinite(t) or not 0.0 < t <= 55.0:
                raise ValueError(f"temperature {key!r} outside (0, 55] °C")
            t = round(t, 2)
            try:
                check_program_code(code)
            except ValueError as e:
                raise ValueError(f"{key!r}: {e}") from None
            if t in out:
                raise ValueError(f"temperature {t:g} °C appears twice")
            if code in codes:
                raise ValueError(f"program code {code} used for both {codes[code]:g} and {t:g} °C")
            out[t], codes[code] = code, t
        return dict(sorted(out.items()))

    @model_validator(mode="after")
    def _host_plain(self) -> MedocSettings:
        if "://" in self.host:
            raise ValueError("host: a host name or IP address, not a URL (put the port in 'port')")
        return self

    @property
    def address(self) -> str:
        """Return `host:port` (used in every message)."""
        return f"{self.host}:{self.port}"


def medoc_settings(cfg: Any, *, max_c: float, path: str = "<station>") -> MedocSettings:
    """Validate the `[thermode]` RoleConfig of a Medoc station; refuse program temperatures above `max_c`.

    Raises StationFileError naming the key, what was expected and what was found.
    """
    data = {k: v for k, v in (cfg.model_extra or {}).items()}
    data["port"] = cfg.port if cfg.port != "" else DEFAULT_PORT
    data["timeout_s"] = cfg.timeout_s
    unknown = sorted(set(data) - set(MEDOC_KEYS) - {"timeout_s"})
    if cfg.baudrate is not None:
        unknown.append("baudrate")
    if unknown:
        raise StationFileError(f"{path}: key 'thermode.{unknown[0]}': not a Medoc setting (expected one of "
                               f"{list(MEDOC_KEYS)})")
    if isinstance(data["port"], str):
        if not data["port"].isdigit():
            raise StationFileError(f"{path}: key 'thermode.port': expected the MMS TCP port number "
                                   f"(default {DEFAULT_PORT}), found {data['port']!r}")
        data["port"] = int(data["port"])
    try:
        s = MedocSettings.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        found = "<missing>" if err["type"] == "missing" else err.get("input")
        raise StationFileError(f"{path}: key 'thermode.{loc}': expected {err['msg']}, found {found!r}") from None
    over = [t for t in s.programs if t > max_c]
    if over:
        raise StationFileError(f"{path}: key 'thermode.programs': program temperature {over[0]:g} °C is above the "
                               f"station cap max_thermode_c = {max_c:g} °C (refused: remove it or lower it in MMS)")
    return s
