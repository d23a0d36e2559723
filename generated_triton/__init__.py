"""Generated fused Triton kernels -- do not edit by hand; regenerate with ``actsym codegen --all``.

Convention: ``generated_triton/<name>.py`` holds ``<name>_fwd_kernel`` and ``<name>_bwd_kernel`` (grad_x and every
parameter gradient in one pass) and their launchers ``forward(x, *params)`` and
``backward(grad, x, *params, needs=...)``; the files import only torch and triton. For autograd, torch.compile
and torch.export use ``actsym.backends.make_module(name, backend="triton")``.

Modules: abs, elu, exp2, exp_p, exponential, gelu, mish, prelu, rational, relu, sigmoid, silu, sin, softplus, swish, tanh
"""
