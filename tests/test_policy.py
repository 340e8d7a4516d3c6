"""The backend policy: ``train.unroll`` / ``train.vmap_seeds`` ``"auto"`` follow the measured rules
of benchmarks/README.md, an explicit value wins, and the convolution check sees the network."""

import pytest

from mmjax import bench, train
from mmjax import config as config_lib
from mmjax.config import DataConfig, ExperimentConfig, MethodConfig, ModelConfig, TrainConfig
from mmjax.data import avmnist_offline
from mmjax.errors import UserError
from mmjax.policy import Policy, resolve

@pytest.mark.parametrize("backend,conv,expected", [
    ("cpu", True, Policy(0, False)),   # XLA:CPU: convolutions unrolled, one step copy per seed
    ("cpu", False, Policy(1, True)),
    ("gpu", True, Policy(1, True)),
    ("tpu", False, Policy(1, True)),
])
def test_auto_follows_the_measured_rules(backend, conv, expected):
    assert resolve(TrainConfig(), conv, backend) == expected

def test_an_explicit_value_wins_over_the_rule():
    assert resolve(TrainConfig(unroll=4, vmap_seeds=True), True, "cpu") == Policy(4, True)
    assert resolve(TrainConfig(vmap_seeds=False), False, "gpu") == Policy(1, False)

def _setup(spec, encoders):
    config = ExperimentConfig(data=DataConfig(name=spec.name), method=MethodConfig(name="concat"),
                              train=TrainConfig(steps=10, batch_size=8, steps_per_call=2,
                                                log_every=2, checkpoint_every=2),
                              model=ModelConfig(encoders=encoders, hidden=16, feature_dim=8))
    return train.make_setup(config, bench.random_dataset(spec, 16))

def test_setup_resolves_auto_from_the_network():
    """On this CPU the LeNet-5 + sound-CNN concat unrolls and copies seeds; an MLP does not."""
    assert _setup(avmnist_offline.spec(), ()).policy == Policy(0, False)
    assert _setup(bench.shapes()["mfeat"].spec, ()).policy == Policy(1, True)

def test_bad_policy_values_are_one_line_errors():
    # The config layer refuses them as the value is set (Literal / int-or-"auto" fields).
    for key, value in (("train.unroll", "sometimes"), ("train.vmap_seeds", "maybe")):
        with pytest.raises(UserError, match=key.replace(".", r"\.") + ".*" + value):
            config_lib.override(ExperimentConfig(), [f"{key}={value}"])
    config = config_lib.override(ExperimentConfig(), ["train.unroll=3", "train.vmap_seeds=false"])
    assert (config.train.unroll, config.train.vmap_seeds) == (3, False)
