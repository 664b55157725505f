"""A cache of per-session results (the verified summary row), kept outside the session folders.

Reading 10,000 session folders with the integrity check means re-walking 10,000 hash chains. A
session's row only changes when its folder changes, so each row is stored once, outside the data folder
(reading data never writes into it): under ``$CPM_SESSION_CACHE_DIR`` or ``$XDG_CACHE_HOME/cpm-session``
(default ``~/.cache/cpm-session``), in ``<kind>/<sha1 of the data folder's path>/<sha1 of the session folder's
relative path>.json``, together with the key it was computed for:

- the **head hash** of the log: SHA-256 of the last line of ``events.jsonl`` (the chain's head; any new
  event moves it, and a rewritten history cannot keep it without also keeping the last line), and
- the name, size, modification and change time (ns) and inode of every file in the folder (an edited
  ``session.json``, ``ratings.csv`` or ``devices.csv`` changes them: ctime cannot be set from user space),
- and a `salt` from the caller (software version, the source of the code that computes the row), so new
  code never reuses an old row.

A row may also depend on files outside the folder (the protocol file a threshold was read from): the
caller returns such dependencies with the row, and `validate` re-checks them before a cached row is used.

Misses are computed in parallel worker processes (`concurrent.futures`); hits are read in this process.
The cache is only a cache: anything unreadable in it is recomputed, writing it is best effort, and
``.cache`` is never read as session data (`folder.iter_session_dirs` skips hidden folders).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cpm_session.record.folder import line_hash
from cpm_session.record.schema import GENESIS

CACHE_DIR = ".cache"
FORMAT = 1
TAIL_CHUNK = 64 * 1024
MIN_PARALLEL = 48
"""Fewer misses than this are computed in this process: a worker pool costs more than it saves."""
CHUNKSIZE = 16
LOOKUP_THREADS = 4

Job = Callable[[Path, Any], tuple[Any, list[Any]]]
"""Compute one session's value: (value, dependencies outside the folder). Must be a module-level function."""


