"""The exceptions the CLI turns into one line, and the signal handling every command runs under.

- ``UserError``: a mistake a user can fix (bad config, bad data, bad command line); one line on
  stderr and exit code 2, before any training starts.
- ``Interrupted``: SIGINT/SIGTERM arrived; one line saying what was saved, exit 128 + signal.
- ``TrainingDiverged``: a loss or metric became NaN/inf; one line, exit 1.

Everything else is a bug and keeps its traceback. This module imports nothing heavy, so that the
CLI installs ``raising_signals`` before JAX is imported.
"""

import contextlib
import signal
import sys
import threading

_pending: int | None = None  # the signal that arrived under ``raising_signals``, if any
_deferred = False  # inside ``deferred_signals``: only record it


class UserError(Exception):
    """A problem with the user's input: config, data files, or command-line arguments."""


class TrainingDiverged(RuntimeError):
    """A loss or metric became NaN/inf; the message names the step and the quantity."""


class Interrupted(RuntimeError):
    """SIGTERM/SIGINT arrived; the message says what was saved and how to go on."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


def _interrupted(signum: int) -> Interrupted:
    return Interrupted(f"stopped by signal {signum} before training started; run the same "
                       "command to start again", signum)


def _raise_interrupted(signum, frame):
    global _pending
    del frame
    _pending = signum
    if not _deferred:
        raise _interrupted(signum)


def pending_signal() -> int | None:
    """The signal that arrived since ``raising_signals`` began (None if none)."""
    return _pending


def check_signals() -> None:
    """Raises ``Interrupted`` if a signal arrived whose exception was swallowed: Python drops an
    exception raised in a callback it runs itself (JAX's gc callback, a ``__del__``), so the
    places between the steps of a command check again."""
    if _pending is not None:
        raise _interrupted(_pending)


@contextlib.contextmanager
def deferred_signals():
    """Inside, a signal is only recorded; it is raised on leaving. For imports of C extensions
    (jaxlib, numpy, tfds): an exception raised in the middle of one comes out as an unrelated
    ImportError, or is printed with a traceback by the library."""
    global _deferred
    outer, _deferred = _deferred, True
    try:
        yield
    finally:
        _deferred = outer
    if not outer:
        check_signals()


def _unraisable(hook):
    """``sys.unraisablehook`` that keeps quiet about a swallowed ``Interrupted`` (the next
    ``check_signals`` raises it again) and passes everything else to ``hook``."""
    def quiet(unraisable):
        if not isinstance(unraisable.exc_value, Interrupted):
            hook(unraisable)
    return quiet


@contextlib.contextmanager
def raising_signals():
    """SIGINT/SIGTERM raise ``Interrupted`` (instead of KeyboardInterrupt / death) while active.

    ``mmjax.cli.main`` runs every command inside it; the training loop replaces it with a flag
    for its duration, so that a checkpoint is saved first. A no-op outside the main thread.
    """
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _pending = None
    old = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
    old_hook, sys.unraisablehook = sys.unraisablehook, _unraisable(sys.unraisablehook)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        sys.unraisablehook = old_hook
        _pending = None
