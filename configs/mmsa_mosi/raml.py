"""RAML on CMU-MOSI (variant ``mosei``: CMU-MOSEI, the paper's dataset) from MMSA's aligned
pickle: one-layer LSTM + max-pool encoders for audio, video and text, Gaussian heads,
precision-weighted fusion, trained on every missing pattern.

The data: MMSA's ``aligned_50.pkl`` (BERT 768-d text; audio 5-d (MOSI) / COVAREP 74-d (MOSEI);
video 20-d / Facet 35-d; 50 aligned steps, lengths in ``inputs["<m>_len"]``); prepare it once with
  mmjax data prepare mmsa_mosi --from PATH/aligned_50.pkl      (or mmsa_mosei for ``:mosei``)

Command:
  mmjax train --config configs/mmsa_mosi/raml.py --workdir runs/mosi_raml
  mmjax train --config configs/mmsa_mosi/raml.py:mosei --workdir runs/mosei_raml
  (a smoke run: :quick or :mosei+quick)

Paper settings (papers/001 section IV-A, CMU-MOSEI): aligned features as [28], [42] (MMSA's);
"three one-layer LSTM networks with the max-pooling operation" (``lstm_maxpool``,
mmjax/models/sequence.py: width 128 as MMIN's, the max over each utterance's valid steps); labels
negative / neutral / positive (``data.label_view=3class``), metric WA (accuracy) per test subset
and averaged; training on full-modality samples augmented with every missing pattern
(``method.augment=all_patterns``, ``missing.protocol=none``); Adam, lr 1e-3, weight decay 5e-4,
batch 128, Gaussian dimension 128 (RamlConfig defaults otherwise). On IEMOCAP the paper used a
TextCNN for the text tokens: ``--set model.encoders=lstm_maxpool,lstm_maxpool,textcnn``. Chosen
here (the paper gives no schedule): 1,000 steps for MOSI, 2,000 for MOSEI, 3 seeds.

Expected: not measured here (MOSI / MOSEI cannot be downloaded on our machines; no result was
produced with this config). The config gets past validation on a fixture in MMSA's layout
(tests/test_sequence_encoders.py).
"""

from mmjax.config import DataConfig, ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.methods.raml import RamlConfig
from mmjax.presets import apply_variants, parse_arg


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets joined by ``+`` (``quick``: 100 steps,
    one seed) and this config's ``mosei`` (CMU-MOSEI, 2,000 steps), or nothing."""
    args = parse_arg(arg, mosei=False)
    mosei = args.mosei
    config = ExperimentConfig(
        data=DataConfig(name="mmsa_mosei" if mosei else "mmsa_mosi", label_view="3class"),
        model=ModelConfig(encoders=("lstm_maxpool",) * 3, hidden=128, feature_dim=128,
                          dropout=0.0),
        method=RamlConfig(latent_dim=128),
        optim=OptimConfig(name="adam", lr=1e-3, weight_decay=5e-4),
        train=TrainConfig(steps=2000 if mosei else 1000, batch_size=128, num_seeds=3,
                          steps_per_call=10, log_every=100, checkpoint_every=500),
    )
    return apply_variants(config, args)
