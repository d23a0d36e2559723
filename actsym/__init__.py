"""actsym: declare an activation once as a SymPy expression; get derivatives, generated PyTorch code,
property tests and evaluations.

>>> import actsym
>>> act = actsym.define("tanhexp", "x*tanh(exp(b)*x)", params={"b": 0.0})
>>> layer = act.module()            # nn.Module with a learnable scalar b
>>> actsym.get("exp2").derivative("x")
"""

__version__ = "0.1.0"

from actsym.api import corpus_names, define, get, names  # noqa: E402
from actsym.modules import replace_activations  # noqa: E402
from actsym.parse import ExpressionError  # noqa: E402
from actsym.spec import Param  # noqa: E402

__all__ = ["define", "get", "names", "corpus_names", "replace_activations", "ExpressionError", "Param", "__version__"]
