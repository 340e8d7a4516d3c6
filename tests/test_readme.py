"""The README stays true: its library example runs, and its quickstart names the real commands."""

import pathlib
import re

import numpy as np
import pytest

README = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.slow
def test_readme_library_example_runs():
    """Executes the README's Python block and checks what it claims to produce."""
    code = re.search(r"```python\n(.*?)```", README, re.S).group(1)
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["logits"].shape == (64, 10)
    assert np.isfinite(float(scope["metrics"]["loss"]))
    assert int(scope["state"].step) == 1


def test_quickstart_commands_exist_in_the_makefile():
    makefile = (pathlib.Path(__file__).resolve().parent.parent / "Makefile").read_text()
    assert "make demo" in README and "make test" in README
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
