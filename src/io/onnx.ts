/**
 * ONNX export of a Sequential model as an inference graph (browser-safe; onnx-schema.ts encodes
 * the messages). One node per layer:
 *   Linear → Gemm (transB = 1, W stored [out, in] as in ONNX's B[N, K]);  Conv2d → Conv;
 *   BatchNorm1d/2d → BatchNormalization with the statistics eval mode uses (bias-corrected running
 *   averages when the layer has biasCorrection), or, with `foldBatchNorm`, folded into the preceding
 *   Linear/Conv2d by fuseBatchNorm (src/nn/fuse.ts);
 *   ReLU/Sigmoid/Tanh → Relu/Sigmoid/Tanh;  MaxPool2d/AvgPool2d → MaxPool/AveragePool
 *   (count_include_pad = 1, as bnlab and PyTorch count padding);  Flatten → Flatten;  Dropout → nothing
 *   (the identity in eval mode);  `softmax: true` appends a Softmax and names the output "probabilities".
 * A model trained on standardized input (`standardize`) gets Sub and Div nodes in front, so the graph
 * takes the raw values, as `bnlab predict` does.
 * Shape legend: N = batch (a symbolic "batch" dimension), C = channels or features, H, W = image size.
 */
import { BatchNormBase } from '../nn/batchnorm.js';
import { fuseBatchNorm } from '../nn/fuse.js';
import type { Module } from '../nn/module.js';
import { Sequential } from '../nn/sequential.js';
import { shapeToString } from '../tensor/tensor.js';
import { standardizationLayout, type Standardization } from '../data/preprocess.js';
import { ModelFileError } from './errors.js';
import { encodeModelProto, onnxEnum, type AttributeProto, type NodeProto, type TensorProto, type ValueInfoProto } from './onnx-schema.js';

/** Opset 13: Softmax over one axis (`axis = 1` is PyTorch's dim=1), Gemm with an optional C. */
export const ONNX_OPSET = 13;
/** The IR version that goes with opset 13. */
const IR_VERSION = 7;

export interface OnnxExportOptions {
  /** One sample's shape, e.g. [784] or [1, 28, 28]. */
  inputShape: readonly number[];
  /** Fold each batch-norm layer into the Linear/Conv2d before it (fewer nodes; same outputs up to rounding). */
  foldBatchNorm?: boolean;
  /** Append a Softmax: the output is class probabilities ("probabilities") instead of logits ("logits"). */
  softmax?: boolean;
  /** Recorded in the model's metadata (`producer_version`). */
  producerVersion?: string;
  /** Name used in error messages (the output file). */
  fileName?: string;
  /** The model's input standardization (model.json's preprocessing): the graph then applies (x - mean) / std first. */
  standardize?: Standardization;
}

/** Names of the graph's input and output. */
export const ONNX_INPUT = 'input';
export function onnxOutputName(softmax: boolean): string {
  return softmax ? 'probabilities' : 'logits';
}

