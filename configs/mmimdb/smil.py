"""SMIL on MM-IMDb (papers/004, Table 2): 100% image (VGG-16 4096-d poster features) + 20% text
(word2vec 300-d plot features), 23 genres, multi-label.

Prepare the data once (the GMU-MMIMDb multimodal_imdb.hdf5):
  mmjax data prepare mmimdb --from PATH/multimodal_imdb.hdf5

Command:
  mmjax train --config configs/mmimdb/smil.py --workdir runs/mmimdb_smil
  (eta: --set missing.paired_fraction=0.1; every released-code switch: --config
  configs/mmimdb/smil.py:released, see smil.released; the baselines of Table 2:
  configs/mmimdb/lower_bound.py, upper_bound.py, ae_imputation.py, which share this file's data,
  model and schedule)

Paper settings (papers/004, "Implementation details, MM-IMDb"): "We feed the feature from each
modality to a FC layer to align their output dimension" (``fc`` encoders, 4096 -> 2048 and
300 -> 2048, so the concatenation is the 4096-d input of the released ``IMDbFuse``), "fuse the
feature together and send it to FC layers" (SMIL's fusion g: 4096 -> 512 -> 23; the released
fragment has 4096 -> 2048 -> 512 -> 23 with BatchNorm and dropout, which SMIL's two-layer g does
not reproduce), Adam, batch 128, 10,000 meta-iterations, inner lr 1e-4, outer lr 1e-3, and "a
weight of 2.0 on the positive label" of the binary cross-entropy (``method.pos_weight=2.0``).
Feature regularisation: **multiplicative**, ``h <- h * softplus(r)`` (``method.regularization``):
the paper's eq. 3 allows addition or multiplication, and the released MM-IMDb fragment
(``IMDbFuse``, official-code-notes §5.4) multiplies. Chosen here (the paper is silent): 1,000
steps of unimodal pretraining (~8 epochs of the 15,552 training movies) and 500 of full-modality
training on the paired memory before the 10,000 meta-steps; the memory holds every training movie
(15,616 slots, so eta = 100% fits); dropout 0.1 in the pretraining phases (meta-training runs
without dropout, as released); 3 seeds.

Metrics: F1 micro / macro / samples at 0.5 (the paper reports F1 samples and micro).

Expected: not measured (MM-IMDb is not on our machines; no result was produced with this
config). tests/test_smil_papers.py trains it a few steps on a fixture in the published layout.
"""

from mmjax.config import (DataConfig, ExperimentConfig, MethodConfig, MissingConfig, ModelConfig,
                          OptimConfig, TrainConfig)
from mmjax.methods.smil import SmilConfig, released
from mmjax.presets import Arg, Released, apply_variants, parse_arg

PHASE1_STEPS, PHASE2_STEPS, META_STEPS = 1000, 500, 10000
# One FC layer per modality to 2048 (the released IMDbFuse's 4096-d concatenation), fusion 512.
MODEL = ModelConfig(encoders=("fc", "fc"), hidden=512, feature_dim=2048, dropout=0.1)


def paper_experiment(method: MethodConfig, arg: str | Arg | None, steps: int,
                     paired: bool = True, released: Released | None = None) -> ExperimentConfig:
    """The paper's MM-IMDb setting for ``method``: mmimdb, 100% image + 20% text (``paired``;
    else both complete, for the bounds), the ``fc`` encoders, Adam 1e-3, batch 128, 3 seeds,
    ``steps`` steps; then the variants of ``arg`` (mmjax.presets; ``released`` where given)."""
    config = ExperimentConfig(
        data=DataConfig(name="mmimdb"),
        missing=(MissingConfig(protocol="paired", paired_fraction=0.2) if paired
                 else MissingConfig(protocol="none")),
        model=MODEL, method=method, optim=OptimConfig(name="adam", lr=1e-3),
        train=TrainConfig(steps=steps, batch_size=128, num_seeds=3, steps_per_call=10,
                          log_every=500, checkpoint_every=2500))
    return apply_variants(config, arg, released)


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets joined by ``+`` (``quick`` = 40 +
    20 + 40 steps, one seed, a 512-sample memory; ``released``: mmjax.methods.smil.released, the
    multiplicative regulariser kept as in the released MM-IMDb fragment), or nothing."""
    args = parse_arg(arg, released=True)
    method = SmilConfig(phase1_steps=40 if args.quick else PHASE1_STEPS,
                        phase2_steps=20 if args.quick else PHASE2_STEPS,
                        memory_size=512 if args.quick else 15616, inner_lr=1e-4,
                        regularization="multiplicative", pos_weight=2.0)
    return paper_experiment(method, args, PHASE1_STEPS + PHASE2_STEPS + META_STEPS,
                            released=released)

