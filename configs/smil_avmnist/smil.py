"""SMIL on SMIL's avMNIST (the data of the paper's Figure 4): 1,050 training images, the first
21 per digit with sound (data.per_class_num=21: 210 pairs, eta = 20 %; 15 gives 150, ~14 %), 450
test pairs; the pairing is the dataset's own, so no missing protocol is applied on top.

Prepare the dataset once (SMIL's README, avMNIST Drive link):
  mmjax data prepare smil_avmnist --from FOLDER

Command:
  mmjax train --config configs/smil_avmnist/smil.py --workdir runs/smil_avmnist_smil
  (every released-code switch: --config configs/smil_avmnist/smil.py:released, see smil.released)

The paper's schedule (its avMNIST implementation details): batch 64, learning rate 1e-3 for the
inner and the outer loop, 15,000 iterations; here 200 unimodal + 100 full-modality pretraining
steps (as configs/avmnist_offline/smil.py) and 14,700 meta-steps, 15,000 in all. The paired
memory holds up to 1,056 pairs (every image paired at per_class_num=105). Its baselines at the
same budget: lower_bound.py, upper_bound.py, ae_imputation.py beside this file.

Expected: not measured here (the dataset cannot be downloaded on our machines). SMIL's regime
on AV-MNIST-offline (configs/avmnist_offline/smil.py:regime) is the same sizes on our data. The
config builds its models against the dataset's spec, and its ``quick`` variant trains on a
fixture in the published layout, in tests/test_data_papers.py.
"""

from mmjax.methods.smil import SmilConfig, released
from mmjax.presets import experiment, parse_arg

STEPS = 15_000  # the paper's iterations, every phase inside them
PHASE1_STEPS, PHASE2_STEPS = 200, 100


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets (``quick``: 40 + 20 pretraining steps
    of the quick run's 100; ``released``: mmjax.methods.smil.released)."""
    args = parse_arg(arg, released=True)
    method = SmilConfig(phase1_steps=40 if args.quick else PHASE1_STEPS,
                        phase2_steps=20 if args.quick else PHASE2_STEPS, memory_size=1056)
    return experiment("smil_avmnist", method, args, released=released, steps=STEPS)
