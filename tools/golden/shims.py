"""The shims the recording scripts share; each script's docstring says which it uses and why.

- ``stub_modules``: the authors' scripts import heavy packages (torchvision, timm, BERT, sklearn,
  tensorboard) at the top that the recorded path never calls; empty modules stand in for them.
- ``cuda_as_cpu``: released code that calls ``.cuda()`` on tensors it builds; here a no-op.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import sys
import types

import torch


class _Stub(types.ModuleType):
    """A module whose every attribute is a placeholder (``from stub import X`` works)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


def stub_modules(*names: str) -> None:
    """Installs a ``_Stub`` for each dotted name (and for its parents that do not import: put the
    authors' checkout on ``sys.path`` first, so that their own packages stay real)."""
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            if i < len(parts):
                try:
                    importlib.import_module(sub)
                except ImportError:
                    pass
            if sub not in sys.modules or i == len(parts):
                stub = sys.modules[sub] = _Stub(sub)
                stub.__path__ = []
                stub.__spec__ = importlib.machinery.ModuleSpec(sub, None, is_package=True)
            if i > 1:
                setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], sys.modules[sub])


@contextlib.contextmanager
def cuda_as_cpu():
    """``Tensor.cuda()`` returns the tensor unchanged inside the block (there is no GPU)."""
    saved = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = saved
