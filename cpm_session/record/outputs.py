"""Where a command may write its output file or folder (`-o`, `--report`, an export's OUT).

Never inside a session folder or over a record (a session log, header, table, adverse-event log, the
ledger), never over an existing file without ``--force``, never through a symbolic link."""

from __future__ import annotations

import os
from pathlib import Path

from cpm_session.errors import CpmError
from cpm_session.record.folder import is_participant_dir, is_session_dir
from cpm_session.record.ledger import LEDGER
from cpm_session.record.schema import AE_LOG, SESSION_FILES

RECORD_NAMES = frozenset((*SESSION_FILES, AE_LOG, LEDGER, "events.torn", "ledger.torn", ".session.lock"))


class OutputError(CpmError):
    """An output path is refused."""


def _inside_record(p: Path) -> Path | None:
    """Return the session or participant folder `p` lies in (or is), if any."""
    for anc in (p, *p.parents):
        if anc.is_dir() and (is_session_dir(anc) or is_participant_dir(anc)):
            return anc
    return None


def check_output_file(path: str | Path, *, force: bool = False, what: str = "output") -> Path:
    """Return `path` if a command may write the file there; raise OutputError saying why not."""
    if not str(path).strip():
        raise OutputError(f"{what}: the file name is empty")
    p = Path(path)
    if p.name in RECORD_NAMES:
        raise OutputError(f"{what} {p}: {p.name!r} is the name of a session record; choose another name")
    if p.is_symlink():
        raise OutputError(f"{what} {p} is a symbolic link; refusing to write through it")
    if p.exists() and not p.is_file():
        raise OutputError(f"{what} {p} exists and is not a regular file")
    holder = _inside_record(p.absolute().parent)
    if holder is not None:
        raise OutputError(f"{what} {p} is inside the session or participant folder {holder}; write it elsewhere")
    if p.exists() and not force:
        raise OutputError(f"{what} {p} exists; an output is never overwritten without --force")
    return p


MAX_INPUT_BYTES = 20_000_000
"""An allocation list or other table given on the command line: a regular file of at most 20 MB."""


def check_input_file(path: str | Path, *, what: str = "input", max_bytes: int = MAX_INPUT_BYTES) -> Path:
    """Return `path` if it is a regular file of at most `max_bytes` (never a device, pipe or folder)."""
    import stat

    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as e:
        raise OutputError(f"{what} {p} cannot be read: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{what} {p} is not a regular file (a device, folder or pipe is never an input file)")
    if st.st_size > max_bytes:
        raise OutputError(f"{what} {p} has {st.st_size} bytes, more than the {max_bytes} allowed")
    return p


def check_output_dir(path: str | Path, *, data_dir: str | Path | None = None, what: str = "output folder") -> Path:
    """Return `path` if a command may create a folder of results there (new, or an empty folder; not inside
    the data folder or a session/participant folder; not a link)."""
    if not str(path).strip():
        raise OutputError(f"{what}: the folder name is empty")
    p = Path(path)
    if p.is_symlink():
        raise OutputError(f"{what} {p} is a symbolic link; refusing to write through it")
    if p.exists():
        if not p.is_dir():
            raise OutputError(f"{what} {p} exists and is not a folder")
        if any(p.iterdir()):
            raise OutputError(f"{what} {p} is not empty; refusing to write into it (choose a new folder)")
    holder = _inside_record(p.absolute())
    if holder is not None:
        raise OutputError(f"{what} {p} is inside the session or participant folder {holder}; write it elsewhere")
    if data_dir is not None:
        d = Path(data_dir).resolve()
        try:
            p.absolute().resolve().relative_to(d)
        except ValueError:
            pass
        else:
            raise OutputError(f"{what} {p} is inside the data folder {data_dir}; write it elsewhere")
    return p


def replace_file(tmp: Path, dest: Path) -> None:
    """Move a finished temporary file into place (atomic on one file system)."""
    os.replace(tmp, dest)
