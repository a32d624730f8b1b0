/**
 * `bnlab import --pytorch FILE.safetensors --arch PRESET|model.json --out RUN`: a PyTorch state dict
 * (e.g. trained with examples/pytorch/train_ddp.py) as a bnlab model directory, for predict, summary,
 * evaluate and further training. The conversion is src/io/pytorch.ts's `importPytorch`.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { FASHION_MNIST_CLASS_NAMES, MNIST_CLASS_NAMES } from '../../data/dataset.js';
import { DATASET_NAMES } from '../../data/node.js';
import { MODEL_SAFETENSORS, parseModelJson } from '../../io/model-file.js';
import { checkWritable } from '../../io/node-atomic.js';
import { readFileChecked, saveModelDir } from '../../io/node-model-dir.js';
import { importPytorch } from '../../io/pytorch.js';
import { buildPreset, getPreset, presetNames, type BatchNormPlacement } from '../../models/presets.js';
import { layerSpec, type LayerSpec } from '../../nn/registry.js';
import type { Preprocessing } from '../../data/preprocess.js';
import { positiveInt } from '../options.js';
import { shellCommand } from '../format.js';
import { addBatchNormOptions } from './train.js';

interface ImportFlags {
  pytorch: string;
  arch: string;
  out: string;
  overwrite?: boolean;
  dataset?: string;
  assumeBatches?: number;
  bn: boolean;
  bnMomentum: number | null;
  bnEps: number;
  bnPlacement: BatchNormPlacement;
  inputBn?: boolean;
}

export function register(program: Command): Command {
  const cmd = program
    .command('import')
    .summary('turn a PyTorch state dict (.safetensors) into a bnlab model directory')
    .description("Read a PyTorch state dict saved as safetensors (state-dict names as nn.Sequential gives them: \"0.weight\", \"1.running_mean\", ...) into the architecture --arch: a preset, built with the same options as `bnlab train`, or a model.json (the one `bnlab export --pytorch` writes next to model.py). Every tensor is checked against the architecture (missing, unexpected, misshaped: named with the expected and the actual shape). Batch norm is read the PyTorch way, running statistics as they are (no bias correction), so bnlab's eval outputs equal PyTorch's.")
    .requiredOption('--pytorch <file>', 'the .safetensors file (e.g. safetensors.torch.save_file(model.state_dict(), FILE), or save_safetensors from the exported model.py)')
    .requiredOption('--arch <spec>', `the architecture: a preset (${presetNames().join(', ')}) or a model.json file`)
    .requiredOption('--out <dir>', 'the model directory to write (model.json + model.safetensors)')
    .option('--overwrite', 'replace an existing model directory at --out')
    .addOption(new Option('--dataset <name>', "the dataset the model is for, for class names and predict (default: the model.json's, else mnist)").choices(DATASET_NAMES))
    .addOption(new Option('--assume-batches <n>', 'num_batches_tracked for batch-norm layers whose count the file lacks (old PyTorch files)').argParser(positiveInt))
    .option('--bn', 'preset: with batch norm', true)
    .option('--no-bn', 'preset: without batch norm');
  addBatchNormOptions(cmd).addHelpText(
    'after',
    `
--no-bias-correction is implied: PyTorch's running statistics are used as they are.

Examples:
  $ bnlab import --pytorch trained.safetensors --arch runs/NAME-pytorch/model.json --out runs/from-pytorch
  $ bnlab import --pytorch state.safetensors --arch ioffe-mlp --out runs/ioffe-torch
  $ bnlab import --pytorch state.safetensors --arch mnist-cnn --bn-placement after --out runs/cnn-torch
  $ bnlab predict --model runs/from-pytorch --mnist-test 0`,
  );
  return cmd.action((flags: ImportFlags) => {
    const presetOnly = ['bn', 'bnPlacement', 'inputBn', 'bnMomentum', 'bnEps'].filter((o) => cmd.getOptionValueSource(o) === 'cli');
    if (presetOnly.length && !presetNames().includes(flags.arch)) console.warn(`bnlab warning: ${presetOnly.map((o) => cmd.options.find((x) => x.attributeName() === o)!.long).join(', ')} only shape presets; ${flags.arch} is used as written`);
    if (existsSync(flags.out) && !flags.overwrite) throw new Error(`${flags.out} already exists; choose another --out, or pass --overwrite to replace its model files`);
    checkWritable(flags.out, 'directory', '--out');
    const arch = architecture(flags);
    const bytes = readFileChecked(flags.pytorch, 2 ** 31 - 1);
    const { model, notes } = importPytorch(bytes, { layers: arch.layers, inputShape: arch.inputShape, assumeBatches: flags.assumeBatches, fileName: flags.pytorch });
    // A model trained on own data keeps its preprocessing (columns, standardization, image size) and
    // classes: without them the imported weights would get raw or misordered input and answer wrongly.
    const ownData = arch.preprocessing !== undefined && arch.preprocessing.source !== 'idx';
    if (flags.dataset && arch.preprocessing && arch.dataset !== flags.dataset) {
      throw new Error(`--dataset ${flags.dataset}: ${flags.arch} describes a model trained on ${ownData ? `its own ${arch.preprocessing.source === 'csv' ? 'CSV' : 'image'} data` : arch.dataset ?? 'other data'}, with its own preprocessing; drop --dataset`);
    }
    const dataset = flags.dataset ?? arch.dataset ?? (ownData ? undefined : 'mnist');
    const classNames = arch.classNames ?? (dataset === 'fashion-mnist' ? [...FASHION_MNIST_CLASS_NAMES] : dataset === 'mnist' ? [...MNIST_CLASS_NAMES] : undefined);
    saveModelDir(flags.out, model, { inputShape: arch.inputShape, preset: arch.preset, classNames, dataset, preprocessing: arch.preprocessing });
    for (const note of notes) console.warn(`bnlab note: ${note}`);
    const tensors = model.stateDict().size;
    console.log(`Imported ${flags.pytorch} (${tensors} tensors) as ${arch.preset ?? 'the model.json architecture'}: wrote ${resolve(flags.out)}/${MODEL_SAFETENSORS} and model.json${arch.preprocessing ? ` (with its preprocessing: ${describePreprocessing(arch.preprocessing)})` : ''}`);
    console.log(`Use it: ${shellCommand(['bnlab', 'predict', '--model', flags.out, ...predictExample(arch.preprocessing)])}, ${shellCommand(['bnlab', 'summary', '--model', flags.out])}`);
  });
}

interface ImportArchitecture {
  layers: LayerSpec[];
  inputShape: number[];
  preset: string | null;
  classNames?: string[];
  dataset?: string;
  preprocessing?: Preprocessing;
}

/** The input a model with this preprocessing reads, as `predict` options. */
function predictExample(pre: Preprocessing | undefined): string[] {
  if (pre?.source === 'csv') return ['--csv', 'ROWS.csv'];
  if (pre?.source === 'images') return ['--image', 'IMAGE.png'];
  return ['--mnist-test', '0'];
}

