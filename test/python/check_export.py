"""Load each `bnlab export --pytorch` directory given on the command line with its own model.py and
compare PyTorch's outputs with bnlab's on the batch in check.safetensors (written by the test).

Prints one JSON object: {dir: {"eval": max |diff| in eval mode, "train": the same in train mode (when the
test gave bnlab's train-mode logits), "frozen": indices of layers model.train() leaves in eval mode}}.
"""
import importlib.util
import json
import os
import sys

import torch

results = {}
for i, d in enumerate(sys.argv[1:]):
    spec = importlib.util.spec_from_file_location(f"exported_model_{i}", os.path.join(d, "model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.load_model()  # strict load_state_dict, eval mode
    check = module.load_safetensors(os.path.join(d, "check.safetensors"))
    x = check["input"]
    assert tuple(x.shape[1:]) == module.INPUT_SHAPE, (x.shape, module.INPUT_SHAPE)
    with torch.no_grad():
        result = {"eval": float((model(x) - check["bnlab_eval"]).abs().max())}
        model.train()
        result["frozen"] = [j for j, layer in enumerate(model) if not layer.training]
        if "bnlab_train" in check:
            result["train"] = float((model(x) - check["bnlab_train"]).abs().max())
    results[d] = result
print(json.dumps(results))
