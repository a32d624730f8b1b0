/**
 * `bnlab summary --model NAME [--bn|--no-bn]`: print a preset's layers, output shapes and parameter
 * counts (trainable, and non-trainable: the running statistics), Keras-style.
 */
import { Command, Option } from 'commander';
import { initBackend } from '../../kernels/index.js';
import { MODEL_OPTION_HELP, loadModelSource, modelArgument } from '../model-files.js';
import { summary } from '../../nn/summary.js';
import { addBatchNormOptions, modelShape } from './train.js';
import { backendOption, imageSize, layerSizes } from '../options.js';
import { DATASET_NAMES, loadDataset } from '../../data/node.js';
import { readDataSource } from '../../data/node-sources.js';
import { ACTIVATIONS, isShapedModel, type Activation } from '../../models/shapes.js';
import type { BatchNormPlacement } from '../../models/presets.js';

interface SummaryFlags {
  model: string;
  bn: boolean;
  bnMomentum: number | null;
  bnEps: number;
  biasCorrection: boolean;
  bnPlacement: BatchNormPlacement;
  inputBn?: boolean;
  eval?: boolean;
  backend: string;
  data?: string;
  dataset?: string;
  label?: string;
  imageSize?: [number, number];
  channels?: '1' | '3';
  hidden?: number[];
  activation?: Activation;
  conv?: number[];
}

export function register(program: Command): Command {
  const cmd = program
    .command('summary')
    .summary("print a model's layers, output shapes and parameter counts")
    .description('Print a Keras-style summary of a preset model: one row per layer with its output shape, trainable and non-trainable parameters (running statistics), and the state of the running statistics; then the totals.')
    .addOption(new Option('--model <name>', MODEL_OPTION_HELP).argParser(modelArgument).makeOptionMandatory())
    .option('--bn', 'with batch norm', true)
    .option('--no-bn', 'without batch norm')
    .option('--data <path>', 'size --model mlp|cnn from this data (CSV file, IDX directory or class folders), as bnlab train --data does')
    .addOption(new Option('--dataset <name>', 'size --model mlp|cnn from a bundled dataset').choices([...DATASET_NAMES]).conflicts('data'))
    .option('--label <column>', 'CSV: the label column (default the last)')
    .addOption(new Option('--image-size <HxW>', 'image folders: the size images are resized to').argParser(imageSize))
    .addOption(new Option('--channels <n>', 'image folders: 1 = grayscale, 3 = RGB').choices(['1', '3']))
    .addOption(new Option('--hidden <sizes>', '--model mlp|cnn: hidden layer sizes, e.g. 256,128').argParser(layerSizes))
    .addOption(new Option('--activation <name>', '--model mlp|cnn: the hidden activation').choices([...ACTIVATIONS]))
    .addOption(new Option('--conv <widths>', '--model cnn: channels of each convolution block').argParser(layerSizes));
  addBatchNormOptions(cmd)
    .option('--eval', 'show the model in eval mode')
    .addOption(backendOption())
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab summary --model ioffe-mlp
  $ bnlab summary --model ioffe-mlp --no-bn
  $ bnlab summary --model ioffe-mlp --bn-placement after --input-bn
  $ bnlab summary --model runs/NAME               a trained model (its running statistics included)
  $ bnlab summary --model mlp --hidden 64 --data data.csv
  $ bnlab summary --model cnn --data photos/ --image-size 32x32`,
    )
    .action(async (flags: SummaryFlags) => {
      const kernels = await initBackend(flags.backend);
      // A preset is built with the flags; a model directory is shown as saved (--bn and the BN flags do not apply).
      const shape = modelShape(flags);
      let data: { sampleShape: number[]; numClasses: number; shape: typeof shape } | undefined;
      if (flags.data) {
        const { dataset } = await readDataSource(flags.data, { label: flags.label, imageSize: flags.imageSize, channels: flags.channels ? (Number(flags.channels) as 1 | 3) : null });
        data = { sampleShape: dataset.sampleShape, numClasses: dataset.numClasses, shape };
      } else if (flags.dataset || isShapedModel(flags.model)) {
        const ds = loadDataset(flags.dataset ?? 'mnist', 'train');
        data = { sampleShape: ds.sampleShape, numClasses: ds.numClasses, shape };
      }
      const source = loadModelSource(flags.model, { bn: flags.bn, batchNorm: { momentum: flags.bnMomentum, eps: flags.bnEps, biasCorrection: flags.biasCorrection }, bnPlacement: flags.bnPlacement, inputBn: flags.inputBn }, data);
      const model = source.model.train(!flags.eval);
      const name = source.dir ?? source.preset ?? flags.model;
      console.log(`${source.dir ? source.dir : name}: ${source.dir ? `${source.preset ? `preset ${source.preset}, ` : ''}trained model` : source.description}`);
      console.log(summary(model, [1, ...source.inputShape], source.dir ? name : flags.bn ? `${name} (bn)` : `${name} (no bn)`));
      console.log(`Backend: ${kernels.capabilities.variant}`);
    });
  return cmd;
}
