"""Declared switches: every string switch of the config classes is a ``typing.Literal`` field that
the config layer itself checks (``mmjax.config.check_switches``), from a config file, ``--set``,
``config.json`` or code, in one line naming the valid values; no method checks its own.

Pure Python (no JAX compilation) but for the two CLI cases, which stop before training.
"""

import dataclasses
import json
import pathlib
import typing

import pytest

from mmjax import config as config_lib
from mmjax import methods
from mmjax.config import ExperimentConfig, OptimConfig, TrainConfig
from mmjax.errors import UserError
from mmjax.methods.mla import MlaConfig
from mmjax.methods.redcore import RedCoreConfig
from mmjax.methods.redcore_projection import PROJECTIONS

from toy import run_cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONCAT = str(ROOT / "configs" / "mfeat" / "concat.py") + ":quick"
MLA = str(ROOT / "configs" / "mfeat" / "mla.py") + ":quick"


def _switch_classes():
    """Every config class: the sections and each registered method's class."""
    classes = {typing.get_type_hints(ExperimentConfig)[f.name]
               for f in dataclasses.fields(ExperimentConfig)}
    return sorted(classes | {e.config_class for e in methods.REGISTRY.values()},
                  key=lambda c: c.__name__)


def _switches():
    """(class, field, its values) of every Literal switch of every config class."""
    out = []
    for cls in _switch_classes():
        for f in dataclasses.fields(cls):
            values = config_lib.field_choices(cls, f.name)
            if values:
                out.append((cls, f.name, values))
    return out


def _prefix(cls) -> str:
    return "method." if issubclass(cls, config_lib.MethodConfig) else {
        typing.get_type_hints(ExperimentConfig)[n]: n + "." for n in
        (f.name for f in dataclasses.fields(ExperimentConfig))}[cls]


def test_the_switches_are_declared():
    """The switches the issue names are Literal fields with their values (a sample per layer)."""
    assert config_lib.field_choices(TrainConfig, "dtype") == ("float32", "bfloat16")
    assert config_lib.field_choices(TrainConfig, "vmap_seeds") == ("auto",)  # bool | "auto"
    assert config_lib.field_choices(OptimConfig, "schedule") == ("constant", "cosine", "step")
    assert config_lib.field_choices(MlaConfig, "fusion") == ("dynamic", "average", "fixed")
    # RedCore's projection switch names exactly the projection rules that exist.
    assert config_lib.field_choices(RedCoreConfig, "projection") == tuple(PROJECTIONS)
    # Every switch a method used to check by hand ("must be one of ...") is now declared.
    declared = {(c.__name__, n) for c, n, _ in _switches()}
    assert {("MlaConfig", "head_projection"), ("MlaConfig", "entropy"),
            ("MminConfig", "head_input"), ("OgmGeConfig", "modulate"),
            ("QmfConfig", "history_norm"), ("RamlConfig", "weighting"), ("RamlConfig", "augment"),
            ("RamlConfig", "unimodal_loss"), ("MissingDetectionConfig", "dropout_mode"),
            ("UmeMmaConfig", "dropout_mode"), ("OptimConfig", "name"),
            ("MissingConfig", "protocol"), ("DataConfig", "mfcc_variant"),
            ("DataConfig", "label_view")} <= declared
    assert {n for c, n, _ in _switches() if c is RedCoreConfig} == {
        "gamma_on", "projection", "alpha_schedule", "test_latent", "eta_init", "mal_init",
        "missing_latent", "transformer"}
    assert {n for c, n, _ in _switches() if c.__name__ == "SmilConfig"} == {
        "priors", "reconstruction", "regularization", "reg_sigma", "outer_loss",
        "meta_optimizer"}


@pytest.mark.parametrize("cls, name, values", _switches(),
                         ids=[f"{c.__name__}.{n}" for c, n, _ in _switches()])
def test_every_value_of_every_switch_builds_and_no_other(cls, name, values):
    """Each listed value builds the class; any other is refused when the object is built, in one
    line naming the field and every valid value."""
    base = cls()
    for value in values:
        assert getattr(dataclasses.replace(base, **{name: value}), name) == value
    with pytest.raises(UserError) as e:
        dataclasses.replace(base, **{name: "no_such_value"})
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{_prefix(cls)}{name} must be ")
    assert message.endswith("got 'no_such_value'")
    for value in values:
        assert str(value) in message


