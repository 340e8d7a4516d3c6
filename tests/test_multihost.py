"""Multi-host training: two local processes joined by ``jax.distributed`` train one run, and a
sweep (DESIGN §7).

Each process has 2 simulated CPU devices (``--xla_force_host_platform_device_count=2``), so the
mesh has 4 devices over 2 processes and every step's batch is split over both; the gradient
all-reduce crosses processes through gloo (JAX's CPU collectives). Processes find each other
through ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``
(``mmjax.parallel.maybe_initialize_distributed``); every process saves its part of each
checkpoint, as orbax requires.

Three launches of the pair (mfeat concat on two views, 20 steps, a checkpoint every 5):

1. each process trains run A uninterrupted, then run B, in which process 1 SIGKILLs itself after
   the call that ends at step 15 (before that step is saved); process 0 is then killed as a
   scheduler would end the job;
2. both resume B from checkpoint 10; process 1 gets SIGTERM during the same call: both save step
   15 and exit 143 with one line;
3. both resume B from 15 to the end: B's ``eval.json`` and ``metrics.jsonl`` equal A's exactly.

The signals are sent by the process to itself from ``train.check_finite`` (the host code right
after a call), so that they land at a known step however fast the machine is.
"""

import argparse
import json
import pathlib
import signal
import socket
import time

import pytest

from _subprocess import ROOT, start

CONFIG = str(ROOT / "configs" / "mfeat" / "concat.py") + ":quick"
SETTINGS = ["data.views=fac,pix", "train.steps=20", "train.steps_per_call=5", "train.log_every=5",
            "train.checkpoint_every=5", "train.unroll=1", "train.vmap_seeds=true",
            "train.distributed=true"]