def head_hash(log: Path) -> str:
    """Return the SHA-256 of the last complete line of an event log (GENESIS for an empty or missing one)."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if size == 0:
                return GENESIS
            chunk = min(size, TAIL_CHUNK)
            while True:
                f.seek(size - chunk)
                data = f.read(chunk)
                body = data[:-1] if data.endswith(b"\n") else data  # a torn last line is part of the key too
                nl = body.rfind(b"\n")
                if nl >= 0 or chunk == size:
                    return line_hash(body[nl + 1:])
                chunk = min(size, chunk * 4)
    except OSError:
        return GENESIS


def folder_key(session_dir: Path, salt: str) -> str | None:
    """Return the cache key of a session folder now (None if it cannot be listed)."""
    try:
        entries = []
        with os.scandir(session_dir) as it:
            for e in it:
                if e.is_file(follow_symlinks=False):
                    st = e.stat(follow_symlinks=False)
                    entries.append((e.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    except OSError:
        return None
    entries.sort()
    blob = json.dumps([FORMAT, salt, head_hash(session_dir / "events.jsonl"), entries], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def code_salt(*modules: Any, extra: str = "") -> str:
    """Return a salt from the source bytes of `modules` (the code that computes the cached values) and `extra`."""
    h = hashlib.sha256(extra.encode())
    for m in modules:
        src = getattr(m, "__file__", None)
        files = [Path(src)] if src else []
        if files and files[0].name == "__init__.py":  # a package: every module in it computes values too
            files = sorted(files[0].parent.glob("*.py"))
        if not files:
            h.update(repr(m).encode())
        for f in files:
            try:
                h.update(f.name.encode() + f.read_bytes())
            except OSError:
                h.update(repr(m).encode())
    return h.hexdigest()[:32]


@dataclass
class CacheStats:
    """What one cached read did."""

    hits: int = 0
    misses: int = 0
    written: int = 0
    workers: int = 1
    write_problem: str = ""


def default_cache_dir(data_dir: Path, kind: str) -> Path:
    """Return where the cache of `kind` for the data folder `data_dir` lives (outside it)."""
    base = os.environ.get("CPM_SESSION_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "cpm-session")
    where = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path(base) / kind / where


class SessionCache:
    """Per-session cached values of one kind (e.g. "summary"), kept in the user's cache folder (never in the
    data folder)."""

    def __init__(self, data_dir: str | Path, kind: str, salt: str, cache_dir: str | Path | None = None) -> None:
        self.root = Path(data_dir)
        self.dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(self.root, kind)
        self.salt = salt

    def entry_path(self, session_dir: Path) -> Path:
        """Return the cache file of `session_dir` (named by its path relative to the data folder)."""
        try:
            rel = session_dir.relative_to(self.root).as_posix()  # the usual case: found below the data folder
        except ValueError:
            rel = session_dir.resolve().as_posix()
        return self.dir / (hashlib.sha1(rel.encode()).hexdigest() + ".json")

    def get(self, session_dir: Path, key: str) -> dict[str, Any] | None:
        """Return the cached entry of `session_dir` if it was stored for `key`, else None."""
        try:
            entry = json.loads(self.entry_path(session_dir).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or entry.get("format") != FORMAT \
                or "value" not in entry or not isinstance(entry.get("deps"), list):
            return None
        return entry

    def put(self, session_dir: Path, key: str, value: Any, deps: list[Any]) -> None:
        """Store `value` for `session_dir` under `key` (atomic replace; a cache, so no fsync). Raises OSError."""
        path = self.entry_path(session_dir)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        data = json.dumps({"format": FORMAT, "key": key, "path": str(session_dir), "value": value, "deps": deps},
                          ensure_ascii=False, default=str).encode("utf-8")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, path)
        except OSError:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise


_worker_context: Any = None


def _init_worker(context: Any) -> None:
    global _worker_context
    _worker_context = context


def _run_job(job: Job, path: Path) -> tuple[Any, list[Any]]:
    return job(path, _worker_context)


def cached_map(data_dir: str | Path, paths: Sequence[Path], job: Job, context: Any, *, kind: str, salt: str,
               validate: Callable[[list[Any]], bool] | None = None, workers: int | None = None,
               use_cache: bool = True, cache_dir: str | Path | None = None) -> tuple[list[Any], CacheStats]:
    """Return `job(path, context)[0]` for every path, in order, reusing cached values whose key still holds.

    Misses run in up to `workers` processes (default: the CPU count) when there are many of them; each
    computed value is stored with the key taken *before* it was computed, so a folder that changed meanwhile
    is recomputed next time. `validate(deps)` re-checks a cached value's outside dependencies."""
    cache = SessionCache(data_dir, kind, salt, cache_dir) if use_cache else None
    stats = CacheStats()
    out: list[Any] = [None] * len(paths)
    keys: list[str | None] = [None] * len(paths)
    todo: list[int] = []
    if cache is None:
        todo = list(range(len(paths)))
    else:
        def look(p: Path) -> tuple[str | None, dict[str, Any] | None]:
            key = folder_key(p, salt)
            return key, (cache.get(p, key) if key is not None else None)

        # the look-ups are mostly system calls (scandir, stat, open, read), which threads overlap
        with ThreadPoolExecutor(max_workers=LOOKUP_THREADS) as threads:
            found = list(threads.map(look, paths)) if len(paths) >= MIN_PARALLEL else list(map(look, paths))
        for i, (key, entry) in enumerate(found):
            keys[i] = key
            if entry is not None and (validate is None or not entry["deps"] or validate(entry["deps"])):
                out[i] = entry["value"]
                stats.hits += 1
            else:
                todo.append(i)
    stats.misses = len(todo)
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(todo) // MIN_PARALLEL or 1))
    stats.workers = n_workers
    if n_workers > 1:
        with ProcessPoolExecutor(max_workers=n_workers, initializer=_init_worker, initargs=(context,)) as pool:
            results = pool.map(_run_job, [job] * len(todo), [paths[i] for i in todo], chunksize=CHUNKSIZE)
            computed = list(results)
    else:
        computed = [job(paths[i], context) for i in todo]
    for i, (value, deps) in zip(todo, computed, strict=True):
        out[i] = value
        if cache is None or keys[i] is None or stats.write_problem:
            continue
        try:
            if stats.written == 0:
                cache.dir.mkdir(parents=True, exist_ok=True)
            cache.put(paths[i], keys[i], value, deps)  # type: ignore[arg-type]
            stats.written += 1
        except OSError as e:
            stats.write_problem = f"summary cache not written in {cache.dir} ({e.strerror or e})"
    return out, stats
