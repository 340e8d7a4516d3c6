"""The dataset registry (``mmjax.data.registry``): every entry is complete and consistent, and every
dataset's options round-trip through ``--set data.<option>=``, ``mmjax data info`` and
``mmjax data build``.

The embedded datasets (avmnist_offline, small; mfeat) are built with every option away from its
default; the papers' datasets need files these machines do not have, so for them the options are
accepted by the config layer and the command stops at the one-line "prepare it first" error.
"""

import dataclasses
import json
import pathlib

import pytest

import mmjax.data
import mmjax.errors
from mmjax import config as config_lib
from mmjax import train
from mmjax.config import DataConfig, ExperimentConfig, MethodConfig
from mmjax.data import registry
from mmjax.data.base import TASKS

from toy import run_cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
EMBEDDED = ("avmnist_offline", "mfeat")  # datasets mmjax builds itself (no user files)
ENCODERS = ("mlp", "fc", "lenet5", "sound_cnn", "spec_lenet", "transformer", "lstm_maxpool",
            "textcnn", "mean_mlp3", "lstm_last")

# A valid value away from the default of every DataConfig option, as --set text and as the value
# the loader must receive. A new option fails test_every_option_has_a_test_value until it has one.
OTHER_VALUE = {
    "seed": ("1", 1),
    "snr_db": ("0,20", (0.0, 20.0)),
    "image_pca_energy": ("0.5", 0.5),
    "n_per_class": ("10", 10),
    "per_class_num": ("15", 15),
    "mfcc_variant": ("smil", "smil"),
    "regime": ("smil", "smil"),
    "num_valid": ("100", 100),
    "label_view": ("2class", "2class"),
    "fold": ("2", 2),
}


# Options whose test value needs the full build (regime=smil takes 105 training images per digit,
# more than a 10-per-class build has): test_smil_regime_through_set_and_info covers them.
NEEDS_FULL_BUILD = ("regime",)


def _views(entry) -> tuple[str, tuple[str, ...]]:
    """A ``views`` value away from the default (the last modality, then the first)."""
    views = (entry.modalities[-1], entry.modalities[0])
    return ",".join(views), views


def test_every_option_has_a_test_value():
    fields = {f.name for f in dataclasses.fields(DataConfig)} - {"name", "views"}
    assert fields == set(OTHER_VALUE)
    for name in mmjax.data.NAMES:
        assert set(registry.entry(name).options) <= fields | {"views"}


@pytest.mark.parametrize("name", mmjax.data.NAMES)
def test_entry_is_complete(name):
    """Each entry: its own name, modalities with one known encoder each, a task, headline metrics,
    options starting with views and seed, build options among its options, the how line, and a
    config section for each default it declares."""
    e = registry.entry(name)
    assert e.name == name and e.modalities and len(set(e.modalities)) == len(e.modalities)
    assert list(e.encoders) == list(e.modalities) and set(e.encoders.values()) <= set(ENCODERS)
    assert e.task in TASKS and e.metrics
    assert e.options[:2] == ("views", "seed") and set(e.build_options) <= set(e.options)
    assert e.how.startswith("  how: ")
    assert e.model is None or isinstance(e.model, config_lib.ModelConfig)
    assert e.train is None or isinstance(e.train, config_lib.TrainConfig)
    assert (e.prepare is None) == (name in EMBEDDED)
    assert mmjax.data.options(name) == {k: getattr(DataConfig(), k) for k in e.options}


