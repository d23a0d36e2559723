"""Network pieces shared by the recipes, and the batched many-seed MLP.

Each recipe file defines its own network; this module holds only what several of them share:
a plain MLP builder, the tracking of which sub-modules are activations (for firing statistics and
learned parameters), and :class:`BatchedMLP`, which trains S seeds of one MLP at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

ActFactory = Callable[..., nn.Module]
"""``act(num_channels=None) -> nn.Module``: a fresh activation module per call."""


def mlp(sizes: Sequence[int], act: ActFactory, init: str = "torch") -> nn.Sequential:
    """``Linear → act → … → Linear`` for already-flattened inputs.

    ``init="keras"`` uses Glorot-uniform weights and zero biases (Keras ``Dense`` defaults);
    ``"torch"`` keeps PyTorch's default ``nn.Linear`` initialisation.
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        lin = nn.Linear(n_in, n_out)
        if init == "keras":
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_tracked(build: Callable[[ActFactory], nn.Module], make_act: ActFactory
                  ) -> tuple[nn.Module, list[tuple[str, nn.Module]]]:
    """Build a model and return it with its activation modules as ``[(qualified_name, module)]``.

    Every module the factory hands out is remembered, then found again in ``named_modules()`` so
    the names are the model's own (``"3"``, ``"features.act1"``…), in forward-definition order.
    """
    created: list[nn.Module] = []

    def tracked(num_channels: int | None = None) -> nn.Module:
        module = make_act(num_channels)
        created.append(module)
        return module

    model = build(tracked)
    ids = {id(m) for m in created}
    acts = [(name, m) for name, m in model.named_modules() if id(m) in ids]
    return model, acts


def copy_matching_weights(src: nn.Module, dst: nn.Module) -> int:
    """Copy every entry of ``src.state_dict()`` whose name and shape exist in ``dst``; return count.

    Used for paired seeds: a model built with an identity activation under seed s gives every
    activation's model the same initial weights, whatever RNG the activation modules consume.
    """
    dst_state = dst.state_dict()
    n = 0
    with torch.no_grad():
        for key, value in src.state_dict().items():
            if key in dst_state and dst_state[key].shape == value.shape:
                dst_state[key].copy_(value)
                n += 1
    return n


class BatchedMLP(nn.Module):
    """S independent copies of an ``mlp`` evaluated together with batched matmuls.

    ``forward`` takes ``(S, B, in)`` and returns ``(S, B, out)``; copy s starts from the weights of
    ``models[s]`` (so it matches a sequential run seeded the same way).  Activations are applied on a
    ``(B, S, H)`` view, so an activation with learnable parameters gets one value per seed
    (per-channel along dim 1); without learnable parameters one shared module is used.
    """

    def __init__(self, models: Sequence[nn.Sequential], act: ActFactory, learnable_act: bool) -> None:
        super().__init__()
        s = len(models)
        linears = [[m for m in model if isinstance(m, nn.Linear)] for model in models]
        depth = len(linears[0])
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([lin[i].weight.detach().t() for lin in linears]).contiguous())
            for i in range(depth))
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([lin[i].bias.detach() for lin in linears]).unsqueeze(1).contiguous())
            for i in range(depth))
        self.acts = nn.ModuleList(act(s if learnable_act else None) for _ in range(depth - 1))

    @property
    def num_models(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.acts):
                h = self.acts[i](h.transpose(0, 1)).transpose(0, 1)
        return h
