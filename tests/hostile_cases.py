"""Hostile inputs for every command and every file the program reads back, and the harness that tries one.

Each case prepares a copy of a real data folder (a completed baseline of P001, a baseline of P002 and
P002's post visit stopped with Escape), plants its hostile input (a command-line value or a file), runs
`cpm-session` in-process and records three things:

- refused cleanly: the command refused (exit code not 0, or for readers that skip a bad record: said
  so), printed no traceback and at most one error line;
- nothing written: the data folder holds exactly what it held before (no new or changed file);
- nothing lost: every file that was there before is still there, byte for byte.

`scripts/hostile_table.py` prints the README table from the same cases; `tests/test_hostile_inputs.py`
asserts every case.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.trust_helpers import ROOT, snapshot

THERMAL = ROOT / "protocols" / "cpm-thermal.toml"
SIM = ROOT / "hardware" / "sim.toml"


@dataclass
class Env:
    """Where one case runs: `root` (scratch), `data` (a copy of the data folder), the sessions in it."""

    root: Path
    data: Path

    @property
    def base(self) -> Path:
        return next((self.data / "P001").glob("baseline-*"))

    @property
    def post(self) -> Path:
        return next((self.data / "P002").glob("post-*"))

    def file(self, name: str, content: bytes | str) -> Path:
        p = self.root / name
        p.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return p


@dataclass
class Case:
    area: str
    name: str
    argv: Callable[[Env], list[str]]
    prepare: Callable[[Env], None] | None = None
    refused: Callable[[int, str, str, Env], bool] | None = None
    """Custom refusal test (readers that skip a bad record); default: exit code not 0."""


@dataclass
class Outcome:
    case: Case
    code: int
    out: str
    err: str
    refused_cleanly: bool
    nothing_written: bool
    nothing_lost: bool

    @property
    def ok(self) -> bool:
        return self.refused_cleanly and self.nothing_written and self.nothing_lost


def run_case(case: Case, env: Env) -> Outcome:
    """Plant the case's input, run the command, and judge the three outcomes."""
    from cpm_session.cli import main

    if case.prepare:
        case.prepare(env)
    before = snapshot(env.data)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    crashed = False
    cwd = os.getcwd()
    os.chdir(env.root)  # anything relative lands in the case's scratch folder, never in the repository
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(case.argv(env))
        except SystemExit as e:  # argparse: usage line + one error line
            code = int(e.code) if isinstance(e.code, int) else 2
        except BaseException as e:  # noqa: BLE001 - a traceback that would reach the user
            crashed = True
            code = -1
            err.write(f"Traceback (escaped main): {type(e).__name__}: {e}\n")
        finally:
            os.chdir(cwd)
    o, e = out.getvalue(), err.getvalue()
    after = snapshot(env.data)
    err_lines = [ln for ln in e.strip().splitlines() if not ln.startswith("usage:") and not ln.startswith("  ")]
    one_line = code == 0 or len(err_lines) <= 1  # a refusal is one line; a reader's warnings may be several
    clean = not crashed and "Traceback" not in o + e and "this is a bug" not in e and one_line
    refused = case.refused(code, o, e, env) if case.refused else code != 0
    lost = any(after.get(k) != v for k, v in before.items())
    return Outcome(case, code, o, e, clean and refused, after == before, not lost)


# ------------------------------------------------------------------------------------------ builders


def _run(*extra: str, pid: str = "P003", data: Callable[[Env], str] | None = None) -> Callable[[Env], list[str]]:
    def argv(env: Env) -> list[str]:
        return ["run", "--participant", pid, "--visit", "baseline", "--simulate", "--ui", "headless", "--no-status",
                "--data", data(env) if data else str(env.data), *extra]
    return argv


