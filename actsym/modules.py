"""Using generated activations in existing models."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def _matcher(old) -> Callable[[str, nn.Module], bool]:
    if isinstance(old, type) or (isinstance(old, tuple) and all(isinstance(t, type) for t in old)):
        return lambda name, m: isinstance(m, old)
    if isinstance(old, str):
        key = old.lower()
        return lambda name, m: type(m).__name__.lower() == key or getattr(m, "NAME", None) == old
    if callable(old):
        return lambda name, m: bool(old(name, m))
    raise TypeError(f"old must be a module class, a class name or a predicate (name, module) -> bool, got {old!r}")


def _factory(new, kwargs) -> Callable[[nn.Module], nn.Module]:
    if hasattr(new, "module") and hasattr(new, "spec"):  # an Activation
        return lambda replaced: new.module(**kwargs)
    if isinstance(new, str):
        from actsym.api import get

        act = get(new)
        return lambda replaced: act.module(**kwargs)
    if isinstance(new, type) and issubclass(new, nn.Module) or callable(new):
        return lambda replaced: new(**kwargs)
    raise TypeError(f"new must be an Activation, an activation name or a module factory, got {new!r}")


def replace_activations(model: nn.Module, old, new, **kwargs) -> int:
    """Swap every submodule of ``model`` that matches ``old`` for a fresh module made from ``new``, in place.

    ``old``: a module class (``nn.ReLU``), a tuple of classes, a class name (``"ReLU"``, case-insensitive) or a
    predicate ``(qualified_name, module) -> bool``. ``new``: an :class:`~actsym.activation.Activation`, an
    activation name (``"exp2"``) or a module factory; ``kwargs`` go to its constructor (e.g.
    ``num_parameters=C``, ``backend=...``). Each match gets its own module (learnable parameters are not
    shared). Returns the number of modules replaced; ``model`` itself is never replaced.

    >>> n = replace_activations(torchvision_model, old=nn.ReLU, new=actsym.get("exp2"))
    """
    match, make = _matcher(old), _factory(new, kwargs)
    targets = [(name, m) for name, m in model.named_modules() if name and match(name, m)]
    for name, m in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, make(m))
    return len(targets)
