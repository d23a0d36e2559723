"""The training loop every recipe shares, written for speed on small CPU models.

* Data are whole tensors on the device, already normalised to float; a batch is an index slice of
  a permutation drawn from a generator seeded by ``(seed, epoch)`` — so the data order of seed s is
  the same for every activation, and a resumed run sees the same order as an uninterrupted one.
* Paired seeds: the weights come from a model built with an identity activation under
  ``torch.manual_seed(seed)`` (same shapes → same initial weights for every activation).
* Running loss / accuracy stay on the device during an epoch (no ``.item()`` per batch).
* After every epoch: test loss / accuracy, firing statistics on a fixed batch, learned activation
  parameters; then the caller's ``on_epoch`` (the results store) and an atomic checkpoint.
* A non-finite training loss ends the run with status ``"failed"`` instead of raising.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .activations import ActivationHandle
from .firing import act_param_values, firing_stats
from .models import build_tracked, copy_matching_weights
from .progress import Progress

# ----------------------------------------------------------------------------------------------
# data as tensors


@dataclass
class TensorData:
    """A dataset prepared for training: float inputs and int64 labels, all on one device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    info: dict[str, Any] = field(default_factory=dict)


def images_to_float(x: torch.Tensor, mean: float | tuple[float, ...] | None, std: float | tuple[float, ...] | None,
                    device: torch.device, flatten: bool = False,
                    memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` → float32 in [0, 1], optionally ``(x - mean) / std``, on ``device``."""
    out = x.to(device).float().div_(255.0)
    if mean is not None and std is not None:
        c = out.shape[1]
        m = torch.as_tensor(mean, dtype=out.dtype, device=device).reshape(1, -1, 1, 1).expand(1, c, 1, 1)
        s = torch.as_tensor(std, dtype=out.dtype, device=device).reshape(1, -1, 1, 1).expand(1, c, 1, 1)
        out = out.sub_(m).div_(s)
    if flatten:
        return out.reshape(out.shape[0], -1).contiguous()
    return out.contiguous(memory_format=memory_format)


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int, flip: bool = True) -> torch.Tensor:
    """Per-image random translation by up to ``pad`` pixels (reflect padding) and horizontal flip."""
    n, _, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        idx_n = torch.arange(n, device=x.device)[:, None, None, None]
        idx_c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
        x = padded[idx_n, idx_c, rows, cols]
    if flip:
        mask = torch.rand(n, device=x.device, generator=gen) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x


def brightness_contrast(x: torch.Tensor, gen: torch.Generator, brightness: float,
                        contrast: tuple[float, float]) -> torch.Tensor:
    """Random additive brightness in ±``brightness`` and contrast factor in ``contrast`` per image."""
    n = x.shape[0]
    b = (torch.rand(n, 1, 1, 1, device=x.device, generator=gen) * 2 - 1) * brightness
    lo, hi = contrast
    c = torch.rand(n, 1, 1, 1, device=x.device, generator=gen) * (hi - lo) + lo
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * c + mean + b


# ----------------------------------------------------------------------------------------------
# optimizers


class LeanSGD:
    """Plain SGD (no momentum, no weight decay) as one fused ``_foreach_add_`` per step.

    ``torch.optim.SGD`` spends ~70 µs per step in Python bookkeeping, which is ~15 % of a small MLP
    step on CPU.  Same update rule; ``state_dict`` holds only the learning rate.
    """

    def __init__(self, params, lr: float) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.param_groups = [{"params": self.params, "lr": lr}]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params if p.grad is not None]
        params = [p for p in self.params if p.grad is not None]
        torch._foreach_add_(params, grads, alpha=-self.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        return {"lr": self.param_groups[0]["lr"]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.param_groups[0]["lr"] = state["lr"]


def make_optimizer(model: nn.Module, settings: Mapping[str, Any]):
    """Optimizer from ``settings``: ``optimizer`` in {sgd, adam}, ``lr``, ``momentum``, ``nesterov``,
    ``weight_decay``, ``adam_eps``."""
    name = settings["optimizer"]
    lr = settings["lr"]
    wd = settings.get("weight_decay", 0.0)
    if name == "sgd":
        momentum = settings.get("momentum", 0.0)
        if momentum == 0 and wd == 0:
            return LeanSGD(model.parameters(), lr)
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd,
                               nesterov=settings.get("nesterov", False), foreach=True)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, eps=settings.get("adam_eps", 1e-8),
                                weight_decay=wd, foreach=True)
    raise ValueError(f"unknown optimizer {name!r} (sgd, adam)")


# ----------------------------------------------------------------------------------------------
# device, determinism


def pick_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def set_deterministic(on: bool, device: torch.device) -> None:
    """Deterministic kernels (and no cuDNN autotuning) when ``on``; autotuning otherwise on CUDA."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if on or torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(on, warn_only=True)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not on
        torch.backends.cudnn.deterministic = on


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of the data-order / augmentation generator for ``epoch`` of run ``seed``."""
    return (seed * 1_000_003 + epoch * 7_919) % (2**63 - 1)


# ----------------------------------------------------------------------------------------------
# model construction


def build_model(recipe, handle: ActivationHandle, settings: Mapping[str, Any], num_classes: int, seed: int,
                device: torch.device) -> tuple[nn.Module, list[tuple[str, nn.Module]]]:
    """Model for (recipe, activation, seed) with paired initial weights; also its activation modules."""
    torch.manual_seed(seed)
    reference = recipe.build_model(lambda num_channels=None: nn.Identity(), settings, num_classes)
    torch.manual_seed(seed)
    model, acts = build_tracked(lambda act: recipe.build_model(act, settings, num_classes), handle.make)
    copy_matching_weights(reference, model)
    if settings.get("init_gain", "default") == "computed":
        _computed_gain_init(model, handle, seed)
    fmt = torch.channels_last if settings.get("channels_last") else torch.contiguous_format
    model.to(device=device, memory_format=fmt)
    return model, acts


def _computed_gain_init(model: nn.Module, handle: ActivationHandle, seed: int) -> None:
    """Weights N(0, gain²/fan_in) with the activation's variance-preserving gain 1/sqrt(E[f(z)²]) (see
    actsym.analysis.signal); the first layer sees raw inputs and gets gain 1. Seeded: paired across activations."""
    from actsym.analysis.signal import init_gain, init_weights_

    if handle.activation is None:
        raise KeyError(f"--init-gain computed needs a symbolic activation; {handle.name!r} has none")
    gain = init_gain(handle.activation, handle.params)
    torch.manual_seed(seed)
    init_weights_(model, gain)
    first = next(m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)))
    init_weights_(first, 1.0)


# ----------------------------------------------------------------------------------------------
# the loop


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float
    lr: float
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    firing: dict[str, dict[str, float]] = field(default_factory=dict)
    act_params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class RunResult:
    status: str  # "finished" | "failed"
    start_epoch: int
    records: list[EpochRecord]
    error: str | None = None


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
             amp: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``, in eval mode."""
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for i in range(0, x.shape[0], batch_size):
        with _autocast(x.device, amp):
            out = model(x[i:i + batch_size])
        loss += F.cross_entropy(out.float(), y[i:i + batch_size], reduction="sum")
        correct += (out.argmax(1) == y[i:i + batch_size]).sum()
    n = max(x.shape[0], 1)
    return loss.item() / n, correct.item() / n


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def load_checkpoint(path: str | Path | None, device: torch.device | str = "cpu") -> dict | None:
    """The state in a checkpoint file, or None when there is none. Loaded with ``weights_only=True`` (tensors,
    numbers, containers only: a crafted file cannot run code). A file that cannot be read that way (damaged,
    truncated, or not ours) is moved aside to ``<name>.bad`` with a one-line warning, and the run restarts."""
    if path is None or not Path(path).exists():
        return None
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=device, weights_only=True)
        if not (isinstance(state, dict) and {"epoch", "model", "optimizer", "rng"} <= set(state)):
            raise ValueError("not an actsym checkpoint")
        return state
    except Exception as err:  # noqa: BLE001 - any unreadable file means: redo the run
        bad = path.with_name(path.name + ".bad")
        os.replace(path, bad)
        print(f"actsym: checkpoint {path} is unreadable or unsafe ({type(err).__name__}); moved to {bad.name}, "
              "the run restarts from epoch 0", file=sys.stderr)
        return None


def last_checkpoint_epoch(path: str | Path | None) -> int:
    """Last completed epoch stored in a checkpoint file (0 when there is none or it is unreadable)."""
    state = load_checkpoint(path)
    return 0 if state is None else int(state["epoch"])


def _save_checkpoint(path: Path, epoch: int, model: nn.Module, opt) -> None:
    state = {"epoch": epoch, "model": model.state_dict(), "optimizer": opt.state_dict(),
             "rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a kill leaves either the old or the new checkpoint


def train_run(recipe, handle: ActivationHandle, data: TensorData, settings: Mapping[str, Any], seed: int,
              device: torch.device, *, checkpoint: str | Path | None = None,
              on_epoch: Callable[[EpochRecord], None] | None = None, quiet: bool = True,
              desc: str = "") -> RunResult:
    """Train one (activation, seed) run of ``recipe``; resume from ``checkpoint`` when it exists."""
    model, acts = build_model(recipe, handle, settings, data.num_classes, seed, device)
    opt = make_optimizer(model, settings)
    base_lr = settings["lr"]
    start = 0
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    state = load_checkpoint(ckpt_path, device)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        start = int(state["epoch"])
    epochs, bs = int(settings["epochs"]), int(settings["batch_size"])
    n = data.x_train.shape[0]
    steps_per_epoch = n // bs if settings.get("drop_last") else -(-n // bs)
    amp = bool(settings.get("amp"))
    augment = getattr(recipe, "augment", None)
    lr_at = getattr(recipe, "lr_multiplier", None)
    x_fire = data.x_test[: settings.get("firing_samples", 1000)]
    records: list[EpochRecord] = []
    progress = Progress(quiet)
    label = desc or handle.name
    if start:
        progress.line(f"{label}: resuming after epoch {start}/{epochs}")
    bar = progress.bar(range(start + 1, epochs + 1), desc=label, leave=False, initial=start, total=epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        gen = torch.Generator(device="cpu").manual_seed(epoch_seed(seed, epoch))
        perm = torch.randperm(n, generator=gen).to(device)
        dev_gen = gen if device.type == "cpu" else torch.Generator(device=device).manual_seed(epoch_seed(seed, epoch))
        model.train()
        losses = torch.empty(steps_per_epoch, device=device)  # filled on the device, read once per epoch
        preds = torch.empty(n, device=device, dtype=torch.long)
        for k in range(steps_per_epoch):
            idx = perm[k * bs:(k + 1) * bs]
            # index_select is ~3x faster than x[idx] on CPU but drops channels_last; keep x[idx] for 4-D data
            xb = data.x_train[idx] if data.x_train.dim() > 2 else data.x_train.index_select(0, idx)
            yb = data.y_train.index_select(0, idx)
            if augment is not None:
                xb = augment(xb, dev_gen, settings)
            if lr_at is not None:
                for group in opt.param_groups:
                    group["lr"] = base_lr * lr_at((epoch - 1) * steps_per_epoch + k, epochs * steps_per_epoch,
                                                  settings)
            with _autocast(device, amp):
                out = model(xb)
            loss = F.cross_entropy(out.float(), yb, label_smoothing=settings.get("label_smoothing", 0.0))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses[k] = loss.detach()
            preds[k * bs:(k + 1) * bs] = out.argmax(1)
        seen = min(steps_per_epoch * bs, n)
        train_loss = losses.mean().item() if steps_per_epoch else float("nan")  # the one sync per epoch
        train_acc = (preds[:seen] == data.y_train[perm[:seen]]).float().mean().item() if seen else float("nan")
        t_train = time.perf_counter() - t0
        if not math.isfinite(train_loss):
            rec = EpochRecord(epoch, train_loss, train_acc, float("nan"), float("nan"), t_train,
                              opt.param_groups[0]["lr"], t_train)
            records.append(rec)
            if on_epoch is not None:
                on_epoch(rec)
            bar.close()
            progress.line(f"{label}: epoch {epoch}/{epochs} diverged (non-finite training loss)")
            return RunResult("failed", start, records, f"diverged: non-finite training loss in epoch {epoch}")
        test_loss, test_acc = evaluate(model, data.x_test, data.y_test, settings.get("eval_batch_size", 1000), amp)
        firing = firing_stats(model, acts, x_fire)
        seconds = time.perf_counter() - t0
        rec = EpochRecord(epoch, train_loss, train_acc, test_loss, test_acc, seconds, opt.param_groups[0]["lr"],
                          t_train, seconds - t_train, firing, act_param_values(acts))
        records.append(rec)
        bar.set_postfix(loss=f"{train_loss:.4f}", test_acc=f"{test_acc:.4f}")
        progress.line(f"{label}: epoch {epoch}/{epochs}  train loss {train_loss:.4f} acc {100 * train_acc:.2f} %  "
                      f"test loss {test_loss:.4f} acc {100 * test_acc:.2f} %  ({seconds:.1f} s)")
        if on_epoch is not None:
            on_epoch(rec)  # the store row first, then the checkpoint: a kill in between redoes the epoch
        if ckpt_path is not None:
            _save_checkpoint(ckpt_path, epoch, model, opt)
    bar.close()
    return RunResult("finished", start, records)


# ----------------------------------------------------------------------------------------------
# many seeds of a small MLP at once


def train_seeds_batched(recipe, handle: ActivationHandle, data: TensorData, settings: Mapping[str, Any],
                        seeds: list[int], device: torch.device) -> dict[int, list[EpochRecord]]:
    """Train ``len(seeds)`` copies of an MLP recipe together (:class:`~.models.BatchedMLP`).

    Copy s has the initial weights and the data order of a sequential ``train_run`` with seed s;
    the loss is the sum of the per-seed mean losses, so each copy gets its own gradient.  Results
    agree with sequential runs up to float rounding (not bit for bit).  No store, no checkpoints:
    this is the fast path for quick many-seed sweeps and the throughput benchmark.
    """
    from .models import BatchedMLP

    models = [build_model(recipe, handle, settings, data.num_classes, s, device)[0] for s in seeds]
    net = BatchedMLP(models, handle.make, bool(handle.learnable)).to(device)
    opt = make_optimizer(net, settings)
    s_count, c = len(seeds), data.num_classes
    epochs, bs = int(settings["epochs"]), int(settings["batch_size"])
    n = data.x_train.shape[0]
    steps = -(-n // bs)
    history: dict[int, list[EpochRecord]] = {s: [] for s in seeds}
    x_test = data.x_test.unsqueeze(0).expand(s_count, *data.x_test.shape)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        perms = torch.stack([torch.randperm(n, generator=torch.Generator().manual_seed(epoch_seed(s, epoch)))
                             for s in seeds]).to(device)
        net.train()
        losses = torch.empty(steps, s_count, device=device)
        preds = torch.empty(s_count, n, device=device, dtype=torch.long)
        for k in range(steps):
            idx = perms[:, k * bs:(k + 1) * bs]
            flat = idx.reshape(-1)
            xb = data.x_train.index_select(0, flat).view(s_count, -1, data.x_train.shape[1])
            yb = data.y_train.index_select(0, flat).view(s_count, -1)
            out = net(xb)
            per_seed = F.cross_entropy(out.reshape(-1, c), yb.reshape(-1), reduction="none").view(s_count, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            per_seed.sum().backward()
            opt.step()
            losses[k] = per_seed.detach()
            preds[:, k * bs:(k + 1) * bs] = out.argmax(2)
        train_loss = losses.mean(0).tolist()
        train_acc = (preds == data.y_train[perms]).float().mean(1).tolist()
        t_train = time.perf_counter() - t0
        net.eval()
        with torch.no_grad():
            out = net(x_test)
            test_loss = F.cross_entropy(out.transpose(1, 2), data.y_test.expand(s_count, -1),
                                        reduction="none").mean(1).tolist()
            test_acc = (out.argmax(2) == data.y_test).float().mean(1).tolist()
        seconds = time.perf_counter() - t0
        for i, s in enumerate(seeds):
            history[s].append(EpochRecord(epoch, train_loss[i], train_acc[i], test_loss[i], test_acc[i], seconds,
                                          opt.param_groups[0]["lr"], t_train, seconds - t_train))
    return history
