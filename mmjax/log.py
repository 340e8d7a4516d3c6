"""Run logging: ``metrics.jsonl`` (one JSON object per logged step) and a progress bar.

The writer appends; on resume, lines past the restored step are dropped first, so that a resumed
run's log reads exactly like an uninterrupted one. Lines that are not complete JSON log rows (one a
killed process left half-written, a damaged file) are dropped too, with one line on stderr saying
how many. Only process 0 writes the log.
"""

from __future__ import annotations

import json
import math
import os
import pathlib
import sys

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


def progress(total: int, initial: int, desc: str) -> tqdm:
    """A progress bar on stderr with rate and ETA; silent when stderr is not a terminal."""
    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True,
                disable=None if _is_main() else True, file=sys.stderr, smoothing=0.1)


def write_atomic(path: str | pathlib.Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a temporary file and a rename (no half-written files)."""
    path = pathlib.Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
