"""The backend policy: ``train.unroll`` / ``train.vmap_seeds`` ``"auto"`` follow the measured rules
of benchmarks/README.md, an explicit value wins, and the convolution check sees the network."""

import json
import os

import pytest
from _subprocess import start

from mmjax import bench, cli, policy, train
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

def test_cpu_flags_are_added_once_and_a_users_value_wins():
    flag = policy.CPU_XLA_FLAGS[0]
    name = flag.split("=")[0]
    assert policy.with_cpu_flags("") == " ".join(policy.CPU_XLA_FLAGS)
    devices = "--xla_force_host_platform_device_count=8"
    assert policy.with_cpu_flags(devices).split() == [devices, *policy.CPU_XLA_FLAGS]
    assert policy.with_cpu_flags(policy.with_cpu_flags("")) == policy.with_cpu_flags("")
    opt_out = f"{name}=individual_dot"
    assert policy.with_cpu_flags(opt_out) == opt_out  # the user's value is kept

def test_the_command_line_sets_the_cpu_flags_before_xla_starts(monkeypatch, tmp_path):
    monkeypatch.setenv("XLA_FLAGS", "")
    assert cli.main(["train", "--config", str(tmp_path / "missing.py"),
                     "--workdir", str(tmp_path / "run")]) == 2
    assert os.environ["XLA_FLAGS"] == " ".join(policy.CPU_XLA_FLAGS)

_PRECISION = """
import json, numpy as np, jax, jax.numpy as jnp
rng = np.random.default_rng(0)
errors = []
for m, k, n in ((128, 512, 1024), (128, 1024, 128), (64, 76, 256)):
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    x, w = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    g = np.ones((m, n))
    # A dense layer's forward product and the two products of its backward pass.
    out = jax.jit(lambda x, w: (jax.nn.relu(x @ w), x.T @ g, g @ w.T))(x, w)
    ref = (np.maximum(a @ b, 0), a.T @ g, g @ b.T)
    errors += [float(np.abs(np.asarray(o, np.float64) - r).max() / np.abs(r).max())
               for o, r in zip(out, ref)]
program = jax.jit(lambda x, w: jax.nn.relu(x @ w)).lower(x, w).compile().as_text()
print(json.dumps({"errors": errors, "program": program}))
"""

def _precision(xla_flags: str) -> dict:
    proc = start(_PRECISION, [], devices=1, env={"XLA_FLAGS": xla_flags})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out)

def test_the_cpu_flags_change_the_program_and_keep_float32_dots_accurate():
    """The flags take effect (another compiled program), and YNNPACK, which could compute float32
    dots in bfloat16 on this CPU (AMX), keeps them float32: within 1e-5 of a float64 reference,
    relative to the largest entry (bfloat16 would be about 1e-2)."""
    default, flagged = _precision(""), _precision(policy.with_cpu_flags(""))
    assert flagged["program"] != default["program"]
    for run in (default, flagged):
        assert max(run["errors"]) < 1e-5, run["errors"]