def test_bad_switch_via_set_is_one_line_with_the_values():
    """``--set method.fusion=bogus``: the parser names the key and every valid value."""
    config = ExperimentConfig(method=MlaConfig())
    with pytest.raises(UserError) as e:
        config_lib.override(config, ["method.fusion=bogus"])
    assert str(e.value) == ("config key 'method.fusion' expects one of dynamic, average, fixed; "
                            "got 'bogus'")
    with pytest.raises(UserError, match=r"^config key 'train.vmap_seeds' expects bool or 'auto'; "
                                        r"got 'maybe'$"):
        config_lib.override(config, ["train.vmap_seeds=maybe"])
    # Valid spellings, including a union's bool and its literal.
    good = config_lib.override(config, ["method.fusion=fixed", "train.vmap_seeds=false",
                                        "train.unroll=auto", "data.label_view=2class"])
    assert (good.method.fusion, good.train.vmap_seeds, good.train.unroll,
            good.data.label_view) == ("fixed", False, "auto", "2class")


def test_bad_switch_in_a_config_file_is_one_line_with_the_values(tmp_path):
    """A config file building ``OptimConfig(schedule="linear")``: refused with the file, the field
    and the valid values (whether the file builds it at import or in get_config)."""
    body = ("from mmjax.config import ExperimentConfig, OptimConfig\n"
            "{at_import}\n"
            "def get_config(arg=None):\n"
            "    return ExperimentConfig(optim={optim})\n")
    for name, at_import, optim in (("in_call.py", "", 'OptimConfig(schedule="linear")'),
                                   ("at_import.py", 'OPTIM = OptimConfig(schedule="linear")',
                                    "OPTIM")):
        path = tmp_path / name
        path.write_text(body.format(at_import=at_import, optim=optim))
        with pytest.raises(UserError) as e:
            config_lib.load(str(path))
        assert str(e.value) == (f"config {path}: optim.schedule must be one of constant, cosine, "
                                "step; got 'linear'")


def test_bad_switch_in_config_json_is_refused():
    """A hand-edited ``config.json`` with an unknown switch value does not load."""
    raw = json.loads(json.dumps(config_lib.to_dict(ExperimentConfig(method=MlaConfig()))))
    raw["method"]["entropy"] = "per_token"
    with pytest.raises(UserError, match="'entropy' expects one of per_sample, per_batch; "
                                        "got 'per_token'"):
        config_lib.from_dict(ExperimentConfig, raw, MlaConfig)


@pytest.mark.parametrize("source", ["set", "file"])
def test_cli_bad_switch_exits_2_in_one_line(capsys, tmp_path, source):
    """``mmjax train`` with a bad switch from ``--set`` or from a config file: exit 2, one line
    naming the valid values, no workdir."""
    workdir = tmp_path / "run"
    if source == "set":
        args = ["--config", MLA, "--set", "method.head_projection=linear"]
        expected = ("mmjax: error: config key 'method.head_projection' expects one of paper, "
                    "none; got 'linear'")
    else:
        path = tmp_path / "bad.py"
        path.write_text("from mmjax.config import ExperimentConfig, MissingConfig\n"
                        "def get_config(arg=None):\n"
                        "    return ExperimentConfig(missing=MissingConfig(protocol='random'))\n")
        args = ["--config", str(path)]
        expected = (f"mmjax: error: config {path}: missing.protocol must be one of none, "
                    "independent, at_least_one, paired; got 'random'")
    code, out, err = run_cli(capsys, ["train", *args, "--workdir", str(workdir)])
    assert (code, out, err.strip()) == (2, "", expected)
    assert not workdir.exists()


def test_methods_make_refuses_a_bad_switch_before_building():
    """The API path: a config object cannot even hold a bad switch, so ``methods.make`` never
    sees one (the check that each method used to write is the config layer's)."""
    with pytest.raises(UserError, match="method.modulate must be one of weights, conv"):
        methods.entry("ogm_ge").config_class(modulate="grads")
