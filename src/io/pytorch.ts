/**
 * The hand-off to PyTorch (browser-safe: strings and bytes). `exportPytorch` turns a model into
 *   model.py           an `nn.Sequential` subclass with the same layers in the same order, generated from
 *                      the layer specs (`layerSpec`), so its state-dict names are bnlab's ("0.weight",
 *                      "1.running_mean", ...) and `load_state_dict(strict=True)` takes the weights as they are;
 *   model.safetensors  that state dict, with the batch-norm statistics in PyTorch's meaning (below);
 *   model.json         the same model for bnlab, read the PyTorch way (biasCorrection false), so the export
 *                      directory is also a bnlab model directory and `bnlab import` can bring trained weights back;
 *   example.py         loads the model, classifies `example_input.safetensors` and compares with bnlab's logits.
 *
 * Batch norm: PyTorch's eval mode uses running_mean/running_var as they are, bnlab's divides them by its
 * bias correction 1 - (1 - m)^t. The export writes the statistics bnlab's eval mode uses (corrected), so
 * eval outputs match; num_batches_tracked keeps t. Training in PyTorch then continues the running averages
 * from these unbiased estimates with the same momentum (PyTorch's convention, bnlab's too), which is what
 * `setRunningStatistics` does in bnlab: an estimate that is no longer biased towards 0 needs no correction.
 */
import { BatchNormBase } from '../nn/batchnorm.js';
import type { Module } from '../nn/module.js';
import { layerSpec, type LayerSpec } from '../nn/registry.js';
import { Sequential } from '../nn/sequential.js';
import { shapeToString } from '../tensor/tensor.js';
import { ModelFileError } from './errors.js';
import { standardizationLayout, type Preprocessing } from '../data/preprocess.js';
import { MODEL_FORMAT, MODEL_FORMAT_VERSION, MODEL_FORMAT_VERSION_PREPROCESSING, buildModel, loadWeights, parseModelJson, type ModelJson } from './model-file.js';
import { encodeSafetensors, parseSafetensors, type SafetensorsFile, type TensorToWrite } from './safetensors.js';

/** One layer as Python: the constructor call, and what else model.py needs for it. */
export interface PyTorchLayer {
  /** The expression in the `nn.Sequential`, e.g. `nn.Linear(784, 100)`. */
  code: string;
  /** A note at the end of the layer's line (after the output shape). */
  comment?: string;
  /** Statements run after `super().__init__(...)`, with `{layer}` standing for `self[i]`. */
  fixups?: string[];
  /** Kept in eval mode by `Model.train()` (bnlab's frozen batch norm, statistics 'running'). */
  frozen?: boolean;
  /** Told to the user at export time (what PyTorch gets differs from bnlab in training). */
  notes?: string[];
}

export type PyTorchLayerWriter = (spec: LayerSpec, module: Module) => PyTorchLayer;

const writers = new Map<string, PyTorchLayerWriter>();

/** Teach the export a layer type (the registry's `registerLayer` counterpart). */
export function registerPyTorchLayer(type: string, writer: PyTorchLayerWriter): void {
  writers.set(type, writer);
}

export function pytorchLayerTypes(): string[] {
  return [...writers.keys()];
}

/** Python literals. */
function pyFloat(x: number): string {
  if (Number.isInteger(x)) return x.toFixed(1);
  if (Math.abs(x) >= 1e-4) return String(x);
  const [mantissa, exponent] = x.toExponential().split('e'); // as Python's repr writes it: 1e-05
  return `${mantissa}e${exponent[0]}${exponent.slice(1).padStart(2, '0')}`;
}
const pySize = (v: unknown): string => (Array.isArray(v) ? `(${v.join(', ')})` : String(v));
const pyString = (s: string): string => JSON.stringify(s); // a JSON string is a valid Python string literal
const call = (name: string, args: Array<string | null>): string => `${name}(${args.filter((a) => a !== null).join(', ')})`;
const sameSize = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

