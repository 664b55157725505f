"""BackgroundReader: the engine gets the latest reading at once, even while the device hangs."""

from __future__ import annotations

import threading
import time

import pytest

from cpm_session.devices.background import BackgroundReader
from cpm_session.errors import DeviceError, DeviceTimeout


def test_get_never_waits_on_a_hung_read_and_then_reports_the_error() -> None:
    hang = threading.Event()
    calls = {"n": 0}

    def read() -> float:
        calls["n"] += 1
        if hang.is_set():
            time.sleep(0.5)  # the device stopped answering: its driver times out after 0.5 s
            raise DeviceTimeout("no reply", role="bath", port="/dev/pts/9", command="IN_PV_00")
        return 2.5

    r = BackgroundReader(read, role="bath", port="/dev/pts/9", timeout_s=0.5, interval_s=0.02)
    try:
        assert r.get() == 2.5
        hang.set()
        time.sleep(0.05)
        t0 = time.perf_counter()
        assert r.get() == 2.5  # the last good value, at once, while the read hangs
        assert time.perf_counter() - t0 < 0.01
        time.sleep(0.7)
        with pytest.raises(DeviceTimeout, match="/dev/pts/9"):
            r.get()
    finally:
        r.stop()


def test_any_port_failure_becomes_a_device_error_and_stale_values_are_refused() -> None:
    def broken() -> float:
        raise OSError(5, "Input/output error")

    r = BackgroundReader(broken, role="algometer", port="/dev/ttyUSB1", timeout_s=0.1, interval_s=0.02)
    try:
        with pytest.raises(DeviceError, match="algometer on /dev/ttyUSB1: OSError"):
            r.get()
    finally:
        r.stop()
    ok = BackgroundReader(lambda: 1.0, role="bath", port="p", timeout_s=0.1, interval_s=10.0)
    try:
        assert ok.get() == 1.0
        ok.stale_s = 0.05
        time.sleep(0.1)
        with pytest.raises(DeviceTimeout, match="old"):
            ok.get()
    finally:
        ok.stop()
