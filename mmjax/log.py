"""Run logging: ``metrics.jsonl`` (one JSON object per logged step), optional TensorBoard event
files, and progress on stderr.

The JSONL writer appends; on resume, lines past the restored step are dropped first, so that a
resumed run's log reads exactly like an uninterrupted one. Lines that are not complete JSON log
rows (one a killed process left half-written, a damaged file) are dropped too, with one line on
stderr saying how many. The TensorBoard writer (``tensorboardX``, the ``tensorboard`` extra) gets
the same rows; on resume it marks the steps past the restored one as purged, so TensorBoard shows
one curve. Progress is a tqdm bar when stderr is a terminal, else one plain line every
``train.progress_seconds`` (a batch job's log file shows how far the run is). Only process 0
writes any of them.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Callable

import jax
from tqdm import tqdm


def _is_main() -> bool:
    return jax.process_index() == 0


class MetricsWriter:
    """Appends ``{"step": s, ...}`` lines to ``path``.

    Args:
      path: the JSONL file.
      resume_step: drop existing lines with ``step > resume_step`` (None: start a new file).
    """

    def __init__(self, path: str | pathlib.Path, resume_step: int | None = None):
        self.path = pathlib.Path(path)
        if not _is_main():
            return
        kept, damaged = [], []
        if resume_step is not None and self.path.exists():
            for number, line in enumerate(
                    self.path.read_text(errors="replace").splitlines(), start=1):
                step = _step_of(line)
                if step is None:
                    damaged.append(number)
                elif step <= resume_step:
                    kept.append(line)
        if damaged:
            print(f"mmjax: {self.path}: dropped {len(damaged)} damaged line(s) (line "
                  f"{', '.join(map(str, damaged[:5]))}{', ...' if len(damaged) > 5 else ''}); "
                  f"appending after the last complete one", file=sys.stderr)
        write_atomic(self.path, "".join(line + "\n" for line in kept))
        self._file = open(self.path, "a")

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """Writes one line; non-finite floats are written as strings so the file stays JSON."""
        if not _is_main():
            return
        clean = {k: (v if math.isfinite(v) else str(v)) if isinstance(v, float) else v
                 for k, v in metrics.items()}
        self._file.write(json.dumps({"step": step, **clean}) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Closes the file (process 0)."""
        if _is_main():
            self._file.close()


def _step_of(line: str) -> int | None:
    """The step of a log line; None for a line a killed process left half-written."""
    try:
        row = json.loads(line)
        return int(row["step"]) if isinstance(row, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def read_rows(path: str | pathlib.Path, max_step: int | None) -> list[dict]:
    """The complete rows of a ``metrics.jsonl`` with ``step <= max_step`` (none for
    ``max_step=None``), in file order; what a resumed run keeps (any process may call it)."""
    path = pathlib.Path(path)
    if max_step is None or not path.exists():
        return []
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        step = _step_of(line)
        if step is not None and step <= max_step:
            rows.append(json.loads(line))
    return rows


def check_tensorboard() -> None:
    """One ``UserError`` line if ``tensorboardX`` (the ``tensorboard`` extra) is not installed."""
    import importlib.util

    if importlib.util.find_spec("tensorboardX") is None:
        from mmjax.errors import UserError

        raise UserError("train.tensorboard needs tensorboardX: pip install 'mmjax[tensorboard]' "
                        "(or pip install tensorboardX)")


class TensorBoardWriter:
    """Writes each row's numbers as TensorBoard scalars (tag = the column) into ``directory``.

    Args:
      directory: the event files' folder (``WORKDIR/tensorboard``).
      resume_step: steps after it are purged from what TensorBoard shows (None: a new run).

    Raises:
      UserError: ``tensorboardX`` is not installed (one line with the install command).
    """

    def __init__(self, directory: str | pathlib.Path, resume_step: int | None = None):
        self._writer = None
        if not _is_main():
            return
        check_tensorboard()
        from tensorboardX import SummaryWriter

        purge = None if resume_step is None else resume_step + 1
        self._writer = SummaryWriter(str(directory), purge_step=purge)

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """Adds one scalar per numeric column at ``step``."""
        if self._writer is None:
            return
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(name, value, step)
        self._writer.flush()

    def close(self) -> None:
        """Flushes and closes the event file."""
        if self._writer is not None:
            self._writer.close()


class Progress:
    """Training progress on stderr: a tqdm bar on a terminal, else one plain line every
    ``seconds`` (the first ``seconds`` after the start; a last one at the end if any was written,
    so a short run stays silent), e.g.
    ``mmjax: concat on mfeat: step 120/3000 (4%), loss 0.4321, 85.2 steps/s, eta 0:00:34``.

    Args:
      total, initial: the run's last step and the step it starts from.
      desc: what is training.
      seconds: the time between plain lines.
      stream: where to write (default stderr); a terminal gets the bar.
      clock: the time source (tests pass a fake one).
    """

    def __init__(self, total: int, initial: int, desc: str, seconds: float = 60.0,
                 stream=None, clock: Callable[[], float] = time.monotonic):
        self.total, self.step, self.desc, self.seconds = total, initial, desc, seconds
        self.stream = stream or sys.stderr
        self.clock = clock
        self.loss: float | None = None
        self._bar = None
        self._quiet = not _is_main()
        if not self._quiet and _isatty(self.stream):
            self._bar = tqdm(total=total, initial=initial, desc=desc, unit="step",
                             dynamic_ncols=True, file=self.stream, smoothing=0.1)
        self._start_step, self._start = initial, clock()
        self._last_line = self._start  # when the last plain line was written
        self._lines = 0
        self._last_line_step = initial

    def update(self, steps: int, loss: float) -> None:
        """``steps`` more steps were taken; ``loss`` is the newest loss."""
        self.step += steps
        self.loss = loss
        if self._bar is not None:
            self._bar.update(steps)
            self._bar.set_postfix(loss=f"{loss:.4f}")
            return
        now = self.clock()
        if now - self._last_line >= self.seconds:
            self._line(now)

    def _line(self, now: float) -> None:
        if self._quiet:
            return
        elapsed = now - self._start
        rate = (self.step - self._start_step) / elapsed if elapsed > 0 else float("nan")
        eta = (self.total - self.step) / rate if rate > 0 else float("nan")
        loss = f", loss {self.loss:.4f}" if self.loss is not None else ""
        eta_text = (time.strftime("%H:%M:%S", time.gmtime(eta)) if math.isfinite(eta)
                    else "?")
        print(f"mmjax: {self.desc}: step {self.step}/{self.total} "
              f"({100 * self.step / max(self.total, 1):.0f}%){loss}, {rate:.1f} steps/s, "
              f"eta {eta_text}", file=self.stream, flush=True)
        self._last_line, self._last_line_step = now, self.step
        self._lines += 1

    def close(self) -> None:
        """Closes the bar, or writes the last plain line if steps were taken since the last one."""
        if self._bar is not None:
            self._bar.close()
        elif self._lines and self.step != self._last_line_step:
            self._line(self.clock())


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def write_atomic(path: str | pathlib.Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename (no half-written files)."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
