r"""Vector (non-pointwise) activations: normalized maps over one dimension,

    y_i = g(x_i) / S,    S = Σ_j g(x_j),

with ``g`` any scalar expression in ``x`` (``g = exp`` gives softmax; ``g = x**2`` or ``softplus`` give other
normalizations). Sums to 1 whenever S ≠ 0; a probability vector when g > 0.

Derivatives (derived and verified by :func:`derive_vector`, never written for a particular g):

    ∂y_i/∂x_j = δ_ij g'(x_i)/S − g(x_i) g'(x_j)/S² = δ_ij r_i − y_i r_j,    r_j = g'(x_j)/S,

so the Jacobian is ``diag(r) − y rᵀ`` and is never materialized:

    JVP  u ↦ r ⊙ u − y · Σ_j r_j u_j
    VJP  v ↦ r ⊙ (v − Σ_i v_i y_i)

For softmax r = y and the VJP is the familiar ``y ⊙ (v − ⟨v, y⟩)``. When ``g'/g`` is a constant a
(g = C e^{a x}), y is invariant under x → x − m, so the forward subtracts the maximum of ``a x`` along the
dimension: no overflow even at |x| = 1e4, and r = a y. Backward is written with differentiable torch ops
(g and g' come from the generated code of g), so double backward works; a ``jvp`` rule gives forward-mode AD.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass, field

import mpmath
import sympy as sp
import torch
from torch import nn

from actsym.activation import Activation
from actsym.functions import mpmath_namespace

_HALF = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class VectorDerivation:
    """What :func:`derive_vector` found for y = g(x)/Σg."""

    g: sp.Expr
    dg: sp.Expr  # g'
    log_rate: sp.Expr | None  # g'/g when it is a constant (then y is shift invariant), else None
    r: sp.Expr  # r_i in terms of x_i, y_i and S (printed in reports)
    checks: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"y_i = g(x_i)/S, S = sum_j g(x_j), g(x) = {sp.sstr(self.g)}",
                 f"g'(x) = {sp.sstr(self.dg)};  r_i = {sp.sstr(self.r)}",
                 "JVP: u -> r*u - y*sum(r*u);  VJP: v -> r*(v - sum(v*y))"]
        if self.log_rate is not None:
            lines.append(f"g'/g = {self.log_rate}: shift invariant, max-subtraction is exact")
        return "\n".join(lines + [f"verified: {c}" for c in self.checks])


@functools.cache
def _generic_structure(n: int = 3) -> str:
    """Check with an *undefined* function G that ∂y_i/∂x_j = δ_ij r_i − y_i r_j holds for every g."""
    xs = sp.symbols(f"x0:{n}", real=True)
    G = sp.Function("G")
    S = sum(G(xi) for xi in xs)
    y = [G(xi) / S for xi in xs]
    r = [sp.diff(G(xi), xi) / S for xi in xs]
    for i in range(n):
        for j in range(n):
            residual = sp.diff(y[i], xs[j]) - ((r[i] if i == j else 0) - y[i] * r[j])
            if sp.simplify(residual) != 0:
                raise AssertionError(f"Jacobian structure fails at ({i}, {j}): {residual}")
    return f"J = diag(r) - y r^T for an arbitrary g (symbolic, n = {n})"


def derive_vector(act: Activation, n: int = 3, points: int = 4, seed: int = 0) -> VectorDerivation:
    """Derive the Jacobian structure for this g and verify it.

    1. Symbolically, for an undefined function G: J = diag(r) − y rᵀ with r_j = G'(x_j)/S.
    2. For the actual g (canonical form, stable primitives): the entries of the Jacobian of
       ``g(x_i)/Σ g(x_j)`` differentiated by SymPy agree with the structure with r built from the library's
       derivative g', at random points, to 25 digits (mpmath).
    3. ``g'/g`` simplified: a constant a means g = C e^{a x}, hence shift invariance.
    """
    x = act.spec.x
    values = {act.symbol(k): sp.Float(v.init) for k, v in act.params.items()}  # parameters are fixed here
    g = act.derivation.f.xreplace(values)
    dg = act.derivative("x").xreplace(values)
    checks = [_generic_structure(n)]
    xs = sp.symbols(f"x0:{n}", real=True)
    gs = [g.subs(x, xi) for xi in xs]
    S = sp.Add(*gs)
    jac = sp.Matrix(n, n, lambda i, j: sp.diff(gs[i] / S, xs[j]))
    rs = [dg.subs(x, xi) / S for xi in xs]
    struct = sp.Matrix(n, n, lambda i, j: (rs[i] if i == j else 0) - gs[i] / S * rs[j])
    ns = [mpmath_namespace(), "mpmath"]
    jac_mp, struct_mp = sp.lambdify(xs, jac, modules=ns), sp.lambdify(xs, struct, modules=ns)
    rng = random.Random(seed)
    worst = 0.0
    with mpmath.workdps(30):
        for _ in range(points):
            pt = [mpmath.mpf(rng.uniform(-3, 3)) for _ in range(n)]
            a, b = jac_mp(*pt), struct_mp(*pt)
            worst = max(worst, max(float(abs(a[i, j] - b[i, j])) for i in range(n) for j in range(n)))
    if not worst < 1e-25:
        raise AssertionError(f"vector activation Jacobian check failed for g = {g} (error {worst:.2e})")
    checks.append(f"Jacobian of g(x_i)/S for this g equals diag(r) - y r^T (max error {worst:.1e}, 30 digits)")
    ratio = sp.simplify(dg / g)
    log_rate = ratio if (x not in ratio.free_symbols and ratio.is_nonzero) else None
    yi, Si = sp.symbols("y_i S", positive=True)
    r = log_rate * yi if log_rate is not None else dg.subs(x, sp.Symbol("x_i", real=True)) / Si
    return VectorDerivation(g, dg, log_rate, r, checks)


# ------------------------------------------------------------------------------------------------------
# torch
# ------------------------------------------------------------------------------------------------------


class _Ops:
    """The numeric pieces: y and r along ``dim`` from the generated code of g (differentiable ops)."""

    def __init__(self, act: Activation, rate: float | None):
        self.name = act.name
        self.values = [p.init for p in act.params.values()]
        self.rate = rate
        self.code = act.code

    def g(self, x):
        return getattr(self.code, f"{self.name}_value")(x, *self.values)

    def dg(self, x):
        return getattr(self.code, f"{self.name}_grad_x")(torch.ones_like(x), x, *self.values)

    def y_and_r(self, x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rate is not None:  # g = C e^{a x}: subtract max(a x)/a (exact; keeps a*x <= 0)
            shift = (self.rate * x).amax(dim, keepdim=True).detach() / self.rate
            gx = self.g(x - shift)
            y = gx / gx.sum(dim, keepdim=True)
            return y, self.rate * y
        gx = self.g(x)
        s = gx.sum(dim, keepdim=True)
        return gx / s, self.dg(x) / s


class VectorFunction(torch.autograd.Function):
    """y = g(x)/Σg along ``dim``; saves only x; VJP/JVP from the derived structure (no Jacobian)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x, dim, ops):
        xu = x.float() if x.dtype in _HALF else x
        return ops.y_and_r(xu, dim)[0].to(x.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.dim, ctx.ops = inputs
        ctx.save_for_backward(x)
        ctx.save_for_forward(x)

    @staticmethod
    def backward(ctx, v):
        (x,) = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None
        xu, vu = (x.float(), v.float()) if x.dtype in _HALF else (x, v)
        y, r = ctx.ops.y_and_r(xu, ctx.dim)
        return (r * (vu - (vu * y).sum(ctx.dim, keepdim=True))).to(x.dtype), None, None

    @staticmethod
    def jvp(ctx, u, *_):
        (x,) = ctx.saved_tensors
        y, r = ctx.ops.y_and_r(x, ctx.dim)
        ru = r * u
        return ru - y * ru.sum(ctx.dim, keepdim=True)


def _g_text(g) -> tuple[str, tuple[tuple[str, float], ...]]:
    """A picklable key for g: expression text (safe-parser syntax) and fixed parameter values."""
    if isinstance(g, Activation):
        return sp.sstr(g.expr), tuple((k, float(v.init)) for k, v in g.params.items())
    if isinstance(g, sp.Basic):
        return sp.sstr(g), ()
    if isinstance(g, str):
        return g, ()
    raise TypeError(f"g must be an expression string, a SymPy expression or an Activation, not {type(g).__name__}")


@functools.lru_cache(maxsize=64)
def _compiled(text: str, params: tuple[tuple[str, float], ...]) -> tuple[Activation, VectorDerivation, _Ops]:
    """g as an Activation (parameters fixed: they shape the normalization, they are not trained here),
    its vector derivation and the numeric ops. Cached, so modules stay cheap and picklable."""
    from actsym.api import define

    tag = hashlib.sha256(f"{text}|{params}".encode()).hexdigest()[:10]
    act = define(f"vec_g_{tag}", text, params=dict(params), fixed=tuple(k for k, _ in params))
    derivation = derive_vector(act)
    rate = derivation.log_rate
    return act, derivation, _Ops(act, float(rate) if rate is not None else None)


class VectorActivation(nn.Module):
    """``y = g(x)/Σ g(x)`` along ``dim`` as a module, e.g. ``VectorActivation("exp(x)", dim=1)`` (softmax over
    channels). ``g``: expression text in ``x``, SymPy expression or Activation; ``params`` fixes the values
    of parameters in the text. ``num_parameters`` is accepted and ignored, like every activation module.
    Holds no tensors: the state dict is empty; pickling and deepcopy keep only the expression."""

    def __init__(self, g="exp(x)", dim: int = -1, num_parameters: int = 1, params=None, name: str | None = None):
        super().__init__()
        text, fixed = _g_text(g)
        self.g_key = (text, tuple(sorted({**dict(fixed), **{k: float(v) for k, v in (params or {}).items()}}.items())))
        self.dim = dim
        self.label = name or f"normalized[{sp.sstr(self.derivation.g)}]"

    @property
    def g_act(self) -> Activation:
        return _compiled(*self.g_key)[0]

    @property
    def derivation(self) -> VectorDerivation:
        return _compiled(*self.g_key)[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return VectorFunction.apply(x, self.dim, _compiled(*self.g_key)[2])

    @property
    def latex(self) -> str:
        g, x = self.derivation.g, self.g_act.spec.x
        return r"y_i = \frac{%s}{\sum_j %s}" % (sp.latex(g.subs(x, sp.Symbol("x_i"))), sp.latex(g.subs(x, sp.Symbol("x_j"))))

    def extra_repr(self) -> str:
        return f"{self.label}, dim={self.dim}"


def softmax_activation(dim: int = -1) -> VectorActivation:
    """Softmax over ``dim`` as a hidden-layer activation (g = exp, max-subtracted)."""
    return VectorActivation("exp(x)", dim=dim, name="softmax")


#: Names :func:`vector_activation` understands besides ``normalized:<g>``.
VECTOR_NAMES = {"softmax": "exp(x)"}


def is_vector_spec(spec: str) -> bool:
    return spec in VECTOR_NAMES or spec.startswith("normalized:")


def vector_activation(spec: str, dim: int = -1) -> VectorActivation:
    """``"softmax"`` or ``"normalized:<g>"`` (e.g. ``"normalized:x**2"``) as a module."""
    if spec in VECTOR_NAMES:
        return VectorActivation(VECTOR_NAMES[spec], dim=dim, name=spec)
    if spec.startswith("normalized:"):
        return VectorActivation(spec.split(":", 1)[1], dim=dim, name=spec)
    raise KeyError(f"unknown vector activation {spec!r}; use softmax or normalized:<g>")


def channel_factory(spec: str):
    """``make(num_channels=None) -> module`` over dim 1 (the channel/feature dim of ``(N, C)`` and
    ``(N, C, H, W)`` tensors): the interface the harness uses for pointwise activations."""
    vector_activation(spec, dim=1)  # validate now, fail early
    return lambda num_channels=None: vector_activation(spec, dim=1)
