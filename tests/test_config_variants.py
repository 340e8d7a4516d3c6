"""Config variants, parsed as big_vision's ``get_config(arg)`` (``mmjax.presets.parse_arg``):
``+``-joined flags and ``key=value`` items, applied left to right, the common keys of every config
(``quick``, ``steps``, ``seeds``, ``rates``), ``released`` where a config has it, a config's own
keys, and one error line for an unknown key.
"""

import pathlib

import pytest

from mmjax import config as config_lib
from mmjax import presets
from mmjax.errors import UserError

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"


def _load(path: str, arg: str = ""):
    return config_lib.load(str(CONFIGS / path) + (f":{arg}" if arg else ""))


def test_parse_arg_reads_flags_and_values_in_order():
    args = presets.parse_arg("quick+steps=300+rates=0.8,0.5,0.2+mosei", released=True,
                             mosei=False, width=64)
    assert args.items == (("quick", True), ("steps", 300), ("rates", (0.8, 0.5, 0.2)),
                          ("mosei", True))
    assert (args.quick, args.released, args.steps, args.seeds, args.width) == (
        True, False, 300, None, 64)
    assert type(args.steps) is int and all(type(r) is float for r in args.rates)
    assert presets.parse_arg(args) is args  # already parsed: passed through
    empty = presets.parse_arg(None)
    assert empty.items == () and empty.quick is False
    assert presets.parse_arg("quick=false").quick is False


@pytest.mark.parametrize("arg, message", [
    ("nope", "unknown config variant 'nope'; this config takes: quick, steps=N, seeds=N, "
             "rates=R1,R2,... (join several with '+')"),
    ("released", "unknown config variant 'released'; this config takes: quick, steps=N"),
    ("steps", "config variant 'steps' needs a value: steps=N"),
    ("steps=many", "config variant 'steps=many': steps must be int"),
    ("rates=0.1,x", "config variant 'rates=0.1,x': rates must be tuple[float, ...]"),
    ("quick=maybe", "config variant 'quick=maybe': quick must be bool"),
])
def test_parse_arg_errors_are_one_line(arg, message):
    with pytest.raises(UserError) as e:
        presets.parse_arg(arg)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value)


def test_own_keys_are_listed_in_the_error():
    with pytest.raises(UserError, match=r"takes: quick, steps=N, seeds=N, rates=R1,R2,\.\.\., "
                                        r"released, mosei, width=<int>"):
        presets.parse_arg("wdith=3", released=True, mosei=False, width=64)


def test_common_keys_apply_to_every_config():
    """``steps=`` / ``seeds=`` / ``rates=`` on a shipped config change only their fields;
    ``quick`` and ``steps`` compose left to right."""
    base = _load("mfeat/redcore.py")
    config = _load("mfeat/redcore.py", "steps=250+seeds=2+rates=0.8,0.5,0.2,0.1,0,0.3")
    assert (config.train.steps, config.train.num_seeds) == (250, 2)
    assert (config.missing.protocol, config.missing.rates) == (
        "independent", (0.8, 0.5, 0.2, 0.1, 0.0, 0.3))
    assert config.method == base.method and config.model == base.model
    assert _load("mfeat/redcore.py", "quick+steps=300").train.steps == 300
    assert _load("mfeat/redcore.py", "steps=300+quick").train.steps == 100
    # released and the common keys together, on a config with its own phase lengths.
    smil = _load("mfeat/smil.py", "released+quick+steps=120")
    assert (smil.train.steps, smil.method.phase1_steps, smil.method.reconstruction) == (
        120, 40, "released")


def test_a_config_with_its_own_key():
    """configs/mmsa_mosi/raml.py's ``mosei`` joins the common variants with ``+``."""
    mosi, mosei = _load("mmsa_mosi/raml.py"), _load("mmsa_mosi/raml.py", "mosei")
    assert (mosi.data.name, mosi.train.steps) == ("mmsa_mosi", 1000)
    assert (mosei.data.name, mosei.train.steps) == ("mmsa_mosei", 2000)
    both = _load("mmsa_mosi/raml.py", "mosei+quick")
    assert (both.data.name, both.train.steps, both.train.num_seeds) == ("mmsa_mosei", 100, 1)
    with pytest.raises(UserError, match="unknown config variant 'mosei,quick'"):
        _load("mmsa_mosi/raml.py", "mosei,quick")  # one syntax: '+' joins, ',' is in values


def test_bad_variant_in_a_config_names_the_file():
    path = str(CONFIGS / "mfeat" / "concat.py")
    with pytest.raises(UserError) as e:
        config_lib.load(path + ":stpes=3")
    assert str(e.value).startswith(f"config {path}: unknown config variant 'stpes'; ")


def test_config_files_import_only_the_package(tmp_path, monkeypatch):
    """No config needs the checkout on ``sys.path``: every shipped config (and the siblings some
    import by path) loads with the current directory elsewhere and no ``configs`` package
    importable."""
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path
                                      if pathlib.Path(p or ".").resolve() != CONFIGS.parent])
    for name in [m for m in sys.modules if m == "configs" or m.startswith("configs.")]:
        monkeypatch.delitem(sys.modules, name)
    files = sorted(CONFIGS.glob("*/*.py"))
    assert len(files) >= 60
    for file in files:
        config_lib.load(str(file) + ":quick")
    assert "configs" not in sys.modules


def test_smil_regime_variant_is_the_committed_regime_sweep():
    """configs/avmnist_offline/smil.py's ``regime`` builds the experiment whose per-seed results
    experiments/smil/README.md reports ("Figure 4 in SMIL's own data regime"): the committed
    config of that sweep's SMIL point at eta = 20 % (read as ``mmjax eval`` reads a run's, fields
    added since at their defaults), up to the sweep's one seed per run."""
    import dataclasses

    from mmjax import train

    committed = (CONFIGS.parent / "experiments/smil/results/regime_avmnist/smil_eta0.2"
                 / "train.seed-0/config.json")
    recorded = train.config_from_json(train.read_config_json(committed))
    built = _load("avmnist_offline/smil.py", "regime")
    one_seed = dataclasses.replace(built.train, num_seeds=1, seed=recorded.train.seed)
    assert dataclasses.replace(built, train=one_seed) == recorded
    assert (built.data.regime, built.train.steps, built.method.memory_size) == ("smil", 1200, 256)
