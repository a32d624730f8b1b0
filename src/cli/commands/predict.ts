/**
 * `bnlab predict --model DIR (--image FILE.png | --mnist-test INDEX)`: class probabilities for one image,
 * in eval mode: a batch of one, the case batch norm's running statistics exist for.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadDataset } from '../../data/node.js';
import { imageSizeFor } from '../../io/image.js';
import { readPngGray } from '../../io/node-png.js';
import { BatchNormBase } from '../../nn/batchnorm.js';
import { softmax } from '../../nn/loss.js';
import { Tensor } from '../../tensor/tensor.js';
import { MODEL_OPTION_HELP, loadModelSource, modelArgument } from '../model-files.js';
import { nonNegativeInt } from '../options.js';

interface PredictFlags {
  model: string;
  image?: string;
  mnistTest?: number;
  dataset?: string;
  invert: 'auto' | 'yes' | 'no';
  json?: boolean;
}

export interface Prediction {
  source: string;
  predicted: number;
  predictedName: string;
  label?: number;
  probabilities: Array<{ index: number; name: string; probability: number }>;
}

export function register(program: Command): Command {
  return program
    .command('predict')
    .summary('class probabilities for one image (eval mode, running statistics)')
    .description('Classify one image with a trained model in eval mode: batch norm normalizes with its running statistics, so a batch of one works. The image is a PNG of the model\'s input size (28x28 for MNIST), converted to grayscale; dark-on-light images are inverted to MNIST\'s white-on-black unless --invert says otherwise. Or take image INDEX of the MNIST test set.')
    .addOption(new Option('--model <dir>', MODEL_OPTION_HELP).argParser(modelArgument).makeOptionMandatory())
    .addOption(new Option('--image <file>', 'a PNG file').conflicts('mnistTest'))
    .addOption(new Option('--mnist-test <index>', 'image INDEX of the test set (of the model\'s dataset, or --dataset)').argParser(nonNegativeInt))
    .addOption(new Option('--dataset <name>', 'the test set for --mnist-test (default: the model\'s dataset, else mnist)').choices(['mnist', 'fashion-mnist']))
    .addOption(new Option('--invert <when>', 'invert the PNG\'s gray levels').choices(['auto', 'yes', 'no']).default('auto'))
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab predict --model runs/NAME --mnist-test 0
  $ bnlab predict --model runs/NAME --image digit.png`,
    )
    .action((flags: PredictFlags) => {
      if ((flags.image === undefined) === (flags.mnistTest === undefined)) throw new InvalidArgumentError('give exactly one of --image FILE.png and --mnist-test INDEX');
      const source = loadModelSource(flags.model);
      const model = source.model.eval();
      let pixels: Float32Array;
      let label: number | undefined;
      let what: string;
      let classNames = source.classNames;
      if (flags.image !== undefined) {
        const size = imageSizeFor(source.inputShape);
        const png = readPngGray(flags.image, size, { invert: flags.invert === 'auto' ? 'auto' : flags.invert === 'yes' });
        pixels = png.pixels;
        what = `${flags.image}${png.inverted ? ' (inverted to white on black)' : ''}`;
      } else {
        const name = flags.dataset ?? source.dataset ?? 'mnist';
        const test = loadDataset(name, 'test');
        const i = flags.mnistTest!;
        if (i >= test.count) throw new Error(`--mnist-test ${i} is out of range: the ${name} test set has ${test.count} images (0 to ${test.count - 1})`);
        const size = test.images.length / test.count;
        pixels = test.images.slice(i * size, (i + 1) * size);
        label = test.labels[i];
        classNames ??= test.classNames;
        what = `${name} test image ${i}`;
      }
      const perSample = source.inputShape.reduce((a, b) => a * b, 1);
      if (pixels.length !== perSample) throw new Error(`${what} has ${pixels.length} values, the model takes input [${source.inputShape.join(', ')}] (${perSample} values)`);
      const probs = softmax(model.forward(new Tensor([1, ...source.inputShape], pixels))).data;
      const name = (k: number) => classNames?.[k] ?? String(k);
      const probabilities = Array.from(probs, (p, index) => ({ index, name: name(index), probability: p }));
      const predicted = probabilities.reduce((best, p) => (p.probability > best.probability ? p : best)).index;
      const result: Prediction = { source: what, predicted, predictedName: name(predicted), ...(label !== undefined ? { label } : {}), probabilities };
      if (flags.json) {
        console.log(JSON.stringify(result));
        return;
      }
      const bn = [...model.modules()].filter((m): m is BatchNormBase => m instanceof BatchNormBase);
      console.log(`${what}${label !== undefined ? `, label ${name(label)}` : ''}`);
      if (bn.length) console.log(`eval mode: ${bn.length} batch-norm layer${bn.length > 1 ? 's' : ''} normalizing with running statistics${bn.some((b) => b.biasCorrection) ? ' (bias-corrected)' : ''}, after ${bn[0].numBatchesTracked} training batches`);
      const width = Math.max(...probabilities.map((p) => p.name.length));
      for (const p of probabilities) {
        const bar = '█'.repeat(Math.round(p.probability * 40));
        console.log(`  ${p.name.padEnd(width)}  ${(p.probability * 100).toFixed(2).padStart(6)}%  ${bar}${p.index === predicted ? '  ←' : ''}`);
      }
      console.log(`Predicted: ${name(predicted)}${label !== undefined ? (label === predicted ? ' (correct)' : ` (wrong: the label is ${name(label)})`) : ''}`);
    });
}
