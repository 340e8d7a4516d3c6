"""SMIL on CMU-MOSI (papers/004, Table 1): 100% image (Facet visual features) + 20% text (GloVe
word vectors), binary sentiment (positive vs not).

The data: MultiBench's CMU-MOSI pickle (``mosi_data.pkl``: Facet 20-d, COVAREP 5-d, GloVe 300-d,
the features of SMIL's released ``dataset/mosi.py``; ``mosi_raw.pkl`` has Facet 35-d and works the
same); prepare it once with
  mmjax data prepare multibench_mosi --from PATH/mosi_data.pkl
SMIL uses the image and text modalities only: ``data.views=(vision, text)`` keeps those two, image
first (modality 1, complete), text second (modality 2, on eta of the training clips).

Command:
  mmjax train --config configs/multibench_mosi/smil.py --workdir runs/mosi_smil
  (eta: --set missing.paired_fraction=0.1; every released-code switch: --config
  configs/multibench_mosi/smil.py:released, see smil.released)

Paper settings (papers/004, "Implementation details, CMU-MOSI"): "three fully-connected (FC) layers
with dimension 16 to get the embedding of image modality" (``mean_mlp3``, model.hidden = 16: the
Facet frames are averaged over each clip's valid frames first, as in Liu et al. 2018 whose
features the paper follows; mmjax/models/smil_encoders.py), "One layer LSTM ... for text modality"
(``lstm_last``: the LSTM's state after the last word, as Liu et al.'s text subnetwork; the max over
steps, ``--set model.encoders=mean_mlp3,lstm_maxpool``, is RAML's variant), "The concatenated
feature of two modalities is then fed to FC layers for classification" (SMIL's fusion g:
(16 + 64) -> 16 -> 2), labels y > 0 vs y <= 0 (``data.label_view=2class``), Adam, batch 32,
5,000 meta-iterations, lr 1e-4 for the inner and the outer loop. Chosen here (the paper is silent):
LSTM width 64 (model.feature_dim), no dropout, 500 steps of unimodal pretraining (~12 epochs of
the 1,284 training clips) and 300 of full-modality training on the paired memory before the
5,000 meta-steps, additive feature regularisation (SmilConfig's default; the paper allows addition
or multiplication and no MOSI code was released), the memory holding every training clip, 3 seeds.

Expected: not measured (CMU-MOSI is not on our machines; no result was produced with this config).
tests/test_smil_papers.py trains it a few steps on a fixture in MultiBench's layout.
"""

from mmjax.config import (DataConfig, ExperimentConfig, MissingConfig, ModelConfig, OptimConfig,
                          TrainConfig)
from mmjax.methods.smil import SmilConfig, released
from mmjax.presets import apply_variants, parse_arg

PHASE1_STEPS, PHASE2_STEPS, META_STEPS = 500, 300, 5000


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets joined by ``+`` (``quick`` = 40 +
    20 + 40 steps, one seed; ``released``: mmjax.methods.smil.released), or nothing."""
    args = parse_arg(arg, released=True)
    method = SmilConfig(phase1_steps=40 if args.quick else PHASE1_STEPS,
                        phase2_steps=20 if args.quick else PHASE2_STEPS,
                        memory_size=512 if args.quick else 1408, inner_lr=1e-4)
    config = ExperimentConfig(
        data=DataConfig(name="multibench_mosi", views=("vision", "text"), label_view="2class"),
        missing=MissingConfig(protocol="paired", paired_fraction=0.2),
        model=ModelConfig(encoders=("mean_mlp3", "lstm_last"), hidden=16, feature_dim=64,
                          dropout=0.0),
        method=method, optim=OptimConfig(name="adam", lr=1e-4),
        train=TrainConfig(steps=PHASE1_STEPS + PHASE2_STEPS + META_STEPS, batch_size=32,
                          num_seeds=3, steps_per_call=10, log_every=200, checkpoint_every=1000))
    return apply_variants(config, args, released)