def _set_toml(text: str, section: str, key: str, value: str) -> str:
    block = re.search(rf"(?ms)^\[{re.escape(section)}\]\n.*?(?=^\[|\Z)", text)
    if block is None:
        return text + f"\n[{section}]\n{key} = {value}\n"
    b = block.group(0)
    if re.search(rf"(?m)^{re.escape(key)}\s*=", b):
        nb = re.sub(rf"(?m)^{re.escape(key)}\s*=.*$", lambda _m: f"{key} = {value}", b)
    else:
        nb = b.rstrip("\n") + f"\n{key} = {value}\n\n"
    return text.replace(b, nb)


def _excluded(code: int, out: str, err: str, env: Env) -> bool:
    return code == 0 and ("EXCLUDED" in out + err or "warning" in err) or code != 0


def _verify_failed(code: int, out: str, err: str, env: Env) -> bool:
    return code != 0 and "FAIL" in out + err or code == 2


PIDS = ["", " ", "CON", "nul", "COM1", "LPT9", "aux", "P 001", "../etc", "a/b", "a\\b", ".", "..", "P\x1b[31m",
        "Anna Smith", "x" * 40, "P001.", "\u00e9001", "P001\n", "p001", "P", "_P01", "P001;rm", "P\u202e01",
        "-P001", "P\x00"]
OPERATORS = ["Anna Smith", "a@b.org", "A\x1bB", "A", "ABCDEFGHI", "A B", "", "\u540d\u524d", "AB\n", "<script>",
             "A;B", "O'Neil"]
RUN_NUMBERS = [["--speed", v] for v in ("nan", "inf", "-inf", "0", "-1", "1e300", "1e-300", "abc")] + \
    [["--seed", v] for v in ("-1", "4294967296", "1e3", "abc", "99999999999999999999")] + \
    [["--sim-truth", v] for v in ("pain60_c=nan", "pain60_c=inf", "pain60_c=1e300", "pain60_c=-5", "pain60_c=abc",
                                  "bogus=1", "noequals", "withdrawal_s=-1", "miss_prob=2", "noise_sd=-1",
                                  "cpm_effect=1e999")]
