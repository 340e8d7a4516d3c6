"""The package stands alone: built as a wheel, installed (not editable) into a temporary folder and
run from another temporary directory, ``mmjax bench``, ``mmjax train --config <file>`` and
``mmjax.methods.make`` work without the checkout (no ``configs/`` there, nothing on ``sys.path``
but the installed copy).

The wheel is built from a copy of the sources (so that the checkout gets no ``build/`` folder),
with pip's build isolation, as ``pip install .`` builds it. Building and installing take about
15 s, each subprocess 10-40 s on the 2-core CPU; the train and ``make`` cases are marked slow.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SMALL_TRAIN = ["--set", "train.steps_per_call=1", "--set", "train.log_every=1",
               "--set", "train.checkpoint_every=1", "--set", "train.unroll=1",
               "--set", "train.vmap_seeds=true"]
TOY_CONFIG = '''
from mmjax.config import DataConfig, MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    return experiment("mfeat", MethodConfig(name="concat"), arg,
                      data=DataConfig(name="mfeat", views=("fac", "pix")))
'''
CHECK_MAKE = '''
import sys
import jax
import mmjax
from mmjax import bench, methods, presets
assert mmjax.__file__.startswith(sys.argv[1]), mmjax.__file__
spec = bench.shapes()["mfeat"].spec
method = methods.make(presets.method_experiment("mfeat", "concat"), spec)
split = bench.random_dataset(spec, 8).splits["train"]
batch = {"inputs": split.inputs, "present": split.present, "label": split.label}
state = method.init(jax.random.key(0), batch)
print(mmjax.__file__, method.predict(state, batch).shape)
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(site, cwd)``: the wheel installed with ``pip install --no-deps --target site``, and an
    empty directory outside the checkout to run from."""
    base = tmp_path_factory.mktemp("standalone")
    source = base / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "mmjax", source / "mmjax",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(base / "wheel"), str(source)],
                   check=True, cwd=base)
    wheel, = (base / "wheel").glob("mmjax-*.whl")
    site = base / "site"
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, cwd=base)
    cwd = base / "elsewhere"
    cwd.mkdir()
    return site, cwd


def _run(installed, *args: str) -> subprocess.CompletedProcess:
    site, cwd = installed
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def test_the_installed_package_is_the_one_imported(installed):
    site, _ = installed
    assert not (site / "configs").exists()
    done = _run(installed, "-c", "import mmjax; print(mmjax.__file__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(site / "mmjax" / "__init__.py")


@pytest.mark.slow
def test_bench_runs_outside_the_checkout(installed):
    """``mmjax bench --dataset mfeat --methods concat``: one JSON record from the registries'
    case, no config file."""
    done = _run(installed, "-m", "mmjax", "--no-compile-cache", "bench", "--dataset", "mfeat",
                "--methods", "concat", "--repeats", "2", "--steps-per-call", "2", "--batch", "16")
    assert done.returncode == 0, done.stderr
    record, = map(json.loads, done.stdout.splitlines())
    assert (record["method"], record["dataset"], record["batch"]) == ("concat", "mfeat", 16)
    assert record["us_per_step_median"] > 0


@pytest.mark.slow  # with the bench test the file passes a minute: these two are the extras
def test_train_a_config_file_outside_the_checkout(installed):
    """``mmjax train --config toy.py:quick+steps=2`` where toy.py imports ``mmjax.presets`` and
    lives in the run directory, not under any ``configs/``."""
    _, cwd = installed
    (cwd / "toy.py").write_text(TOY_CONFIG)
    done = _run(installed, "-m", "mmjax", "--no-compile-cache", "train", "--config",
                "toy.py:quick+steps=2", "--workdir", "run", *SMALL_TRAIN)
    assert done.returncode == 0, done.stderr
    config = json.loads((cwd / "run" / "config.json").read_text())
    assert (config["data"]["views"], config["train"]["steps"]) == (["fac", "pix"], 2)
    assert sorted(p.name for p in (cwd / "run" / "checkpoints").iterdir()) == ["1", "2"]


@pytest.mark.slow
def test_methods_make_outside_the_checkout(installed):
    """``mmjax.methods.make`` builds, initialises and predicts with the installed copy."""
    site, _ = installed
    done = _run(installed, "-c", CHECK_MAKE, str(site))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["(8,", "10)"]
