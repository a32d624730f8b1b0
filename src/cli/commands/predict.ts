/**
 * `bnlab predict --model DIR (--image FILE.png | --mnist-test INDEX | --csv FILE)`: class probabilities for
 * one image or every row of a CSV file, in eval mode (batch norm's running statistics: a batch of one is
 * fine), with the preprocessing the model was trained with (its columns, image size, standardization).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadDataset } from '../../data/node.js';
import { readCsvRows } from '../../data/node-sources.js';
import { classIndexer } from '../../data/tabular.js';
import type { Preprocessing } from '../../data/preprocess.js';
import { MNIST_BOX, MNIST_SIDE, digitFromPhoto } from '../../data/digit.js';
import { imageSizeFor, rgbaToGray, rgbaToInput } from '../../io/image.js';
import { modelInput } from '../../io/model-file.js';
import { readPngGray, readPngRgba } from '../../io/node-png.js';
import type { Sequential } from '../../nn/sequential.js';
import { BatchNormBase } from '../../nn/batchnorm.js';
import { softmax } from '../../nn/loss.js';
import { TRAINED_MODEL_OPTION_HELP, loadModelSource, trainedModelArgument } from '../model-files.js';
import { columnList, nonNegativeInt } from '../options.js';
import { noteSkipped } from '../run-data.js';

interface PredictFlags {
  model: string;
  image?: string;
  mnistTest?: number;
  csv?: string;
  dataset?: string;
  invert: 'auto' | 'yes' | 'no';
  json?: boolean;
  ignoreColumns?: string[];
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
    .summary('class probabilities for one image or every row of a CSV file (eval mode, running statistics)')
    .description('Classify with a trained model in eval mode: batch norm normalizes with its running statistics, so a batch of one works. For a model trained on image folders (--data DIR), a PNG of any size is resized and converted as the training images were. For an MNIST-style model, a PNG of the model\'s input size (28x28) is taken as it is, converted to grayscale; a digit at any other size (a photo, a scan, a drawing) is made to look like an MNIST digit, as the lab\'s digit pad does: fitted into 20x20 and centred by its mass in 28x28. Dark-on-light images are inverted to MNIST\'s white-on-black unless --invert says otherwise. Or take image INDEX of the MNIST test set, or every row of a CSV file with the columns the model was trained on (--csv). The training standardization, if any, is applied.')
    .addOption(new Option('--model <dir>', TRAINED_MODEL_OPTION_HELP).argParser(trainedModelArgument).makeOptionMandatory())
    .addOption(new Option('--image <file>', "a PNG file (for a model trained on image folders: resized and converted as at training)").conflicts(['mnistTest', 'csv']))
    .addOption(new Option('--csv <file>', "every row of a CSV file with the model's feature columns (the label column may be there: then the accuracy is printed too)").conflicts('mnistTest'))
    .addOption(new Option('--ignore-columns <names>', "CSV: columns to skip, comma-separated (columns the model does not read are skipped anyway, with a note)").argParser(columnList))
    .addOption(new Option('--mnist-test <index>', 'image INDEX of the test set (of the model\'s dataset, or --dataset)').argParser(nonNegativeInt))
    .addOption(new Option('--dataset <name>', 'the test set for --mnist-test (default: the model\'s dataset, else mnist)').choices(['mnist', 'fashion-mnist']))
    .addOption(new Option('--invert <when>', 'invert the PNG\'s gray levels').choices(['auto', 'yes', 'no']).default('auto'))
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ bnlab predict --model runs/NAME --mnist-test 0
  $ bnlab predict --model runs/NAME --image digit.png
  $ bnlab predict --model runs/NAME --csv new-rows.csv
  $ bnlab predict --model runs/NAME --image photo.png --json`,
    )
    .action(async (flags: PredictFlags) => {
      const given = [flags.image, flags.mnistTest, flags.csv].filter((v) => v !== undefined).length;
      if (given !== 1) throw new InvalidArgumentError('give exactly one of --image FILE.png, --mnist-test INDEX and --csv FILE');
      const source = loadModelSource(flags.model);
      const model = source.model.eval();
      const pre = source.preprocessing;
      if (flags.csv !== undefined) return predictCsv(flags, model, source.inputShape, source.classNames, pre);
      let pixels: Float32Array;
      let label: number | undefined;
      let what: string;
      let classNames = source.classNames;
      if (flags.image !== undefined && pre?.image) {
        // The user's own images: resized and converted exactly as the training images were, no inversion.
        const png = readPngRgba(flags.image);
        pixels = rgbaToInput(png.rgba, png.width, png.height, pre.image);
        if (flags.invert === 'yes') pixels = pixels.map((v) => 1 - v);
        what = `${flags.image}${png.width !== pre.image.width || png.height !== pre.image.height ? ` (resized from ${png.height}x${png.width} to ${pre.image.height}x${pre.image.width}, height x width as --image-size)` : ''}`;
      } else if (flags.image !== undefined) {
        const size = imageSizeFor(source.inputShape);
        const invert = flags.invert === 'auto' ? 'auto' : flags.invert === 'yes';
        const digitModel = size.width === MNIST_SIDE && size.height === MNIST_SIDE && (source.dataset ?? 'mnist') === 'mnist';
        // A digit model takes a PNG of any size; any other model its own size only (checked while decoding).
        const rgba = digitModel ? readPngRgba(flags.image) : null;
        if (rgba && (rgba.width !== size.width || rgba.height !== size.height)) {
          // A photo, scan or drawing of a digit at any size: its levels set so the background is 0, then
          // MNIST's own recipe, as the lab's digit pad does.
          const digit = digitFromPhoto(rgba.rgba, rgba.width, rgba.height, { invert });
          if (digit.empty) throw new Error(`${flags.image}: no digit found: no pixel stands out from the background; the digit must be darker or lighter than the paper or screen behind it`);
          pixels = digit.pixels;
          what = `${flags.image} (${rgba.width}x${rgba.height}${digit.inverted ? ', inverted to white on black' : ''}: the digit fitted into ${MNIST_BOX}x${MNIST_BOX} and centred by mass in ${MNIST_SIDE}x${MNIST_SIDE}, as MNIST's digits are)`;
        } else {
          const png = rgba ? rgbaToGray(rgba.rgba, rgba.width, rgba.height, { invert }) : readPngGray(flags.image, size, { invert });
          pixels = png.pixels;
          what = `${flags.image}${png.inverted ? ' (inverted to white on black)' : ''}`;
        }
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
      const probs = softmax(model.forward(modelInput({ inputShape: source.inputShape, preprocessing: pre }, pixels))).data;
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

/** One prediction per row of a CSV file: a table, or `--json` one object with every row. */
async function predictCsv(flags: PredictFlags, model: Sequential, inputShape: number[], classNames: string[] | undefined, pre: Preprocessing | undefined): Promise<void> {
  if (!pre?.features) throw new Error(`${flags.model} was not trained on a CSV file, so it has no columns to read; use --image or --mnist-test`);
  const table = await readCsvRows(flags.csv!, pre.features, pre.label, `the model ${flags.model}`, [...(flags.ignoreColumns ?? []), ...(pre.ignoredColumns ?? [])]);
  noteSkipped(flags.csv!, table.skipped);
  const f = pre.features.length;
  const name = (k: number) => classNames?.[k] ?? String(k);
  const classOf = classIndexer(classNames ?? []);
  const predictions: Prediction[] = [];
  let labelled = 0;
  let correct = 0;
  // Eval mode: rows are independent, so batches only save time.
  for (let start = 0; start < table.count; start += 1000) {
    const n = Math.min(1000, table.count - start);
    const probs = softmax(model.forward(modelInput({ inputShape, preprocessing: pre }, table.values.subarray(start * f, (start + n) * f)))).data;
    const k = probs.length / n;
    for (let r = 0; r < n; r++) {
      const i = start + r;
      const row = Array.from(probs.subarray(r * k, (r + 1) * k), (p, index) => ({ index, name: name(index), probability: p }));
      const predicted = row.reduce((best, p) => (p.probability > best.probability ? p : best)).index;
      const labelText = table.label !== null ? table.labelStrings[table.labelIndex[i]] : undefined;
      const label = labelText !== undefined ? classOf(labelText) : undefined;
      if (label !== undefined) {
        labelled++;
        if (label === predicted) correct++;
      }
      predictions.push({ source: `${flags.csv} line ${table.lines[i]}`, predicted, predictedName: name(predicted), ...(label !== undefined ? { label } : {}), probabilities: row });
    }
  }
  const accuracy = labelled ? correct / labelled : undefined;
  if (flags.json) {
    console.log(JSON.stringify({ file: flags.csv, count: table.count, ...(accuracy !== undefined ? { labelled, accuracy } : {}), predictions }));
    return;
  }
  const classes = predictions[0].probabilities.map((p) => p.name);
  const showAll = classes.length <= 6;
  const width = Math.max(9, ...classes.map((c) => c.length));
  const header = ['line'.padStart(6), 'predicted'.padEnd(width), ...(showAll ? classes.map((c) => c.padStart(Math.max(7, c.length))) : ['probability']), ...(table.label !== null ? [table.label] : [])];
  console.log(header.join('  '));
  predictions.forEach((p, i) => {
    const probs = showAll ? p.probabilities.map((q, j) => `${(q.probability * 100).toFixed(1)}%`.padStart(Math.max(7, classes[j].length))) : [`${(p.probabilities[p.predicted].probability * 100).toFixed(1)}%`.padStart(11)];
    const labelText = table.label !== null ? table.labelStrings[table.labelIndex[i]] : undefined;
    const mark = labelText === undefined ? '' : `  ${labelText}${p.label === undefined ? ' (not a class of the model)' : p.label === p.predicted ? '' : '  ✗'}`;
    console.log([String(table.lines[i]).padStart(6), p.predictedName.padEnd(width), ...probs].join('  ') + mark);
  });
  if (accuracy !== undefined) console.log(`${correct} of ${labelled} labelled rows predicted correctly (${(accuracy * 100).toFixed(2)}%)`);
}
