"""RedCore on CMU-MOSEI (3 sentiment classes) from MMSA's aligned pickle: the paper's third dataset,
with the encoders and optimiser of configs/iemocap/redcore.py.

The data: MMSA's ``aligned_50.pkl`` (COVAREP 74-d audio, Facet 35-d video, BERT 768-d text, 50
aligned steps, lengths in ``inputs["<m>_len"]``; modality order audio, vision, text = the A, V, L
of the paper's rates); prepare it once with
  mmjax data prepare mmsa_mosei --from PATH/aligned_50.pkl

Command (rates (A, V, L) = (0.2, 0.5, 0.8); the released MOSEI driver's other rate triples with
--set missing.rates=0.8,0.5,0.5 etc.):
  mmjax train --config configs/mmsa_mosei/redcore.py --workdir runs/mosei_redcore

Paper settings: negative / neutral / positive (the paper's three sentiment labels; here the sign of
MMSA's regression label, ``data.label_view=3class``), weighted F1 over the 7 test subsets, and
the one set of Implementation Details: Transformer self-modal encoders (3 layers, 8 heads, 128-d),
latent 128, RA-layers 256-128-64-32 in 5 blocks, gamma 0.008, Adam 2e-4, batch 128. The released
MOSEI driver differs (batch 256, embedding 96, RA-layers 160-80-32; it does not run as shipped,
reference notes §1); we follow the paper. Chosen here: 2,500 steps (about the released 10 + 10
epochs of MOSEI's 16,326 training utterances at batch 128) and the IEMOCAP config's dropout.

Expected: not measured here (CMU-MOSEI cannot be downloaded on our machines; no result was
produced with this config). The config loads and trains on a fixture in MMSA's layout
(tests/test_sequence_encoders.py).
"""

import dataclasses
import pathlib

from mmjax.config import DataConfig, import_file
from mmjax.methods.redcore import released
from mmjax.presets import apply_variants

IEMOCAP = pathlib.Path(__file__).resolve().parents[1] / "iemocap" / "redcore.py"
STEPS = 2500


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets joined by ``+`` (``quick``,
    ``released``: mmjax.methods.redcore.released) or nothing."""
    config = import_file(IEMOCAP).get_config()
    config = dataclasses.replace(config, data=DataConfig(name="mmsa_mosei", label_view="3class"),
                                 train=dataclasses.replace(config.train, steps=STEPS))
    return apply_variants(config, arg, released)
