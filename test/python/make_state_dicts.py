"""State dicts made by PyTorch itself, for the `bnlab import --pytorch` tests. Writes into the directory
given as the first argument:

  ioffe.safetensors       ioffe-mlp (784-100-100-100-10, sigmoid, BatchNorm1d before each sigmoid),
                          trained 5 SGD steps in PyTorch on random data, so the running statistics and
                          num_batches_tracked are PyTorch's own
  cnn-after.safetensors   mnist-cnn with batch norm after each ReLU (bnlab's --bn-placement after)
  *.check.safetensors     a fixed input batch and PyTorch's eval-mode logits for it
  ioffe-no-count.safetensors   ioffe.safetensors without num_batches_tracked (as PyTorch < 0.4.1 saved)
  ioffe-ddp.safetensors   the state dict of the DistributedDataParallel wrapper ("module.0.weight", ...)
  ioffe.pt                torch.save() of the state dict (a zip of pickles)

The `safetensors` package is not in Debian, so the files are laid out here by hand as the format says:
u64 little-endian header length, the JSON header (padded with spaces to 8 bytes), the raw tensors.
"""
import json
import os
import sys

import torch
from torch import nn

out = sys.argv[1]
DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def save(tensors, path):
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        raw = t.detach().contiguous().numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(chunks))


def ioffe():
    layers = [nn.Linear(784, 100), nn.BatchNorm1d(100), nn.Sigmoid(), nn.Linear(100, 100), nn.BatchNorm1d(100), nn.Sigmoid(),
              nn.Linear(100, 100), nn.BatchNorm1d(100), nn.Sigmoid(), nn.Linear(100, 10)]
    return nn.Sequential(*layers), (784,)


def cnn_after():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(16), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.BatchNorm2d(32), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.BatchNorm1d(128), nn.Linear(128, 10),
    ), (1, 28, 28)


torch.manual_seed(0)
for name, make in (("ioffe", ioffe), ("cnn-after", cnn_after)):
    model, shape = make()
    sgd = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    for _ in range(5):
        x = torch.rand(16, *shape) * 2
        y = torch.randint(0, 10, (16,))
        sgd.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        sgd.step()
    model.eval()
    x = torch.rand(12, *shape)
    with torch.no_grad():
        logits = model(x)
    state = model.state_dict()
    save(state, os.path.join(out, f"{name}.safetensors"))
    save({"input": x, "logits": logits}, os.path.join(out, f"{name}.check.safetensors"))
    if name == "ioffe":
        save({k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}, os.path.join(out, "ioffe-no-count.safetensors"))
        save({f"module.{k}": v for k, v in state.items()}, os.path.join(out, "ioffe-ddp.safetensors"))
        torch.save(state, os.path.join(out, "ioffe.pt"))
print(json.dumps({"num_batches_tracked": int(state["2.num_batches_tracked"])}))
