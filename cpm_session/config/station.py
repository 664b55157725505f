"""Station files: which device model sits on which port for each role (thermode, bath, algometer)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cpm_session.errors import StationFileError
from cpm_session.limits import ABSOLUTE_MAX_C

THERMODE_MODELS = ("sim", "tcs2", "medoc")
BATH_MODELS = ("sim", "julabo", "lauda", "serial-thermometer")
ALGOMETER_MODELS = ("sim", "wagner-fdx", "mark10")


class RoleConfig(BaseModel):
    """One device: model, port (any pyserial URL) and model-specific settings."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    model: str = Field(max_length=40)
    port: str = Field(default="", max_length=512)
    baudrate: int | None = Field(default=None, ge=50, le=4_000_000)
    timeout_s: float = Field(default=1.0, gt=0, le=30)

    @field_validator("port", mode="before")
    @classmethod
    def _port_number(cls, v: object) -> object:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v  # a TCP port (Medoc)


class StationMeta(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(default="unnamed station", max_length=200)
    max_thermode_c: float = Field(default=ABSOLUTE_MAX_C, gt=0, le=ABSOLUTE_MAX_C)
    emulated: bool = False
    check_max_age_h: float = Field(default=24.0, gt=0, le=24 * 30, allow_inf_nan=False)
    """`run` with a real TCS II needs a passing limiter check of this station file no older than this."""


class ThermodeSettings(BaseModel):
    """TCS II settings of the [thermode] table (all optional): character pacing and the limiter test."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    char_gap_ms: float = Field(default=1.0, ge=0, le=20, allow_inf_nan=False)
    """Least time between two characters written to the device (the manual: at least 1 ms)."""
    limiter_om_above_neutral_c: float = Field(default=2.0, gt=0, le=10, allow_inf_nan=False)
    limiter_target_above_neutral_c: float = Field(default=5.0, gt=0, le=15, allow_inf_nan=False)
    limiter_duration_s: float = Field(default=1.5, gt=0, le=10, allow_inf_nan=False)
    limiter_margin_c: float = Field(default=0.3, ge=0, le=2, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError("a number")
        return v


def thermode_settings(cfg: RoleConfig, path: str = "<memory>") -> ThermodeSettings:
    """Return the validated TCS II settings of a [thermode] table; StationFileError names a bad key."""
    try:
        return ThermodeSettings.model_validate(cfg.model_extra or {})
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise StationFileError(f"{path}: key 'thermode.{loc}': expected {err['msg']}, "
                               f"found {err.get('input')!r}") from None


class StationSync(BaseModel):
    """This station's link to other recorders: an LSL marker stream and the thermode's trigger output.

    `lsl` (None = as the protocol says) turns the marker stream on or off here; `stream_name` and
    `source_id` name it (the source id lets a recorder reconnect to the same stream after a restart);
    `wait_for_recorder_s` holds the start of the visit until a recorder has connected (0 = don't wait);
    `ttl_on_launch` has a TCS II send a trigger pulse (`T` code/duration, then `Oo`) at every launch.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lsl: bool | None = None
    stream_name: str | None = Field(default=None, min_length=1, max_length=64)
    source_id: str | None = Field(default=None, min_length=1, max_length=128)
    wait_for_recorder_s: float = Field(default=0.0, ge=0, le=600)
    ttl_on_launch: bool = False
    ttl_code: int = Field(default=255, ge=1, le=255)
    ttl_duration_ms: int = Field(default=10, ge=10, le=999)


class Station(BaseModel):
    """A validated station file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    station: StationMeta = StationMeta()
    thermode: RoleConfig
    bath: RoleConfig
    algometer: RoleConfig
    sync: StationSync = StationSync()
    path: str = ""
    sha256: str = ""

    @property
    def all_simulated(self) -> bool:
        """Return True if every role is simulated."""
        return all(r.model == "sim" for r in (self.thermode, self.bath, self.algometer))


MODEL_SETTINGS: dict[tuple[str, str], type[BaseModel]] = {("thermode", "tcs2"): ThermodeSettings}
"""Models whose settings have a typed class of their own (validated as a whole after the key check)."""

SERIAL_EXTRAS: dict[str, tuple[str, Any]] = {
    "bytesize": ("one of 7, 8", (7, 8)),
    "parity": ("one of 'N', 'E', 'O'", ("N", "E", "O", "n", "e", "o")),
    "stopbits": ("one of 1, 2", (1, 2)),
    "rtscts": ("true or false", (True, False)),
}
"""Serial settings any real device may override: (what is expected, allowed values)."""

NUMBER_EXTRAS: dict[tuple[str, str], dict[str, tuple[float, float]]] = {
    ("thermode", "sim"): {"noise_c": (0.0, 2.0)},
    ("bath", "sim"): {"temperature_c": (-5.0, 40.0), "drift_c_per_min": (-1.0, 1.0), "noise_c": (0.0, 2.0)},
    ("algometer", "sim"): {"probe_area_cm2": (0.01, 10.0), "noise_kpa": (0.0, 100.0)},
    ("algometer", "wagner-fdx"): {"probe_area_cm2": (0.01, 10.0)},
    ("algometer", "mark10"): {"probe_area_cm2": (0.01, 10.0)},
}
"""Numeric model settings per (role, model): inclusive [low, high] bounds, named in the error."""

TEXT_EXTRAS: dict[tuple[str, str], dict[str, tuple[str, str]]] = {
    ("thermode", "tcs2"): {"zones": (r"^(?!00000)[01]{5}$", "five 0/1 characters, at least one 1 (e.g. '11111')")},
    ("bath", "julabo"): {"variant": (r"^(classic|modern)$", "'classic' or 'modern'"),
                         "terminator": (r"^(cr|crlf)$", "'cr' or 'crlf'")},
    ("bath", "serial-thermometer"): {"query": (r"^[\x20-\x7e]{1,16}$", "1-16 printable ASCII characters")},
    ("algometer", "mark10"): {"peak_command": (r"^[\x20-\x7e]{1,16}$", "1-16 printable ASCII characters"),
                              "unit": (r"^(N|kN|lbF|kgF|gF|ozF)$", "one of N, kN, lbF, kgF, gF, ozF")},
}
"""Text model settings per (role, model): pattern and its description."""


def _check_extras(role: str, cfg: RoleConfig, path: str) -> None:
    """Validate a role's model-specific settings as strictly as a protocol: known keys, types, bounds."""
    numbers = NUMBER_EXTRAS.get((role, cfg.model), {})
    texts = TEXT_EXTRAS.get((role, cfg.model), {})
    serial = SERIAL_EXTRAS if cfg.model != "sim" else {}
    typed = MODEL_SETTINGS.get((role, cfg.model))
    typed_keys = set(typed.model_fields) if typed is not None else set()
    for key, value in (cfg.model_extra or {}).items():
        where = f"{path}: key '{role}.{key}'"
        if key in typed_keys:
            continue  # validated by the model's settings class (e.g. ThermodeSettings for the TCS II)
        if key in numbers:
            lo, hi = numbers[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or not lo <= value <= hi:
                raise StationFileError(f"{where}: expected a finite number in [{lo:g}, {hi:g}], found {value!r}")
        elif key in texts:
            pattern, what = texts[key]
            if not isinstance(value, str) or not re.fullmatch(pattern, value):
                raise StationFileError(f"{where}: expected {what}, found {value!r}")
        elif key in serial:
            what, allowed = serial[key]
            if isinstance(value, bool) != (key == "rtscts") or value not in allowed:
                raise StationFileError(f"{where}: expected {what}, found {value!r}")
        else:
            known = sorted([*numbers, *texts, *serial, *typed_keys])
            raise StationFileError(f"{where}: not a setting of model {cfg.model!r} (known: "
                                   f"{', '.join(known) or 'none'}); check the spelling")


def _check_models(st: Station, path: str) -> None:
    for role, allowed in (("thermode", THERMODE_MODELS), ("bath", BATH_MODELS), ("algometer", ALGOMETER_MODELS)):
        cfg: RoleConfig = getattr(st, role)
        if cfg.model not in allowed:
            raise StationFileError(f"{path}: key '{role}.model': expected one of {list(allowed)}, found {cfg.model!r}")
        if cfg.model == "medoc":  # a TCP thermode: host, port and program map (config/medoc.py)
            from cpm_session.config.medoc import medoc_settings
            medoc_settings(cfg, max_c=st.station.max_thermode_c, path=path)
            continue
        if cfg.model != "sim" and not cfg.port.strip():
            raise StationFileError(f"{path}: key '{role}.port': expected a port (e.g. /dev/ttyUSB0, COM3, socket://host:port), found nothing")
        if any(ord(c) < 32 or ord(c) == 127 for c in cfg.port):
            raise StationFileError(f"{path}: key '{role}.port': control characters in {cfg.port!r}")
        _check_extras(role, cfg, path)
    if st.thermode.model == "tcs2":
        thermode_settings(st.thermode, path)


def parse_station(data: dict[str, Any], path: str = "<memory>") -> Station:
    """Validate parsed TOML data as a station."""
    try:
        st = Station.model_validate({**data, "path": path})
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        found = "<missing>" if err["type"] == "missing" else err.get("input")
        raise StationFileError(f"{path}: key '{loc}': expected {err['msg']}, found {found!r}") from None
    _check_models(st, path)
    return st


def load_station(path: str | Path) -> Station:
    """Read and validate a station TOML file (a regular file of at most 1 MB); record its sha256."""
    from cpm_session.config.files import ConfigReadError, read_toml

    p = Path(path)
    try:
        data, sha = read_toml(p)
    except ConfigReadError as e:
        raise StationFileError(f"{p}: {e}") from None
    except RecursionError:
        raise StationFileError(f"{p}: TOML nested far too deeply to be a station file") from None
    if not isinstance(data, dict) or "sha256" in data or "path" in data:
        raise StationFileError(f"{p}: keys 'path' and 'sha256' are set by the program, not by the file")
    return parse_station({**data, "sha256": sha}, str(p))
