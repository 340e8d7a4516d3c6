"""Concat (intermediate) fusion: masked encoder features concatenated, MLP head,
on MultiBench's AV-MNIST.

MultiBench's AV-MNIST: 55,000 / 5,000 / 10,000 pairs; prepare it once with
  mmjax data prepare multibench_avmnist --from FOLDER

Command:
  mmjax train --config configs/multibench_avmnist/concat.py --workdir runs/multibench_avmnist_concat

Expected: not measured here (the dataset cannot be downloaded on our machines). The config and
its models are checked against the dataset's spec, and its loader against a fixture in the
published layout, in tests/test_data_papers.py.
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("multibench_avmnist", MethodConfig(name="concat"), arg)
