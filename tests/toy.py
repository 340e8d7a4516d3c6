"""Shared by the tests: a three-modality toy dataset spec, random complete batches, and the CLI
run in-process.

Imported as ``from toy import TOY_SPEC, random_batch, run_cli`` (pytest puts tests/ on the path).
"""

import jax
import jax.numpy as jnp

from mmjax import cli
from mmjax.data.base import DatasetSpec

TOY_SPEC = DatasetSpec("toy", ("a", "b", "c"), ((5,), (3,), (4,)), "classification", 3)


def random_batch(key, spec=TOY_SPEC, n=8):
    """``n`` complete samples of ``spec``: standard-normal inputs, uniform labels."""
    keys = jax.random.split(key, len(spec.modalities) + 1)
    inputs = {m: jax.random.normal(k, (n, *s)) for m, s, k in zip(spec.modalities, spec.shapes,
                                                                   keys)}
    return {"inputs": inputs, "present": jnp.ones((n, spec.num_modalities), bool),
            "label": jax.random.randint(keys[-1], (n,), 0, spec.num_classes)}


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``mmjax.cli.main(argv)`` -> (exit code, stdout, stderr); argparse exits become codes."""
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err
