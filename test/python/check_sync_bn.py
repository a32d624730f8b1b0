"""Run under torchrun with 2 processes: CpuSyncBatchNorm (examples/pytorch/train_ddp.py) on two halves of
a batch, inside DistributedDataParallel, against plain batch norm on the whole batch in one process.
Rank 0 prints the largest differences of outputs, input gradients, parameter gradients and running
statistics after one step as JSON.
"""
import copy
import importlib.util
import json
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

spec = importlib.util.spec_from_file_location("train_ddp", sys.argv[1])
train_ddp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train_ddp)

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
reference = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.Flatten(),
                          nn.Linear(48, 4), nn.BatchNorm1d(4, momentum=None))
x = torch.randn(8, 2, 4, 4) * 3 + 1
w = torch.randn(8, 4)
per = len(x) // world

synced = DistributedDataParallel(train_ddp.convert_sync_batchnorm_cpu(copy.deepcopy(reference)))
assert sum(isinstance(m, train_ddp.CpuSyncBatchNorm) for m in synced.modules()) == 2
x_local = x[rank * per:(rank + 1) * per].clone().requires_grad_()
y_local = synced(x_local)
(y_local * w[rank * per:(rank + 1) * per]).sum().div(len(x)).mul(world).backward()  # DDP averages over processes

x_full = x.clone().requires_grad_()
y_full = reference(x_full)
(y_full * w).sum().div(len(x)).backward()

ys = [torch.empty_like(y_local) for _ in range(world)]
dist.all_gather(ys, y_local.detach().contiguous())
dxs = [torch.empty_like(x_local) for _ in range(world)]
dist.all_gather(dxs, x_local.grad.contiguous())
if rank == 0:
    # Each process's input gradient is that of the sum of all processes' losses, world times the reference's.
    result = {
        "world_size": world,
        "output": float((torch.cat(ys) - y_full).abs().max()),
        "input_grad": float((torch.cat(dxs) / world - x_full.grad).abs().max()),
        "param_grad": max(float((a.grad - b.grad).abs().max()) for a, b in zip(synced.module.parameters(), reference.parameters())),
        "running": max(float((a.float() - b.float()).abs().max()) for a, b in zip(synced.module.buffers(), reference.buffers())),
    }
    print(json.dumps(result))
sys.stdout.flush()
train_ddp.shut_down(rank)
