"""RedCore on MSP-IMPROV (4 classes, MMIN's features): the IEMOCAP setup of
configs/iemocap/redcore.py on the second dataset of the paper's Table 1.

MSP-IMPROV in MMIN's feature layout (as RedCore's MSP-IMPROV_features_2021: ComParE 130-d audio,
DenseFace 342-d video, BERT-large 1024-d text, padded, lengths in ``inputs["<m>_len"]``; 12
cross-validation folds); prepare it once with
  mmjax data prepare msp_improv --from PATH/MSP-IMPROV_features_2021

Command (fold 1; rates (A, V, L) = (0.2, 0.5, 0.8), other Table 1 rates with --set missing.rates=...):
  mmjax train --config configs/msp_improv/redcore.py --workdir runs/msp_improv_redcore

Paper settings: as IEMOCAP (Implementation Details give one set for all datasets): Transformer
self-modal encoders (3 layers, 8 heads, 128-d), latent 128, RA-layers 256-128-64-32 in 5 blocks,
gamma 0.008, Adam 2e-4, batch 128. Chosen here: the IEMOCAP config's 2,000 steps (the released
driver trains MSP-IMPROV with the IEMOCAP script and epochs) and dropout; other folds
--set data.fold=2..12.

Expected: not measured here (MSP-IMPROV's features cannot be downloaded on our machines; no
result was produced with this config). The config loads and trains on a fixture in MMIN's layout
(tests/test_sequence_encoders.py).
"""

import dataclasses
import pathlib

from mmjax.config import import_file
from mmjax.methods.redcore import released
from mmjax.presets import apply_variants

IEMOCAP = pathlib.Path(__file__).resolve().parents[1] / "iemocap" / "redcore.py"


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets joined by ``+`` (``quick``,
    ``released``: mmjax.methods.redcore.released) or nothing."""
    config = import_file(IEMOCAP).get_config()
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, name="msp_improv"))
    return apply_variants(config, arg, released)
