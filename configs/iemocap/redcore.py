"""RedCore on IEMOCAP (4 classes, MMIN's features): Transformer self-modal encoders for audio, video
and text, VIB Gaussian heads, residual cross-modal encoders, relative-advantage regulation of eta.

IEMOCAP in MMIN's feature layout (ComParE 130-d audio frames, DenseFace 342-d video frames,
BERT-large 1024-d tokens, padded per modality with the lengths in ``inputs["<m>_len"]``); prepare
it once with
  mmjax data prepare iemocap --from PATH/IEMOCAP_features_2021

Command (fold 1; the paper's imbalanced rates (A, V, L) = (0.2, 0.5, 0.8) of its Table 1):
  mmjax train --config configs/iemocap/redcore.py --workdir runs/iemocap_redcore

Other folds: --set data.fold=2..10; other rates of Table 1: --set missing.rates=0.8,0.5,0.5 etc.
Ablations as in configs/mfeat/redcore.py (method.regulate=False, method.unimodal_ce=False);
every released-code switch at once (mmjax.methods.redcore.released): --config
configs/iemocap/redcore.py:released (with ``+quick`` for a smoke run). The released code also lets
a training sample lose every modality: --set missing.forbid_empty=False; and it gives a sample
another row of its mask matrix every epoch (rows indexed by batch position while the loader
shuffles): --set missing.mask_rows=position.

Paper settings (Implementation Details): encoders ``transformer`` (mmjax/models/sequence.py) for all
three modalities, 3 self-attention layers, 8 heads, 128-d embeddings (``model.hidden``), masked to
each utterance's length, mean-pooled, sinusoidal positions (the released code has none); latent 128,
RA-layers 256-128-64-32 in 5 blocks, gamma 0.008, p = 2, xi 0.015 / 0.15, K 3, alpha1 0.1, beta 0.7
(RedCoreConfig defaults); Adam lr 2e-4 (betas 0.9, 0.999), batch 128. Metric: weighted F1 over the
7 test subsets (``mmjax eval``), mean of 3 seeds. Chosen here: 2,000 steps (about the released
30 + 30 epochs if a fold trains on ~4,400 utterances, 8 of the 10 speakers; the lr stays constant
where the released code decays it linearly over the last 30 epochs), dropout 0.2 in encoders and
heads (released: 0.2 attention, 0.1 MLP, 0.5 heads).

Expected: not measured here (IEMOCAP's features cannot be downloaded on our machines; no result was
produced with this config). The config, the loader and a few training steps are checked on a
fixture in MMIN's layout in tests/test_sequence_encoders.py.
"""

from mmjax.config import (DataConfig, ExperimentConfig, MissingConfig, ModelConfig, OptimConfig,
                          TrainConfig)
from mmjax.methods.redcore import RedCoreConfig, released
from mmjax.presets import apply_variants


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets joined by ``+`` (``quick``: 100
    steps, one seed; ``released``: mmjax.methods.redcore.released), or nothing."""
    config = ExperimentConfig(
        data=DataConfig(name="iemocap", fold=1),
        missing=MissingConfig(protocol="independent", rates=(0.2, 0.5, 0.8)),
        model=ModelConfig(encoders=("transformer",) * 3, hidden=128, feature_dim=128,
                          dropout=0.2),
        method=RedCoreConfig(),
        optim=OptimConfig(name="adam", lr=2e-4),
        train=TrainConfig(steps=2000, batch_size=128, num_seeds=3, steps_per_call=10,
                          log_every=100, checkpoint_every=500),
    )
    return apply_variants(config, arg, released)