function describePreprocessing(pre: Preprocessing): string {
  const parts = [pre.features ? `columns ${pre.features.join(', ')}` : pre.image ? `images ${pre.image.height}x${pre.image.width} (height x width), ${pre.image.channels} channel${pre.image.channels === 1 ? '' : 's'}` : 'IDX images'];
  if (pre.standardize) parts.push('standardized');
  return parts.join(', ');
}

/** `--arch`: a preset built with the batch-norm flags, or a model.json. */
function architecture(flags: ImportFlags): ImportArchitecture {
  if (presetNames().includes(flags.arch)) {
    const model = buildPreset(flags.arch, { bn: flags.bn, bnPlacement: flags.bnPlacement, inputBn: flags.inputBn, batchNorm: { momentum: flags.bnMomentum, eps: flags.bnEps, biasCorrection: false } });
    return { layers: model.layers.map(layerSpec), inputShape: [...getPreset(flags.arch).inputShape], preset: flags.arch };
  }
  if (!existsSync(flags.arch)) throw new Error(`--arch ${flags.arch}: not a preset (${presetNames().join(', ')}) and no such file`);
  const file = statSync(flags.arch).isDirectory() ? resolve(flags.arch, 'model.json') : flags.arch;
  const json = parseModelJson(readFileChecked(file, 64 * 1024 * 1024), file);
  return { layers: json.layers, inputShape: json.inputShape, preset: json.preset, classNames: json.classNames, dataset: json.dataset, ...(json.preprocessing ? { preprocessing: json.preprocessing } : {}) };
}
