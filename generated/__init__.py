"""Generated activation modules -- do not edit by hand; regenerate with ``actsym codegen --all``.

Convention: ``generated/<name>.py`` holds ``<Class>Function`` (autograd), ``<Class>`` (nn.Module) and the
functional ``<name>(x, *params)``; e.g. ``from generated.exp2 import ExP2``.

Modules: abs, elu, exp2, exp_p, exponential, gelu, mish, prelu, rational, relu, sigmoid, silu, sin, softplus, swish, tanh
"""
