"""The ledger: an append-only, hash-chained log per data folder that anchors the head of every session log
and adverse-event log outside its own folder, optionally signed with a station key.

``<data>/ledger.jsonl``: one JSON object per line, ``seq``, ``wall`` (UTC), ``subject`` (the anchored log,
relative to the data folder: ``P001/baseline-20261125T101500Z`` or ``P001/adverse_events.jsonl``),
``point`` (the phase that just ended, ``end``, ``amendment``, ``adverse_event``), ``events`` (lines in that
log at this point), ``head`` (SHA-256 of its last line), ``prev`` (SHA-256 of the previous ledger line)
and, with a signing key, ``sig`` (Ed25519 over the line's other fields, hex) and ``key_id``.

A deleted tail or a log re-chained after an edit no longer matches the anchors, so `verify` finds it.
An editor who can rewrite the ledger as well can rewrite everything: signing ledger entries with a key
kept outside the data folder (``CPM_SESSION_SIGNING_KEY``; verifiers get ``CPM_SESSION_VERIFY_KEY``) closes
that, as far as the key stays out of that person's hands.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cpm_session.errors import CpmError
from cpm_session.record.schema import GENESIS

LEDGER = "ledger.jsonl"
SIGNING_KEY_ENV = "CPM_SESSION_SIGNING_KEY"
"""Path of the station's Ed25519 private key (PEM, unencrypted), kept outside every data folder."""
VERIFY_KEY_ENV = "CPM_SESSION_VERIFY_KEY"
"""Path of the matching public key (PEM); when set, `verify` requires every ledger entry to be signed by it."""
FILE_MODE = 0o640
TAIL_READ = 65536


class LedgerError(CpmError):
    """The ledger cannot be written or a key cannot be used."""


