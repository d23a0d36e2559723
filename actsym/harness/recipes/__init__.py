"""Recipe registry: one readable module per reference experiment.

A recipe module defines

* ``NAME``, ``DESCRIPTION``, ``SETTINGS`` (one dict, units in the comments), ``VARIANTS``
  (named overrides of ``SETTINGS``), ``BASELINES`` (the reference's own comparison set) and
  ``REFERENCE`` (the published numbers, per variant);
* ``prepare(dataset, settings, device) -> TensorData``;
* ``build_model(act, settings, num_classes) -> nn.Module`` where ``act(num_channels=None)`` returns a
  fresh activation module;
* optionally ``augment(x, generator, settings)`` and ``lr_multiplier(step, total_steps, settings)``.
"""

from __future__ import annotations

import copy
import importlib
from types import ModuleType
from typing import Any

_MODULES = {
    "mnist-mlp": "mnist_mlp",
    "mnist-mlp-keras": "mnist_mlp_keras",
    "mnist-cnn21": "mnist_cnn21",
    "cifar-cnn3": "cifar_cnn3",
    "cifar-fast": "cifar_fast",
}


def names() -> list[str]:
    """Names of all registered recipes."""
    return list(_MODULES)


def get(name: str) -> ModuleType:
    """The recipe module registered under ``name`` (``mnist-mlp`` or ``mnist_mlp``)."""
    key = name.replace("_", "-")
    if key not in _MODULES:
        raise KeyError(f"unknown recipe {name!r}; known: {', '.join(names())}")
    return importlib.import_module(f"{__name__}.{_MODULES[key]}")


def _coerce(old: Any, text: Any) -> Any:
    """Parse an override given as text to the type of the setting it replaces."""
    if not isinstance(text, str) or isinstance(old, str):
        return text
    if isinstance(old, bool):
        return text.lower() in ("1", "true", "yes", "on")
    if isinstance(old, int):
        return int(text)
    if isinstance(old, float):
        return float(text)
    if isinstance(old, list | tuple):
        parts = [p for p in text.replace(",", " ").split()]
        proto = old[0] if old else 0.0
        return type(old)(_coerce(proto, p) for p in parts)
    if old is None:
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
    return text


def resolve_settings(recipe: ModuleType, variant: str | None = None, overrides: dict[str, Any] | None = None,
                     epochs: int | None = None) -> dict[str, Any]:
    """``SETTINGS`` ← ``VARIANTS[variant]`` ← ``overrides`` ← ``epochs``; records the variant name."""
    settings = copy.deepcopy(recipe.SETTINGS)
    variant = variant or next(iter(recipe.VARIANTS))
    if variant not in recipe.VARIANTS:
        raise KeyError(f"recipe {recipe.NAME} has no variant {variant!r}; known: {', '.join(recipe.VARIANTS)}")
    settings.update(copy.deepcopy(recipe.VARIANTS[variant]))
    reference_epochs = settings["epochs"]
    for key, value in (overrides or {}).items():
        if key not in settings:
            raise KeyError(f"recipe {recipe.NAME} has no setting {key!r}; known: {', '.join(sorted(settings))}")
        settings[key] = _coerce(settings[key], value)
    if epochs is not None:
        settings["epochs"] = int(epochs)
    settings["variant"] = variant
    settings["reference_epochs"] = reference_epochs
    return settings