/** The model as an ONNX ModelProto, serialized. Throws ModelFileError('not exportable') for a layer ONNX cannot express here. */
export function exportOnnx(model: Sequential, options: OnnxExportOptions): Uint8Array {
  const fileName = options.fileName ?? 'model.onnx';
  const source = options.foldBatchNorm ? fuseBatchNorm(model) : model;
  const layers = flatten(source);
  const initializers: TensorProto[] = [];
  const nodes: NodeProto[] = [];
  let current = ONNX_INPUT;
  let shape = [1, ...options.inputShape];
  try {
    model.outputShape(shape);
  } catch (e) {
    throw new ModelFileError(fileName, 'not exportable', `the model does not take input ${shapeToString(options.inputShape)}: ${(e as Error).message}`);
  }
  if (options.standardize) current = standardizeNodes(options.standardize, options.inputShape, fileName, nodes, initializers);
  layers.forEach((layer, i) => {
    const name = `${i}_${layer.typeName}`;
    const out = `${name}_out`;
    const add = (opType: string, inputs: string[], attributes: AttributeProto[] = []) => nodes.push({ name, opType, input: inputs, output: [out], attribute: attributes });
    const param = (suffix: string, dims: readonly number[], data: Float32Array) => {
      const tensorName = `${layer.path || i}.${suffix}`;
      initializers.push(floatTensor(tensorName, dims, data));
      return tensorName;
    };
    const cfg = layer.config();
    const params = new Map(layer.namedParameters());
    switch (layer.typeName) {
      case 'Linear': {
        const w = params.get('weight')!.value;
        const b = params.get('bias');
        add('Gemm', [current, param('weight', w.shape, w.data), ...(b ? [param('bias', b.value.shape, b.value.data)] : [])], [intAttr('transB', 1)]);
        break;
      }
      case 'Conv2d': {
        const w = params.get('weight')!.value;
        const b = params.get('bias');
        const [kh, kw] = pair(cfg.kernelSize);
        const [ph, pw] = pair(cfg.padding ?? 0);
        add('Conv', [current, param('weight', w.shape, w.data), ...(b ? [param('bias', b.value.shape, b.value.data)] : [])], [ints('kernel_shape', [kh, kw]), ints('strides', pair(cfg.stride ?? 1)), ints('pads', [ph, pw, ph, pw])]);
        break;
      }
      case 'BatchNorm1d':
      case 'BatchNorm2d': {
        const bn = layer as BatchNormBase;
        if (!bn.trackRunningStats || bn.statistics === 'batch-update' || bn.statistics === 'batch-frozen') {
          throw new ModelFileError(fileName, 'not exportable', `layer ${i} (${bn.describe()}) normalizes with batch statistics in eval mode, which an inference graph cannot; export a model that uses running statistics`);
        }
        const { mean, variance } = bn.inferenceStatistics();
        const c = bn.numFeatures;
        const gamma = bn.weight ? bn.weight.value.data : new Float32Array(c).fill(1);
        const beta = bn.bias ? bn.bias.value.data : new Float32Array(c);
        // ONNX's BatchNormalization wants (N, C, ...); a BatchNorm1d over (N, C) is that with no spatial dims.
        add('BatchNormalization', [current, param('weight', [c], gamma), param('bias', [c], beta), param('inference_mean', [c], mean), param('inference_var', [c], variance)], [floatAttr('epsilon', bn.eps)]);
        break;
      }
      case 'ReLU':
        add('Relu', [current]);
        break;
      case 'Sigmoid':
        add('Sigmoid', [current]);
        break;
      case 'Tanh':
        add('Tanh', [current]);
        break;
      case 'MaxPool2d':
      case 'AvgPool2d': {
        const kernel = pair(cfg.kernelSize);
        const [ph, pw] = pair(cfg.padding ?? 0);
        const attrs = [ints('kernel_shape', kernel), ints('strides', pair(cfg.stride ?? cfg.kernelSize)), ints('pads', [ph, pw, ph, pw])];
        if (layer.typeName === 'AvgPool2d') attrs.push(intAttr('count_include_pad', 1));
        add(layer.typeName === 'MaxPool2d' ? 'MaxPool' : 'AveragePool', [current], attrs);
        break;
      }
      case 'Flatten':
        add('Flatten', [current], [intAttr('axis', 1)]);
        break;
      case 'Dropout':
        shape = layer.outputShape(shape);
        return; // the identity in eval mode: no node
      default:
        throw new ModelFileError(fileName, 'not exportable', `layer ${i} (${layer.describe()}) has no ONNX export; supported: Linear, Conv2d, BatchNorm1d/2d, ReLU, Sigmoid, Tanh, MaxPool2d, AvgPool2d, Flatten, Dropout`);
    }
    shape = layer.outputShape(shape);
    current = out;
  });
  if (shape.length !== 2) throw new ModelFileError(fileName, 'not exportable', `the model outputs ${shapeToString(shape.slice(1))} per sample; ONNX export expects class scores [N, classes]`);
  const outputName = onnxOutputName(options.softmax ?? false);
  if (options.softmax) nodes.push({ name: 'softmax', opType: 'Softmax', input: [current], output: [outputName], attribute: [intAttr('axis', 1)] });
  else if (nodes.length > 0) nodes[nodes.length - 1].output = [outputName];
  else nodes.push({ name: 'identity', opType: 'Identity', input: [current], output: [outputName] });

  const graph = {
    name: 'bnlab',
    node: nodes,
    initializer: initializers,
    input: [valueInfo(ONNX_INPUT, ['batch', ...options.inputShape])],
    output: [valueInfo(outputName, ['batch', shape[1]])],
  };
  return encodeModelProto({
    irVersion: IR_VERSION,
    producerName: 'bnlab',
    producerVersion: options.producerVersion ?? '',
    opsetImport: [{ domain: '', version: ONNX_OPSET }],
    graph,
  });
}

