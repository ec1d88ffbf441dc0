"""Run folders: refuse to clobber another run, never write through a symlink, say why not.

``flowmm run --out DIR`` writes a fixed set of files into DIR. A folder that already holds a
run (any of those names) is refused unless ``--overwrite``; with it, the old run's entries are
removed first (a symlink is unlinked, never followed), so nothing is written outside DIR.
``make demo`` passes ``--overwrite`` for its own fixed ``out/`` folders; default folders
(``runs/<graph>-<source>-<time>``) are new on every run.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from flowmm.errors import UsageError

# what a run leaves in its folder (graph.write_run, the report, the live recording)
RUN_ENTRIES = (
    "summary.json",
    "trace.parquet",
    "fills.parquet",
    "interrupts.csv",
    "graph.yaml",
    "graph.svg",
    "graph.dot",
    "report.html",
    "plots",
)


def _is_recording(name: str) -> bool:
    return name.startswith("feed") and name.endswith(".rec.lz4")


def prepare_run_folder(out: Path, *, overwrite: bool = False, option: str = "--out") -> Path:
    """Check ``out`` can take a new run and clear an old one (with ``overwrite``); raise
    ``UsageError`` (exit 2, no traceback) when it is a file, unwritable, or holds a run."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{option} {out}: is a file, not a folder", hint="give a folder for the run")
    if not out.exists():
        # created only when the run writes (a run refused later leaves nothing): check now
        # that it can be, at the nearest folder that exists
        parent = out.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise UsageError(f"{option} {out}: cannot create the folder: {parent} is a file")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"{option} {out}: cannot create the folder: {parent} is not writable")
        return out
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {out}: the folder is not writable")
    held = sorted(
        e.name for e in os.scandir(out) if e.name in RUN_ENTRIES or _is_recording(e.name) or e.is_symlink()
    )
    if held and not overwrite:
        raise UsageError(
            f"{option} {out}: the folder holds another run ({', '.join(held[:4])}"
            + (", ..." if len(held) > 4 else "")
            + ")",
            hint="choose a new folder, or pass --overwrite to replace that run",
        )
    for name in held:
        path = out / name
        if path.is_symlink() or not path.is_dir():
            path.unlink()  # a symlink is removed, never followed
        else:
            shutil.rmtree(path)
    return out


_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


def is_disk_error(exc: OSError) -> bool:
    """Whether a failed write is the disk's or the folder's fault (not, say, a network error)."""
    return exc.errno in _DISK_ERRNOS


def disk_error(exc: OSError, out: Path) -> UsageError:
    """A write into the run folder failed (disk full, quota, permissions): a located error."""
    why = "the disk is full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))
    where = exc.filename or out
    return UsageError(f"cannot write the run folder {out}: {why} ({where})", hint="free space, or use --out")
