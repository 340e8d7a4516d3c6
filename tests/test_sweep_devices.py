"""The replica axis as a mesh axis: a sweep of 8 replicas on 8 simulated CPU devices trains each
replica on its own device, and equals the same sweep on 1 device (``mmjax.parallel``).

The device count of a JAX process is fixed when JAX starts, so each side runs in its own
subprocess (``XLA_FLAGS=--xla_force_host_platform_device_count=8`` for the sharded one). Both run
the same ``mmjax sweep`` (concat on mfeat's views fac and pix, 10 steps, two training missing
rates x 4 seeds: one packed run of 8 replicas), report how the states, the masks and the batch
are laid out and what the compiled training call communicates, and write their sweep folders.
"""

import json
import pathlib
import subprocess

import numpy as np
import pytest

from _subprocess import ROOT, start

# The module's fixture trains in two subprocesses (over 9 s from a clean clone): make test-slow.
pytestmark = pytest.mark.slow

CONFIG = str(ROOT / "configs" / "mfeat" / "concat.py") + ":quick"
SETTINGS = ["data.views=fac,pix", "missing.protocol=independent", "train.steps=10",
            "train.steps_per_call=5", "train.log_every=5", "train.checkpoint_every=10",
            "train.unroll=1", "train.vmap_seeds=true", "train.batch_size=64",
            "eval.batch_size=400"]
GRID = ["--grid", "missing.rates=[0.5,0.3],[0.2,0.6]", "--seeds", "4"]

# Runs in the subprocess: the sweep through the CLI, then the layout of its packed run's setup
# (the states, the masks, a batch inside the compiled call); prints one JSON line.
SCRIPT = """
import json, re, sys
import jax
from mmjax import cli, parallel, sweep, train
from mmjax import config as config_lib

devices, workdir, config_spec, *rest = sys.argv[1:]
assert jax.device_count() == int(devices), jax.devices()
cut = rest.index("--")
settings, grid = rest[:cut], rest[cut + 1:]
code = cli.main(["sweep", "--config", config_spec, "--workdir", workdir,
                 *[x for s in settings for x in ("--set", s)], *grid])
assert code == 0, code
manifest = json.load(open(f"{workdir}/sweep.json"))
(run,) = manifest["runs"]
run_dir = f"{workdir}/{run['dir']}"
config = train.config_from_json(json.load(open(f"{run_dir}/config.json")))
s = train.setup(config, replicas=train.read_replicas(run_dir, config))
data, present = train.device_data(s)
states = train.init_states(s, data)
leaf = jax.tree.leaves(states.params)[0]
hlo = train.make_train_chunk(s).lower(states, present, s.data_keys, data).compile().as_text()
print(json.dumps({
    "run": run["dir"], "mesh": dict(s.mesh.shape), "mesh2": dict(parallel.make_mesh(2).shape),
    "state_spec": list(leaf.sharding.spec),
    "state_shards": sorted({tuple(x.data.shape)[:1] for x in leaf.addressable_shards}),
    "mask_shards": sorted({tuple(x.data.shape) for x in present.addressable_shards}),
    "all_reduce": "all-reduce" in hlo,
    "num_partitions": int(re.search(r"num_partitions=(\\d+)", hlo).group(1)
                          if "num_partitions=" in hlo else 1),
}))
"""


def _start(devices: int, workdir: pathlib.Path) -> subprocess.Popen:
    return start(SCRIPT, [devices, workdir, CONFIG, *SETTINGS, "--", *GRID], devices)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The same sweep on 1 and on 8 devices (run concurrently): {devices: (report, folder)}."""
    root = tmp_path_factory.mktemp("sweep_devices")
    procs = {n: _start(n, root / f"d{n}") for n in (1, 8)}
    reports = {}
    try:
        for n, proc in procs.items():
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, f"{n} device(s):\n{err[-3000:]}"
            reports[n] = (json.loads(out.splitlines()[-1]), root / f"d{n}")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return reports


def test_each_device_trains_its_own_replica(sweeps):
    """8 replicas on 8 devices: a ("replica", "data") mesh of 8 x 1; each device holds one
    replica's states and training mask, and the compiled call, partitioned 8 ways, reduces no
    gradient across devices. 2 replicas would take a 2 x 4 mesh (the batch over 4)."""
    one, _ = sweeps[1]
    eight, _ = sweeps[8]
    assert eight["mesh"] == {"replica": 8, "data": 1} and eight["mesh2"] == {"replica": 2,
                                                                              "data": 4}
    assert eight["state_spec"] == ["replica"] and eight["state_shards"] == [[1]]
    assert len(eight["mask_shards"]) == 1 and eight["mask_shards"][0][0] == 1
    assert eight["num_partitions"] == 8 and not eight["all_reduce"]
    assert one["mesh"] == {"replica": 1, "data": 1} and one["state_shards"] == [[8]]
    assert one["num_partitions"] == 1
    assert one["run"] == eight["run"]


def test_8_devices_match_1_device(sweeps):
    """Every point's evaluation and the packed run's log agree between 1 and 8 devices. Each
    device computes its replica's step with the same operations as the vmapped program on one
    device (no cross-device reduction: see above), so the only differences are XLA's choices of
    loop order inside a batched versus an unbatched kernel, float32 rounding of ~1e-7 relative
    per operation, which 10 Adam steps of size ~1e-3 carry into the losses far below 1e-5
    relative; a replica trained with another's mask or key differs by 1e-2 or more."""
    (one, dir1), (_, dir8) = sweeps[1], sweeps[8]
    rows = [[json.loads(x) for x in (d / one["run"] / "metrics.jsonl").read_text().splitlines()]
            for d in (dir1, dir8)]
    assert [r["step"] for r in rows[0]] == [r["step"] for r in rows[1]] == [5, 10]
    for r1, r8 in zip(*rows):
        for k in ("loss", "grad_norm", "param_norm"):
            np.testing.assert_allclose(r8[k], r1[k], rtol=1e-5, err_msg=f"{k} at {r1['step']}")
    points = sorted(p.parent.relative_to(dir1) for p in dir1.glob("missing.rates-*/*/eval.json"))
    assert len(points) == 2
    for point in points:
        eval1 = json.loads((dir1 / point / "eval.json").read_text())
        eval8 = json.loads((dir8 / point / "eval.json").read_text())
        assert eval1["num_seeds"] == eval8["num_seeds"] == 4
        # Accuracies are argmax decisions over 400 samples: rounding differences of ~1e-6 in
        # the logits flip only a near-tie (we allow none).
        for name in eval1["subsets"]:
            assert (eval8["seeds"]["subsets"][name]["accuracy"]
                    == eval1["seeds"]["subsets"][name]["accuracy"]), (point, name)
