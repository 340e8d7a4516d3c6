"""The dataset registry (``mmjax.data.registry``): every entry is complete and consistent, and every
dataset's options round-trip through ``--set data.<option>=``, ``mmjax data info`` and
``mmjax data build``.

The embedded datasets (avmnist_offline, small; mfeat) are built with every option away from its
default; the papers' datasets need files these machines do not have, so for them the options are
accepted by the config layer and the command stops at the one-line "prepare it first" error.
"""

import dataclasses
import importlib.util
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
    "num_valid": ("100", 100),
    "label_view": ("2class", "2class"),
    "fold": ("2", 2),
}


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
    sets = {"views": _views(e), **{k: OTHER_VALUE[k] for k in e.options[1:]}}
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
    expected = {k: value for k, (_, value) in sets.items()}
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


def test_empty_encoders_come_from_the_entry_after_views():
    """An empty ``model.encoders`` is filled from the entry for the modalities in use (in the
    views' order); named encoders and unregistered datasets are left alone."""
    spec = registry.entry("avmnist_offline").bench["avmnist_offline"].spec
    config = ExperimentConfig()
    assert train.with_dataset_encoders(config, spec).model.encoders == ("lenet5", "sound_cnn")
    swapped = dataclasses.replace(spec, modalities=("audio", "image"),
                                  shapes=spec.shapes[::-1], time_axes=spec.time_axes[::-1])
    assert train.with_dataset_encoders(config, swapped).model.encoders == ("sound_cnn", "lenet5")
    named = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                  encoders=("mlp", "mlp")))
    assert train.with_dataset_encoders(named, spec) is named
    features = registry.bench_shapes()["features512"].spec  # a name the registry does not know
    assert train.with_dataset_encoders(config, features) is config


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
    """``configs/common.py`` starts each experiment from its dataset entry's model and train
    sections, and refuses a dataset whose entry declares none."""
    spec = importlib.util.spec_from_file_location("_common", ROOT / "configs" / "common.py")
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    declared = [n for n in mmjax.data.NAMES if registry.entry(n).train is not None]
    assert declared == ["avmnist_offline", "mfeat", "multibench_avmnist", "smil_avmnist", "mmimdb"]
    for name in declared:
        config = common.experiment(name, MethodConfig(), None)
        e = registry.entry(name)
        assert (config.data.name, config.model, config.train) == (name, e.model, e.train)
    assert common.experiment("mfeat", MethodConfig(), "quick").train.steps == 100
    with pytest.raises(mmjax.errors.UserError, match="iemocap declares no shared model/train"):
        common.experiment("iemocap", MethodConfig(), None)