PROTOCOL_EDITS = [
    ("acclimatization", "duration_s", "inf"), ("acclimatization", "max_s", "1e300"),
    ("acclimatization", "duration_s", "-1.0"), ("ratings", "timeout_s", "inf"), ("ratings", "timeout_s", "nan"),
    ("ratings", "timeout_s", "1e300"), ("ratings", "scale_max", "1e300"), ("ratings", "scale_min", "-inf"),
    ("ratings", "max_attempts", "1000000"), ("resume", "max_gap_s", "inf"), ("test_stimulus", "interval_s", "nan"),
    ("test_stimulus", "post_delay_s", "1e300"), ("test_stimulus", "pre_repeats", "-3"),
    ("cold_pressor", "bath_stable_s", "1e300"), ("cold_pressor", "duration_s", "inf"),
    ("cold_pressor", "bath_min_c", '"cold"'), ("safety", "thermode_cap_c", "60.0"),
    ("safety", "thermode_cap_c", "nan"), ("safety", "neutral_c", "inf"), ("calibration", "start_c", "1e300"),
    ("calibration", "rest_s", "inf"), ("calibration", "min_slope_per_c", "inf"), ("analysis", "cpm_threshold_abs", "inf"),
    ("analysis", "cpm_threshold_abs", "-1.0"), ("thermode", "zones", '"abc"'), ("thermode", "rise_c_per_s", "1e300"),
    ("screen", "size", "[1e9, 5]"), ("screen", "text_height", "inf"), ("protocol", "visits", "[]"),
    ("protocol", "unknown_key", "1"), ("texts", "welcome", "3"), ("questionnaires", "entry", '"robot"'),
]
PROTOCOL_FILES: list[tuple[str, Callable[[Env], str]]] = [
    ("/dev/zero", lambda env: "/dev/zero"),
    ("a folder", lambda env: str(env.root)),
    ("empty file", lambda env: str(env.file("empty.toml", b""))),
    ("binary garbage", lambda env: str(env.file("bin.toml", bytes(range(256)) * 8))),
    ("not UTF-8", lambda env: str(env.file("latin.toml", "name = 'caf\xe9'".encode("latin-1")))),
    ("2 MB file", lambda env: str(env.file("big.toml", "# " + "x" * 2_000_000 + "\n"))),
    ("link to /dev/zero", lambda env: (os.symlink("/dev/zero", env.root / "zero.toml"), str(env.root / "zero.toml"))[1]),
    ("missing file", lambda env: str(env.root / "nope.toml")),
    ("JSON instead of TOML", lambda env: str(env.file("p.json", json.dumps({"protocol": {}})))),
    ("deeply nested", lambda env: str(env.file("deep.toml", "a = " + "[" * 5000 + "]" * 5000))),
]
STATION_EDITS = [
    ("bath", "noise_c", '"abc"'), ("bath", "noise_c", "nan"), ("bath", "noise_c", "-1.0"), ("bath", "temperature_c", "inf"),
    ("bath", "temperature_c", "1e300"), ("bath", "drift_c_per_min", "1e300"), ("bath", "surprise", "1"),
    ("thermode", "timeout_s", "inf"), ("thermode", "timeout_s", "0"), ("thermode", "timeout_s", "-1"),
    ("thermode", "baudrate", "-1"), ("thermode", "baudrate", "1000000000000"), ("thermode", "baudrate", '"fast"'),
    ("station", "max_thermode_c", "30.0"), ("station", "max_thermode_c", "1e300"), ("station", "max_thermode_c", "nan"),
    ("station", "max_thermode_c", '"hot"'), ("station", "max_thermode_c", "-5.0"), ("thermode", "model", '"xyz"'),
    ("algometer", "probe_area_cm2", "0"), ("algometer", "probe_area_cm2", "inf"), ("station", "name", "5"),
    ("station", "extra", "true"),
]
REAL_THERMODE = [
    'model = "tcs2"\nport = "/dev/ttyNOPE9"\nzones = "abc"', 'model = "tcs2"\nport = "/dev/ttyNOPE9"\nzones = "00000"',
    'model = "tcs2"\nport = "/dev/ttyNOPE9"\nzones = 5', 'model = "tcs2"', 'model = "tcs2"\nport = ""',
    'model = "tcs2"\nport = "/dev/tty\\u001b"', 'model = "tcs2"\nport = "/dev/ttyNOPE9"\nbytesize = 9',
    'model = "tcs2"\nport = "/dev/ttyNOPE9"\nparity = "X"', 'model = "tcs2"\nport = "/dev/ttyNOPE9"',
]
AMENDS = [("results.ts_intensity", "60"), ("thermode_cap_c", "80"), ("results.cs_rating_30s", "hot"),
          ("results.cs_rating_30s", "101"), ("results.cs_rating_30s", "NaN"), ("results.cs_rating_30s", "Infinity"),
          ("results.cs_rating_30s", "-Infinity"), ("results.cs_rating_30s", "1e999"), ("results.ts_post_ratings", "[1e999]"),
          ("results.ts_post_ratings", "[-5]"), ("results.ts_post_ratings", "[]"), ("results.ts_post_ratings", '{"a": 1}'),
          ("results.ts_post_ratings", "[" * 3000 + "]" * 3000), ("results.cpm_abs", "10"), ("results.pain60_c", "44"),
          ("visit", "Post Visit"), ("visit", "CON"), ("participant", "Anna Smith"), ("participant", "nul"),
          ("status", "completed"), ("log_events", "5"), ("whatever", "1"), ("../x", "1"), ("", "1"), ("a..b", "1"),
          ("results.", "1"), ("results.withdrawal_s", "1e308"), ("hand", "both"), ("operator", "a@b.org")]
