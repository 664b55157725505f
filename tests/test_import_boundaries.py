"""Simulation and test code stays out of the runtime import path of a real visit."""

from __future__ import annotations

import subprocess
import sys

SIM_MODULES = ["cpm_session.sim.devices", "cpm_session.sim.participant", "cpm_session.sim.emulators",
               "cpm_session.ui.headless"]


def test_real_visit_path_imports_no_simulation_code() -> None:
    code = (
        "import sys\n"
        "import cpm_session.session, cpm_session.commands.run, cpm_session.devices.real, cpm_session.devices.tcs2, cpm_session.config.station\n"
        "import cpm_session.devices.medoc, cpm_session.station_check_medoc\n"
        f"bad = [m for m in {SIM_MODULES!r} if m in sys.modules]\n"
        "print(bad)\n"
        "raise SystemExit(1 if bad else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