registerPyTorchLayer('Linear', (s) => ({ code: call('nn.Linear', [String(s.inFeatures), String(s.outFeatures), s.bias === false ? 'bias=False' : null]) }));
registerPyTorchLayer('Conv2d', (s) => ({
  code: call('nn.Conv2d', [
    String(s.inChannels),
    String(s.outChannels),
    `kernel_size=${pySize(s.kernelSize)}`,
    sameSize(s.stride ?? 1, 1) ? null : `stride=${pySize(s.stride)}`,
    sameSize(s.padding ?? 0, 0) ? null : `padding=${pySize(s.padding)}`,
    s.bias === false ? 'bias=False' : null,
  ]),
}));
for (const type of ['MaxPool2d', 'AvgPool2d']) {
  // bnlab's average pooling counts the padding (PyTorch's default count_include_pad=True); no ceil mode.
  registerPyTorchLayer(type, (s) => ({
    code: call(`nn.${type}`, [`kernel_size=${pySize(s.kernelSize)}`, s.stride === undefined || sameSize(s.stride, s.kernelSize) ? null : `stride=${pySize(s.stride)}`, sameSize(s.padding ?? 0, 0) ? null : `padding=${pySize(s.padding)}`]),
  }));
}
for (const type of ['ReLU', 'Sigmoid', 'Tanh', 'Flatten']) registerPyTorchLayer(type, () => ({ code: `nn.${type}()` }));
registerPyTorchLayer('Dropout', (s) => ({ code: call('nn.Dropout', [`p=${pyFloat(Number(s.p ?? 0.5))}`]) }));
registerPyTorchLayer('LayerNorm', (s) => {
  const shape = s.normalizedShape as number[];
  const affine = s.elementwiseAffine !== false;
  return {
    code: call('nn.LayerNorm', [shape.length === 1 ? String(shape[0]) : `(${shape.join(', ')})`, `eps=${pyFloat(Number(s.eps))}`, affine ? null : 'elementwise_affine=False']),
    // LayerNorm(bias=False) exists from PyTorch 2.1 on; removing the parameter works in every version.
    fixups: affine && s.bias === false ? ['{layer}.register_parameter("bias", None)  # LayerNorm without beta (bias=False in PyTorch >= 2.1)'] : [],
  };
});
registerPyTorchLayer('GroupNorm', (s) => ({ code: call('nn.GroupNorm', [String(s.numGroups), String(s.numChannels), `eps=${pyFloat(Number(s.eps))}`, s.affine === false ? 'affine=False' : null]) }));

function batchNormWriter(type: string): PyTorchLayerWriter {
  return (s, module) => {
    const bn = module as BatchNormBase;
    const where = `layer ${bn.path} (${bn.describe()})`;
    if (bn.statistics === 'batch-update' || bn.statistics === 'batch-frozen') {
      throw new Error(`${where} normalizes with batch statistics in eval mode (statistics '${bn.statistics}'), which PyTorch's BatchNorm does only without running statistics; set its statistics to 'auto' or 'running' before exporting`);
    }
    const notes: string[] = [];
    const comments: string[] = [];
    if (bn.virtualBatchSize !== null) {
      notes.push(`${where} trains on ghost batches of ${bn.virtualBatchSize} in bnlab; PyTorch's BatchNorm normalizes over the whole batch (eval outputs are the same)`);
      comments.push(`ghost batches of ${bn.virtualBatchSize} in bnlab`);
    }
    if (bn.renorm) {
      notes.push(`${where} uses Batch Renormalization in bnlab; PyTorch has none, so training continues as plain batch norm (eval outputs are the same)`);
      comments.push('batch renorm in bnlab');
    }
    const frozen = bn.statistics === 'running';
    if (frozen) comments.push('frozen: eval mode in train() too');
    return {
      code: call(`nn.${type}`, [
        String(s.numFeatures),
        `eps=${pyFloat(bn.eps)}`,
        `momentum=${bn.momentum === null ? 'None' : pyFloat(bn.momentum)}`,
        bn.affine ? null : 'affine=False',
        bn.trackRunningStats ? null : 'track_running_stats=False',
      ]),
      comment: comments.length ? comments.join('; ') : undefined,
      frozen,
      notes,
    };
  };
}
registerPyTorchLayer('BatchNorm1d', batchNormWriter('BatchNorm1d'));
registerPyTorchLayer('BatchNorm2d', batchNormWriter('BatchNorm2d'));

