"""Open real devices: the serial port (any pyserial URL) with each model's settings, handed to its driver.

`open_real()` is the single entry point the engine calls for a role whose model is not "sim". The
device comes back unconnected: the engine calls `.connect()` and, whatever happens, `.close()`.
"""

from __future__ import annotations

from typing import Any

import serial

from cpm_session.clock import Clock
from cpm_session.config.station import RoleConfig, thermode_settings
from cpm_session.devices.base import Device
from cpm_session.devices.wire import julabo, lauda, mark10, thermometer, wagner
from cpm_session.errors import DeviceDisconnected, StationFileError

OPEN_TIMEOUT_S = 0.05
"""Read time-out of the port itself: the reader thread polls; replies use `cfg.timeout_s`."""
WRITE_TIMEOUT_S = 2.0

_BYTESIZE = {7: serial.SEVENBITS, 8: serial.EIGHTBITS}
_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}


def serial_settings(cfg: RoleConfig) -> dict[str, Any]:
    """Return the pyserial settings of a role: the model's defaults, overridden by the station file."""
    extra = cfg.model_extra or {}
    if cfg.model == "tcs2":
        s: dict[str, Any] = {"baudrate": 115200, "bytesize": 8, "parity": "N", "stopbits": 1, "rtscts": False}
    elif cfg.model == "julabo":
        variant = str(extra.get("variant", "modern"))
        if variant not in ("classic", "modern"):
            raise StationFileError(f"bath.variant: expected 'classic' (4800 7E1 RTS/CTS) or 'modern' (9600 8N1), "
                                   f"found {variant!r}")
        s = dict(julabo.CLASSIC_SERIAL if variant == "classic" else julabo.MODERN_SERIAL)
    elif cfg.model == "lauda":
        s = dict(lauda.SERIAL)
    elif cfg.model == "serial-thermometer":
        s = {"baudrate": 9600, "bytesize": 8, "parity": "N", "stopbits": 1, "rtscts": False}
    elif cfg.model == "wagner-fdx":
        s = {"baudrate": wagner.DEFAULT_BAUDRATE, "bytesize": 8, "parity": "N", "stopbits": 1, "rtscts": False}
    elif cfg.model == "mark10":
        s = {"baudrate": mark10.DEFAULT_BAUDRATE, "bytesize": 8, "parity": "N", "stopbits": 1, "rtscts": False}
    else:
        raise StationFileError(f"no real driver for model {cfg.model!r}")
    if cfg.baudrate is not None:
        s["baudrate"] = cfg.baudrate
    for key in ("bytesize", "parity", "stopbits", "rtscts"):
        if key in extra:
            s[key] = extra[key]
    if s["bytesize"] not in _BYTESIZE or str(s["parity"]).upper() not in _PARITY:
        raise StationFileError(f"{cfg.model}: unsupported serial settings {s}")
    return s


def open_port(role: str, cfg: RoleConfig) -> Any:
    """Open `cfg.port` with the model's serial settings; a missing port raises DeviceDisconnected."""
    s = serial_settings(cfg)
    try:
        return serial.serial_for_url(cfg.port, baudrate=s["baudrate"], bytesize=_BYTESIZE[s["bytesize"]],
                                     parity=_PARITY[str(s["parity"]).upper()], stopbits=s["stopbits"],
                                     rtscts=bool(s["rtscts"]), timeout=OPEN_TIMEOUT_S,
                                     write_timeout=WRITE_TIMEOUT_S, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as e:
        raise DeviceDisconnected(f"cannot open port ({e})", role=role, port=cfg.port, command="open") from None


def open_real(role: str, cfg: RoleConfig, *, cap_c: float, neutral_c: float, clock: Clock,
              zones: str | None = None) -> Device:
    """Open the port of `role` and return its driver, not yet connected.

    `zones`: the protocol's active thermode zones (`thermode.zones`); a station's own `zones` setting wins
    (a probe with a dead zone). The engine calls `.connect()` (identify, configure, read back; for the TCS II set `Om` = `cap_c`)
    and `.close()`. Raises StationFileError for an unknown model or bad settings, DeviceDisconnected
    if the port cannot be opened.
    """
    from cpm_session.devices.algometers import Mark10Algometer, WagnerAlgometer
    from cpm_session.devices.baths import JulaboBath, LaudaBath, SerialThermometer
    from cpm_session.devices.tcs2 import TcsThermode

    if role == "thermode" and cfg.model == "medoc":  # TCP to Medoc Main Station, no serial port
        from cpm_session.devices.medoc import open_medoc

        return open_medoc(role, cfg, cap_c=cap_c, neutral_c=neutral_c, clock=clock)
    extra = cfg.model_extra or {}
    allowed = {"thermode": ("tcs2",), "bath": ("julabo", "lauda", "serial-thermometer"),
               "algometer": ("wagner-fdx", "mark10")}
    if cfg.model not in allowed.get(role, ()):
        raise StationFileError(f"{role}.model: no real driver for {cfg.model!r} (expected one of {allowed.get(role)})")
    serial_settings(cfg)  # validate before opening anything
    conn = open_port(role, cfg)
    try:
        dev: Device
        if cfg.model == "tcs2":
            dev = TcsThermode(conn, port=cfg.port, cap_c=cap_c, neutral_c=neutral_c, clock=clock,
                              zones=str(extra.get("zones", zones or "11111")), timeout_s=cfg.timeout_s,
                              char_gap_ms=thermode_settings(cfg).char_gap_ms)
        elif cfg.model == "julabo":
            term = julabo.TERMINATORS.get(str(extra.get("terminator", "cr")).lower())
            if term is None:
                raise StationFileError(f"bath.terminator: expected 'cr' or 'crlf', found {extra.get('terminator')!r}")
            dev = JulaboBath(conn, port=cfg.port, terminator=term, timeout_s=cfg.timeout_s)
        elif cfg.model == "lauda":
            dev = LaudaBath(conn, port=cfg.port, timeout_s=cfg.timeout_s)
        elif cfg.model == "serial-thermometer":
            dev = SerialThermometer(conn, port=cfg.port, query=str(extra.get("query", thermometer.DEFAULT_QUERY)),
                                    timeout_s=cfg.timeout_s)
        elif cfg.model == "wagner-fdx":
            dev = WagnerAlgometer(conn, port=cfg.port, probe_area_cm2=float(extra.get("probe_area_cm2", 1.0)),
                                  timeout_s=cfg.timeout_s)
        else:
            dev = Mark10Algometer(conn, port=cfg.port, probe_area_cm2=float(extra.get("probe_area_cm2", 1.0)),
                                  timeout_s=cfg.timeout_s, peak_command=str(extra.get("peak_command", "?C")),
                                  default_unit=str(extra.get("unit", "N")))
    except ValueError as e:
        conn.close()
        raise StationFileError(f"{role}: {e}") from None
    except BaseException:
        conn.close()
        raise
    dev.port = cfg.port
    return dev
