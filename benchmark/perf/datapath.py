"""Data-path speed against the model's step time, on this machine's CPU (or GPU).

For each image size of the paper's tasks (28, 32, 64, 84 px) it times
``TaskStream.batch`` (index gather from a uint8 tensor, batched random crop with
padding, flip, normalization) and one ResNet-20 SGD step on that batch, and prints
one line per size: images per second of each (medians over the repeats) and the
data path's share of a step. Synthetic uint8 data stands in for a decoded cache.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from benchmark.core.data import TaskStream
from benchmark.models import ResNetCifar
from tasks.registry import TaskSpec


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmark.perf.datapath", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=128, help="images per batch (default: %(default)s)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device to time on (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed data-path calls per size; the model step is timed max(3, repeats / 4) "
                             "times (default: %(default)s)")
    args = parser.parse_args(argv)
    for name in ("batch", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    model = ResNetCifar(3).to(device)
    head = torch.nn.Linear(model.out_features, 100).to(device)
    opt = torch.optim.SGD([*model.parameters(), *head.parameters()], lr=0.01, momentum=0.9, weight_decay=5e-4)
    print(f"device={device} threads={torch.get_num_threads()} batch={args.batch}")
    print(f"{'size':>5} {'data img/s':>12} {'model img/s':>12} {'data share of step':>20}")
    for size in (28, 32, 64, 84):
        spec = TaskSpec(f"synthetic{size}", 100, 3, size, load=None, pad=4 if size <= 32 else 8, flip=True)
        x = torch.randint(0, 256, (5000, 3, size, size), dtype=torch.uint8)
        y = torch.randint(0, 100, (5000,))
        stream = TaskStream(x, y, spec, args.batch, (0, spec.name), device)
        step = iter(range(1, 10**9))
        t_data = median_seconds(lambda: stream.batch(next(step)), args.repeats)
        xb, yb = stream.batch(1)

        def train_step():
            loss = F.cross_entropy(head(model(xb)), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()

        t_model = median_seconds(train_step, max(3, args.repeats // 4))
        print(f"{size:>5} {args.batch / t_data:>12.0f} {args.batch / t_model:>12.0f} "
              f"{100 * t_data / (t_data + t_model):>19.1f}%")


if __name__ == "__main__":
    main()
