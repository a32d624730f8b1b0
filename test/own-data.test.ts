/**
 * Own data: CSV tables (every bad case with its file, line and column, and nothing written), the
 * stratified split, standardization, resizing, IDX directories and PNG class folders; networks sized
 * from the data; and `train`/`evaluate`/`predict`/`summary` on them through the built command.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { subsetByIndex, type Dataset } from '../src/data/dataset.js';
import { DataFileError } from '../src/data/errors.js';
import { loadTrainingData, readDataSource } from '../src/data/node-sources.js';
import { applyStandardization, standardization, stratifiedSplit } from '../src/data/preprocess.js';
import { TableBuilder, sortClassNames, tableToDataset } from '../src/data/tabular.js';
import { resizePlane, resampleTaps, rgbaToInput } from '../src/io/image.js';
import { buildShapedModel } from '../src/models/shapes.js';
import { describeModel } from '../src/io/model-file.js';
import { buildPreset } from '../src/models/presets.js';
import { bnlab, type CliResult } from './support/cli.js';
import { mnistIdxDir, separableCsv, shapeFolders, writePng } from './support/own-data.js';

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'bnlab-own-data-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} failed:\n${r.stderr}\n${r.stdout}`);
  return r;
}

describe('CSV tables', () => {
  const parse = (text: string, options = {}) => {
    const b = new TableBuilder('t.csv', options);
    const lines = text.split('\n').filter((l) => l !== '');
    lines.forEach((l, i) => (i === 0 ? b.header(l.split(','), 1) : b.row(l.split(','), i + 1)));
    return b.finish();
  };

  test('the label is the last column by default, or --label; classes sorted, numerically when numeric', () => {
    const t = parse('x,y,kind\n1,2,b\n3,4,a\n5,6,b\n');
    assert.deepEqual(t.features, ['x', 'y']);
    const ds = tableToDataset(t, 't');
    assert.deepEqual(ds.classNames, ['a', 'b']);
    assert.deepEqual([...ds.labels], [1, 0, 1]);
    assert.deepEqual([...ds.images], [1, 2, 3, 4, 5, 6]);
    const byName = tableToDataset(parse('kind,x\n10,1\n2,2\n', { label: 'kind' }), 't');
    assert.deepEqual(byName.classNames, ['2', '10']);
    assert.deepEqual(sortClassNames(['b', 'B', 'a']), ['B', 'a', 'b']);
  });

  test('each bad cell or file is reported with its line and column', () => {
    const cases: Array<[string, RegExp, object?]> = [
      ['', /t\.csv: the file is empty/],
      ['a,b,label\n', /t\.csv: the file has a header but no data rows/],
      ['a,b,label\n1,2,x\n3,abc,y\n', /t\.csv, line 3, column "b": "abc" is not a number/],
      ['a,b,label\n1,2,x\n3,4\n', /t\.csv, line 3: has 2 values, the header has 3 columns/],
      ['a,b,label\n1,2,x\n3,4,y,\n', /line 3: has 4 values, the header has 3 columns \(a trailing comma\?\)/],
      ['a,b,label\n1,NaN,x\n', /line 2, column "b": the value is NaN/],
      ['a,b,label\n1,-Infinity,x\n', /line 2, column "b": the value is -Infinity/],
      ['a,b,label\n1,,x\n', /line 2, column "b": the value is empty \(a missing value\)/],
      ['a,b,label\n1,2e39,x\n', /line 2, column "b": 2e39 is outside the range of 32-bit floats/],
      ['a,b,label\n1,2,\n', /line 2, column "label": the label is empty/],
      ['a,a,label\n1,2,x\n', /line 1: the header names column "a" twice/],
      ['a,b,label\n1,2,x\n', /line 1: no label column "kind" \(--label kind\); the columns are "a", "b", "label"/, { label: 'kind' }],
      ['a,c,label\n1,2,x\n', /line 1: its columns differ from those of train\.csv: missing "b"; unexpected "c"/, { features: ['a', 'b'], label: 'label', featuresFrom: 'train.csv' }],
    ];
    for (const [text, message, options] of cases) {
      assert.throws(() => tableToDataset(parse(text, options), 't'), (e: Error) => e instanceof DataFileError && message.test(e.message), `${JSON.stringify(text)} should fail with ${message}`);
    }
    assert.throws(() => tableToDataset(parse('a,label\n1,x\n2,x\n'), 't'), /only one class \("x"\)/);
  });

  test('a streamed file: quoted values, CRLF, a BOM, semicolons; line numbers as an editor shows them', async () => {
    const file = join(tmp, 'quoted.csv');
    writeFileSync(file, '\ufeff"x";"y";"label"\r\n1;2;"a"\r\n\r\n3;4;"b\r\nc"\r\n5;oops;a\r\n');
    await assert.rejects(readDataSource(file), /quoted\.csv, line 6, column "y": "oops" is not a number/);
    writeFileSync(file, 'x,y,label\n1,2,"a, b"\n\n3,4,b\n');
    const { dataset, table } = await readDataSource(file);
    assert.deepEqual(dataset.classNames, ['a, b', 'b']);
    assert.deepEqual([...table!.lines], [2, 4]);
  });
});

describe('split, standardization, resizing', () => {
  const ds: Dataset = {
    name: 'd',
    images: Float32Array.from({ length: 40 }, (_, i) => i),
    labels: Uint8Array.from({ length: 20 }, (_, i) => (i < 15 ? 0 : 1)),
    count: 20,
    sampleShape: [2],
    numClasses: 2,
  };

  test('the stratified split keeps class proportions, is seeded, and keeps file order', () => {
    const a = stratifiedSplit(ds, 0.2, 7);
    const b = stratifiedSplit(ds, 0.2, 7);
    const c = stratifiedSplit(ds, 0.2, 8);
    assert.equal(a.test.count, 4); // round(0.2 · 15) + round(0.2 · 5)
    assert.deepEqual([...a.test.labels], [0, 0, 0, 1]);
    assert.deepEqual([...a.test.images], [...b.test.images]);
    assert.notDeepEqual([...a.test.images], [...c.test.images]);
    const firsts = [...a.train.images].filter((_, i) => i % 2 === 0);
    assert.deepEqual(firsts, [...firsts].sort((x, y) => x - y));
    assert.equal(a.train.count + a.test.count, 20);
  });

  test('standardization: training mean 0 and std 1; a constant column is centred, not NaN', () => {
    const withConstant: Dataset = { ...ds, images: Float32Array.from({ length: 40 }, (_, i) => (i % 2 ? 5 : 1e5 + i)) };
    const s = standardization(withConstant);
    assert.equal(s.per, 'feature');
    assert.equal(s.std[1], 1);
    const z = applyStandardization(withConstant.images, [2], s);
    assert.ok(z.every(Number.isFinite));
    const col0 = [...z].filter((_, i) => i % 2 === 0);
    const mean = col0.reduce((a, b) => a + b, 0) / col0.length;
    const sd = Math.sqrt(col0.reduce((a, b) => a + (b - mean) ** 2, 0) / col0.length);
    assert.ok(Math.abs(mean) < 1e-5 && Math.abs(sd - 1) < 1e-5, `mean ${mean}, std ${sd}`);
    assert.ok([...z].filter((_, i) => i % 2 === 1).every((v) => v === 0));
    const images = subsetByIndex({ ...ds, images: new Float32Array(20 * 2 * 4).map((_, i) => i % 8), sampleShape: [2, 2, 2] }, [0, 1]);
    assert.equal(standardization(images).per, 'channel');
    assert.equal(standardization(images).mean.length, 2);
  });

  test('resizing: area averaging down, bilinear up, identity at the same size', () => {
    const src = Float32Array.from([1, 3, 5, 7, 1, 3, 5, 7, 2, 2, 0, 0, 2, 2, 0, 0]);
    assert.deepEqual([...resizePlane(src, 4, 4, 2, 2)], [2, 6, 2, 0]);
    assert.deepEqual([...resizePlane(src, 4, 4, 4, 4)], [...src]);
    assert.deepEqual([...resizePlane(Float32Array.from([0, 1]), 2, 1, 4, 1)], [0, 0.25, 0.75, 1]);
    for (const [a, b] of [[7, 3], [3, 7], [28, 10]]) for (const t of resampleTaps(a, b)) assert.ok(Math.abs(t.weights.reduce((x, y) => x + y, 0) - 1) < 1e-9);
    const constant = resizePlane(new Float32Array(7 * 5).fill(0.4), 7, 5, 3, 4);
    assert.ok(constant.every((v) => Math.abs(v - 0.4) < 1e-6));
    const red = new Uint8Array([255, 0, 0, 255]);
    assert.deepEqual([...rgbaToInput(red, 1, 1, { height: 1, width: 1, channels: 3 })], [1, 0, 0]);
    assert.ok(Math.abs(rgbaToInput(red, 1, 1, { height: 1, width: 1, channels: 1 })[0] - 0.299) < 1e-6);
  });
});

describe('networks sized from the data', () => {
  test('mlp and cnn take input size and classes from the data; model.json version 2 only with preprocessing', () => {
    const mlp = buildShapedModel({ kind: 'mlp', hidden: [8, 4], activation: 'tanh' }, [5], 3, { bn: true });
    assert.deepEqual(mlp.model.outputShape([2, 5]), [2, 3]);
    assert.match(mlp.description, /MLP 5-8-4-3, Tanh/);
    const cnn = buildShapedModel({ kind: 'cnn', hidden: [16], activation: 'relu', conv: [4, 8] }, [3, 12, 20], 4, { bn: true });
    assert.deepEqual(cnn.model.outputShape([2, 3, 12, 20]), [2, 4]);
    assert.throws(() => buildShapedModel({ kind: 'cnn', hidden: [], activation: 'relu', conv: [4, 4, 4] }, [1, 6, 6], 2), /survives only 2/);
    assert.throws(() => buildShapedModel({ kind: 'cnn', hidden: [], activation: 'relu' }, [6], 2), /use --model mlp for tabular data/);
    const m = buildPreset('ioffe-mlp');
    assert.equal(describeModel(m, { inputShape: [784] }).formatVersion, 1);
    assert.equal(describeModel(m, { inputShape: [784], preprocessing: { version: 1, source: 'idx' } }).formatVersion, 2);
  });
});

describe('bnlab on own data', () => {
  let csv: string;
  before(() => {
    csv = join(tmp, 'separable.csv');
    separableCsv(csv);
  });

  test('each bad CSV fails with its line and column and writes no run directory', async () => {
    const bad: Array<[string, string, RegExp]> = [
      ['empty.csv', '', /empty\.csv: the file is empty/],
      ['header.csv', 'a,b,label\n', /header\.csv: the file has a header but no data rows/],
      ['text.csv', 'a,b,label\n1,2,x\n3,abc,y\n', /text\.csv, line 3, column "b": "abc" is not a number/],
      ['ragged.csv', 'a,b,label\n1,2,x\n3,4\n', /ragged\.csv, line 3: has 2 values, the header has 3 columns/],
      ['nan.csv', 'a,b,label\n1,2,x\n3,nan,y\n', /nan\.csv, line 3, column "b": the value is nan/],
      ['inf.csv', 'a,b,label\n1,2,x\nInfinity,3,y\n', /inf\.csv, line 3, column "a": the value is Infinity/],
      ['one.csv', 'a,b,label\n1,2,x\n3,4,x\n', /one\.csv: the label column "label" has only one class/],
    ];
    await Promise.all(
      bad.map(async ([name, text, message]) => {
        const file = join(tmp, name);
        writeFileSync(file, text);
        const out = join(tmp, `run-${name}`);
        const r = await bnlab(['train', '--data', file, '--model', 'mlp', '--out', out, '--backend', 'ts']);
        assert.notEqual(r.code, 0, `${name} should fail`);
        assert.match(r.stderr, message);
        assert.equal(existsSync(out), false, `${name}: ${out} must not be created`);
      }),
    );
    const missing = await bnlab(['train', '--data', csv, '--label', 'species', '--model', 'mlp', '--out', join(tmp, 'run-label')]);
    assert.match(missing.stderr, /separable\.csv, line 1: no label column "species" \(--label species\); the columns are "tiny", "unit", "hundreds", "huge", "kind"/);
    const other = join(tmp, 'other-columns.csv');
    writeFileSync(other, 'tiny,unit,hundreds,enormous,kind\n1,2,3,4,alpha\n');
    const test = await bnlab(['train', '--data', csv, '--test-data', other, '--model', 'mlp', '--out', join(tmp, 'run-test')]);
    assert.match(test.stderr, /other-columns\.csv, line 1: its columns differ from those of the training data .*separable\.csv: missing "huge"; unexpected "enormous"/);
    assert.equal(existsSync(join(tmp, 'run-label')) || existsSync(join(tmp, 'run-test')), false);
    const preset = await bnlab(['train', '--data', csv, '--model', 'ioffe-mlp', '--out', join(tmp, 'run-preset')]);
    assert.match(preset.stderr, /--model ioffe-mlp takes 784 inputs and has 10 classes, the data has 4 values per sample \(\[4\]\) and 3 classes; use a network sized from the data: --model mlp/);
  });

  test('a separable CSV: standardized mlp trains to high accuracy; evaluate and predict agree, with class names', async () => {
    const run = join(tmp, 'csv-run');
    const t = ok(await bnlab(['train', '--data', csv, '--model', 'mlp', '--hidden', '16,8', '--activation', 'relu', '--standardize', '--epochs', '20', '--batch', '30', '--eval-every', '0', '--out', run]), 'train');
    assert.match(t.stdout, /Data: 3 classes \(alpha, beta, gamma\), samples of shape \[4\]; test: 0\.2 of each class held out \(seed 1\); standardized/);
    const config = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
    assert.equal(config.data.trainCount, 240);
    assert.equal(config.data.testCount, 60);
    assert.deepEqual(config.data.classNames, ['alpha', 'beta', 'gamma']);
    const modelJson = JSON.parse(readFileSync(join(run, 'model.json'), 'utf8'));
    assert.equal(modelJson.formatVersion, 2);
    assert.deepEqual(modelJson.preprocessing.features, ['tiny', 'unit', 'hundreds', 'huge']);
    assert.equal(modelJson.preprocessing.standardize.mean.length, 4);
    assert.ok(modelJson.preprocessing.standardize.std[3] > 1e4, 'the huge column has a huge std');
    assert.deepEqual(config.data.preprocessing.standardize, modelJson.preprocessing.standardize);

    const e = JSON.parse(ok(await bnlab(['evaluate', '--model', run, '--json']), 'evaluate').stdout);
    assert.equal(e.count, 60);
    assert.ok(e.accuracy >= 0.95, `accuracy ${e.accuracy}`);
    const final = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.split === 'test').at(-1);
    assert.equal(e.accuracy, final.accuracy, 'evaluate recreates the run\'s own test split');
    assert.deepEqual(e.classes, ['alpha', 'beta', 'gamma']);
    assert.equal(e.confusionMatrix.flat().reduce((a: number, b: number) => a + b, 0), 60);
    assert.deepEqual(e.confusionMatrix.map((row: number[]) => row.reduce((a, b) => a + b, 0)), [20, 20, 20]);

    // The whole file through predict --csv (standardized with the stored statistics) and evaluate --data agree.
    const whole = JSON.parse(ok(await bnlab(['evaluate', '--model', run, '--data', csv, '--json']), 'evaluate --data').stdout);
    const p = JSON.parse(ok(await bnlab(['predict', '--model', run, '--csv', csv, '--json']), 'predict --csv').stdout);
    assert.equal(p.count, 300);
    assert.equal(p.accuracy, whole.accuracy);
    assert.ok(whole.accuracy >= 0.95);
    assert.ok(['alpha', 'beta', 'gamma'].includes(p.predictions[0].predictedName));
    assert.match(p.predictions[0].source, /separable\.csv line 2$/);

    // Without the label column, in another column order.
    const rows = readFileSync(csv, 'utf8').trim().split('\n').slice(1, 4).map((l) => l.split(','));
    const unlabelled = join(tmp, 'unlabelled.csv');
    writeFileSync(unlabelled, ['huge,tiny,unit,hundreds', ...rows.map((r) => [r[3], r[0], r[1], r[2]].join(','))].join('\n') + '\n');
    const table = ok(await bnlab(['predict', '--model', run, '--csv', unlabelled]), 'predict unlabelled').stdout;
    assert.match(table, /line\s+predicted\s+alpha\s+beta\s+gamma/);
    for (let i = 0; i < 3; i++) assert.match(table, new RegExp(`^\\s+${i + 2}\\s+${rows[i][4]}\\s`, 'm'));

    const text = ok(await bnlab(['evaluate', '--model', run]), 'evaluate table').stdout;
    assert.match(text, /on the run's test split of .*separable\.csv \(60 samples: 0\.2 of each class, seed 1\)/);
    assert.match(text, /class\s+precision\s+recall\s+f1\s+support/);
    assert.match(text, /^alpha\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+20$/m);
    assert.match(text, /Confusion matrix \(rows: true class, columns: predicted class\)/);
    const batch = ok(await bnlab(['evaluate', '--model', run, '--stats', 'batch', '--json']), 'evaluate batch').stdout;
    assert.equal(JSON.parse(batch).batchSize, 30);
    const population = JSON.parse(ok(await bnlab(['evaluate', '--model', run, '--stats', 'population', '--batches', '20', '--json']), 'evaluate population').stdout);
    assert.equal(population.populationBatches, 20);
    assert.ok(population.accuracy >= 0.9);
    for (const stats of ['batch', 'population']) {
      const one = await bnlab(['evaluate', '--model', run, '--stats', stats, '--batch', '1']);
      assert.equal(one.code, 1);
      assert.match(one.stderr, new RegExp(`--stats ${stats} --batch 1: a batch of one has no batch statistics \\(its variance is 0\\); give --batch 2 or more`));
    }
  });

  test('raw inputs on very different scales stall plain SGD; standardizing or input batch norm fixes it', async () => {
    const acc = async (extra: string[], name: string) => {
      const run = join(tmp, `scale-${name}`);
      const t = await bnlab(['train', '--data', csv, '--model', 'mlp', '--hidden', '16', '--no-bn', '--epochs', '20', '--batch', '30', '--eval-every', '0', '--out', run, ...extra]);
      if (t.code !== 0 && /Training diverged at step \d+: the loss is (NaN|Infinity)/.test(t.stderr)) return 0; // the worst way scale can hurt
      ok(t, name);
      return JSON.parse(ok(await bnlab(['evaluate', '--model', run, '--json']), `evaluate ${name}`).stdout).accuracy as number;
    };
    const [raw, standardized, inputBn] = await Promise.all([acc([], 'raw'), acc(['--standardize'], 'standardized'), acc(['--input-bn'], 'input-bn')]);
    assert.ok(standardized >= 0.95 && inputBn >= 0.95, `standardized ${standardized}, input BN ${inputBn}`);
    assert.ok(raw < standardized - 0.2, `raw ${raw} should be far below standardized ${standardized}`);
  });

  test('checkpoints and --resume on a CSV run give the same model as an uninterrupted run', async () => {
    const common = ['--data', csv, '--model', 'mlp', '--hidden', '8', '--standardize', '--batch', '20', '--eval-every', '0', '--backend', 'ts'];
    const whole = join(tmp, 'resume-whole');
    const parts = join(tmp, 'resume-parts');
    ok(await bnlab(['train', ...common, '--steps', '40', '--out', whole]), 'whole');
    ok(await bnlab(['train', ...common, '--steps', '20', '--checkpoint-every', '10', '--out', parts]), 'first half');
    ok(await bnlab(['train', '--resume', parts, '--steps', '40']), 'resume');
    assert.deepEqual(readFileSync(join(parts, 'model.safetensors')), readFileSync(join(whole, 'model.safetensors')));
  });

  test('an IDX directory as MNIST ships it trains, and its t10k pair is the test set', async () => {
    const dir = join(tmp, 'idx');
    mnistIdxDir(dir, 600, 200);
    const run = join(tmp, 'idx-run');
    ok(await bnlab(['train', '--data', dir, '--model', 'mlp', '--hidden', '64', '--epochs', '5', '--eval-every', '0', '--out', run]), 'train idx');
    const e = JSON.parse(ok(await bnlab(['evaluate', '--model', run, '--json']), 'evaluate idx').stdout);
    assert.equal(e.count, 200);
    assert.ok(e.accuracy > 0.7, `accuracy ${e.accuracy}`);
    assert.deepEqual(e.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    const alone = join(tmp, 'idx-alone');
    mkdirSync(alone);
    writeFileSync(join(alone, 'train-images-idx3-ubyte'), readFileSync(join(dir, 'train-images-idx3-ubyte')));
    const r = await bnlab(['train', '--data', alone, '--model', 'mlp', '--out', join(tmp, 'idx-alone-run')]);
    assert.match(r.stderr, /train-images-idx3-ubyte has no matching labels file/);
  });

  test('PNG images in class folders: resized, RGB or gray; a cnn trains; predict reads a new image the same way', async () => {
    const dir = join(tmp, 'shapes');
    shapeFolders(dir, 24);
    const run = join(tmp, 'shapes-run');
    ok(await bnlab(['train', '--data', dir, '--model', 'cnn', '--conv', '8,16', '--hidden', '32', '--image-size', '16x16', '--channels', '3', '--epochs', '15', '--batch', '16', '--eval-every', '0', '--out', run]), 'train images');
    const modelJson = JSON.parse(readFileSync(join(run, 'model.json'), 'utf8'));
    assert.deepEqual(modelJson.inputShape, [3, 16, 16]);
    assert.deepEqual(modelJson.preprocessing.image, { height: 16, width: 16, channels: 3, resize: 'area-bilinear' });
    assert.deepEqual(modelJson.classNames, ['bars', 'disc', 'ring']);
    const e = JSON.parse(ok(await bnlab(['evaluate', '--model', run, '--json']), 'evaluate images').stdout);
    assert.ok(e.accuracy >= 0.9, `accuracy ${e.accuracy}`);
    const disc = join(tmp, 'new-disc.png');
    writePng(disc, 40, 30, (x, y) => (Math.hypot(x - 20, y - 15) < 9 ? [40, 200, 60] : [20, 20, 20]));
    const p = JSON.parse(ok(await bnlab(['predict', '--model', run, '--image', disc, '--json']), 'predict image').stdout);
    assert.equal(p.predictedName, 'disc');
    assert.match(p.source, /resized from 30x40 to 16x16, height x width as --image-size/);

    const gray = await readDataSource(dir, { channels: 1 });
    assert.deepEqual(gray.dataset.sampleShape.slice(0, 1), [1]);
    mkdirSync(join(dir, 'empty'));
    await assert.rejects(readDataSource(dir), /shapes\/empty: is an empty class folder/);
    writeFileSync(join(dir, 'empty', 'notes.txt'), 'x');
    await assert.rejects(readDataSource(dir), /empty\/notes\.txt: is not a PNG file/);
    const one = join(tmp, 'one-class');
    mkdirSync(join(one, 'only'), { recursive: true });
    writePng(join(one, 'only', 'a.png'), 4, 4, () => [0, 0, 0]);
    await assert.rejects(readDataSource(one), /has 1 class folder \(only\); a classifier needs at least two/);
  });

  test('--standardize with an mlp on images (a bundled dataset, RGB folders): the flattened input keeps per-channel statistics, and the model loads, evaluates, predicts and exports', async () => {
    const mnist = join(tmp, 'std-mnist');
    ok(await bnlab(['train', '--model', 'ioffe-mlp', '--standardize', '--train-limit', '3000', '--test-limit', '500', '--steps', '600', '--eval-every', '0', '--out', mnist]), 'train mnist');
    const t = JSON.parse(readFileSync(join(mnist, 'model.json'), 'utf8'));
    assert.deepEqual(t.inputShape, [784]);
    assert.equal(t.preprocessing.standardize.per, 'channel');
    assert.equal(t.preprocessing.standardize.mean.length, 1);
    const last = readFileSync(join(mnist, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.split === 'test').at(-1);
    const e = JSON.parse(ok(await bnlab(['evaluate', '--model', mnist, '--json']), 'evaluate mnist').stdout);
    assert.ok(Math.abs(e.accuracy - last.accuracy) < 1e-9, `evaluate ${e.accuracy} against the run's own ${last.accuracy}`);
    assert.ok(e.accuracy > 0.6, `accuracy ${e.accuracy} (chance: 0.1)`);
    const p = JSON.parse(ok(await bnlab(['predict', '--model', mnist, '--mnist-test', '0', '--json']), 'predict mnist').stdout);
    assert.equal(p.predicted, 7);
    ok(await bnlab(['export', '--model', mnist, '--onnx', join(tmp, 'std-mnist.onnx')]), 'export onnx');
    ok(await bnlab(['summary', '--model', mnist]), 'summary');

    const dir = join(tmp, 'std-shapes');
    shapeFolders(dir, 24);
    const rgb = join(tmp, 'std-shapes-run');
    ok(await bnlab(['train', '--data', dir, '--model', 'mlp', '--hidden', '32', '--image-size', '12x12', '--channels', '3', '--standardize', '--epochs', '60', '--batch', '16', '--eval-every', '0', '--out', rgb]), 'train rgb mlp');
    const m = JSON.parse(readFileSync(join(rgb, 'model.json'), 'utf8'));
    assert.deepEqual(m.inputShape, [432]);
    assert.equal(m.preprocessing.standardize.mean.length, 3);
    const er = JSON.parse(ok(await bnlab(['evaluate', '--model', rgb, '--json']), 'evaluate rgb').stdout);
    assert.ok(er.accuracy >= 0.9, `accuracy ${er.accuracy}`);
    const disc = join(tmp, 'std-disc.png');
    writePng(disc, 40, 30, (x, y) => (Math.hypot(x - 20, y - 15) < 9 ? [40, 200, 60] : [20, 20, 20]));
    assert.equal(JSON.parse(ok(await bnlab(['predict', '--model', rgb, '--image', disc, '--json']), 'predict rgb').stdout).predictedName, 'disc');
  });

  test('summary shows networks sized from the data, and trained runs', async () => {
    const r = ok(await bnlab(['summary', '--model', 'mlp', '--hidden', '64', '--data', csv]), 'summary');
    assert.match(r.stdout, /MLP 4-64-3, ReLU/);
    assert.match(r.stdout, /Linear\(4, 64\)/);
    assert.match(r.stdout, /Linear\(64, 3\)/);
    const none = await bnlab(['summary', '--model', 'ioffe-mlp', '--hidden', '64']);
    assert.match(none.stderr, /--hidden shapes --model mlp or cnn/);
  });

  test('the split and the data are recreated exactly (as evaluate and --resume rely on)', async () => {
    const options = { dataset: 'x', dataPath: csv, testFraction: 0.3, standardize: true, seed: 4 };
    const [a, b] = await Promise.all([loadTrainingData(options), loadTrainingData(options)]);
    assert.deepEqual([...a.testSet.images], [...b.testSet.images]);
    assert.equal(a.testSet.count, 90);
    assert.equal(a.provenance!.fingerprint, b.provenance!.fingerprint);
  });
});
