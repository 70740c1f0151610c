"""Files and folders only the node's own user may read: the data dir, the
embedded database, the mail outbox (live password-reset links), the
development signing key. Folders are 0700 and files 0600 whatever the process
umask; modes left too open (by an older version, a copy, a careless umask)
are tightened on start with a warning."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from loguru import logger

PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
OTHERS_BITS = 0o077  # group and world: read, write, execute


def _tighten(path: Path) -> bool:
    """Drop group/world bits from one entry (never follows a symlink);
    True if it had any."""
    status = os.lstat(path)
    mode = stat.S_IMODE(status.st_mode)
    if stat.S_ISLNK(status.st_mode) or not mode & OTHERS_BITS:
        return False
    os.chmod(path, mode & ~OTHERS_BITS)
    return True


def _warn(path: Path, fixed: int) -> None:
    logger.warning(
        "tightened the permissions of {} path(s) in {} that other local users could read "
        "(now folders 0700, files 0600)", fixed, path,
    )


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as 0700 folders; an existing
    folder open to others is tightened with a warning."""
    if path.is_dir():
        if _tighten(path):
            _warn(path, 1)
        return path
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_DIR_MODE, exist_ok=True)
        os.chmod(folder, PRIVATE_DIR_MODE)  # mkdir's mode is narrowed by the umask only
    return path


def secure_tree(path: Path, *, warn: bool = True) -> int:
    """Tighten every folder and file under ``path`` (itself included) that
    others can read; returns how many were changed."""
    if not path.exists():
        return 0
    fixed = int(_tighten(path))
    for root, dirs, files in os.walk(path, followlinks=False):
        for name in (*dirs, *files):
            fixed += _tighten(Path(root) / name)
    if fixed and warn:
        _warn(path, fixed)
    return fixed


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as a 0600 file, atomically: readers see the
    old content or the new, never a partial file, and never a moment when
    the file is open to others."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), PRIVATE_FILE_MODE)  # mkstemp's default; said explicitly
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
