#!/usr/bin/env python3
"""Write a bn-fixture/1 file of PyTorch reference values (the format of test/fixtures/pytorch).

Usage: python3 scripts/make_fixtures.py OUT_DIR [--seed N]

Needs PyTorch (Debian: python3-torch). Everything is computed in float64 and rounded to 9 decimals, with
PyTorch's semantics (no bias correction). The cases differ from the shared set on purpose: other shapes,
momenta and eps, AvgPool, Nesterov and weight decay, and running statistics carried over several steps,
so that `npm run conformance -- OUT_DIR` checks the runner and the layers on values they were not tuned on.
Inputs stay representable in float32 (an offset of 300 with unit spread, not 100 with spread 0.01, whose
deviations float32 cannot hold), so the tolerance measures the implementation, not the input rounding.
"""
import json
import os
import sys

import torch

torch.set_default_dtype(torch.float64)


def t(x):
    return {"shape": list(x.shape), "data": [round(float(v), 9) for v in x.detach().reshape(-1).tolist()]}


def bn_case(name, module_type, num_features, shape, steps, momentum=0.1, eps=1e-5, affine=True, track=True, shift=0.0, scale=1.0):
    cls = torch.nn.BatchNorm1d if module_type == "BatchNorm1d" else torch.nn.BatchNorm2d
    m = cls(num_features, eps=eps, momentum=momentum, affine=affine, track_running_stats=track)
    if affine:
        with torch.no_grad():
            m.weight.copy_(torch.rand(num_features) + 0.5)
            m.bias.copy_(torch.randn(num_features) * 0.5)
    state = {k: t(v) for k, v in m.state_dict().items() if k != "num_batches_tracked"}
    out_steps = []
    for mode in steps:
        m.train(mode == "train")
        x = (torch.randn(*shape) * scale + shift).requires_grad_(True)
        if affine:
            m.weight.grad = None
            m.bias.grad = None
        y = m(x)
        dy = torch.randn(*shape)
        y.backward(dy)
        expect = {"y": t(y), "dx": t(x.grad)}
        if affine:
            expect["dweight"] = t(m.weight.grad)
            expect["dbias"] = t(m.bias.grad)
        if track:
            expect["running_mean"] = t(m.running_mean)
            expect["running_var"] = t(m.running_var)
        out_steps.append({"mode": mode, "x": t(x), "expect": expect, "dy": t(dy)})
    config = {"numFeatures": num_features, "eps": eps, "momentum": momentum, "affine": affine, "trackRunningStats": track}
    return {"name": name, "module": module_type, "config": config, "state": state, "steps": out_steps}