/** Inputs for example.py: `count` samples, bnlab's eval-mode logits for them, labels when known. */
export interface ExampleBatch {
  input: Float32Array;
  count: number;
  logits: Float32Array;
  labels?: ArrayLike<number>;
  /** What the inputs are ("the first 8 MNIST test images"). */
  note: string;
}

export interface PyTorchExportOptions {
  /** One sample's shape, e.g. [784] or [1, 28, 28]. */
  inputShape: readonly number[];
  /** What the input values are (e.g. "MNIST images, 28x28 pixels row by row, values in [0, 1]"). */
  inputNote?: string;
  classNames?: readonly string[];
  preset?: string | null;
  dataset?: string;
  /** A sentence about the model for model.py's docstring (e.g. the preset's description). */
  title?: string;
  /**
   * How bnlab made the input from the user's data (model.json's `preprocessing`). Its standardization
   * goes into model.py's forward, so the PyTorch model takes the same raw features as `bnlab predict`.
   */
  preprocessing?: Preprocessing;
  /** Where the model came from (a run directory), for model.py's header. */
  source?: string;
  bnlabVersion?: string;
  /** The batch for example_input.safetensors, with bnlab's eval logits for it (and labels if known). */
  example: ExampleBatch;
  /** Name used in error messages (the output directory). */
  fileName?: string;
}

export interface PyTorchExport {
  modelPy: string;
  examplePy: string;
  /** The PyTorch state dict (eval-mode batch-norm statistics). */
  safetensors: Uint8Array;
  /** model.json describing the same tensors for bnlab (no bias correction). */
  modelJson: string;
  /** example_input.safetensors: input, bnlab_logits and (when known) label. */
  exampleInput: Uint8Array;
  /** Where training in PyTorch differs from bnlab's (ghost batches, renorm); for the user. */
  notes: string[];
}

/**
 * The model as PyTorch files. Throws ModelFileError('not exportable') naming the layer for a layer type
 * without a PyTorch writer, a batch-norm mode PyTorch cannot express, nested containers, or a model that
 * does not take `inputShape`.
 */
export function exportPytorch(model: Sequential, options: PyTorchExportOptions): PyTorchExport {
  const fileName = options.fileName ?? 'model.py';
  const fail = (detail: string): never => {
    throw new ModelFileError(fileName, 'not exportable', detail);
  };
  const shapes: number[][] = [];
  let shape = [1, ...options.inputShape];
  try {
    for (const layer of model.layers) shapes.push((shape = layer.outputShape(shape)));
  } catch (e) {
    fail(`the model does not take input ${shapeToString(options.inputShape)}: ${(e as Error).message}`);
  }
  if (shape.length !== 2) fail(`the model outputs ${shapeToString(shape.slice(1))} per sample; the export expects class scores [N, classes]`);
  const layers = model.layers.map((layer, i) => {
    if (layer instanceof Sequential) return fail(`layer ${i} is a nested Sequential; export a flat model (bnlab's model files are flat)`);
    const spec = layerSpec(layer);
    const writer = writers.get(spec.type);
    if (!writer) return fail(`layer ${i} (${layer.describe()}) has no PyTorch equivalent here; exportable: ${pytorchLayerTypes().join(', ')}`);
    try {
      return writer(spec, layer);
    } catch (e) {
      return fail((e as Error).message);
    }
  });
  const exampleInput = encodeExample(options.example, options.inputShape, shape[1]);
  return {
    modelPy: modelSource(layers, shapes, options, model.layers.some((l) => l instanceof BatchNormBase && l.trackRunningStats && l.biasCorrection)),
    examplePy: exampleSource(options, shape[1]),
    safetensors: encodeSafetensors(pytorchStateDict(model), { format: 'pt' }),
    modelJson: JSON.stringify(pytorchModelJson(model, options), null, 2) + '\n',
    exampleInput,
    notes: layers.flatMap((l) => l.notes ?? []),
  };
}

