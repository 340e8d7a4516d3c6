"""Tests of ``mmjax.config``: the ``--set`` override parser, dict round-trips and config files.

Everything here is pure Python (no JAX compilation), so the whole file runs in well under a second.
"""

import dataclasses
import json
import pathlib

import pytest

from mmjax import config as config_lib
from mmjax.config import ExperimentConfig, MethodConfig
from mmjax.errors import UserError
from mmjax.methods.baselines import AugmentationConfig, LowerBoundConfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"


def _aug_config() -> ExperimentConfig:
    return ExperimentConfig(method=AugmentationConfig())


# ----------------------------------------------------------------------------------------------
# --set
# ----------------------------------------------------------------------------------------------


def test_override_nested_keys_reach_every_section():
    """Dotted keys replace exactly the addressed field, including a MethodConfig subclass field."""
    base = _aug_config()
    new = config_lib.override(base, ["train.steps=200", "method.dropout_p=0.5",
                                     "optim.lr=3e-4"])
    assert new.train.steps == 200
    assert new.method.dropout_p == 0.5
    assert isinstance(new.method, AugmentationConfig)
    assert new.optim.lr == pytest.approx(3e-4)
    # Nothing else changed, and the original is untouched (frozen dataclasses).
    assert dataclasses.replace(new, train=base.train, method=base.method, optim=base.optim) == base
    assert base.train.steps == 3000


@pytest.mark.parametrize("assignment, path, expected", [
    ("train.steps=7", ("train", "steps"), 7),
    ("optim.lr=1", ("optim", "lr"), 1.0),  # an int literal is accepted for a float field
    ("optim.lr=0.25", ("optim", "lr"), 0.25),
    ("missing.exact=false", ("missing", "exact"), False),
    ("train.distributed=true", ("train", "distributed"), True),
    ("train.distributed=True", ("train", "distributed"), True),  # Python's spelling as well
    ("missing.exact=False", ("missing", "exact"), False),
    ("data.name=mfeat", ("data", "name"), "mfeat"),
    ("data.name=123", ("data", "name"), "123"),  # a str field keeps the text as typed
    ("missing.rates=[0.1, 0.5]", ("missing", "rates"), (0.1, 0.5)),
    ("missing.rates=0.1,0.5,1", ("missing", "rates"), (0.1, 0.5, 1.0)),
    ("missing.rates=0.3", ("missing", "rates"), (0.3,)),
    ("missing.rates=[]", ("missing", "rates"), ()),
    ("data.views=fac,pix", ("data", "views"), ("fac", "pix")),
    ("data.views=fac", ("data", "views"), ("fac",)),
    ("data.views=fac,123", ("data", "views"), ("fac", "123")),  # each element keeps its own text
    ("data.views=", ("data", "views"), ()),
    ("data.snr_db=-5,15", ("data", "snr_db"), (-5.0, 15.0)),
    ("data.snr_db=[0, 10.5]", ("data", "snr_db"), (0.0, 10.5)),
])
def test_override_coerces_to_declared_type(assignment, path, expected):
    """Values are parsed and coerced to the field's type: exact value *and* exact Python type."""
    value = config_lib.override(ExperimentConfig(), [assignment])
    for name in path:
        value = getattr(value, name)
    assert value == expected
    assert type(value) is type(expected)
    if isinstance(value, tuple):
        assert [type(v) for v in value] == [type(v) for v in expected]


def test_unknown_key_names_the_valid_keys():
    """A typo fails with a UserError listing the fields of the section it was looked up in."""
    with pytest.raises(UserError) as e:
        config_lib.override(ExperimentConfig(), ["train.stpes=5"])
    message = str(e.value)
    assert "train.stpes" in message
    for field in ("steps", "batch_size", "steps_per_call", "checkpoint_every"):
        assert field in message
    assert "\n" not in message

    with pytest.raises(UserError) as e:
        config_lib.override(ExperimentConfig(), ["trian.steps=5"])
    for section in ("data", "missing", "model", "method", "optim", "train", "eval"):
        assert section in str(e.value)

    # A method's own knobs are only valid for that method's config class.
    with pytest.raises(UserError, match="dropout_p"):
        config_lib.override(ExperimentConfig(method=MethodConfig()), ["method.dropout_p=0.5"])


@pytest.mark.parametrize("assignment", [
    "train.steps=abc",
    "train.steps=1.5",
    "train.steps=true",  # bool is not an int here
    "optim.lr=fast",
    "optim.lr=true",
    "missing.exact=1",  # only true/false for bools
    "missing.exact=yes",
    "missing.rates=0.1,abc",
    "data.snr_db=1,2,3",  # fixed-length tuple
    "data.snr_db=5",
])
def test_wrong_type_is_a_user_error(assignment):
    """A value that does not fit the field's type is rejected with the key and the value."""
    key, _, raw = assignment.partition("=")
    with pytest.raises(UserError) as e:
        config_lib.override(ExperimentConfig(), [assignment])
    assert key in str(e.value)
    assert raw in str(e.value)


@pytest.mark.parametrize("assignment, match", [
    ("train.steps", "key=value"),
    ("=5", "key=value"),
    ("train=5", "section"),
    ("train.steps.x=5", "not a section"),
])
def test_malformed_assignments_are_user_errors(assignment, match):
    """Missing '=', an empty key, assigning a whole section or indexing into a leaf all fail."""
    with pytest.raises(UserError, match=match):
        config_lib.override(ExperimentConfig(), [assignment])


def test_later_override_wins():
    """Repeated --set of one key: the last one applies (argparse order)."""
    config = config_lib.override(ExperimentConfig(), ["train.steps=5", "train.steps=9"])
    assert config.train.steps == 9