def layer_spec(layer):
    if isinstance(layer, torch.nn.Linear):
        return {"type": "Linear", "in": layer.in_features, "out": layer.out_features}
    if isinstance(layer, torch.nn.Conv2d):
        return {"type": "Conv2d", "in": layer.in_channels, "out": layer.out_channels, "kernel": layer.kernel_size[0], "stride": layer.stride[0], "padding": layer.padding[0]}
    if isinstance(layer, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
        return {"type": type(layer).__name__, "numFeatures": layer.num_features}
    if isinstance(layer, torch.nn.MaxPool2d):
        return {"type": "MaxPool2d", "kernel": layer.kernel_size}
    if isinstance(layer, torch.nn.AvgPool2d):
        return {"type": "AvgPool2d", "kernel": layer.kernel_size}
    return {"type": type(layer).__name__}


def model_case(name, layers, x_shape, classes, steps, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for mod in model:
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.weight.copy_(torch.rand(mod.num_features) + 0.5)
                mod.bias.copy_(torch.randn(mod.num_features) * 0.2)
    state = {k: t(v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    loss_fn = torch.nn.CrossEntropyLoss()
    out_steps = []
    for _ in range(steps):
        model.train()
        x = torch.randn(*x_shape) * 1.5
        labels = torch.randint(0, classes, (x_shape[0],))
        opt.zero_grad()
        logits = model(x)
        loss = loss_fn(logits, labels)
        loss.backward()
        grads = {k: t(p.grad) for k, p in model.named_parameters()}
        opt.step()
        after = {k: t(v) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
        out_steps.append({"x": t(x), "labels": labels.tolist(), "expect": {"logits": t(logits), "loss": float(loss), "grads": grads, "state_after": after}})
    model.eval()
    xe = torch.randn(3, *x_shape[1:])
    return {
        "name": name,
        "layers": [layer_spec(l) for l in layers],
        "loss": "CrossEntropy",
        "optimizer": {"type": "SGD", "lr": lr, "momentum": momentum, "weightDecay": weight_decay, "nesterov": nesterov},
        "state": state,
        "steps": out_steps,
        "eval": {"x": t(xe), "expect": {"logits": t(model(xe))}},
    }


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    out = sys.argv[1]
    seed = int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 2024
    torch.manual_seed(seed)
    os.makedirs(out, exist_ok=True)
    layers = [
        bn_case("bn1d_five_steps_momentum_0.05", "BatchNorm1d", 12, (24, 12), ["train"] * 5 + ["eval"], momentum=0.05, shift=3.0, scale=2.0),
        bn_case("bn1d_ncl_cumulative_then_eval", "BatchNorm1d", 3, (4, 3, 10), ["train", "train", "eval"], momentum=None),
        bn_case("bn1d_large_offset", "BatchNorm1d", 32, (128, 32), ["train", "eval"], shift=300.0, scale=1.0),
        bn_case("bn1d_odd_batch_eps_0.1", "BatchNorm1d", 9, (3, 9), ["train", "train", "eval"], eps=0.1),
        bn_case("bn2d_momentum_0.5_no_affine", "BatchNorm2d", 5, (3, 5, 5, 7), ["train", "train", "eval"], momentum=0.5, affine=False),
        bn_case("bn2d_no_running_stats", "BatchNorm2d", 2, (4, 2, 3, 3), ["train", "eval"], track=False),
    ]
    models = [
        model_case("mlp_tanh_nesterov_wd", [torch.nn.Linear(12, 10), torch.nn.BatchNorm1d(10), torch.nn.Tanh(), torch.nn.Linear(10, 10), torch.nn.BatchNorm1d(10), torch.nn.Tanh(), torch.nn.Linear(10, 6)], (16, 12), 6, 5, lr=0.2, momentum=0.9, weight_decay=1e-3, nesterov=True),
        model_case("mlp_sigmoid_deep", [torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8), torch.nn.Sigmoid(), torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8), torch.nn.Sigmoid(), torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8), torch.nn.Sigmoid(), torch.nn.Linear(8, 3)], (10, 8), 3, 6, lr=1.0),
        model_case("cnn_stride_avgpool", [torch.nn.Conv2d(2, 3, 3, stride=2, padding=1), torch.nn.BatchNorm2d(3), torch.nn.ReLU(), torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(3 * 2 * 2, 4)], (5, 2, 9, 9), 4, 3, lr=0.1, momentum=0.5),
    ]
    meta = {
        "format": "bn-fixture/1",
        "conventions": {
            "momentum": "PyTorch convention: running = (1 - momentum) * running + momentum * batch_stat; null means cumulative moving average",
            "running_var": "updated with the unbiased batch variance (divide by n - 1); normalization in training uses the biased variance (divide by n)",
            "eval": "eval-mode steps normalize with running_mean/running_var when trackRunningStats is true, else with batch statistics",
            "biasCorrection": "PyTorch has no bias correction: run every case with biasCorrection off (running_mean starts at 0, running_var at 1)",
            "state keys": "PyTorch state_dict names; Linear.weight [out, in]; Conv2d.weight [out, in, kh, kw]; row-major, NCHW",
            "loss": "mean softmax cross-entropy over the batch; grads are of that mean",
            "SGD": "PyTorch SGD: g += weightDecay * p; buf = momentum * buf + g (buf = g at the first step); p -= lr * (nesterov ? g + momentum * buf : buf)",
        },
    }
    source = f"PyTorch {torch.__version__}, computed in float64, values rounded to 9 decimals, seed {seed} (scripts/make_fixtures.py)"
    with open(os.path.join(out, "extra-layers.json"), "w") as f:
        json.dump({**meta, "source": source, "cases": layers}, f)
    with open(os.path.join(out, "extra-models.json"), "w") as f:
        json.dump({**meta, "source": source.replace("PyTorch", "PyTorch torch.nn.Sequential"), "cases": models}, f)
    print(f"wrote {len(layers)} layer cases and {len(models)} model cases to {out}")


if __name__ == "__main__":
    main()