# One process of the pair: trains each workdir in turn through the CLI (exit code as
# ``mmjax.cli.run``); ``--signal NAME@STEP`` makes process 1 send itself that signal after the
# call starting at STEP of the last workdir.
SCRIPT = """
import os, signal, sys
from mmjax import cli, train

args = sys.argv[1:]
sig = None
if args[0] == "--signal":
    name, step = args[1].split("@")
    sig, step, args = getattr(signal, name), int(step), args[2:]
config, *workdirs = args[:args.index("--")]
settings = [x for s in args[args.index("--") + 1:] for x in ("--set", s)]
for i, workdir in enumerate(workdirs):
    if sig is not None and i == len(workdirs) - 1 and os.environ["JAX_PROCESS_ID"] == "1":
        check_finite = train.check_finite

        def signalled(metrics, first_step):
            if first_step == step:
                os.kill(os.getpid(), sig)
            return check_finite(metrics, first_step)

        train.check_finite = signalled
    code = cli.main(["train", "--config", config, "--workdir", workdir, *settings])
    print(f"EXIT {workdir} {code}", flush=True)
    if code:
        sys.stderr.flush()
        os._exit(code)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_pair(script: str, args) -> list:
    """Starts the two processes of a ``jax.distributed`` pair (2 CPU devices each) running
    ``script`` with ``args``; returns them."""
    port = _free_port()
    return [start(script, args, 2, env={"JAX_PLATFORMS": "cpu",
                                        "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
                                        "JAX_NUM_PROCESSES": "2", "JAX_PROCESS_ID": str(i)})
            for i in range(2)]


def _launch(workdirs, signal_at=None):
    """Starts the two processes; returns them."""
    extra = ["--signal", signal_at] if signal_at else []
    return _start_pair(SCRIPT, [*extra, CONFIG, *workdirs, "--", *SETTINGS])


def _finish(procs, timeout):
    """(returncode, stdout, stderr) of each process; kills what is left at the timeout."""
    deadline = time.monotonic() + timeout
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return results


def _mmjax_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("mmjax")]


def _rows(workdir: pathlib.Path) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k != "steps_per_sec"}
            for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _steps(workdir: pathlib.Path) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


@pytest.mark.slow
def test_two_processes_survive_a_kill_and_stop_together_on_sigterm(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"

    # 1. A uninterrupted; B: process 1 dies by SIGKILL after the call 10 -> 15.
    procs = _launch([a, b], signal_at="SIGKILL@10")
    try:
        procs[1].wait(timeout=400)
        assert procs[1].returncode == -signal.SIGKILL
        # Process 0 now waits in a collective for a peer that is gone: end it, as the job's
        # scheduler would.
        time.sleep(1)
        procs[0].kill()
    finally:
        results = _finish(procs, 30)
    out0 = results[0][1]
    assert f"EXIT {a} 0" in out0, results[0]
    assert json.loads((a / "eval.json").read_text())["step"] == 20
    assert [r["step"] for r in _rows(a)] == [5, 10, 15, 20]
    assert _steps(a) == [15, 20]
    assert _steps(b) == [5, 10]  # step 15 was never saved

    # 2. Resume B; SIGTERM to process 1 during the call 10 -> 15: both save 15 and exit 143.
    results = _finish(_launch([b], signal_at="SIGTERM@10"), 400)
    for i, (code, _, err) in enumerate(results):
        assert code == 143, (i, err)
        (line,) = _mmjax_lines(err)
        assert "stopped by signal 15" in line and "at step 15" in line, line
        assert "checkpoint saved" in line and "run the same command to resume" in line, line
        assert ("sent to another process" in line) == (i == 0), line
    assert _steps(b) == [10, 15] and not (b / "eval.json").exists()

    # 3. Resume B to the end: exactly A.
    results = _finish(_launch([b]), 400)
    for code, _, err in results:
        assert code == 0, err
        assert _mmjax_lines(err) == []
    assert json.loads((b / "eval.json").read_text()) == json.loads((a / "eval.json").read_text())
    assert _rows(b) == _rows(a)


# ----------------------------------------------------------------------------------------------
# A sweep over two processes: each trains its share of the packed run's replicas.
# ----------------------------------------------------------------------------------------------

# One process of the pair: ``mmjax sweep`` into each folder in turn, then which replicas of the
# last folder's packed run this process holds; ``--signal NAME@STEP`` as in SCRIPT.
SWEEP_SCRIPT = """
import json, os, signal, sys
import jax
from mmjax import cli, train

args = sys.argv[1:]
sig = None
if args[0] == "--signal":
    name, step = args[1].split("@")
    sig, step, args = getattr(signal, name), int(step), args[2:]
config, *folders = args[:args.index("--")]
sweep_args = args[args.index("--") + 1:]
for i, folder in enumerate(folders):
    if sig is not None and i == len(folders) - 1 and os.environ["JAX_PROCESS_ID"] == "1":
        check_finite = train.check_finite

        def signalled(metrics, first_step):
            if first_step == step:
                os.kill(os.getpid(), sig)
            return check_finite(metrics, first_step)

        train.check_finite = signalled
    code = cli.main(["sweep", "--config", config, "--workdir", folder, *sweep_args])
    print(f"EXIT {folder} {code}", flush=True)
    if code:
        sys.stderr.flush()
        os._exit(code)
(run,) = json.load(open(f"{folders[-1]}/sweep.json"))["runs"]
run_dir = f"{folders[-1]}/{run['dir']}"
config = train.config_from_json(json.load(open(f"{run_dir}/config.json")))
s = train.setup(config, replicas=train.read_replicas(run_dir, config))
states = train.init_states(s, train.device_data(s)[0])
leaf = jax.tree.leaves(states.params)[0]
held = sorted({i for x in leaf.addressable_shards for i in range(x.index[0].start,
                                                                 x.index[0].stop)})