/**
 * The state dict PyTorch loads: bnlab's, with each batch-norm layer's running_mean/running_var replaced by
 * the statistics its eval mode uses (bias-corrected when enabled) and bnlab-only buffers (renorm_steps) left
 * out. num_batches_tracked stays I64 with shape [], as PyTorch stores it.
 */
export function pytorchStateDict(model: Sequential): TensorToWrite[] {
  const replaced = new Map<string, Float32Array>();
  const dropped = new Set<string>();
  for (const m of model.modules()) {
    if (!(m instanceof BatchNormBase)) continue;
    dropped.add(`${m.path}.renorm_steps`);
    if (!m.trackRunningStats) continue;
    const { mean, variance } = m.inferenceStatistics();
    replaced.set(`${m.path}.running_mean`, mean);
    replaced.set(`${m.path}.running_var`, variance);
  }
  const tensors: TensorToWrite[] = [];
  for (const [name, t] of model.stateDict()) {
    if (dropped.has(name)) continue;
    tensors.push({ name, dtype: name.endsWith('num_batches_tracked') ? 'I64' : 'F32', shape: t.shape, data: replaced.get(name) ?? t.data });
  }
  return tensors;
}

/** model.json for the exported tensors: every batch-norm layer without bias correction (PyTorch's meaning). */
function pytorchModelJson(model: Sequential, options: PyTorchExportOptions): ModelJson {
  const specs = model.layers.map((l) => {
    const spec = layerSpec(l);
    if (l instanceof BatchNormBase) {
      spec.biasCorrection = false;
      delete spec.renorm; // its warm-up step (renorm_steps) is not in the PyTorch state dict
    }
    return spec;
  });
  return {
    format: MODEL_FORMAT,
    formatVersion: options.preprocessing ? MODEL_FORMAT_VERSION_PREPROCESSING : MODEL_FORMAT_VERSION,
    ...(options.preprocessing ? { preprocessing: structuredClone(options.preprocessing) } : {}),
    preset: options.preset ?? null,
    inputShape: [...options.inputShape],
    layers: specs,
    batchNorm: { biasCorrection: false },
    ...(options.classNames ? { classNames: [...options.classNames] } : {}),
    ...(options.dataset ? { dataset: options.dataset } : {}),
  };
}

function encodeExample(example: ExampleBatch, inputShape: readonly number[], classes: number): Uint8Array {
  const tensors: TensorToWrite[] = [
    { name: 'input', dtype: 'F32', shape: [example.count, ...inputShape], data: example.input },
    { name: 'bnlab_logits', dtype: 'F32', shape: [example.count, classes], data: example.logits },
  ];
  if (example.labels) tensors.push({ name: 'label', dtype: 'I64', shape: [example.count], data: example.labels });
  return encodeSafetensors(tensors, { format: 'pt', note: example.note });
}

function inputDescription(options: PyTorchExportOptions): string {
  const dims = options.inputShape;
  const kind = dims.length === 1 ? 'one flat vector per sample' : dims.length === 3 ? 'images as (channels, height, width)' : `samples of shape (${dims.join(', ')})`;
  return `float32 [N, ${dims.join(', ')}]: ${kind}${options.inputNote ? `; ${options.inputNote}` : ''}`;
}