def _h(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def ledger_path(data_dir: str | Path) -> Path:
    """Return ``<data_dir>/ledger.jsonl``."""
    return Path(data_dir) / LEDGER


# ------------------------------------------------------------------------------------------ keys


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def load_signing_key(path: str | Path | None = None, *, data_dir: str | Path | None = None) -> Any:
    """Return the Ed25519 private key at `path` (default: $CPM_SESSION_SIGNING_KEY), or None when not configured.

    Refuse a key inside the data folder: whoever may edit the data must not hold the key."""
    raw = path if path is not None else os.environ.get(SIGNING_KEY_ENV, "")
    if not raw:
        return None
    p = Path(raw)
    if data_dir is not None and _inside(p, Path(data_dir)):
        raise LedgerError(f"signing key {p} is inside the data folder {data_dir}; keep it outside (e.g. "
                          f"/etc/cpm-session/station.key) so that whoever can edit the data cannot sign")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(p.read_bytes()[:100_000], password=None)
    except (OSError, ValueError, TypeError) as e:
        raise LedgerError(f"signing key {p} cannot be read as an unencrypted Ed25519 PEM key: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"signing key {p} is not an Ed25519 key")
    return key


def load_verify_key(path: str | Path | None = None) -> Any:
    """Return the Ed25519 public key at `path` (default: $CPM_SESSION_VERIFY_KEY), or None when not configured."""
    raw = path if path is not None else os.environ.get(VERIFY_KEY_ENV, "")
    if not raw:
        return None
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(Path(raw).read_bytes()[:100_000])
    except (OSError, ValueError, TypeError) as e:
        raise LedgerError(f"verify key {raw} cannot be read as an Ed25519 PEM public key: {e}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise LedgerError(f"verify key {raw} is not an Ed25519 public key")
    return key


def key_id(public_key: Any) -> str:
    """Return a short id of a public key (first 16 hex of the SHA-256 of its raw bytes)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return _h(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw))[:16]


def generate_key_pair(private_path: str | Path, public_path: str | Path) -> str:
    """Write a new Ed25519 key pair (private key mode 0600); return its key id."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

    key = Ed25519PrivateKey.generate()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    Path(public_path).write_bytes(key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return key_id(key.public_key())


def _signed_bytes(entry: dict[str, Any]) -> bytes:
    body = {k: v for k, v in entry.items() if k not in ("sig",)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


# ------------------------------------------------------------------------------------------ writing


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def _last_line(fd: int) -> tuple[bytes | None, int, bytes]:
    """Return (last complete line, file size, torn tail bytes) of the open ledger."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None, 0, b""
    start = max(0, size - TAIL_READ)
    data = os.pread(fd, size - start, start)
    torn = b""
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n")
        torn = data[cut + 1:]
        data = data[: cut + 1]
    lines = data.rstrip(b"\n").split(b"\n")
    if not lines or not lines[-1]:
        return None, size, torn
    if start > 0 and len(lines) == 1:
        raise LedgerError("ledger line longer than 64 kB; the ledger was damaged")
    return lines[-1], size, torn


def anchor(data_dir: str | Path, subject: str, head: str, events: int, point: str, *,
           signing_key: Any = None, wall: str = "") -> dict[str, Any]:
    """Append one anchor (the head hash and line count of log `subject`) to the data folder's ledger.

    Held under an exclusive lock, so sessions of one data folder can anchor at the same time. A torn last
    ledger line (a killed writer) is cut and kept in ``ledger.torn``. Sign with `signing_key` (or the key
    named by $CPM_SESSION_SIGNING_KEY) when one is configured."""
    from cpm_session.record.folder import iso, line_hash, utc_now

    data_dir = Path(data_dir)
    key = signing_key if signing_key is not None else load_signing_key(data_dir=data_dir)
    path = ledger_path(data_dir)
    with _locked(path) as fd:
        last, size, torn = _last_line(fd)
        if torn:
            os.ftruncate(fd, size - len(torn))
            with open(data_dir / "ledger.torn", "ab") as t:
                t.write(torn + b"\n")
            last, size, _ = _last_line(fd)
        seq, prev = 0, GENESIS
        if last is not None:
            try:
                seq = int(json.loads(last)["seq"]) + 1
            except (ValueError, KeyError, TypeError):
                raise LedgerError(f"{path}: last line is not a ledger entry; the ledger was damaged") from None
            prev = line_hash(last)
        entry: dict[str, Any] = {"seq": seq, "wall": wall or iso(utc_now()), "subject": subject, "point": point,
                                 "events": int(events), "head": head, "prev": prev}
        if key is not None:
            entry["key_id"] = key_id(key.public_key())
            entry["sig"] = key.sign(_signed_bytes(entry)).hex()
        line = json.dumps(entry, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        os.write(fd, line + b"\n")
        os.fsync(fd)
    return entry


# ------------------------------------------------------------------------------------------ reading


@dataclass
class Ledger:
    """A data folder's ledger read back and checked."""

    path: Path
    entries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def exists(self) -> bool:
        """Return True if the data folder has a ledger file."""
        return self.path.is_file()

    def for_subject(self, subject: str) -> list[dict[str, Any]]:
        """Return the anchors of one log, in order."""
        return [e for e in self.entries if e.get("subject") == subject]


_CACHE: dict[tuple[str, int, int, str], Ledger] = {}


def read_ledger(data_dir: str | Path, *, verify_key: Any = None) -> Ledger:
    """Read and check the ledger of `data_dir` (hash chain, seq, and signatures when a verify key is
    given or configured by $CPM_SESSION_VERIFY_KEY). A missing ledger gives an empty one."""
    from cpm_session.record.integrity import check_chain, check_seq

    path = ledger_path(data_dir)
    vk = verify_key if verify_key is not None else load_verify_key()
    led = Ledger(path)
    try:
        st = path.lstat()
    except OSError:
        return led
    import stat as _stat

    if not _stat.S_ISREG(st.st_mode):
        led.problems.append(f"{path} is not a regular file (a link or device in place of the ledger)")
        return led
    cache_key = (str(path.resolve()), st.st_size, st.st_mtime_ns, key_id(vk) if vk is not None else "")
    if cache_key in _CACHE:
        return _CACHE[cache_key]
    events, _lines, problems = check_chain(path, name=LEDGER)
    torn = [p for p in problems if "incomplete last line" in p]
    led.notes.extend(torn)
    led.problems.extend(p for p in problems if p not in torn)
    if not led.problems:
        led.problems.extend(check_seq(events, name=LEDGER))
    led.entries = [e for e in events if isinstance(e, dict) and e]
    if vk is not None:
        from cryptography.exceptions import InvalidSignature

        kid = key_id(vk)
        for i, e in enumerate(led.entries, start=1):
            sig = e.get("sig")
            try:
                if not isinstance(sig, str):
                    raise ValueError("unsigned")
                vk.verify(bytes.fromhex(sig), _signed_bytes(e))
            except (InvalidSignature, ValueError):
                led.problems.append(f"{LEDGER} line {i}: not signed by the station key {kid} (unsigned, another "
                                    f"key, or changed after signing)")
                break
    _CACHE[cache_key] = led
    return led


def check_anchors(led: Ledger, subject: str, lines: list[bytes], *, expect_anchor: bool,
                  closed: bool) -> tuple[list[str], list[str]]:
    """Compare a log's lines with the ledger's anchors of `subject`; return (problems, notes).

    `expect_anchor`: the log was written by a version that anchors (a missing anchor is then a problem).
    `closed`: the session ended (completed/aborted); lines after its last anchor are then reported."""
    from cpm_session.record.folder import line_hash

    problems: list[str] = []
    notes: list[str] = []
    if led.problems:
        problems.append(f"the data folder's ledger fails verification, so this log's end cannot be checked: "
                        f"{led.problems[0]}")
        return problems, notes
    anchors = led.for_subject(subject)
    if not anchors:
        if expect_anchor:
            where = "has no ledger" if not led.exists else "has no anchor of it in its ledger"
            problems.append(f"the data folder {where}: the log's end is not anchored (the ledger was deleted or "
                            f"edited, or this folder was copied or moved here from another data folder)")
        else:
            notes.append("not anchored in a ledger (written before ledgers existed)")
        return problems, notes
    n = len(lines)
    for a in anchors:
        k, head = a.get("events"), a.get("head")
        if not isinstance(k, int) or k < 0 or not isinstance(head, str):
            problems.append(f"{LEDGER} entry seq {a.get('seq')} is malformed")
            break
        if k > n:
            problems.append(f"the log has {n} lines but the ledger anchored {k} at '{a.get('point')}' "
                            f"({a.get('wall')}): lines {n + 1}..{k} were deleted (tail truncated)")
            break
        at = line_hash(lines[k - 1]) if k > 0 else GENESIS
        if at != head:
            problems.append(f"log line {k} does not match the hash the ledger anchored at '{a.get('point')}' "
                            f"({a.get('wall')}): the log was edited and re-chained, or replaced")
            break
    last = anchors[-1].get("events")
    if not problems and isinstance(last, int) and n > last:
        msg = f"{n - last} line(s) after the last ledger anchor"
        if closed:
            problems.append(msg + " although the log was closed: lines were appended after it ended")
        else:
            notes.append(msg + " (written after the last phase ended: killed or still running)")
    return problems, notes
