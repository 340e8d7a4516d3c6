"""Shared by the multi-device tests: a ``python -c SCRIPT`` subprocess with N simulated CPU devices.

The device count of a JAX process is fixed when JAX starts, so a test that compares device counts
(or joins processes with ``jax.distributed``) runs each side in its own process. Imported as
``from _subprocess import ROOT, start`` (pytest puts tests/ on the path).
"""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the repository root


def start(script: str, args, devices: int, env: dict | None = None) -> subprocess.Popen:
    """Starts ``python -c script *args`` in the repository root, stdout and stderr piped as text.

    Args:
      script: the program's source.
      args: its ``sys.argv[1:]`` (each passed through ``str``).
      devices: simulated host devices (``XLA_FLAGS=--xla_force_host_platform_device_count``).
      env: variables set on top of the test's environment and ``XLA_FLAGS``.
    """
    environ = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
               **(env or {})}
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environ)
