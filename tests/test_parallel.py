"""Data parallelism: 8 simulated CPU devices train exactly the model 1 device trains (DESIGN §7).

The device count of a JAX process is fixed when JAX starts, so each configuration runs in its own
subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=8`` for the sharded one). Both run
the same short training (augmentation on three mfeat views, batch 64, 30 steps, 2 seed replicas),
report how the batch is laid out over the devices, and write their workdirs; the test compares the
logs and evaluations.
"""

import json
import pathlib
import subprocess

import numpy as np
import pytest

from _subprocess import ROOT, start

# The module's fixture trains in two subprocesses (over 9 s from a clean clone): make test-slow.
pytestmark = pytest.mark.slow

CONFIG = str(ROOT / "configs" / "mfeat" / "augmentation.py") + ":quick"
OVERRIDES = ["data.views=fac,fou,mor", "train.batch_size=64", "train.steps=30",
             "train.num_seeds=2", "train.log_every=10", "train.checkpoint_every=30",
             "train.unroll=1",
             "eval.batch_size=400"]  # the default 500 does not split over 8 devices

# Runs in the subprocess: checks the device count, inspects how the batch is sharded (a gathered
# batch, and the compiled training call), then trains; prints one JSON line.
SCRIPT = """
import json, re, sys
import jax
from mmjax import config as config_lib, parallel, train
from mmjax.data import pipeline

devices, workdir, config_spec, *overrides = sys.argv[1:]
assert jax.device_count() == int(devices), jax.devices()
config = config_lib.override(config_lib.load(config_spec), overrides)
s = train.setup(config)
data, present = train.device_data(s)
gather = jax.jit(lambda d, p, i: jax.lax.with_sharding_constraint(
    pipeline.gather(d, p, i, s.dataset.spec.modalities), parallel.batch_sharding(s.mesh)))
batch = gather(data, present[0], jax.numpy.arange(config.train.batch_size))
states = train.init_states(s, data)
hlo = train.make_train_chunk(s).lower(states, present, s.data_keys, data).compile().as_text()
train.train(config, workdir)
print(json.dumps({
    "devices": jax.device_count(),
    "spec": list(batch["inputs"]["fac"].sharding.spec),
    "shards": sorted({tuple(x.data.shape) for x in batch["inputs"]["fac"].addressable_shards}),
    "num_shards": len(batch["inputs"]["fac"].addressable_shards),
    "num_partitions": int(re.search(r"num_partitions=(\\d+)", hlo).group(1)
                          if "num_partitions=" in hlo else 1),
    "fac_activations": sorted(set(re.findall(r"f32\\[(\\d+),(\\d+),216\\]", hlo))),
}))
"""


def _start(devices: int, workdir: pathlib.Path) -> subprocess.Popen:
    return start(SCRIPT, [devices, workdir, CONFIG, *OVERRIDES], devices)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same training on 1 and on 8 devices (run concurrently): {devices: (report, workdir)}."""
    root = tmp_path_factory.mktemp("parallel")
    procs = {n: _start(n, root / f"d{n}") for n in (1, 8)}
    reports = {}
    try:
        for n, proc in procs.items():
            out, err = proc.communicate(timeout=500)
            assert proc.returncode == 0, f"{n} device(s):\n{err[-3000:]}"
            reports[n] = (json.loads(out.splitlines()[-1]), root / f"d{n}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return reports


def test_batch_is_sharded_over_8_devices(runs):
    """With 8 devices and 2 seed replicas the mesh is 2 (replica) x 4 (data): each device holds
    64 / 4 = 16 rows of a batch, and the compiled training call is partitioned 8 ways and
    computes on per-device [1 replica, 16 rows] activations only."""
    one, _ = runs[1]
    eight, _ = runs[8]
    assert eight["devices"] == 8
    assert eight["spec"] == ["data"]
    assert eight["num_shards"] == 8 and eight["shards"] == [[16, 216]]
    assert eight["num_partitions"] == 8
    assert ["1", "16"] in eight["fac_activations"]
    assert not any(rows == "64" or seeds == "2" for seeds, rows in eight["fac_activations"])
    # The single-device program computes on the whole batch.
    assert one["devices"] == 1 and one["num_partitions"] == 1
    assert one["shards"] == [[64, 216]]
    assert ["2", "64"] in one["fac_activations"]


def test_8_devices_match_1_device(runs):
    """Losses, norms and test metrics of the 8-device run equal the 1-device run's up to float32
    reduction order."""
    _, dir1 = runs[1]
    _, dir8 = runs[8]
    rows1 = [json.loads(x) for x in (dir1 / "metrics.jsonl").read_text().splitlines()]
    rows8 = [json.loads(x) for x in (dir8 / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows1] == [r["step"] for r in rows8] == [10, 20, 30]
    # Tolerance: the two programs do the same arithmetic except for the order of the batch
    # reductions (8 per-device partial sums of 8 rows, then an all-reduce, versus one sum of 64
    # rows). Each such float32 sum differs by at most ~log2(64) * 2^-24 ~ 4e-7 relative; those
    # differences enter the parameters through Adam updates of size ~lr = 1e-3 and change the
    # losses 30 steps later by far less than 1e-4 relative. A wrong sharding (a gradient averaged
    # over one shard, a batch gathered twice, a mask or key that differs per device) changes them
    # by 1e-2 or more.
    for r1, r8 in zip(rows1, rows8):
        for k in ("loss", "grad_norm", "param_norm"):
            np.testing.assert_allclose(r8[k], r1[k], rtol=1e-4, err_msg=f"{k} at {r1['step']}")
    eval1 = json.loads((dir1 / "eval.json").read_text())
    eval8 = json.loads((dir8 / "eval.json").read_text())
    assert list(eval1["subsets"]) == list(eval8["subsets"])
    assert len(eval1["subsets"]) == 7
    # Test metrics are argmax decisions over 400 samples: reduction-order differences of ~1e-6 in
    # the logits can only flip a sample whose top two logits are that close, so the accuracies
    # agree exactly unless such a near-tie exists (we allow none).
    for name in eval1["subsets"]:
        assert eval8["subsets"][name]["accuracy"] == eval1["subsets"][name]["accuracy"], name
