"""The method registry: name -> (config class, ``make(config, spec) -> Method``).

Add a method by writing ``mmjax/methods/<name>.py`` with its ``MethodConfig`` subclass and its
``make`` function, and adding one line to ``REGISTRY``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from mmjax.config import ExperimentConfig, MethodConfig
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods import ae_imputation, baselines, missing_detection, raml, smil, ume_mma
from mmjax.methods import redcore
from mmjax.methods import film, gated, mvae, tmc
from mmjax.methods import mla, ogm_ge, qmf
from mmjax.methods import mmin
from mmjax.methods.base import Method, TrainState


class Entry(NamedTuple):
    """A registered method: its hyper-parameter class and its constructor."""

    config_class: type
    make: Callable[[ExperimentConfig, DatasetSpec], Method]


REGISTRY: dict[str, Entry] = {
    "lower_bound": Entry(baselines.LowerBoundConfig, baselines.make_lower_bound),
    "upper_bound": Entry(baselines.UpperBoundConfig, baselines.make_upper_bound),
    "concat": Entry(MethodConfig, baselines.make_fusion("concat")),
    "sum": Entry(MethodConfig, baselines.make_fusion("sum")),
    "late": Entry(MethodConfig, baselines.make_fusion("late")),
    "augmentation": Entry(baselines.AugmentationConfig, baselines.make_augmentation),
    "multi_task": Entry(baselines.MultiTaskConfig, baselines.make_multi_task),
    "ume_mma": Entry(ume_mma.UmeMmaConfig, ume_mma.make),
    "naive": Entry(MethodConfig, ume_mma.make_naive),
    "missing_detection": Entry(missing_detection.MissingDetectionConfig, missing_detection.make),
    "smil": Entry(smil.SmilConfig, smil.make),
    "ae_imputation": Entry(ae_imputation.AeImputationConfig, ae_imputation.make),
    "redcore": Entry(redcore.RedCoreConfig, redcore.make),
    "raml": Entry(raml.RamlConfig, raml.make),
    "film": Entry(film.FilmConfig, film.make),
    "bilinear_gated": Entry(gated.GatedConfig, gated.make),
    "tmc": Entry(tmc.TmcConfig, tmc.make),
    "etmc": Entry(tmc.EtmcConfig, tmc.make),
    "mvae": Entry(mvae.MvaeConfig, mvae.make),
    "mla": Entry(mla.MlaConfig, mla.make),
    "qmf": Entry(qmf.QmfConfig, qmf.make),
    "ogm_ge": Entry(ogm_ge.OgmGeConfig, ogm_ge.make),
    "mmin": Entry(mmin.MminConfig, mmin.make),
    "cra": Entry(mmin.CraConfig, mmin.make_cra),
}


def entry(name: str) -> Entry:
    """The registry entry of ``name``; a ``UserError`` listing the choices if there is none."""
    if name not in REGISTRY:
        raise UserError(f"unknown method {name!r}; choose from {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """Builds the method ``config.method.name`` for dataset ``spec``."""
    found = entry(config.method.name)
    if type(config.method) is not found.config_class:
        raise UserError(
            f"method {config.method.name!r} takes a {found.config_class.__name__}, "
            f"the config has a {type(config.method).__name__}"
        )
    return found.make(config, spec)


__all__ = ["REGISTRY", "Entry", "Method", "TrainState", "entry", "make"]
