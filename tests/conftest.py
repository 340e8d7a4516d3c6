"""Test-session setup: a private data cache, a persistent compile cache, strict numpy promotion.

Environment variables are set before JAX is imported by any test module. The 8-device test runs in
its own subprocess (``tests/test_parallel.py``) because the device count is fixed per process.
"""

import os
import pathlib

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_CACHE = _ROOT / ".cache"
# Built datasets are shared by all tests of a session and between sessions; a user's own cache
# (~/.cache/mmjax) is never touched by the tests.
os.environ.setdefault("MMJAX_DATA_DIR", str(_CACHE / "test-data"))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE / "jax-compile"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# tfds leaves empty temporary folders behind; keep them out of the system tmp.
(_CACHE / "tmp").mkdir(parents=True, exist_ok=True)
os.environ.setdefault("TMPDIR", str(_CACHE / "tmp"))

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    """A fresh typed PRNG key."""
    return jax.random.key(0)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A private, empty ``MMJAX_DATA_DIR`` for tests that prepare datasets from fixture files."""
    monkeypatch.setenv("MMJAX_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"