HEADERS: list[tuple[str, bytes]] = [
    ("a list", b"[1, 2, 3]"), ("a string", b'"text"'), ("null", b"null"), ("NaN", b"NaN"), ("a huge number", b"1e999"),
    ("deeply nested", b"[" * 100000 + b"]" * 100000), ("binary", bytes(range(256))), ("not UTF-8", b'{"a": "\xe9"}'),
    ("empty", b""), ("results a list", b'{"status": "completed", "results": [1]}'),
]
EVENT_LINES: list[tuple[str, Callable[[list[bytes]], list[bytes]]]] = [
    ("garbage line", lambda ls: ls[:3] + [b"\x00\xffgarbage"] + ls[3:]),
    ("deeply nested line", lambda ls: ls + [b"[" * 100000 + b"]" * 100000]),
    ("NaN in a line", lambda ls: ls[:-1] + [ls[-1].replace(b'"t": ', b'"t": NaN, "x": ', 1)]),
    ("not UTF-8", lambda ls: ls[:2] + [ls[2] + b"\xe9"] + ls[3:]),
    ("empty log", lambda ls: []),
    ("a list line", lambda ls: ls + [b"[1, 2]"]),
    ("duplicated line", lambda ls: ls[:5] + [ls[4]] + ls[5:]),
    ("two lines swapped", lambda ls: ls[:4] + [ls[5], ls[4]] + ls[6:]),
    ("first line deleted", lambda ls: ls[1:]),
    ("5 MB line", lambda ls: ls[:-1] + [b'{"seq": 1, "x": "' + b"a" * 5_000_000 + b'"}']),
]


def _with_lines(session: Callable[[Env], Path], f: Callable[[list[bytes]], list[bytes]]) -> Callable[[Env], None]:
    def prep(env: Env) -> None:
        p = session(env) / "events.jsonl"
        lines = p.read_bytes().rstrip(b"\n").split(b"\n")
        new = f(lines)
        p.write_bytes(b"\n".join(new) + (b"\n" if new else b""))
    return prep


def _write(session: Callable[[Env], Path], name: str, content: bytes) -> Callable[[Env], None]:
    def prep(env: Env) -> None:
        (session(env) / name).write_bytes(content)
    return prep


def _link(session: Callable[[Env], Path], name: str, target: str) -> Callable[[Env], None]:
    def prep(env: Env) -> None:
        p = session(env) / name
        p.unlink()
        os.symlink(target, p)
    return prep


def _ae_log(content: Callable[[bytes], bytes]) -> Callable[[Env], None]:
    def prep(env: Env) -> None:
        p = env.data / "P001" / "adverse_events.jsonl"
        p.write_bytes(content(p.read_bytes()))
    return prep


AE_ADD = ["--description", "x", "--onset", "2026-01-05", "--severity", "mild", "--serious", "no", "--relatedness",
          "possible", "--action", "none", "--outcome", "recovering", "--operator", "AB"]


