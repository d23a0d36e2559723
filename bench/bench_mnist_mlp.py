"""Time one seed of the ``mnist-mlp`` recipe (784-100-50-10, SGD, batch 100) with a breakdown.

    python bench/bench_mnist_mlp.py [--epochs 50] [--act relu] [--data-dir ../shared/datasets]

Prints: dataset load, tensor preparation, training (sum over epochs), evaluation (test set +
firing statistics + learned parameters), total, and the final / best test accuracy.  Uses the
real MNIST when ``--data-dir`` holds it, else the embedded subset (and says so).
"""

from __future__ import annotations

import argparse
import time

import torch

from actsym.harness import recipes
from actsym.harness.activations import resolve
from actsym.harness.data import load_dataset
from actsym.harness.train import train_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--act", default="relu")
    ap.add_argument("--torch-native", action="store_true", help="use torch.nn.ReLU etc. (fallback table)")
    ap.add_argument("--data-dir", default="../shared/datasets")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")

    t0 = time.perf_counter()
    try:
        ds = load_dataset("mnist", data_dir=args.data_dir)
    except Exception as err:  # no full MNIST here: say so and use the embedded subset
        print(f"full MNIST unavailable ({err}); using the embedded subset")
        ds = load_dataset("mnist-subset")
    t_load = time.perf_counter() - t0

    rec = recipes.get("mnist-mlp")
    settings = recipes.resolve_settings(rec, epochs=args.epochs)
    t0 = time.perf_counter()
    data = rec.prepare(ds, settings, device)
    t_prep = time.perf_counter() - t0
    if args.torch_native:
        from actsym.harness.activations import _resolve_fallback
        handle = _resolve_fallback(args.act, None)
    else:
        handle = resolve(args.act)

    t0 = time.perf_counter()
    result = train_run(rec, handle, data, settings, args.seed, device, quiet=True)
    t_total = time.perf_counter() - t0
    t_train = sum(r.train_seconds for r in result.records)
    t_eval = sum(r.eval_seconds for r in result.records)
    accs = [r.test_acc for r in result.records]
    print(f"mnist-mlp  act={handle.name} ({handle.source})  epochs={args.epochs}  threads={torch.get_num_threads()}  "
          f"train={data.x_train.shape[0]} test={data.x_test.shape[0]}  subset={getattr(ds, 'subset', '?')}")
    print(f"  load dataset     {t_load:7.2f} s")
    print(f"  prepare tensors  {t_prep:7.2f} s")
    print(f"  train            {t_train:7.2f} s  ({1e3 * t_train / max(len(accs), 1):.0f} ms/epoch)")
    print(f"  eval+firing      {t_eval:7.2f} s")
    print(f"  run total        {t_total:7.2f} s  (incl. model build)")
    print(f"  test acc final {100 * accs[-1]:.2f} %  best {100 * max(accs):.2f} % (epoch {accs.index(max(accs)) + 1})")


if __name__ == "__main__":
    main()
