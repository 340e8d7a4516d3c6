"""QMF (energy confidence-weighted late fusion + ranking regulariser, Zhang et al. 2023), on AV-MNIST-offline (image PCA 25 % energy, audio SNR -5..15 dB).

Command:
  mmjax train --config configs/avmnist_offline/qmf.py --workdir runs/avmnist_offline_qmf

The same encoders (+ projection to s = 128), data and optimiser (SGD momentum 0.9, step decay) as
configs/avmnist_offline/mla.py, so the comparison of MLA's Tables 1-2 holds the backbone fixed.
--set method.rank_weight=0 drops the ranking regulariser.
As released (``:released``, QingyangZhang/QMF ``train_qmf.py``): the method's defaults already are
the released rule; its optimiser is Adam (here at lr 1e-3: the released 5e-5 fine-tunes BERT).
MLA's own copy of QMF (its main.py) weights the ranking term 0.1: --set method.rank_weight=0.1.

Expected (test accuracy, mean of 3 seeds): see experiments/mla/README.md.
"""

import dataclasses

from mmjax.config import OptimConfig
from mmjax.methods import qmf
from mmjax.methods.qmf import QmfConfig
from mmjax.presets import experiment

OPTIM = OptimConfig(name="sgd", lr=1e-2, momentum=0.9, schedule="step", decay_steps=450,
                    decay_rate=0.1)


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``, ``released``)."""
    config = experiment("avmnist_offline", QmfConfig(), arg, optim=OPTIM, released=qmf.released)
    return dataclasses.replace(config, data=dataclasses.replace(
        config.data, image_pca_energy=0.25, snr_db=(-5.0, 15.0)))
