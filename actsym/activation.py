"""``Activation``: the user-facing object tying a spec to its derivation and generated code."""

from __future__ import annotations

import functools
import importlib
import types

import sympy as sp

from actsym.loader import load_source  # noqa: F401 - re-exported (tests, tools)
from actsym.spec import ActivationSpec, Param


class Activation:
    """A declared activation. Derivation and code generation happen lazily, once.

    For catalog entries the committed module in ``generated/`` is used when its source hash matches the spec,
    so importing and building modules is instant; otherwise the code is generated in memory.

    The symbolic work (derivation, rendering the source, higher derivatives) shares one time budget
    (``budget`` seconds, default ``ACTSYM_BUDGET`` or 30 s, see :mod:`actsym.budget`), minus ``spent`` (what
    validating the spec took). Each stage runs in a worker process that is killed when the budget is spent;
    the refusal (:class:`actsym.budget.BudgetExceeded`) names the stage.
    """

    def __init__(self, spec: ActivationSpec, prefer_generated: bool = False, budget: float | None = None,
                 spent: float = 0.0, verify: bool = True):
        self.spec = spec
        self._prefer_generated = prefer_generated
        self._verify = verify  # self-check generated code against the oracle (actsym.verify) when it is built
        self._budget = budget
        self._spent = spent
        self._source: str | None = None
        self._source_error: Exception | None = None
        self._higher: dict[tuple[str, int], sp.Expr] = {}

    # -- identity ----------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def expr(self) -> sp.Expr:
        return self.spec.expr

    @property
    def params(self) -> dict[str, Param]:
        return dict(self.spec.params)

    @property
    def class_name(self) -> str:
        return self.spec.class_name

    @property
    def source_hash(self) -> str:
        from actsym.codegen.eager import GENERATOR

        return self.spec.source_hash(GENERATOR)

    @property
    def latex(self) -> str:
        return sp.latex(self.spec.expr)

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v.init}" + ("" if v.learnable else " fixed") for k, v in self.spec.params.items())
        return f"Activation({self.name!r}, {sp.sstr(self.expr)!r}{', ' + ps if ps else ''})"

    # -- symbolic ----------------------------------------------------------------------------------
    def _budgeted(self, fn, *args, stage_name: str, partial: list | None = None):
        """``fn(*args)`` in a worker under what is left of this activation's budget."""
        from actsym.budget import budget_seconds, cpu_clock, run_budgeted

        total = budget_seconds(self._budget)
        start = cpu_clock()
        try:
            return run_budgeted(fn, *args, stage_name=stage_name, seconds=total - self._spent, total=total,
                                partial=partial)[0]
        finally:
            self._spent += cpu_clock() - start

    @functools.cached_property
    def derivation(self):
        return self._derive(render=False)

    def _derive(self, render: bool):
        """The derivation from one worker; with ``render`` the same worker renders the module next (it reuses
        the worker's SymPy cache). The derivation is kept when rendering then fails or runs out of time."""
        from actsym.parse import ExpressionError

        parts: list = []
        try:
            d, source = self._budgeted(_derive_and_render, self.spec, render, stage_name="derivation", partial=parts)
        except ExpressionError as e:
            if not parts:
                raise
            d, source, self._source_error = parts[0], None, e
        d = d if d is not None else parts[0]
        d.spec = self.spec  # the worker sent back an equal copy; keep one spec object
        if source is not None:
            self._source = source
        return d

    def symbol(self, name: str) -> sp.Symbol:
        if name == "x":
            return self.spec.x
        if name not in self.spec.params:
            raise KeyError(f"{self.name} has no parameter {name!r}")
        return sp.Symbol(name, real=True)

    def derivative(self, wrt: str | sp.Symbol = "x", order: int = 1) -> sp.Expr:
        """d^order f / d wrt^order (SymPy), with the library's kink and stability conventions."""
        key = wrt.name if isinstance(wrt, sp.Symbol) else wrt
        if order == 1:
            return self.derivation.grads[key]
        if (key, order) not in self._higher:
            from actsym.derive import differentiate

            d = self.derivative(key, order - 1)
            stage_name = f"derivation of d{order}f/d{key}{order}"
            self._higher[key, order] = self._budgeted(differentiate, d, self.symbol(key), stage_name=stage_name)
        return self._higher[key, order]

    @property
    def hazards(self) -> list[dict]:
        return self.derivation.hazards

    # -- code --------------------------------------------------------------------------------------
    def source(self) -> str:
        """The generated eager module source (what ``actsym codegen`` writes)."""
        if self._source is None:
            if "derivation" not in self.__dict__:
                self.__dict__["derivation"] = self._derive(render=True)
            if self._source_error is not None:
                raise self._source_error
        if self._source is None:
            from actsym.codegen.eager import render

            self._source = self._budgeted(render, self.derivation, stage_name=RENDER_STAGE)
        return self._source

    def triton_source(self) -> str | None:
        """The fused Triton module source (under the same budget as :meth:`source`), or None when the Triton
        printer does not support a node of this activation."""
        if not hasattr(self, "_triton_source"):
            d = self.derivation
            self._triton_source = self._budgeted(_render_triton, d, stage_name="rendering of the Triton module")
        return self._triton_source

    @functools.cached_property
    def code(self) -> types.ModuleType:
        """The generated module, imported from ``generated/`` when up to date, else built in memory."""
        if self._prefer_generated:
            try:
                mod = importlib.import_module(f"generated.{self.name}")
                if getattr(mod, "SOURCE_HASH", None) == self.source_hash:
                    return mod
            except ImportError:
                pass
        mod = load_source(self.source(), f"actsym_generated_{self.name}")
        if self._verify:
            from actsym.verify import self_check

            self_check(self.spec, mod)  # VerificationFailed (an ExpressionError): one line naming path and point
        _make_picklable(getattr(mod, self.class_name), self.spec)
        return mod

    @property
    def function(self):
        """The ``torch.autograd.Function`` subclass."""
        return getattr(self.code, f"{self.class_name}Function")

    @property
    def module_class(self):
        return getattr(self.code, self.class_name)

    def module(self, backend: str = "auto", **init):
        """Build the ``nn.Module``: ``num_parameters=C`` for per-channel parameters, ``<param>=value`` inits,
        ``learnable=(names...)`` to choose which parameters are trained.

        ``backend``: ``"eager"`` (generated torch code), ``"compile"`` (the same code through torch.compile),
        ``"triton"`` (fused kernels as a custom op), ``"auto"`` (Triton on CUDA when available, else eager).
        All backends share parameter names and ``state_dict`` keys."""
        from actsym.dispatch import make_module

        return make_module(self, backend=backend, **init)

    @property
    def functional(self):
        """Callable ``(x, *params) -> Tensor``; parameters may be numbers or tensors."""
        return getattr(self.code, self.name)


