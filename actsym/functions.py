"""SymPy functions for the numerically stable building blocks of activations.

SymPy writes ``1/(1 + exp(-x))`` and ``log(1 + exp(x))`` literally, and differentiating those forms gives
expressions such as ``x*exp(-x)/(1 + exp(-x))**2`` that overflow to ``inf/inf = nan`` in float32 at x = -100.
We therefore keep the stable primitives as opaque SymPy functions whose derivatives are written *in terms of
themselves* (``sigmoid' = sigmoid*(1 - sigmoid)``), so derivation never leaves the stable vocabulary, and
each primitive maps to one fused, stable torch op when printed.

Every function here carries an ``mpmath`` implementation (used for high-precision checks of the derivatives)
and the name of the torch op it prints as.
"""

from __future__ import annotations

import mpmath
import sympy as sp


class StableFunction(sp.Function):
    """Base class: a unary real function with a torch op, an mpmath reference and a symbolic derivative."""

    nargs = 1
    torch_op: str = ""
    torch_kwargs: str = ""

    @staticmethod
    def mp(u):  # pragma: no cover - overridden
        raise NotImplementedError

    def _eval_is_real(self):
        return self.args[0].is_real

    #: LaTeX of f(u) with ``%s`` for u; raised to a power, it is parenthesised (``\left(...\right)^{2}``).
    latex_template = r"\operatorname{f}\left(%s\right)"

    def _latex(self, printer, exp=None):
        tex = self.latex_template % printer._print(self.args[0])
        if exp is None:
            return tex
        if not self.latex_template.startswith(r"\left("):
            tex = r"\left(%s\right)" % tex
        return r"%s^{%s}" % (tex, exp)

    def _eval_evalf(self, prec):
        arg = self.args[0]._eval_evalf(prec)
        if arg is None or not arg.is_Number:
            return None
        with mpmath.workprec(prec):
            return sp.Float(self.mp(mpmath.mpf(arg)), precision=prec)


class sigmoid(StableFunction):
    r"""Logistic function :math:`\sigma(u) = 1/(1+e^{-u})`; :math:`\sigma' = \sigma(u)\sigma(-u)`."""

    torch_op = "torch.sigmoid"

    @staticmethod
    def mp(u):
        return 1 / (1 + mpmath.exp(-u))

    def fdiff(self, argindex=1):
        # sigma(u)*sigma(-u), not sigma*(1 - sigma): 1 - sigma(u) cancels for u >> 0 (float32 loses every bit
        # of sigma' beyond u ~ 17 and 3 digits already at u = 10); sigma(-u) is accurate there
        u = self.args[0]
        return sigmoid(u) * sigmoid(-u)

    @classmethod
    def eval(cls, u):
        if u == 0:
            return sp.Rational(1, 2)

    latex_template = r"\sigma\left(%s\right)"


class softplus(StableFunction):
    r"""Softplus :math:`\log(1+e^u)`; its derivative is :math:`\sigma(u)`."""

    # PyTorch's default threshold=20 returns x above 20 (abs. error up to 2e-9, visible in float64); above
    # 40, x is exact in float64 too, and exp(40) is far from float32 overflow.
    torch_op = "torch.nn.functional.softplus"
    torch_kwargs = ", threshold=40.0"

    @staticmethod
    def mp(u):
        return mpmath.log1p(mpmath.exp(u))

    def fdiff(self, argindex=1):
        return sigmoid(self.args[0])

    @classmethod
    def eval(cls, u):
        if u == 0:
            return sp.log(2)

    latex_template = r"\operatorname{softplus}\left(%s\right)"


class log1p(StableFunction):
    r""":math:`\log(1+u)`, accurate for small u."""

    torch_op = "torch.log1p"

    @staticmethod
    def mp(u):
        return mpmath.log1p(u)

    def fdiff(self, argindex=1):
        return 1 / (1 + self.args[0])

    @classmethod
    def eval(cls, u):
        if u == 0:
            return sp.S.Zero

    latex_template = r"\log\left(1 + %s\right)"


class expm1(StableFunction):
    r""":math:`e^u - 1`, accurate for small u."""

    torch_op = "torch.expm1"

    @staticmethod
    def mp(u):
        return mpmath.expm1(u)

    def fdiff(self, argindex=1):
        return sp.exp(self.args[0])

    @classmethod
    def eval(cls, u):
        if u == 0:
            return sp.S.Zero

    latex_template = r"\left(e^{%s} - 1\right)"


class ndtr(StableFunction):
    r"""Standard normal CDF :math:`\Phi(u) = (1 + \operatorname{erf}(u/\sqrt{2}))/2`, accurate in the left
    tail (``1 + erf(u)`` loses every digit for u < -4 and is 0 below -6; ``2*ndtr(sqrt(2)*u)`` does not)."""

    torch_op = "torch.special.ndtr"  # not used: that op is 1 + erf on CPU; printed as 0.5*erfc(-u/sqrt(2))

    @staticmethod
    def mp(u):
        return mpmath.erfc(-u / mpmath.sqrt(2)) / 2

    def fdiff(self, argindex=1):
        u = self.args[0]
        return sp.exp(-(u**2) / 2) / sp.sqrt(2 * sp.pi)

    @classmethod
    def eval(cls, u):
        if u == 0:
            return sp.Rational(1, 2)

    latex_template = r"\Phi\left(%s\right)"


class logabs(StableFunction):
    r""":math:`\log|u|`, kept opaque: inside ``exp(2*logabs(x) - softplus(x))`` SymPy would otherwise pull
    ``x**2`` back out of the exponential (and the product overflows again: inf*0 at x = 1e300)."""

    torch_op = "torch.log"  # printed as torch.log(torch.abs(u))

    @staticmethod
    def mp(u):
        return mpmath.log(abs(u))

    def fdiff(self, argindex=1):
        return 1 / self.args[0]

    latex_template = r"\log\left|%s\right|"


STABLE_FUNCTIONS: dict[str, type[StableFunction]] = {
    f.__name__: f for f in (sigmoid, softplus, log1p, expm1, ndtr, logabs)
}


def mpmath_namespace() -> dict:
    """Namespace for ``sympy.lambdify(..., modules=[mpmath_namespace(), "mpmath"])``."""
    ns = {name: f.mp for name, f in STABLE_FUNCTIONS.items()}
    ns["DiracDelta"] = lambda u: mpmath.mpf(0)
    return ns
