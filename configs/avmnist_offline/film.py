"""FiLM fusion (Perez et al. 2018): the audio features predict gamma, beta that modulate the other modalities' projected features, concatenated into an MLP head, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/film.py --workdir runs/avmnist_offline_film

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  image+audio 0.986, image 0.329, audio 0.619; average 0.645
"""

from mmjax.methods.film import FilmConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", FilmConfig(), arg)