/** Wrap text at `width` columns, each line starting with `indent`, the lines after the first with `hanging` more. */
function wrap(text: string, indent: string, width = 100, hanging = ''): string[] {
  const lines: string[] = [];
  let line = '';
  const prefix = () => indent + (lines.length ? hanging : '');
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && prefix().length + line.length + 1 + word.length > width) {
      lines.push(prefix() + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(prefix() + line);
  return lines;
}

function modelSource(layers: PyTorchLayer[], shapes: number[][], options: PyTorchExportOptions, biasCorrected: boolean): string {
  const classes = shapes[shapes.length - 1][1];
  const rows = layers.map((l) => `            ${l.code},`);
  const width = Math.max(...rows.map((r) => r.length)) + 2;
  const body = rows.map((r, i) => {
    const note = `# ${String(i).padEnd(String(layers.length - 1).length)}  -> [N, ${shapes[i].slice(1).join(', ')}]${layers[i].comment ? `  (${layers[i].comment})` : ''}`;
    return `${r.padEnd(width)}${note}`;
  });
  const fixups = layers.flatMap((l, i) => (l.fixups ?? []).map((f) => `        ${f.replaceAll('{layer}', `self[${i}]`)}`));
  const frozen = layers.flatMap((l, i) => (l.frozen ? [i] : []));
  const hasBn = layers.some((l) => /nn\.BatchNorm/.test(l.code));
  const name = options.preset ? `The bnlab model ${options.preset}` : 'A bnlab model';
  const from = [options.source ? `from ${options.source}` : '', options.bnlabVersion ? `by bnlab ${options.bnlabVersion}` : ''].filter(Boolean).join(' ');
  const names = options.classNames ?? Array.from({ length: classes }, (_, i) => String(i));
  const lines: string[] = [
    '"""',
    `${name} as a PyTorch nn.Module${from ? `, exported ${from}` : ''}.`,
    ...(options.title ? ['', ...wrap(options.title, '')] : []),
    '',
    ...wrap('The layers are those of the bnlab model, in order, in an nn.Sequential, so the state-dict names are bnlab\'s ("0.weight", "1.running_mean", ...) and model.safetensors loads with load_state_dict(strict=True).', ''),
    '',
    ...wrap(inputDescription(options), '', 92).map((line, i) => (i === 0 ? 'Input:  ' : '        ') + line),
    `Output: [N, ${classes}] class scores (logits); softmax(dim=1) gives probabilities.`,
  ];
  if (hasBn) {
    const statistics = biasCorrected ? 'its running averages, bias-corrected' : 'its running averages, as PyTorch keeps them';
    lines.push('', ...wrap(`Batch norm: running_mean and running_var hold the statistics bnlab's eval mode normalizes with (${statistics}), so model.eval() gives bnlab's outputs. In train() mode PyTorch updates them with the same momentum (the weight of the new batch: PyTorch's convention, and bnlab's), starting from these estimates; num_batches_tracked is bnlab's batch count.`, ''));
  }
  lines.push(
    '',
    'Usage:',
    '    from model import load_model',
    '    model = load_model()          # Model() with model.safetensors loaded, in eval mode',
    `    logits = model(x)             # x: ${inputDescription({ ...options, inputNote: undefined }).split(':')[0]}`,
    '"""',
    'import json',
    'import os',
    '',
    'import torch',
    'from torch import nn',
    '',
    `INPUT_SHAPE = (${options.inputShape.join(', ')}${options.inputShape.length === 1 ? ',' : ''})`,
    `CLASS_NAMES = [${names.map(pyString).join(', ')}]`,
    'HERE = os.path.dirname(os.path.abspath(__file__))',
    '',
    '',
    'class Model(nn.Sequential):',
    `    """${options.preset ? `${options.preset}: i` : 'I'}nput [N, ${options.inputShape.join(', ')}], output [N, ${classes}] logits."""`,
    '',
    '    input_shape = INPUT_SHAPE',
    '',
    '    def __init__(self):',
    '        super().__init__(',
    ...body,
    '        )',
    ...fixups,
    ...standardizeSource(options),
  );
  if (frozen.length) {
    lines.push(
      '',
      '    def train(self, mode=True):',
      '        super().train(mode)',
      "        # Frozen batch norm (bnlab's statistics 'running'): its running statistics in training too.",
      `        for i in (${frozen.join(', ')}${frozen.length === 1 ? ',' : ''}):`,
      '            self[i].eval()',
      '        return self',
    );
  }
  lines.push('', '', ...PYTHON_HELPERS);
  return lines.join('\n') + '\n';
}

/**
 * The standardization bnlab applied before the first layer, as non-persistent buffers (the state dict
 * keeps bnlab's names) and a forward that applies it: (x - mean) / std per feature or per channel.
 */
function standardizeSource(options: PyTorchExportOptions): string[] {
  const s = options.preprocessing?.standardize;
  if (!s) return [];
  const dims = options.inputShape;
  const layout = standardizationLayout(dims, s);
  if (typeof layout === 'string') throw new Error(`the model's standardization does not fit its input: ${layout}`);
  // Per channel: broadcast over [C, H, W]; a flattened image [C·H·W] repeats each channel's value over its pixels.
  const shape = s.per === 'feature' ? `.reshape(${s.mean.length},)` : dims.length >= 2 ? `.reshape(${[s.mean.length, ...dims.slice(1).map(() => 1)].join(', ')})` : `.repeat_interleave(${layout.plane})`;
  const list = (v: number[]) => wrap(`[${v.map((x) => String(Math.fround(x))).join(', ')}]`, '            ', 100).join('\n').trimStart();
  return [
    `        # --standardize: the training set's ${s.per === 'channel' ? 'per-channel' : 'per-feature'} mean and standard deviation, applied in forward`,
    '        # so the model takes raw inputs, as bnlab predict does (not part of the state dict).',
    `        self.register_buffer("input_mean", torch.tensor(${list(s.mean)})${shape}, persistent=False)`,
    `        self.register_buffer("input_std", torch.tensor(${list(s.std)})${shape}, persistent=False)`,
    '',
    '    def forward(self, x):',
    '        return super().forward((x - self.input_mean) / self.input_std)',
  ];
}

/** load_model, and safetensors reading/writing that works without the `safetensors` package. */
const PYTHON_HELPERS = `def load_model(path=os.path.join(HERE, "model.safetensors")):
    """Model() with the state dict in \`path\` loaded (strict), in eval mode."""
    model = Model()
    model.load_state_dict(load_safetensors(path))
    return model.eval()


# safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
# then the tensors' bytes. The \`safetensors\` package is used when installed; otherwise these few lines
# read and write the same files.
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def load_safetensors(path):
    """The tensors of a .safetensors file, by name."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        pass
    else:
        return load_file(path)
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = _DTYPES[entry["dtype"]]
        raw = bytearray(data[8 + n + begin:8 + n + end])
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        tensors[name] = flat.reshape(entry["shape"])
    return tensors


def save_safetensors(tensors, path, metadata=None):
    """Write a dict of tensors (e.g. model.state_dict()) as a .safetensors file."""
    tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    try:
        from safetensors.torch import save_file
    except ImportError:
        pass
    else:
        return save_file(tensors, path, metadata={"format": "pt", **(metadata or {})})
    names = {v: k for k, v in _DTYPES.items()}
    header = {"__metadata__": {"format": "pt", **(metadata or {})}}
    chunks, offset = [], 0
    for name, t in tensors.items():
        raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for raw in chunks:
            f.write(raw)`.split('\n');

function exampleSource(options: PyTorchExportOptions, classes: number): string {
  const note = options.example.note;
  const lines = [
    '"""',
    `Load the exported model, classify the examples in example_input.safetensors (${note}) and compare`,
    "the logits with bnlab's for the same inputs.",
    '',
    'Run: python3 example.py   (needs PyTorch; works from any directory)',
    '"""',
    'import os',
    'import sys',
    '',
    'import torch',
    '',
    'sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))',
    'from model import CLASS_NAMES, HERE, INPUT_SHAPE, load_model, load_safetensors  # noqa: E402',
    '',
    'model = load_model()  # Model() with model.safetensors (strict), in eval mode',
    'example = load_safetensors(os.path.join(HERE, "example_input.safetensors"))',
    `x = example["input"]  # [N, ${options.inputShape.join(', ')}] float32`,
    'assert tuple(x.shape[1:]) == INPUT_SHAPE, f"the model takes [N, {INPUT_SHAPE}], got {tuple(x.shape)}"',
    '',
    'with torch.no_grad():',
    `    logits = model(x)  # [N, ${classes}]`,
    'probabilities = logits.softmax(dim=1)',
    'labels = example.get("label")',
    'for i, p in enumerate(probabilities):',
    '    k = int(p.argmax())',
    '    truth = f", label {CLASS_NAMES[int(labels[i])]}" if labels is not None else ""',
    '    print(f"example {i}: predicted {CLASS_NAMES[k]} ({float(p[k]):.1%}){truth}")',
    'if labels is not None:',
    '    correct = int((logits.argmax(dim=1) == labels).sum())',
    '    print(f"{correct} of {len(labels)} correct")',
    'difference = float((logits - example["bnlab_logits"]).abs().max())',
    'print(f"largest difference from bnlab\'s logits: {difference:.2e}")',
  ];
  return lines.join('\n') + '\n';
}

export interface PyTorchImportOptions {
  /** The architecture: bnlab layer specs (a preset's, or a model.json's) and one sample's shape. */
  layers: LayerSpec[];
  inputShape: readonly number[];
  /**
   * num_batches_tracked for batch-norm layers whose count the file lacks (PyTorch before 0.4.1 saved
   * none). Without it such a file is refused, as bnlab refuses any state dict without its batch counts.
   */
  assumeBatches?: number;
  /** Name used in error messages (the .safetensors file). */
  fileName: string;
}

export interface PyTorchImport {
  model: Sequential;
  /** The layer specs the model was built from (batch norm without bias correction: PyTorch's meaning). */
  layers: LayerSpec[];
  /** What the user should know (counts assumed, bnlab-only options dropped). */
  notes: string[];
}

/**
 * A PyTorch state dict (safetensors bytes) as a bnlab model in eval mode. Batch-norm layers are built
 * without bias correction, since PyTorch's running statistics are used as they are; the rest is
 * `decodeModel`'s checks: every missing, unexpected or misshaped tensor is named with the expected and
 * the actual shape. Throws ModelFileError only.
 */
export function importPytorch(bytes: Uint8Array, options: PyTorchImportOptions): PyTorchImport {
  const { fileName } = options;
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) {
    throw new ModelFileError(fileName, 'wrong format', 'this is a torch.save() file (a zip of pickles), not safetensors; bnlab does not run pickles. Convert it in Python: `from model import save_safetensors; save_safetensors(torch.load(FILE, map_location="cpu"), "model.safetensors")` (model.py from `bnlab export --pytorch`), or with safetensors.torch.save_file');
  }
  const notes: string[] = [];
  const layers = options.layers.map((spec) => {
    if (spec.type !== 'BatchNorm1d' && spec.type !== 'BatchNorm2d') return spec;
    const pytorchBn: LayerSpec = { ...spec, biasCorrection: false };
    if (pytorchBn.renorm) {
      delete pytorchBn.renorm; // its warm-up counter is no PyTorch tensor
      notes.push('batch renorm dropped from the architecture: PyTorch has none, the layers are plain batch norm (eval outputs do not depend on it)');
    }
    return pytorchBn;
  });
  const file = parseSafetensors(bytes, fileName);
  const names = [...file.entries.keys()];
  if (names.length > 0 && names.every((n) => n.startsWith('module.'))) {
    throw new ModelFileError(fileName, 'unexpected tensor', `every tensor is named "module.…" (${names.slice(0, 3).join(', ')}, ...): this is the state dict of a DistributedDataParallel (or DataParallel) wrapper. Save the wrapped model's instead: model.module.state_dict()`);
  }
  const json = parseModelJson(JSON.stringify({ format: MODEL_FORMAT, formatVersion: MODEL_FORMAT_VERSION, inputShape: options.inputShape, layers, batchNorm: { biasCorrection: false } }), '(architecture)');
  const model = buildModel(json, '(architecture)');
  checkTensors(model, file);
  loadWeights(model, file);
  model.eval();
  const uncounted = [...model.modules()].filter((m): m is BatchNormBase => m instanceof BatchNormBase && m.trackRunningStats && !file.entries.has(`${m.path}.num_batches_tracked`));
  if (uncounted.length) {
    const which = uncounted.map((m) => `"${m.path}.num_batches_tracked"`).join(', ');
    if (options.assumeBatches === undefined) {
      throw new ModelFileError(fileName, 'missing tensor', `no ${which}: the number of batches behind each layer's running statistics. PyTorch has saved it since 0.4.1; bnlab refuses state dicts without it rather than assume 0 (README "Pitfalls": bias-corrected statistics cannot be used without it, and with momentum None the count weighs the next update). Eval outputs do not depend on it here (PyTorch's statistics are used as they are, no bias correction): re-save the state dict from a current PyTorch (load_state_dict adds it), or give the count with --assume-batches N (any positive N if unknown)`);
    }
    for (const m of uncounted) m.numBatchesTrackedTensor!.data[0] = options.assumeBatches;
    notes.push(`no batch counts in the file: ${which} set to ${options.assumeBatches} (--assume-batches)`);
  }
  return { model, layers, notes };
}

