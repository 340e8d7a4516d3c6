"""The method registry: name -> (config class, ``make(config, spec) -> Method``).

Add a method by writing ``mmjax/methods/<name>.py`` with its ``MethodConfig`` subclass and its
``make`` function, and adding one line to ``REGISTRY``; a method outside mmjax is added with one
``register(name, config_class, make)`` call (README, "Extending mmjax").
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
from collections.abc import Mapping
from typing import Callable, NamedTuple

from mmjax import config as config_lib
from mmjax.config import ExperimentConfig, MethodConfig
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods import ae_imputation, baselines, missing_detection, raml, smil, ume_mma
from mmjax.methods import redcore
from mmjax.methods import film, gated, md, mmvae, mvae, tmc
from mmjax.methods import mla, ogm_ge, qmf
from mmjax.methods import dcca, mmin
from mmjax.methods.base import USER_TX, Method, TrainState
from mmjax.models.encoders import USER_ENCODERS, encoder_names


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
    "md": Entry(md.MdConfig, md.make),
    "mvae": Entry(mvae.MvaeConfig, mvae.make),
    "mmvae": Entry(mmvae.MmvaeConfig, mmvae.make),
    "mla": Entry(mla.MlaConfig, mla.make),
    "qmf": Entry(qmf.QmfConfig, qmf.make),
    "ogm_ge": Entry(ogm_ge.OgmGeConfig, ogm_ge.make),
    "mmin": Entry(mmin.MminConfig, mmin.make),
    "cra": Entry(mmin.CraConfig, mmin.make_cra),
    "cca": Entry(dcca.CcaConfig, dcca.make),
    "dcca": Entry(dcca.DccaConfig, dcca.make),
    "dccae": Entry(dcca.DccaeConfig, dcca.make),
}


def register(name: str, config_class: type,
             make_fn: Callable[[ExperimentConfig, DatasetSpec], Method]) -> None:
    """Registers method ``name``: the run-time form of a line in ``REGISTRY``, for a method that
    lives outside mmjax. Registering the same entry again does nothing.

    Raises:
      UserError: ``name`` is taken by another entry, or ``config_class`` is not a
        ``MethodConfig`` subclass whose default ``name`` is ``name`` (what ``config.json`` and
        ``--set method.name=`` look the method up by).
    """
    new = Entry(config_class, make_fn)
    if REGISTRY.get(name, new) != new:
        raise UserError(f"method {name!r} is already registered")
    if not (isinstance(config_class, type) and issubclass(config_class, MethodConfig)):
        raise UserError(f"method {name!r}: its config class must subclass MethodConfig")
    if config_class().name != name:
        raise UserError(f"method {name!r}: {config_class.__name__}'s default name is "
                        f"{config_class().name!r}; declare name: str = {name!r}")
    REGISTRY[name] = new


def entry(name: str) -> Entry:
    """The registry entry of ``name``; a ``UserError`` listing the choices if there is none."""
    if name not in REGISTRY:
        raise UserError(f"unknown method {name!r}; choose from {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def make(config: ExperimentConfig, spec: DatasetSpec, *, tx=None,
         encoders: Mapping[str, Callable] | None = None) -> Method:
    """Builds the method ``config.method.name`` for dataset ``spec``.

    Args:
      config: the experiment (its method, model and optimiser sections).
      spec: the dataset's spec.
      tx: your optimiser instead of ``config.optim``'s: an optax ``GradientTransformation``
        (used for every optimiser the method builds, every phase's), or a factory
        ``tx(optim_config, total_steps) -> GradientTransformation`` called for each.
      encoders: modality -> ``factory(shape, *, rngs) -> nnx.Module`` building your encoder of
        that modality instead of ``config.model.encoders``'s (the others keep theirs). The module
        maps ``x [B, *shape]`` to ``[B, out_dim]`` as ``module(x, deterministic=..., rngs=...)``
        and has an ``out_dim`` attribute (``mmjax.models.encoders``' contract).

    Raises:
      UserError: a field out of its declared range (``config.validate``), the config's method
        class does not match, an unknown modality in ``encoders``, or a method that does not
        build its encoders from ``model.encoders``.
    """
    config_lib.validate(config)
    found = entry(config.method.name)
    if type(config.method) is not found.config_class:
        raise UserError(
            f"method {config.method.name!r} takes a {found.config_class.__name__}, "
            f"the config has a {type(config.method).__name__}"
        )
    user_encoders, called = {}, set()
    if encoders:
        config, user_encoders, called = _with_user_encoders(config, spec, encoders)
    tx_token = USER_TX.set(tx)
    enc_token = USER_ENCODERS.set(user_encoders)
    try:
        method = found.make(config, spec)
    finally:
        USER_TX.reset(tx_token)
        USER_ENCODERS.reset(enc_token)
    if not user_encoders:
        return method
    unused = sorted(set(user_encoders) - called)
    if unused:  # the method never asked for that encoder: it would be silently ignored
        raise UserError(f"method {config.method.name!r} does not build its encoders from "
                        f"model.encoders, so encoders= cannot replace "
                        f"{', '.join(n.removeprefix(_USER) for n in unused)}")
    return _within(method, USER_ENCODERS, user_encoders)


_USER = "user:"  # model.encoders' name of a user's encoder: "user:<modality>"


def _with_user_encoders(config: ExperimentConfig, spec: DatasetSpec, encoders: Mapping):
    """``config`` naming ``user:<modality>`` for the replaced modalities, the factories by those
    names (counting their calls into the returned set), and that set."""
    bad = [m for m in encoders if m not in spec.modalities]
    if bad:
        raise UserError(f"encoders= names {bad[0]!r}, not a modality of {spec.name} "
                        f"({', '.join(spec.modalities)})")
    names = list(encoder_names(spec, config.model))
    called: set[str] = set()
    factories = {}
    for m, factory in encoders.items():
        name = _USER + m
        names[spec.modalities.index(m)] = name

        def counted(shape, *, rngs, _factory=factory, _name=name):
            called.add(_name)
            return _factory(shape, rngs=rngs)

        factories[name] = counted
    model = dataclasses.replace(config.model, encoders=tuple(names))
    return dataclasses.replace(config, model=model), factories, called


def _within(method: Method, var: contextvars.ContextVar, value) -> Method:
    """``method`` with ``var`` set to ``value`` while any of its functions runs (or is traced):
    networks are built in ``init`` and in the steps' and ``predict``'s merges."""
    def wrap(fn):
        if fn is None:
            return None

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            token = var.set(value)
            try:
                return fn(*args, **kwargs)
            finally:
                var.reset(token)
        return inner

    phases = tuple(p._replace(step=wrap(p.step), enter=wrap(p.enter)) for p in method.phases)
    return method._replace(init=wrap(method.init), phases=phases, predict=wrap(method.predict))


__all__ = ["REGISTRY", "Entry", "Method", "TrainState", "entry", "make", "register"]
