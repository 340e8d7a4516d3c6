"""Field documentation and ``mmjax config show``: every field of every config class is documented
once, in its class's ``Attributes:`` section, and ``config show`` prints the resolved config with
those docs, types, ranges and the defaults it departs from.
"""

import dataclasses
import json
import pathlib
import typing

import pytest

from mmjax import config as config_lib
from mmjax import methods
from mmjax.config import ExperimentConfig, frozen
from mmjax.errors import UserError

from toy import run_cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
SMIL = str(ROOT / "configs" / "mfeat" / "smil.py")


def _config_classes():
    sections = {typing.get_type_hints(ExperimentConfig)[f.name]
                for f in dataclasses.fields(ExperimentConfig)}
    return sorted(sections | {e.config_class for e in methods.REGISTRY.values()},
                  key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", _config_classes(), ids=lambda c: c.__name__)
def test_every_field_is_documented_once_and_every_doc_is_a_field(cls):
    """The ``Attributes:`` sections (the class's and its bases') name exactly the fields."""
    docs = config_lib.field_docs(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    assert set(docs) == names
    assert all(docs[n].strip() for n in names)


def test_field_docs_parse_entries_continuations_and_shared_entries():
    """``name: text`` with indented continuation lines, ``a, b: text`` for two fields, a
    subclass entry winning over its base's, and the section ending at the next heading."""

    @frozen
    class Base:
        """Base.

        Attributes:
          x: the base's x.
          y, z: two fields
            documented together.

        Note:
          w: not a field doc.
        """

        x: int = 0
        y: int = 0
        z: int = 0

    @frozen
    class Child(Base):
        """Child.

        Attributes:
          x: the child's x, which
            wins.
        """

    assert config_lib.field_docs(Base) == {"x": "the base's x.",
                                           "y": "two fields documented together.",
                                           "z": "two fields documented together."}
    assert config_lib.field_docs(Child)["x"] == "the child's x, which wins."


def test_show_prints_values_types_defaults_and_docs():
    """Every field of every section appears once as ``key = JSON value (type...)`` followed by
    its doc; a value away from its class default names the default."""
    config = config_lib.override(config_lib.load(SMIL + ":quick"), ["method.inner_lr=0.01"])
    text = config_lib.show(config)
    lines = text.splitlines()
    keys = [line.split(" = ")[0] for line in lines if " = " in line and not line.startswith(" ")]
    expected = [f"{s.name}.{f.name}" for s in dataclasses.fields(config)
                for f in dataclasses.fields(getattr(config, s.name))]
    assert keys == expected
    assert "[method] SmilConfig: SMIL's hyper-parameters" in text
    i = lines.index('method.inner_lr = 0.01  (float; default 0.001)')
    assert lines[i + 1].strip() == config_lib.field_docs(type(config.method))["inner_lr"]
    assert 'data.views = ["fou", "kar"]  (tuple[str, ...]; default [])' in lines
    assert 'method.reconstruction = "paper"  (one of paper, released, direct)' in lines
    assert "optim.lr = 0.001  (float > 0)" in lines
    assert "train.steps = 100  (int > 0; default 3000)" in lines
    # Each value is the JSON that --set and config.json take back.
    value = next(line for line in lines if line.startswith("missing.paired_fraction = "))
    assert json.loads(value.split(" = ")[1].split("  (")[0]) == config.missing.paired_fraction


def test_cli_config_show(capsys):
    """``mmjax config show PATH:variant --set ...`` prints the config train would run; a bad
    key is one error line, exit 2."""
    code, out, err = run_cli(capsys, ["config", "show", SMIL + ":quick+released",
                                      "--set", "train.steps=120"])
    assert code == 0, err
    assert out.splitlines()[0] == f"# {SMIL}:quick+released --set train.steps=120"
    expected = config_lib.override(config_lib.load(SMIL + ":quick+released"), ["train.steps=120"])
    assert out.split("\n", 1)[1] == config_lib.show(expected)
    assert 'method.reconstruction = "released"' in out  # the released variant was applied
    code, out, err = run_cli(capsys, ["config", "show", SMIL, "--set", "method.nope=1"])
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "unknown config key 'method.nope'" in err
    with pytest.raises(UserError, match="config file not found"):
        config_lib.load(str(ROOT / "configs" / "nope.py"))
