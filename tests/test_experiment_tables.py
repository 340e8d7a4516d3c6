"""The experiments' tables regenerate from their committed per-seed results.

Each ``experiments/<name>/make_table.py`` run on ``experiments/<name>/results`` must print its
committed results file byte for byte: a table edited by hand, a results folder exported from
other runs than the table, or a make_table branch that breaks when its runs exist all fail here.
The experiment folder is copied first, so the plots some scripts draw next to themselves land in
the copy, not in the checkout.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# (experiment, the results sub-folder make_table reads, the file its output must equal)
TABLES = [
    ("mla", "", "results.md"),
    ("raml", "", "results.md"),
    ("redcore", "", "results.md"),
    ("ume_mma", "", "results.md"),
    ("smil", "mfeat", "results_mfeat.md"),
    ("smil", "regime_avmnist", "results_regime_avmnist.md"),
    ("smil", "table3_regime_avmnist", "results_table3_regime_avmnist.md"),
]


@pytest.mark.parametrize("name,sub,expected", TABLES,
                         ids=[f"{n}-{s}" if s else n for n, s, _ in TABLES])
def test_make_table_regenerates_the_committed_results(name, sub, expected, tmp_path):
    """make_table.py on the committed results prints the committed results file."""
    folder = shutil.copytree(ROOT / "experiments" / name, tmp_path / name)
    results = folder / "results" / sub if sub else folder / "results"
    out = subprocess.run([sys.executable, str(folder / "make_table.py"), str(results)],
                         cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "MPLBACKEND": "Agg"})
    assert out.stdout == (ROOT / "experiments" / name / expected).read_text()