@pytest.mark.parametrize("name", mmjax.data.NAMES)
def test_options_round_trip_through_set(name):
    """``--set data.<option>=TEXT`` for each of the dataset's options gives the loader that value;
    an option of another dataset is refused, naming the datasets that take it."""
    e = registry.entry(name)
    sets = {"views": _views(e), **{k: OTHER_VALUE[k] for k in e.options[1:]}}
    config = config_lib.override(ExperimentConfig(), [f"data.name={name}"] + [
        f"data.{k}={text}" for k, (text, _) in sets.items()])
    assert train.dataset_options(config) == {k: value for k, (_, value) in sets.items()}
    foreign = next(k for k in OTHER_VALUE if k not in e.options)
    config = config_lib.override(ExperimentConfig(), [f"data.name={name}",
                                                      f"data.{foreign}={OTHER_VALUE[foreign][0]}"])
    owners = [n for n in mmjax.data.NAMES if foreign in registry.entry(n).options]
    with pytest.raises(mmjax.errors.UserError,
                       match=f"data.{foreign} only applies to {', '.join(owners)}, not {name}"):
        train.dataset_options(config)


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_datasets_build_and_describe_every_option(capsys, monkeypatch, tmp_path, name):
    """``mmjax data build|info NAME`` with every option set away from its default (in an empty data
    dir: avmnist_offline at 10 images per class): build prints the path, info the modalities
    chosen by ``views``, with the right sequence note, and echoes every option."""
    monkeypatch.setenv("MMJAX_DATA_DIR", str(tmp_path))
    e = registry.entry(name)
    sets = {"views": _views(e), **{k: OTHER_VALUE[k] for k in e.options[1:]
                                   if k not in NEEDS_FULL_BUILD}}
    args = [a for k, (text, _) in sets.items() for a in ("--set", f"data.{k}={text}")]
    code, out, err = run_cli(capsys, ["data", "build", name, *args])
    assert code == 0, err
    where = out.strip()
    assert pathlib.Path(where).exists()
    code, out, err = run_cli(capsys, ["data", "info", name, *args])
    assert code == 0, err
    lines = out.splitlines()
    modality_lines = [line for line in lines if line.startswith("  modality")]
    assert [line.split()[1] for line in modality_lines] == list(sets["views"][1])
    assert f"  cached at {where}" in lines and e.how in lines
    expected = {**mmjax.data.options(name), **{k: value for k, (_, value) in sets.items()}}
    assert f"  options: {expected}" in out
    if name == "avmnist_offline":
        # The MFCC map has a time axis (2, counting the batch) but no lengths: it is not padded.
        audio = next(line for line in modality_lines if line.split()[1] == "audio")
        assert audio.endswith("float32 [20, 20, 1] (time axis 2)")
        build = json.loads((pathlib.Path(where).parent / "build.json").read_text())
        assert build["params"] == {"seed": 1, "snr_db": [0.0, 20.0], "n_per_class": 10,
                                   "mfcc_variant": "smil"}
        assert "  train    70 samples" in out  # 70 % of 10 per class
    else:
        assert all("time axis" not in line for line in modality_lines)


def test_smil_regime_through_set_and_info(capsys):
    """``--set data.regime=smil`` reaches the loader: SMIL's avMNIST sizes per digit (105 / 45 /
    45) from the default build; a build too small for it is one error line."""
    code, out, err = run_cli(capsys, ["data", "info", "avmnist_offline",
                                      "--set", "data.regime=smil"])
    assert code == 0, err
    for split, per_class in (("train", 105), ("val", 45), ("test", 45)):
        assert f"  {split:<5s} {10 * per_class:5d} samples, per class {[per_class] * 10}" in out
    assert "'regime': 'smil'" in out
    code, out, err = run_cli(capsys, ["data", "info", "avmnist_offline", "--set",
                                      "data.regime=smil", "--set", "data.n_per_class=10"])
    assert code == 2 and err.count("\n") == 1
    assert "regime=smil takes 105 train samples per digit; n_per_class=10 gives 7" in err
    code, out, err = run_cli(capsys, ["data", "info", "avmnist_offline",
                                      "--set", "data.regime=paper"])
    assert code == 2 and "data.regime" in err and "mmjax, smil" in err


@pytest.mark.parametrize("name", [n for n in mmjax.data.NAMES if n not in EMBEDDED])
def test_paper_datasets_accept_their_options_then_ask_for_the_files(capsys, data_dir, name):
    """Without the user's files, ``data info`` and ``data build`` with every option set accept the
    options and end on one line giving the ``mmjax data prepare`` command."""
    e = registry.entry(name)
    sets = {"views": _views(e), **{k: OTHER_VALUE[k] for k in e.options[1:]}}
    args = [a for k, (text, _) in sets.items() for a in ("--set", f"data.{k}={text}")]
    for action in ("info", "build"):
        code, out, err = run_cli(capsys, ["data", action, name, *args])
        assert code == 2 and not out
        lines = err.splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        assert f"mmjax data prepare {name}" in lines[0]


def test_headline_metrics_follow_the_task():
    available = ("accuracy", "macro_recall", "weighted_f1", "macro_f1")
    assert registry.headline_metrics("mfeat", available) == ("accuracy", "weighted_f1",
                                                               "macro_f1")
    assert registry.headline_metrics("mmimdb", ("f1_micro", "f1_macro", "f1_samples")) == (
        "f1_micro", "f1_macro")
    # CMU-MOSI's regression view, then a classification view (data.label_view=2class).
    assert registry.headline_metrics("mmsa_mosi", ("mae", "corr", "acc2", "f1")) == (
        "mae", "corr", "acc2")
    assert registry.headline_metrics("mmsa_mosi", available) == ("accuracy", "weighted_f1",
                                                                  "macro_f1")
    assert registry.headline_metrics("my_arrays", ("loss", "accuracy")) == ("accuracy",)
    assert registry.headline_metrics("my_arrays", ("loss",)) == ("loss",)


