"""Concat (intermediate) fusion: masked encoder features concatenated, MLP head,
on SMIL's avMNIST.

SMIL's avMNIST: 1,050 training images, 210 of them with sound (per_class_num 21); 450 test pairs;
prepare it once with
  mmjax data prepare smil_avmnist --from FOLDER
Fewer pairs: --set data.per_class_num=15 (150 pairs); SMIL's MFCC recipe:
--set data.mfcc_variant=smil.

Command:
  mmjax train --config configs/smil_avmnist/concat.py --workdir runs/smil_avmnist_concat

Expected: not measured here (the dataset cannot be downloaded on our machines). The config and
its models are checked against the dataset's spec, and its loader against a fixture in the
published layout, in tests/test_data_papers.py.
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("smil_avmnist", MethodConfig(name="concat"), arg)