/**
 * (x - mean) / std as Sub and Div, the statistics broadcast per channel ([C, 1, 1] for [C, H, W]
 * input) or given per input value ([F]: per feature, or a flattened image's channels spelt out).
 */
function standardizeNodes(s: Standardization, inputShape: readonly number[], fileName: string, nodes: NodeProto[], initializers: TensorProto[]): string {
  const layout = standardizationLayout(inputShape, s);
  if (typeof layout === 'string' || s.std.length !== s.mean.length) {
    throw new ModelFileError(fileName, 'not exportable', `the model's standardization has ${s.mean.length} means and ${s.std.length} stds per ${s.per}, but its input is ${shapeToString(inputShape)}`);
  }
  const size = inputShape.reduce((a, b) => a * b, 1);
  const perValue = (a: number[]) => Float32Array.from({ length: size }, (_, i) => a[Math.floor(i / layout.plane)]);
  const [dims, mean, std] = s.per === 'channel' && inputShape.length >= 2 ? [[s.mean.length, ...inputShape.slice(1).map(() => 1)], Float32Array.from(s.mean), Float32Array.from(s.std)] : [[size], perValue(s.mean), perValue(s.std)];
  initializers.push(floatTensor('preprocessing.mean', dims, mean), floatTensor('preprocessing.std', dims, std));
  nodes.push({ name: 'standardize_sub', opType: 'Sub', input: [ONNX_INPUT, 'preprocessing.mean'], output: ['standardize_centred'] });
  nodes.push({ name: 'standardize_div', opType: 'Div', input: ['standardize_centred', 'preprocessing.std'], output: ['standardized'] });
  return 'standardized';
}

/** Layers of nested Sequentials in execution order. */
function flatten(model: Module): Module[] {
  if (!(model instanceof Sequential)) return [model];
  return model.layers.flatMap(flatten);
}

function pair(v: unknown): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number')) return [v[0], v[1]];
  throw new Error(`expected a size or [height, width], got ${JSON.stringify(v)}`);
}

function floatTensor(name: string, dims: readonly number[], data: Float32Array): TensorProto {
  const raw = new Uint8Array(data.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(4 * i, data[i], true); // ONNX raw data is little-endian
  return { name, dims: [...dims], dataType: onnxEnum('TensorProto.DataType', 'FLOAT'), rawData: raw };
}

function valueInfo(name: string, dims: Array<number | string>): ValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: onnxEnum('TensorProto.DataType', 'FLOAT'), shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  };
}

function intAttr(name: string, i: number): AttributeProto {
  return { name, type: onnxEnum('AttributeProto.AttributeType', 'INT'), i };
}

function ints(name: string, values: number[]): AttributeProto {
  return { name, type: onnxEnum('AttributeProto.AttributeType', 'INTS'), ints: values };
}

function floatAttr(name: string, f: number): AttributeProto {
  return { name, type: onnxEnum('AttributeProto.AttributeType', 'FLOAT'), f };
}