RENDER_STAGE = "rendering of the generated module"


def _derive_and_render(spec: ActivationSpec, render: bool):
    """(derivation, None), or with ``render``: the derivation goes to the parent first (budget.deliver), then
    (None, eager source)."""
    from actsym.budget import deliver, stage
    from actsym.derivation import derive

    d = derive(spec)
    if not render:
        return d, None
    deliver(d)
    from actsym.codegen.eager import render as render_eager

    with stage(RENDER_STAGE):
        return None, render_eager(d)


def _render_triton(d) -> str | None:
    from actsym.codegen.triton_backend import UnsupportedNode, render

    try:
        return render(d)
    except UnsupportedNode:
        return None


def _make_picklable(cls: type, spec: ActivationSpec) -> None:
    """Modules of a class generated in memory pickle as "rebuild from the spec, then restore the state", so
    ``torch.save(model)`` / ``pickle`` work and load in a fresh process (which regenerates the code)."""
    payload = {
        "name": spec.name, "expr": spec.expr, "class_name": spec.class_name, "title": spec.title,
        "reference": spec.reference, "params": {k: (v.init, v.learnable) for k, v in spec.params.items()},
    }

    def __reduce__(self):
        return (rebuild_module, (payload, self.__getstate__()))

    cls.__reduce__ = __reduce__


def rebuild_module(payload: dict, state: dict):
    """Unpickling side of :func:`_make_picklable`."""
    from actsym.spec import make_spec

    spec = make_spec(payload["name"], payload["expr"], payload["params"], class_name=payload["class_name"],
                     title=payload["title"], reference=payload["reference"])
    cls = Activation(spec).module_class
    obj = cls.__new__(cls)
    obj.__setstate__(state)
    return obj