print("HELD " + json.dumps({"process": jax.process_index(), "replicas": held}), flush=True)
"""
SWEEP_SETTINGS = ["data.views=fac,pix", "missing.protocol=independent", "train.steps=20",
                  "train.steps_per_call=5", "train.log_every=5", "train.checkpoint_every=5",
                  "train.unroll=1", "train.vmap_seeds=true", "train.distributed=true"]
SWEEP_GRID = ["--grid", "missing.rates=[0.5,0.3],[0.2,0.6]", "--seeds", "2"]
POINTS = ("missing.rates-0.5_0.3/train.seed-0..1", "missing.rates-0.2_0.6/train.seed-0..1")


def _launch_sweep(folders, signal_at=None):
    """Starts the two processes of a sweep into ``folders``; returns them."""
    extra = ["--signal", signal_at] if signal_at else []
    sweep_args = [*sum((["--set", s] for s in SWEEP_SETTINGS), []), *SWEEP_GRID]
    return _start_pair(SWEEP_SCRIPT, [*extra, CONFIG, *folders, "--", *sweep_args])


def _held(out: str) -> dict:
    return json.loads(next(line for line in out.splitlines() if line.startswith("HELD "))[5:])


@pytest.mark.slow
def test_a_sweep_over_two_processes_survives_a_kill(tmp_path):
    """The 4 replicas of the sweep's packed run (2 rates x 2 seeds) are split over the 4 devices
    of 2 processes, each process holding 2. Sweep A runs uninterrupted; in sweep B process 1
    SIGKILLs itself after the call 10 -> 15 (step 15 never saved), process 0 is then killed; the
    same command, relaunched, resumes B from step 10 and ends exactly as A, whose points also
    equal the same sweep in one process on one device."""
    from mmjax import sweep

    a, b = tmp_path / "a", tmp_path / "b"
    procs = _launch_sweep([a, b], signal_at="SIGKILL@10")
    try:
        procs[1].wait(timeout=500)
        assert procs[1].returncode == -signal.SIGKILL, procs[1].stderr.read()[-3000:]
        time.sleep(1)  # process 0 waits in a collective for the peer that is gone
        procs[0].kill()
    finally:
        results = _finish(procs, 30)
    assert f"EXIT {a} 0" in results[0][1], results[0]
    (run,) = json.loads((b / "sweep.json").read_text())["runs"]
    # "failed" when process 0's collective noticed the lost peer before it was killed.
    assert run["status"] in ("running", "failed") and run["slots"] == list(POINTS)
    assert _steps(b / run["dir"]) == [5, 10]
    assert not any((b / p / "eval.json").exists() for p in POINTS)

    results = _finish(_launch_sweep([b]), 500)
    for code, out, err in results:
        assert code == 0 and "Traceback" not in err, err[-3000:]
    held = sorted((_held(out)["process"], _held(out)["replicas"]) for _, out, _ in results)
    assert held == [(0, [0, 1]), (1, [2, 3])]
    assert json.loads((b / "sweep.json").read_text())["runs"][0]["status"] == "done"
    assert _rows(b / run["dir"]) == _rows(a / run["dir"])
    for p in POINTS:
        assert (json.loads((b / p / "eval.json").read_text())
                == json.loads((a / p / "eval.json").read_text())), p

    # One process, one device: the same accuracies (no cross-device reduction in the packed
    # run: each device trains its own replica, tests/test_sweep_devices.py).
    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    settings = [s for s in SWEEP_SETTINGS if s != "train.distributed=true"]
    assert sweep.run(parser.parse_args(["--config", CONFIG, "--workdir", str(tmp_path / "one"),
                                        *sum((["--set", s] for s in settings), []),
                                        *SWEEP_GRID])) == 0
    for p in POINTS:
        one = json.loads((tmp_path / "one" / p / "eval.json").read_text())
        two = json.loads((a / p / "eval.json").read_text())
        for name in one["subsets"]:
            assert (one["seeds"]["subsets"][name]["accuracy"]
                    == two["seeds"]["subsets"][name]["accuracy"]), (p, name)
