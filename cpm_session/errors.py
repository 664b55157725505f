"""The exception hierarchy. Every message carries its context (file, key, role, port, command)."""

from __future__ import annotations


class CpmError(Exception):
    """Base class of every error this program raises on purpose; the CLI prints these without a traceback."""


class ProtocolFileError(CpmError):
    """A protocol file is missing, unreadable or invalid."""

    def __init__(self, path: str, key: str, expected: str, found: object) -> None:
        self.path, self.key, self.expected, self.found = str(path), key, expected, found
        super().__init__(f"{path}: key '{key}': expected {expected}, found {found!r}")


class StationFileError(CpmError):
    """A station (hardware) file is missing, unreadable or invalid."""


class InvalidIdError(CpmError):
    """A participant ID or visit name is not an acceptable pseudonym."""


class SafetyLimitError(CpmError):
    """A request would exceed a safety limit (thermode cap, cold-pressor time, bath range)."""


class SessionError(CpmError):
    """A session cannot be started, resumed or written."""


class DeviceError(CpmError):
    """A device answered wrongly or not at all."""

    def __init__(self, message: str, *, role: str = "?", port: str = "?", command: str | bytes | None = None,
                 reply: str | bytes | None = None) -> None:
        self.role, self.port, self.command, self.reply = role, port, command, reply
        parts = [f"{role} on {port}: {message}"]
        if command is not None:
            parts.append(f"command {command!r}")
        if reply is not None:
            parts.append(f"got {reply!r}")
        super().__init__("; ".join(parts))


class DeviceTimeout(DeviceError):
    """A device did not answer within its time-out."""


class DeviceDisconnected(DeviceError):
    """The device's port vanished (cable unplugged, USB reset)."""