def cases() -> list[Case]:
    """Return every hostile case."""
    out: list[Case] = []
    for pid in PIDS:
        out.append(Case("run: participant ID", repr(pid), _run(pid=pid)))
    for op in OPERATORS:
        out.append(Case("run: operator", repr(op), _run("--operator", op)))
    for nums in RUN_NUMBERS:
        out.append(Case("run: numbers", " ".join(nums), _run(*nums)))
    for name, where in [("empty", lambda env: ""), ("a participant folder", lambda env: str(env.data / "P001")),
                        ("a session folder", lambda env: str(env.base)),
                        ("inside a session folder", lambda env: str(env.base / "x")),
                        ("a file", lambda env: str(env.base / "events.jsonl")), ("/dev/null", lambda env: "/dev/null"),
                        ("/proc", lambda env: "/proc"), ("NUL byte", lambda env: "d\x00x")]:
        out.append(Case("run: --data", name, _run(data=where)))
    for section, key, value in PROTOCOL_EDITS:
        def prep(env: Env, s: str = section, k: str = key, v: str = value) -> None:
            env.file("p.toml", _set_toml(THERMAL.read_text(), s, k, v))
        out.append(Case("protocol file", f"{section}.{key} = {value}",
                        lambda env: ["validate", str(env.root / "p.toml")], prep))
    for name, path in PROTOCOL_FILES:
        out.append(Case("protocol file", name, lambda env, p=path: ["validate", p(env)]))
        out.append(Case("protocol file", f"run --protocol {name}", lambda env, p=path: _run("--protocol", p(env))(env)))
    for section, key, value in STATION_EDITS:
        def prep_st(env: Env, s: str = section, k: str = key, v: str = value) -> None:
            env.file("st.toml", _set_toml(SIM.read_text(), s, k, v))
        argv = (lambda env: _run("--station", str(env.root / "st.toml"))(env)) if key == "max_thermode_c" and \
            value == "30.0" else (lambda env: ["validate", str(env.root / "st.toml")])
        out.append(Case("station file", f"{section}.{key} = {value}", argv, prep_st))
    for thermode in REAL_THERMODE:
        def prep_real(env: Env, t: str = thermode) -> None:
            env.file("st.toml", f'[station]\nname = "x"\n[thermode]\n{t}\n[bath]\nmodel = "sim"\n[algometer]\n'
                                'model = "sim"\n')
        out.append(Case("station file", f"run with thermode {thermode.splitlines()[-1]}",
                        lambda env: _run("--station", str(env.root / "st.toml"))(env), prep_real))
    for field, value in AMENDS:
        out.append(Case("amend", f"{field or '(empty)'} = {value[:30]}",
                        lambda env, f=field, v=value: ["amend", str(env.base), "--field", f, "--value", v, "--reason",
                                                       "test", "--operator", "AB"]))
    for name, who in [("participant folder", lambda env: str(env.data / "P001")), ("data folder", lambda env: str(env.data)),
                      ("missing folder", lambda env: str(env.data / "nope")), ("reason empty", None),
                      ("reason with escape", None), ("operator e-mail", None)]:
        if who is not None:
            out.append(Case("amend", f"target: {name}",
                            lambda env, w=who: ["amend", w(env), "--field", "visit", "--value", "post", "--reason", "x",
                                                "--operator", "AB"]))
    out.append(Case("amend", "reason empty", lambda env: ["amend", str(env.base), "--field", "results.cs_rating_30s",
                                                          "--value", "50", "--reason", " ", "--operator", "AB"]))
    out.append(Case("amend", "reason with escape", lambda env: ["amend", str(env.base), "--field",
                                                                "results.cs_rating_30s", "--value", "50", "--reason",
                                                                "a\x1b[2Jb", "--operator", "AB"]))
    out.append(Case("amend", "operator e-mail", lambda env: ["amend", str(env.base), "--field", "results.cs_rating_30s",
                                                             "--value", "50", "--reason", "x", "--operator", "a@b.org"]))
    out.append(Case("amend", "tampered session", lambda env: ["amend", str(env.base), "--field", "results.cs_rating_30s",
                                                              "--value", "50", "--reason", "x", "--operator", "AB"],
                    _write(lambda env: env.base, "ratings.csv", b"phase\r\nx\r\n")))
    for name, content in HEADERS:
        out.append(Case("session.json", f"verify: {name}", lambda env: ["verify", str(env.base)],
                        _write(lambda env: env.base, "session.json", content), _verify_failed))
        out.append(Case("session.json", f"resume: {name}",
                        lambda env: ["resume", str(env.post), "--ui", "headless", "--no-status", "--staff", "auto"],
                        _write(lambda env: env.post, "session.json", content)))
        out.append(Case("session.json", f"summarize: {name}",
                        lambda env: ["summarize", str(env.data), "-o", str(env.root / "s.csv")],
                        _write(lambda env: env.base, "session.json", content), _excluded))
    for name, f in EVENT_LINES:
        out.append(Case("events.jsonl", f"verify: {name}", lambda env: ["verify", str(env.base)],
                        _with_lines(lambda env: env.base, f), _verify_failed))
        out.append(Case("events.jsonl", f"resume: {name}",
                        lambda env: ["resume", str(env.post), "--ui", "headless", "--no-status", "--staff", "auto"],
                        _with_lines(lambda env: env.post, f)))
        out.append(Case("events.jsonl", f"export: {name}",
                        lambda env: ["export", "redcap", str(env.data), str(env.root / "out")],
                        _with_lines(lambda env: env.base, f), _excluded))
    for name, fname, content in [("ratings binary", "ratings.csv", bytes(range(256))),
                                 ("ratings no header", "ratings.csv", b"1,2,3\r\n"),
                                 ("ratings huge field", "ratings.csv", b"phase,trial\r\n" + b"x" * 3_000_000 + b",1\r\n"),
                                 ("devices NaN", "devices.csv", b"t,role,quantity,value,unit\r\nnan,bath,bath_c,nan,C\r\n"),
                                 ("devices empty", "devices.csv", b""),
                                 ("devices not UTF-8", "devices.csv", b"t,role\r\n\xe9\xff\r\n")]:
        out.append(Case("CSV tables", f"verify: {name}", lambda env: ["verify", str(env.base)],
                        _write(lambda env: env.base, fname, content), _verify_failed))
        out.append(Case("CSV tables", f"export: {name}",
                        lambda env: ["export", "bids", str(env.data), str(env.root / "out")],
                        _write(lambda env: env.base, fname, content), _excluded))
    for name, fname, target in [("events link", "events.jsonl", "/etc/hostname"),
                                ("ratings link", "ratings.csv", "/etc/passwd"),
                                ("devices link", "devices.csv", "/dev/zero")]:
        out.append(Case("links", f"verify: {name}", lambda env: ["verify", str(env.base)],
                        _link(lambda env: env.base, fname, target), _verify_failed))
        out.append(Case("links", f"export: {name}",
                        lambda env: ["export", "bids", str(env.data), str(env.root / "out"), "--sourcedata"],
                        _link(lambda env: env.base, fname, target)))
    out.append(Case("links", "export: folder link to /etc",
                    lambda env: ["export", "bids", str(env.data), str(env.root / "out"), "--sourcedata"],
                    lambda env: os.symlink("/etc", env.base / "etc")))
    out.append(Case("links", "export: participant link",
                    lambda env: ["export", "redcap", str(env.data), str(env.root / "out")],
                    lambda env: os.symlink("/etc", env.data / "P009")))
    for name, mut in [("garbage line", lambda b: b + b"\x00garbage\n"), ("edited", lambda b: b.replace(b"mild", b"severe")),
                      ("last line deleted", lambda b: b"".join(b.splitlines(keepends=True)[:-1])),
                      ("first line deleted", lambda b: b"".join(b.splitlines(keepends=True)[1:])),
                      ("a list line", lambda b: b + b"[1]\n"), ("not UTF-8", lambda b: b + b"\xe9\n")]:
        out.append(Case("adverse-event log", f"ae add: {name}", lambda env: ["ae", "add", "--participant", "P001",
                                                                             *AE_ADD, "--data", str(env.data)],
                        _ae_log(mut)))
        out.append(Case("adverse-event log", f"verify: {name}", lambda env: ["verify", str(env.data)],
                        _ae_log(mut), _verify_failed))
    for name, content in [("empty", b""), ("binary", bytes(range(256))), ("no arm column", b"participant\nP001\n"),
                          ("one arm", b"participant,arm\nP001,a\nP002,a\n"),
                          ("duplicate participant", b"participant,arm\nP001,a\nP001,b\n"),
                          ("control characters", b"participant,arm\nP001,\x1b[31mdrug\nP002,placebo\n"),
                          ("2 MB", b"participant,arm\n" + b"P001,a\n" * 300_000), ("not UTF-8", b"participant,arm\n\xe9,a\n")]:
        out.append(Case("allocation list", name, lambda env: ["analyze", str(env.data), "--allocation",
                                                              str(env.root / "alloc.csv")],
                        lambda env, c=content: (env.root / "alloc.csv").write_bytes(c) and None))
    out.append(Case("allocation list", "/dev/zero", lambda env: ["analyze", str(env.data), "--allocation", "/dev/zero"]))
    out.append(Case("allocation list", "a folder", lambda env: ["analyze", str(env.data), "--allocation", str(env.root)]))
    for name, target in [("events.jsonl", lambda env: str(env.base / "events.jsonl")),
                         ("inside a session", lambda env: str(env.base / "summary.csv")),
                         ("adverse_events.jsonl", lambda env: str(env.data / "P001" / "adverse_events.jsonl")),
                         ("ledger", lambda env: str(env.data / "ledger.jsonl")),
                         ("a folder", lambda env: str(env.root)), ("empty", lambda env: "")]:
        out.append(Case("outputs (-o)", f"summarize -o {name}",
                        lambda env, t=target: ["summarize", str(env.data), "-o", t(env), "--force"]))
        out.append(Case("outputs (-o)", f"randomize -o {name}",
                        lambda env, t=target: ["randomize", "--n", "8", "--seed", "1", "-o", t(env), "--force"]))
    for name, argv in [("--n 0", ["--n", "0"]), ("--n -5", ["--n", "-5"]), ("--n 1e9", ["--n", "1000000000"]),
                       ("--block-size 0", ["--n", "8", "--block-size", "0"]), ("--arms a", ["--n", "8", "--arms", "a"]),
                       ("--arms a,a", ["--n", "8", "--arms", "a,a"]), ("--seed -1", ["--n", "8", "--seed", "-1"])]:
        out.append(Case("randomize numbers", name,
                        lambda env, a=argv: ["randomize", *a, *([] if "--seed" in a else ["--seed", "1"]), "-o",
                                             str(env.root / "r.csv")]))
    for name, target in [("inside the data folder", lambda env: str(env.data / "export")),
                         ("inside a session", lambda env: str(env.base / "export")),
                         ("a file", lambda env: str(env.base / "events.jsonl")),
                         ("not empty", lambda env: str(env.data / "P001"))]:
        out.append(Case("outputs (export)", name, lambda env, t=target: ["export", "bids", str(env.data), t(env)]))
    return out


