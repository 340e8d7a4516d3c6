"""FiLM fusion (Perez et al. 2018): the zer features predict gamma, beta that modulate the other modalities' projected features, concatenated into an MLP head, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/film.py --workdir runs/mfeat_film

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  all six views 0.983, fac alone 0.302; average over the 63 subsets 0.698
"""

from mmjax.methods.film import FilmConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", FilmConfig(), arg)
