"""One writer per workdir: an advisory lock file, and the checks of a run's files before any write.

``WORKDIR/.lock`` holds the owner's pid, host and start time while ``mmjax train`` or ``mmjax eval``
runs there; the file is ``flock``-ed, so the kernel releases it when the owner dies however it
dies. A second writer exits at once naming the owner; a lock file left by a dead process (SIGKILL,
power loss) is taken over with one line saying so. The lock file is removed on a clean release, so
a finished workdir holds only the run's own files.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pathlib
import socket
import sys
import time

from mmjax.errors import UserError

LOCK_NAME = ".lock"


class WorkdirLock:
    """The advisory lock of ``workdir`` (taken by ``acquire``, released by ``release``).

    Use as a context manager; ``acquire`` may be called later (once the workdir exists) and more
    than once. ``enabled=False`` (processes other than 0 of a multi-host run) makes it a no-op.
    """

    def __init__(self, workdir: str | os.PathLike, enabled: bool = True):
        self.path = pathlib.Path(workdir) / LOCK_NAME
        self.enabled = enabled
        self._fd: int | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    @property
    def held(self) -> bool:
        """True once ``acquire`` succeeded (until ``release``)."""
        return self._fd is not None

    def acquire(self) -> None:
        """Takes the lock; ``UserError`` naming the owner if a live process holds it."""
        if self._fd is not None or not self.enabled:
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise UserError(f"workdir {self.path.parent} is in use by "
                                f"{_describe(_read_owner(self.path))} (lock file {self.path}); "
                                "wait for it to finish or stop it first") from None
            # The previous owner may have removed the file between our open and our flock: then
            # we hold a lock on a deleted file and must retry on the new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        stale = _read_owner(self.path)
        if stale:
            print(f"mmjax: taking over the lock of {self.path.parent} left by "
                  f"{_describe(stale)}, which is no longer running", file=sys.stderr)
        owner = {"pid": os.getpid(), "host": socket.gethostname(),
                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(owner) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Removes the lock file and drops the lock (no-op if not held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
            self._fd = None


def _read_owner(path: pathlib.Path) -> dict:
    """The owner a lock file names ({} for an empty or unreadable one)."""
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _describe(owner: dict) -> str:
    if not owner:
        return "another mmjax process"
    return (f"pid {owner.get('pid', '?')} on host {owner.get('host', '?')} "
            f"(since {owner.get('since', '?')})")


# The files of a run and what each must be; checked before anything in the workdir is written.
_RUN_FILES = {"config.json": "file", "metrics.jsonl": "file", "checkpoints": "directory",
              "eval.json": "file", "eval.md": "file"}


def check_creatable(workdir: str | os.PathLike) -> None:
    """One-line ``UserError`` if ``workdir`` does not exist and cannot be created: its nearest
    existing ancestor is a file or is not writable. Checked before any data is built, so the
    refusal is the only line a user sees."""
    path = pathlib.Path(workdir).absolute()
    if path.exists():
        return
    ancestor = path.parent
    while not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{path}: not a directory ({ancestor} is a file); use another --workdir")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{path}: permission denied ({ancestor} is not writable)")


def check_run_files(workdir: str | os.PathLike, *, write: bool) -> None:
    """One-line ``UserError`` if an existing file of the run is of the wrong kind or cannot be
    read (or, with ``write``, written): e.g. ``checkpoints/`` replaced by a file."""
    workdir = pathlib.Path(workdir)
    for name, kind in _RUN_FILES.items():
        path = workdir / name
        if not os.path.lexists(path):
            continue
        if (kind == "directory") != path.is_dir():
            raise UserError(f"{path} is not a {kind} (an mmjax run keeps its {name} there); "
                            "move it away or use a new --workdir")
        mode = os.R_OK | (os.X_OK if kind == "directory" else 0) | (os.W_OK if write else 0)
        if not os.access(path, mode):
            raise UserError(f"{path}: permission denied (mmjax needs to "
                            f"{'read and write' if write else 'read'} it)")
    if write and workdir.is_dir() and not os.access(workdir, os.W_OK | os.X_OK):
        raise UserError(f"{workdir}: permission denied (the workdir is not writable)")