/** Every tensor the architecture needs against the file, all problems in one message (num_batches_tracked is checked by the caller). */
function checkTensors(model: Sequential, file: SafetensorsFile): void {
  const own = model.stateDict();
  const missing: string[] = [];
  const unexpected: string[] = [];
  const misshaped: string[] = [];
  for (const [name, t] of own) {
    const e = file.entries.get(name);
    if (!e) {
      if (!name.endsWith('num_batches_tracked')) missing.push(`"${name}" ${shapeToString(t.shape)}`);
    } else if (e.shape.length !== t.shape.length || e.shape.some((d, i) => d !== t.shape[i])) {
      misshaped.push(`"${name}" is ${shapeToString(e.shape)}, the architecture needs ${shapeToString(t.shape)}`);
    }
  }
  for (const [name, e] of file.entries) if (!own.has(name)) unexpected.push(`"${name}" ${shapeToString(e.shape)}`);
  if (!missing.length && !unexpected.length && !misshaped.length) return;
  const list = (items: string[]) => items.slice(0, 6).join(', ') + (items.length > 6 ? `, ... (${items.length - 6} more)` : '');
  const parts = [
    misshaped.length ? `${misshaped.length} misshaped: ${list(misshaped)}` : '',
    missing.length ? `${missing.length} missing: ${list(missing)}` : '',
    unexpected.length ? `${unexpected.length} not in the architecture: ${list(unexpected)}` : '',
  ].filter(Boolean);
  const defect = misshaped.length ? 'shape mismatch' : missing.length ? 'missing tensor' : 'unexpected tensor';
  throw new ModelFileError(file.fileName, defect, `the state dict does not fit the architecture (${own.size} tensors, the file has ${file.entries.size}): ${parts.join('; ')}. Check --arch and its options (--bn/--no-bn, --bn-placement, --input-bn must be the PyTorch model's)`);
}