def make_env(src: Path, root: Path) -> Env:
    """Copy the data folder `src` into `root` for one case."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copytree(src, root / "data", symlinks=True)
    return Env(root, root / "data")


def build_source(root: Path) -> Path:
    """Write the data folder every case starts from (with one adverse event of P001)."""
    from cpm_session.record.adverse_events import record_adverse_event
    from tests.trust_helpers import build_data

    root.mkdir(parents=True, exist_ok=True)
    data = build_data(root)
    record_adverse_event(data, "P001", {"description": "dizziness", "onset_date": "2026-01-05", "severity": "mild",
                                        "serious": "no", "relatedness": "possible", "action_taken": "none",
                                        "outcome": "recovering"}, operator="AB")
    return data


def table(outcomes: list[Outcome]) -> str:
    """Return the README table: per area, tried / refused cleanly / nothing written / nothing lost."""
    areas: dict[str, list[Outcome]] = {}
    for o in outcomes:
        areas.setdefault(o.case.area, []).append(o)
    rows = ["| input | tried | refused cleanly | nothing written | nothing lost |", "|---|---|---|---|---|"]

    def row(name: str, os_: list[Outcome]) -> str:
        return (f"| {name} | {len(os_)} | {sum(o.refused_cleanly for o in os_)} | "
                f"{sum(o.nothing_written for o in os_)} | {sum(o.nothing_lost for o in os_)} |")

    rows += [row(a, os_) for a, os_ in areas.items()]
    rows.append(row("**all**", outcomes))
    return "\n".join(rows)


def describe(o: Outcome) -> dict[str, Any]:
    """Return a failing outcome as a small dict (for assertion messages)."""
    return {"case": f"{o.case.area}: {o.case.name}", "code": o.code, "err": o.err[-400:], "out": o.out[-300:],
            "refused_cleanly": o.refused_cleanly, "nothing_written": o.nothing_written, "nothing_lost": o.nothing_lost}
