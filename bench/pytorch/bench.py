"""
PyTorch side of `npm run bench`: the same workloads as bench/run.ts, timed the same way (best of
several repeats, data already in memory), printed as one JSON object on stdout.

    python3 bench/pytorch/bench.py --threads 1 [--quick] [--only bn|matmul|training]
"""
import argparse
import json
import time

import torch
import torch.nn as nn


def best_time(fn, repeats, inner, budget=10.0):
    """
    Seconds per call: the fastest of `repeats` runs of `inner` calls (timings on a shared machine only
    get slower), stopping early after `budget` seconds (two OpenMP threads on a busy machine can be
    100x slower than one).
    """
    best = float("inf")
    deadline = time.perf_counter() + budget
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t0) / inner)
        if time.perf_counter() > deadline:
            break
    return best


def ioffe_mlp(bn):
    """784-100-100-100-10, sigmoid, BatchNorm1d before each sigmoid (Ioffe & Szegedy 2015, section 4.1)."""
    sizes = [784, 100, 100, 100, 10]
    layers = []
    for i in range(4):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < 3:
            if bn:
                layers.append(nn.BatchNorm1d(sizes[i + 1]))
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def mnist_cnn():
    """
    The mnist-cnn preset (src/models/presets.ts): (conv 3x3 → BN → ReLU → max-pool 2) with 16 then 32
    channels, Linear(32·7·7 → 128) → BN → ReLU → Linear(128 → 10); no bias right before BN.
    """
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128, bias=False), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10),
    )


def training_rate(model, batch, shape, lr, momentum, repeats, inner):
    """Training steps per second: SGD on batches taken in turn from 20 batches already in memory."""
    batches = 20
    x = torch.rand(batches * batch, *shape)
    y = torch.randint(0, 10, (batches * batch,))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    state = {"i": 0}

    def step():
        j = (state["i"] % batches) * batch
        state["i"] += 1
        opt.zero_grad()
        loss_fn(model(x[j:j + batch]), y[j:j + batch]).backward()
        opt.step()

    for _ in range(5):
        step()
    return 1 / best_time(step, repeats, inner)


def bn_fwd_bwd_ms(layer, shape, repeats, inner):
    x = torch.randn(*shape, requires_grad=True)
    dy = torch.randn(*shape)

    def run():
        x.grad = None
        layer.zero_grad()
        layer(x).backward(dy)

    for _ in range(5):
        run()
    return best_time(run, repeats, inner) * 1000


def matmul_gflops(m, k, n, repeats, inner):
    a = torch.randn(m, k)
    w = torch.randn(n, k)  # as nn.Linear stores it: out = a · wᵀ
    for _ in range(3):
        torch.mm(a, w.t())
    return 2 * m * n * k / best_time(lambda: torch.mm(a, w.t()), repeats, inner) / 1e9


def mlp_bn(width):
    """The paper's network with hidden layers of `width` units: 784-W-W-W-10, sigmoid, BatchNorm1d before each sigmoid."""
    sizes = [784, width, width, width, 10]
    layers = []
    for i in range(4):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < 3:
            layers.append(nn.BatchNorm1d(sizes[i + 1]))
            layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


def rate_within(step, budget):
    """
    Steps per second of `step` within about `budget` seconds, as bench/curve.ts measures bnlab: a
    warm-up, then three windows of at least budget/4 s (and 1 step) each, the best window counted.
    """
    t0 = time.perf_counter()
    step()
    while time.perf_counter() - t0 < budget / 8:
        step()
    best = 0.0
    for _ in range(3):
        n = 0
        w0 = time.perf_counter()
        while n < 1 or time.perf_counter() - w0 < budget / 4:
            step()
            n += 1
        best = max(best, n / (time.perf_counter() - w0))
    return best


def curve(widths, batches, budget):
    """The cost curve: training steps/s of mlp_bn(width) at each batch size (SGD lr 0.5, data in memory)."""
    points = []
    for width in widths:
        for batch in batches:
            torch.manual_seed(0)
            model = mlp_bn(width)
            count = 20 if batch < 256 else 4
            x = torch.rand(count * batch, 784)
            y = torch.randint(0, 10, (count * batch,))
            opt = torch.optim.SGD(model.parameters(), lr=0.5)
            loss_fn = nn.CrossEntropyLoss()
            state = {"i": 0}

            def step():
                j = (state["i"] % count) * batch
                state["i"] += 1
                opt.zero_grad()
                loss_fn(model(x[j:j + batch]), y[j:j + batch]).backward()
                opt.step()

            points.append({"width": width, "batch": batch, "steps_per_s": rate_within(step, budget)})
    return points


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["bn", "matmul", "training"])
    parser.add_argument("--curve", help="the cost curve instead: WIDTHS:BATCHES:BUDGET, e.g. 100,400:16,60:1.0")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.curve:
        widths, batches, budget = args.curve.split(":")
        points = curve([int(w) for w in widths.split(",")], [int(b) for b in batches.split(",")], float(budget))
        print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "points": points}))
        return
    q = 0.2 if args.quick else 1
    r = lambda n: max(1, int(n * q))
    section = lambda name: args.only in (None, name)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    if section("training"):
        out["ioffe_mlp_bn_steps_per_s"] = training_rate(ioffe_mlp(True), 60, (784,), 0.5, 0, r(60), 10)
        out["ioffe_mlp_nobn_steps_per_s"] = training_rate(ioffe_mlp(False), 60, (784,), 0.5, 0, r(60), 10)
        out["mnist_cnn_bn_images_per_s"] = 64 * training_rate(mnist_cnn(), 64, (1, 28, 28), 0.05, 0.9, r(20), 1)
    if section("bn"):
        out["bn1d_fwd_bwd_ms"] = bn_fwd_bwd_ms(nn.BatchNorm1d(1024), (256, 1024), r(100), 5)
        out["bn2d_fwd_bwd_ms"] = bn_fwd_bwd_ms(nn.BatchNorm2d(64), (32, 64, 32, 32), r(40), 2)
    if section("matmul"):
        out["matmul_gflops"] = {
            "60x784x100": matmul_gflops(60, 784, 100, r(60), 10),
            "1024x1024x1024": matmul_gflops(1024, 1024, 1024, r(10), 1),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
