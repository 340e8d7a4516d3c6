"""Concat (intermediate) fusion on MM-IMDb's pre-extracted features: an MLP encoder per modality
(VGG-16 4096-d poster features, word2vec 300-d plot features), masked features concatenated, MLP
head with 23 sigmoid outputs, binary cross-entropy (multi-label).

MM-IMDb as MultiBench reads it: 15,552 / 2,608 / 7,799 movies; prepare it once with
  mmjax data prepare mmimdb --from PATH/multimodal_imdb.hdf5

Command:
  mmjax train --config configs/mmimdb/concat.py --workdir runs/mmimdb_concat

Metrics: F1 micro / macro / samples at threshold 0.5 (mmjax.metrics.multilabel_metrics).

Expected: not measured here (the dataset cannot be downloaded on our machines). The config and its
models are checked against the dataset's spec, and the loader against a fixture in the published
layout, in tests/test_data_papers2.py.
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mmimdb", MethodConfig(name="concat"), arg)
