"""Times SMIL's meta-training step (not its cheap pretraining steps) with mmjax's bench harness.

``mmjax bench --methods smil`` times the config's program from step 0, which is unimodal
pretraining; this script sets both pretraining phases to 0 steps so that the run is the meta
phase alone and every timed step is a meta-update (the harness applies the phase's ``enter``, which
computes the priors, once before compiling; with no pretraining the memory is still empty then, so
the priors are meaningless but finite, which does not change the cost of a step). Prints one JSON
line per case.

Usage: python experiments/smil/bench_meta.py [DATASET] [BATCH] [SEEDS]   (avmnist_offline 64 1)

DATASET: a name of ``mmjax.bench.shapes()``, or ``mfeat`` for its two views fou and kar.
"""

import json
import sys

from mmjax import bench
from mmjax import config as config_lib
from mmjax.data.base import DatasetSpec


def main() -> None:
    dataset = sys.argv[1] if len(sys.argv) > 1 else "avmnist_offline"
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    if dataset == "mfeat":  # SMIL takes two views: the fou and kar of configs/mfeat/smil.py
        shapes = bench.BenchShapes(DatasetSpec("mfeat", ("fou", "kar"), ((76,), (64,)),
                                          "classification", 10), "mfeat")
    else:
        shapes = bench.shapes()[dataset]
    config = config_lib.load(f"configs/{shapes.configs}/smil.py")
    config = config_lib.override(config, [
        "method.phase1_steps=0", "method.phase2_steps=0", "method.memory_size=256",
        f"train.batch_size={batch}", f"train.num_seeds={seeds}", "train.steps_per_call=1",
        "train.log_every=1", "train.checkpoint_every=1"])
    record = bench.bench_case(config, shapes.spec, repeats=5)
    record["method"] = "smil (meta step)"
    print(json.dumps(record))


if __name__ == "__main__":
    main()
