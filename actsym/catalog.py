"""Built-in activations: every activation used by the reference experiments, declared once, symbolically."""

from __future__ import annotations

from actsym.spec import Param

#: name -> keyword arguments of :func:`actsym.define` (expression strings go through the safe parser).
CATALOG: dict[str, dict] = {
    "relu": dict(expr="relu(x)", class_name="ReLU", title="Rectified linear unit",
                 reference="Nair & Hinton, ICML 2010"),
    "sigmoid": dict(expr="sigmoid(x)", class_name="Sigmoid", title="Logistic sigmoid"),
    "tanh": dict(expr="tanh(x)", class_name="Tanh", title="Hyperbolic tangent"),
    "softplus": dict(expr="softplus(x)", class_name="Softplus", title="Softplus log(1 + e^x)"),
    "elu": dict(expr="Piecewise((x, x > 0), (alpha*(exp(x) - 1), True))", params={"alpha": Param(1.0, False)},
                class_name="ELU", title="Exponential linear unit", reference="Clevert et al., arXiv:1511.07289"),
    "prelu": dict(expr="Piecewise((x, x > 0), (a*x, True))", params={"a": 0.25}, class_name="PReLU",
                  title="Parametric ReLU", reference="He et al., arXiv:1502.01852"),
    "gelu": dict(expr="x*(1 + erf(x/sqrt(2)))/2", class_name="GELU", title="Gaussian error linear unit (erf form)",
                 reference="Hendrycks & Gimpel, arXiv:1606.08415"),
    "silu": dict(expr="x*sigmoid(x)", class_name="SiLU", title="Sigmoid-weighted linear unit"),
    "swish": dict(expr="x*sigmoid(beta*x)", params={"beta": 1.0}, class_name="Swish",
                  title="Swish x*sigmoid(beta*x)", reference="Ramachandran et al., arXiv:1710.05941"),
    "mish": dict(expr="x*tanh(log(1 + exp(x)))", class_name="Mish", title="Mish x*tanh(softplus(x))",
                 reference="Misra, arXiv:1908.08681"),
    "exp_p": dict(expr="sign(x)*(1 - exp(-Abs(x)))", class_name="ExP", title="ExP sign(x)(1 - e^-|x|)"),
    "exp2": dict(expr="Piecewise(((1 - exp(-x))*(1 + x), x >= 0), (-(1 - exp(x)), True))", class_name="ExP2",
                 title="ExP2: (1 - e^-x)(1 + x) for x >= 0, e^x - 1 below"),
    "rational": dict(expr="Piecewise((x, x >= 0), (a*x/(a - x), True))", params={"a": 1.0},
                     class_name="Rational", title="Rational: x for x >= 0, a x/(a - x) below (learnable a)"),
    "exponential": dict(expr="Piecewise((x, x >= 0), (exp(a)*x/(exp(a) - x), True))", params={"a": 0.0},
                        class_name="Exponential",
                        title="Exponential: x for x >= 0, e^a x/(e^a - x) below (learnable a)"),
    "abs": dict(expr="Abs(x)", class_name="Abs", title="Absolute value |x|"),
    "sin": dict(expr="sin(x)", class_name="Sin", title="Sine"),
}

#: Catalog entries with a native PyTorch module (compared value-for-value and grad-for-grad in the tests).
NATIVE_NAMES = ("relu", "sigmoid", "tanh", "softplus", "elu", "prelu", "gelu", "silu", "mish")


def native_module(name: str):
    """The native PyTorch module equivalent to a catalog entry (default parameters), or None."""
    import torch.nn as nn

    factories = {
        "relu": nn.ReLU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        # threshold=40 instead of 20: the default linearizes above 20 (abs. error 2e-9, fails float64 checks)
        "softplus": lambda: nn.Softplus(threshold=40.0),
        "elu": lambda: nn.ELU(alpha=1.0),
        "prelu": lambda: nn.PReLU(init=0.25),
        "gelu": nn.GELU,
        "silu": nn.SiLU,
        "mish": nn.Mish,
    }
    factory = factories.get(name)
    return factory() if factory else None