# ----------------------------------------------------------------------------------------------
# to_dict / from_dict
# ----------------------------------------------------------------------------------------------


def test_dict_round_trip_through_json_keeps_method_subclass():
    """to_dict -> JSON -> from_dict gives an equal config, tuples and method subclass included."""
    config = config_lib.override(_aug_config(), [
        "method.dropout_p=0.4", "data.views=fac,pix", "missing.protocol=independent",
        "missing.rates=0.1,0.2", "data.snr_db=1,2", "train.num_seeds=3"])
    raw = json.loads(json.dumps(config_lib.to_dict(config)))
    assert raw["method"] == {"name": "augmentation", "dropout_p": 0.4}
    rebuilt = config_lib.from_dict(ExperimentConfig, raw, AugmentationConfig)
    assert rebuilt == config
    assert type(rebuilt.method) is AugmentationConfig
    assert type(rebuilt.data.views) is tuple and type(rebuilt.missing.rates) is tuple

    lower = ExperimentConfig(method=LowerBoundConfig(modality="pix"))
    raw = json.loads(json.dumps(config_lib.to_dict(lower)))
    assert config_lib.from_dict(ExperimentConfig, raw, LowerBoundConfig) == lower


def test_from_dict_rejects_unknown_and_mistyped_keys():
    """A config.json edited by hand with a typo or a wrong type does not load silently."""
    raw = config_lib.to_dict(_aug_config())
    with pytest.raises(UserError, match="unknown config keys"):
        config_lib.from_dict(ExperimentConfig, {**raw, "trian": {}}, AugmentationConfig)
    bad = json.loads(json.dumps(raw))
    bad["train"]["steps"] = "many"
    with pytest.raises(UserError, match="steps"):
        config_lib.from_dict(ExperimentConfig, bad, AugmentationConfig)
    bad = json.loads(json.dumps(raw))
    bad["method"]["dropout"] = 0.1
    with pytest.raises(UserError, match="dropout"):
        config_lib.from_dict(ExperimentConfig, bad, AugmentationConfig)


# ----------------------------------------------------------------------------------------------
# Config files
# ----------------------------------------------------------------------------------------------


def test_load_config_file_and_quick_variant():
    """``PATH`` gives the full run, ``PATH:quick`` the smoke variant; the method class is kept."""
    full = config_lib.load(str(CONFIGS / "mfeat" / "augmentation.py"))
    quick = config_lib.load(str(CONFIGS / "mfeat" / "augmentation.py") + ":quick")
    assert full.data.name == quick.data.name == "mfeat"
    assert type(full.method) is type(quick.method) is AugmentationConfig
    assert full.method.dropout_p == 0.3
    assert (full.train.steps, full.train.num_seeds) == (1000, 3)
    assert (quick.train.steps, quick.train.num_seeds) == (100, 1)
    # Only the train section differs between the variants.
    assert dataclasses.replace(quick, train=full.train) == full


def test_variants_compose_and_released_is_per_config(tmp_path):
    """``a+b`` applies both variants left to right; ``released`` exists only where a config defines
    it. The toy config lives outside the checkout and imports only the installed package."""
    (tmp_path / "toy.py").write_text(
        "import dataclasses\n"
        "from mmjax.presets import experiment\n"
        "from mmjax.methods.baselines import AugmentationConfig\n"
        "def released(c):\n"
        "    train = dataclasses.replace(c.train, steps=c.train.steps + 1)\n"
        "    method = dataclasses.replace(c.method, dropout_p=0.9)\n"
        "    return dataclasses.replace(c, method=method, train=train)\n"
        "def get_config(arg=None):\n"
        "    return experiment('mfeat', AugmentationConfig(), arg, released=released)\n")
    both = config_lib.load(f"{tmp_path / 'toy.py'}:released+quick")
    assert (both.method.dropout_p, both.train.steps, both.train.num_seeds) == (0.9, 100, 1)
    # Left to right: released after quick sees quick's 100 steps.
    other = config_lib.load(f"{tmp_path / 'toy.py'}:quick+released")
    assert (other.method.dropout_p, other.train.steps) == (0.9, 101)
    with pytest.raises(UserError, match="this config takes: quick, steps=N, seeds=N, "):
        config_lib.load(str(CONFIGS / "mfeat" / "concat.py") + ":released")


def test_every_shipped_config_loads(tmp_path):
    """Every configs/<dataset>/<method>.py loads, in both variants, with a registered method."""
    from mmjax import methods

    files = sorted(CONFIGS.glob("*/*.py"))
    assert len(files) >= 14
    for file in files:
        for spec in (str(file), f"{file}:quick"):
            config = config_lib.load(spec)
            assert config.data.name == file.parent.name
            assert type(config.method) is methods.entry(config.method.name).config_class


def test_load_errors_are_user_errors(tmp_path):
    """Unknown variant, missing file, a file without get_config, a file that fails to import."""
    with pytest.raises(UserError, match="unknown config variant 'nope'"):
        config_lib.load(str(CONFIGS / "mfeat" / "concat.py") + ":nope")
    with pytest.raises(UserError, match="config file not found"):
        config_lib.load(str(tmp_path / "absent.py"))
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(UserError, match="get_config"):
        config_lib.load(str(tmp_path / "empty.py"))
    (tmp_path / "broken.py").write_text("import no_such_module_xyz\n")
    with pytest.raises(UserError, match="failed to import: ModuleNotFoundError"):
        config_lib.load(str(tmp_path / "broken.py"))
    (tmp_path / "wrong.py").write_text("def get_config(arg):\n    return {}\n")
    with pytest.raises(UserError, match="must return an ExperimentConfig"):
        config_lib.load(str(tmp_path / "wrong.py"))
