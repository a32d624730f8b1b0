/**
 * Networks of any shape, sized from the data: `mlp` (hidden sizes and activation given) and `cnn`
 * (convolution widths, optional hidden layer), with the input shape and class count of the dataset
 * they are trained on. The layer specs are those of the presets (mlpLayers, cnnLayers), so the models
 * save, load and resume like any other. Browser-safe.
 */
import { Rng } from '../tensor/rng.js';
import type { InitSpec } from '../nn/init.js';
import { buildSequential, type LayerSpec } from '../nn/registry.js';
import type { Sequential } from '../nn/sequential.js';
import { BN_PLACEMENTS, cnnLayers, layoutOf, mlpLayers, type PresetOptions } from './presets.js';

export const SHAPED_MODELS: readonly string[] = Object.freeze(['mlp', 'cnn']);
export type Activation = 'relu' | 'sigmoid' | 'tanh';
export const ACTIVATIONS: readonly Activation[] = Object.freeze(['relu', 'sigmoid', 'tanh']);
const LAYER_OF: Record<Activation, string> = { relu: 'ReLU', sigmoid: 'Sigmoid', tanh: 'Tanh' };

/** The shape of a network whose ends come from the data. */
export interface ModelShape {
  kind: 'mlp' | 'cnn';
  /** Hidden fully connected layers (cnn: at most one, after the convolutions). */
  hidden: number[];
  activation: Activation;
  /** cnn: output channels of each conv 3x3 → [BN] → activation → max-pool 2 block. */
  conv?: number[];
}

/** Defaults: mlp 100-100 ReLU; cnn as the mnist-cnn preset (16, 32 channels, a hidden layer of 128). */
export const DEFAULT_MLP_HIDDEN: readonly number[] = Object.freeze([100, 100]);
export const DEFAULT_CNN_CONV: readonly number[] = Object.freeze([16, 32]);
export const DEFAULT_CNN_HIDDEN: readonly number[] = Object.freeze([128]);

export function isShapedModel(name: string): name is 'mlp' | 'cnn' {
  return SHAPED_MODELS.includes(name);
}

/** The initializer and SGD settings a shape trains well with: He for ReLU, Xavier for sigmoid and tanh. */
export function shapeDefaults(shape: Pick<ModelShape, 'kind' | 'activation'>): { defaultInit: InitSpec; defaultLr: number; defaultMomentum?: number } {
  const defaultInit: InitSpec = shape.activation === 'relu' ? { name: 'kaiming-normal', nonlinearity: 'relu' } : { name: 'xavier-uniform' };
  // The cnn's rate and momentum are mnist-cnn's; 0.1 without momentum is the MLP presets'.
  return shape.kind === 'cnn' ? { defaultInit, defaultLr: 0.02, defaultMomentum: 0.9 } : { defaultInit, defaultLr: 0.1 };
}

/**
 * The layers of `shape` for samples of `sampleShape` and `classes` classes, and the input shape the model
 * takes: an mlp takes flat vectors ([H·W·C] for images), a cnn takes [C, H, W].
 */
export function shapedLayers(shape: ModelShape, sampleShape: readonly number[], classes: number, options: PresetOptions = {}): { layers: LayerSpec[]; inputShape: number[]; description: string } {
  if (options.bnPlacement !== undefined && !BN_PLACEMENTS.includes(options.bnPlacement)) throw new Error(`bnPlacement must be 'before' or 'after', got ${JSON.stringify(options.bnPlacement)}`);
  if (!ACTIVATIONS.includes(shape.activation)) throw new Error(`activation must be one of ${ACTIVATIONS.join(', ')}, got ${JSON.stringify(shape.activation)}`);
  if (!(Number.isInteger(classes) && classes >= 2)) throw new Error(`a classifier needs at least 2 classes, got ${classes}`);
  for (const h of [...shape.hidden, ...(shape.conv ?? [])]) if (!(Number.isInteger(h) && h >= 1)) throw new Error(`layer sizes must be positive integers, got ${h}`);
  const layout = layoutOf(options);
  const act = LAYER_OF[shape.activation];
  const bnText = layout.bn ? `, BN ${layout.placement} each activation` : '';
  const inBnText = layout.inputBn ? ', BN on the input' : '';
  if (shape.kind === 'mlp') {
    const inputs = sampleShape.reduce((a, b) => a * b, 1);
    const sizes = [inputs, ...shape.hidden, classes];
    return { layers: mlpLayers(sizes, act, layout), inputShape: [inputs], description: `MLP ${sizes.join('-')}, ${act}${bnText}${inBnText}` };
  }
  if (sampleShape.length !== 3) {
    throw new Error(`--model cnn takes images ([channels, height, width] samples), but this data has samples of shape [${sampleShape.join(', ')}] (a table?); use --model mlp for tabular data`);
  }
  const conv = shape.conv ?? [...DEFAULT_CNN_CONV];
  if (conv.length === 0) throw new Error('--model cnn needs at least one convolution block (--conv 16,32)');
  if (shape.hidden.length > 1) throw new Error(`--model cnn takes at most one hidden fully connected layer after the convolutions, got --hidden ${shape.hidden.join(',')}`);
  const [c, h, w] = sampleShape;
  const smallest = Math.min(h, w);
  if (smallest >> conv.length < 1) {
    const fits = Math.floor(Math.log2(smallest));
    throw new Error(`--model cnn: each of the ${conv.length} convolution blocks halves the image (max-pool 2), and a ${h}x${w} image survives only ${fits}; use at most ${fits} (--conv with ${fits === 1 ? 'one width' : `${fits} widths`}) or a larger --image-size`);
  }
  const hidden = shape.hidden[0] ?? 0;
  const layers = cnnLayers([c, h, w], conv, classes, layout, hidden, act);
  const blocks = conv.map((n) => `conv 3x3 ${n}`).join(' → ');
  return { layers, inputShape: [c, h, w], description: `CNN on ${c}x${h}x${w}: ${blocks} (each ${act}, max-pool 2)${hidden ? `, Linear ${hidden}` : ''}, ${classes} classes${bnText}${inBnText}` };
}

/** Build `shape` for the data, seeded and initialized as the presets are. */
export function buildShapedModel(shape: ModelShape, sampleShape: readonly number[], classes: number, options: PresetOptions = {}): { model: Sequential; inputShape: number[]; description: string } {
  const { layers, inputShape, description } = shapedLayers(shape, sampleShape, classes, options);
  const init = options.init ?? shapeDefaults(shape).defaultInit;
  const model = buildSequential(layers, { rng: new Rng(options.seed ?? 0), init, batchNorm: options.batchNorm });
  return { model, inputShape, description };
}