def test_shared_config_defaults_come_from_the_entries():
    """``mmjax.presets.experiment`` (what config files build on) starts each experiment from its
    dataset entry's model and train sections, and refuses a dataset whose entry declares none."""
    from mmjax import presets

    declared = [n for n in mmjax.data.NAMES if registry.entry(n).train is not None]
    assert declared == ["avmnist_offline", "mfeat", "multibench_avmnist", "smil_avmnist", "mmimdb",
                        "iemocap", "msp_improv"]
    for name in declared:
        config = presets.experiment(name, MethodConfig())
        e = registry.entry(name)
        assert (config.data.name, config.model, config.train) == (name, e.model, e.train)
    assert presets.experiment("mfeat", MethodConfig(), "quick").train.steps == 100
    with pytest.raises(mmjax.errors.UserError, match="mmsa_mosi declares no shared model/train"):
        presets.experiment("mmsa_mosi", MethodConfig())


def _imported_modules(path: pathlib.Path) -> set[str]:
    """Every module a file imports (``import a.b``; ``from a import b`` as ``a`` and ``a.b``)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_no_data_module_imports_a_dataset_module_but_its_own():
    """Generic helpers live in generic modules: no module under mmjax/data/ imports a registered
    dataset's module (tfds_builders used to import avmnist_offline and mfeat, which import it)."""
    dataset_modules = set(registry.REGISTRY.values())
    for path in sorted((ROOT / "mmjax" / "data").glob("*.py")):
        own = f"mmjax.data.{path.stem}"
        assert not (_imported_modules(path) & dataset_modules) - {own}, path.name


def test_encoders_come_from_the_entry_never_from_input_shapes():
    """An empty ``model.encoders``: the entry's encoders for a registered dataset (in the spec's
    modality order); ``mlp`` everywhere for an unregistered one, whatever its shapes."""
    from mmjax.config import ModelConfig
    from mmjax.models.encoders import encoder_names

    spec = registry.entry("avmnist_offline").bench["avmnist_offline"].spec
    assert encoder_names(spec, ModelConfig()) == ("lenet5", "sound_cnn")
    audio_first = dataclasses.replace(spec, modalities=("audio", "image"),
                                      shapes=spec.shapes[::-1], time_axes=spec.time_axes[::-1])
    assert encoder_names(audio_first, ModelConfig()) == ("sound_cnn", "lenet5")
    same_shapes = dataclasses.replace(spec, name="my_arrays")
    assert encoder_names(same_shapes, ModelConfig()) == ("mlp", "mlp")
    assert encoder_names(spec, ModelConfig(encoders=("mlp", "fc"))) == ("mlp", "fc")
    with pytest.raises(mmjax.errors.UserError, match="names 1 encoders for 2 modalities"):
        encoder_names(spec, ModelConfig(encoders=("mlp",)))


def test_register_adds_a_dataset_as_a_registry_line_does(monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", dict(registry.REGISTRY))
    registry.register("mfeat_again", "mmjax.data.mfeat")
    registry.register("mfeat_again", "mmjax.data.mfeat")  # the same line twice: no change
    assert mmjax.data.NAMES[-1] == registry.NAMES[-1] == "mfeat_again"
    with pytest.raises(mmjax.errors.UserError, match="already registered \\(to mmjax.data.mfeat"):
        registry.register("mfeat_again", "mmjax.data.avmnist_offline")
    with pytest.raises(RuntimeError, match="declares 'mfeat', not 'mfeat_again'"):
        registry.entry("mfeat_again")  # the module's ENTRY must carry the registered name


def test_register_adds_a_method_as_a_registry_line_does(monkeypatch):
    from mmjax import methods
    from mmjax.config import frozen

    @frozen
    class MineConfig(MethodConfig):
        name: str = "mine"

    monkeypatch.setattr(methods, "REGISTRY", dict(methods.REGISTRY))
    make = methods.entry("concat").make
    methods.register("mine", MineConfig, make)
    methods.register("mine", MineConfig, make)
    assert methods.entry("mine") == methods.Entry(MineConfig, make)
    with pytest.raises(mmjax.errors.UserError, match="'concat' is already registered"):
        methods.register("concat", MineConfig, make)
    with pytest.raises(mmjax.errors.UserError, match="default name is 'mine'; declare name"):
        methods.register("other", MineConfig, make)
    with pytest.raises(mmjax.errors.UserError, match="must subclass MethodConfig"):
        methods.register("plain", dict, make)
