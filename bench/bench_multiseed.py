"""Throughput of many seeds of the ``mnist-mlp`` recipe: sequential runs vs one batched model.

    python bench/bench_multiseed.py [--seeds 8] [--epochs 2] [--act relu] [--torch-native]

Three ways to train S seeds for E epochs, side by side (seed-epochs per second):
  naive       textbook PyTorch: DataLoader(shuffle) + torch.optim.SGD + loss.item() per batch
  sequential  the harness's lean loop (``train_run``) once per seed
  batched     all seeds at once (``train_seeds_batched``: stacked weights, bmm), same inits/data order
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from actsym.harness import recipes
from actsym.harness.activations import _resolve_fallback, resolve
from actsym.harness.data import load_dataset
from actsym.harness.train import build_model, train_run, train_seeds_batched


def naive(rec, handle, data, settings, seed, device) -> float:
    """The plain loop most tutorials write; returns the final test accuracy."""
    model, _ = build_model(rec, handle, settings, data.num_classes, seed, device)
    opt = torch.optim.SGD(model.parameters(), lr=settings["lr"])
    loader = DataLoader(TensorDataset(data.x_train, data.y_train), batch_size=settings["batch_size"], shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    for _ in range(settings["epochs"]):
        model.train()
        total = 0.0
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        model.eval()
        with torch.no_grad():
            acc = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    return acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--act", default="relu")
    ap.add_argument("--torch-native", action="store_true", help="torch.nn activation instead of actsym's")
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--skip-naive", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    try:
        ds = load_dataset("mnist", data_dir=args.data_dir)
    except Exception as err:
        print(f"full MNIST unavailable ({err}); using the embedded subset")
        ds = load_dataset("mnist-subset")
    rec = recipes.get("mnist-mlp")
    settings = recipes.resolve_settings(rec, epochs=args.epochs)
    data = rec.prepare(ds, settings, device)
    handle = _resolve_fallback(args.act, None) if args.torch_native else resolve(args.act)
    seeds = list(range(args.seeds))
    n_units = args.seeds * args.epochs
    print(f"mnist-mlp act={handle.name} ({handle.source}) seeds={args.seeds} epochs={args.epochs} "
          f"train={data.x_train.shape[0]} threads={torch.get_num_threads()}")

    timings = {}
    if not args.skip_naive:
        t0 = time.perf_counter()
        accs = [naive(rec, handle, data, settings, s, device) for s in seeds]
        timings["naive"] = time.perf_counter() - t0
        print(f"  naive       {timings['naive']:7.2f} s  mean final acc {100 * sum(accs) / len(accs):.2f} %")
    t0 = time.perf_counter()
    seq = [train_run(rec, handle, data, settings, s, device).records[-1].test_acc for s in seeds]
    timings["sequential"] = time.perf_counter() - t0
    print(f"  sequential  {timings['sequential']:7.2f} s  mean final acc {100 * sum(seq) / len(seq):.2f} %")
    t0 = time.perf_counter()
    hist = train_seeds_batched(rec, handle, data, settings, seeds, device)
    timings["batched"] = time.perf_counter() - t0
    bat = [hist[s][-1].test_acc for s in seeds]
    print(f"  batched     {timings['batched']:7.2f} s  mean final acc {100 * sum(bat) / len(bat):.2f} %")
    for name, t in timings.items():
        print(f"  {name:<10} {n_units / t:6.2f} seed-epochs/s")
    print(f"  batched vs sequential: {timings['sequential'] / timings['batched']:.2f}x")
    if "naive" in timings:
        print(f"  batched vs naive:      {timings['naive'] / timings['batched']:.2f}x")


if __name__ == "__main__":
    main()
