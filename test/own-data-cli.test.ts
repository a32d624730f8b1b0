/**
 * `bnlab` on the user's own data, through the built command, as a user meets it: a model imported from
 * PyTorch keeps its preprocessing; a model trained further reads the data as it was trained to; files
 * that are not what they seem (no header, a regression target, numbers as labels, Latin-1 text) and
 * settings that do nothing are refused or reported with the file, the line and the fix; and nothing is
 * written when a command fails.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { encodeIdx } from '../src/data/idx.js';
import { bnlab, type CliResult } from './support/cli.js';
import { separableCsv, writePng } from './support/own-data.js';

let tmp: string;
let csv: string;
/** A standardized mlp trained on `csv`, shared by the tests that use a trained model. */
let run: string;
before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'bnlab-own-data-cli-'));
  csv = join(tmp, 'separable.csv');
  separableCsv(csv);
  run = join(tmp, 'run');
  ok(await bnlab(['train', '--data', csv, '--model', 'mlp', '--hidden', '16', '--standardize', '--epochs', '10', '--batch', '30', '--eval-every', '0', '--out', run, '--backend', 'ts']), 'train');
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what} failed:\n${r.stderr}\n${r.stdout}`);
  return r;
}

/** A command that must fail with `message` and leave `out` unwritten. */
function refused(r: CliResult, message: RegExp, out?: string): void {
  assert.notEqual(r.code, 0, `expected a failure:\n${r.stdout}`);
  assert.match(r.stderr, message);
  if (out) assert.equal(existsSync(out), false, `${out} must not be written`);
}

/** The CSV's lines with its columns in another order (`order` indexes the original columns). */
function reorder(text: string, order: number[]): string {
  return text.trim().split('\n').map((l) => order.map((i) => l.split(',')[i]).join(',')).join('\n') + '\n';
}

describe('a model keeps how it reads its input', () => {
  test('import --arch model.json keeps the preprocessing and classes; the hint fits the data', async () => {
    const pt = join(tmp, 'run-pt');
    ok(await bnlab(['export', '--model', run, '--pytorch', pt]), 'export');
    const imported = join(tmp, 'imported');
    const r = ok(await bnlab(['import', '--pytorch', join(pt, 'model.safetensors'), '--arch', join(pt, 'model.json'), '--out', imported]), 'import');
    assert.match(r.stdout, /Use it: bnlab predict --model \S+imported --csv ROWS\.csv/);
    const original = JSON.parse(readFileSync(join(run, 'model.json'), 'utf8'));
    const json = JSON.parse(readFileSync(join(imported, 'model.json'), 'utf8'));
    assert.equal(json.formatVersion, 2);
    assert.deepEqual(json.preprocessing, original.preprocessing);
    assert.deepEqual(json.classNames, ['alpha', 'beta', 'gamma']);
    const a = JSON.parse(ok(await bnlab(['predict', '--model', run, '--csv', csv, '--json']), 'predict').stdout);
    const b = JSON.parse(ok(await bnlab(['predict', '--model', imported, '--csv', csv, '--json']), 'predict imported').stdout);
    assert.equal(b.accuracy, a.accuracy);
    assert.ok(b.accuracy > 0.9, `accuracy ${b.accuracy}`);
  });

  test('train --model RUN --data: the model\'s columns by name, its standardization and classes, or a clear refusal', async () => {
    const out = join(tmp, 'further');
    refused(await bnlab(['train', '--model', run, '--data', csv, '--epochs', '1', '--out', out]), /standardizes its input with the mean and std of its training data .*; add --standardize/, out);
    // Columns in another order are taken by name; the statistics are the model's, not the new data's.
    const reordered = join(tmp, 'reordered.csv');
    writeFileSync(reordered, reorder(readFileSync(csv, 'utf8'), [4, 3, 2, 1, 0]));
    const t = ok(await bnlab(['train', '--model', run, '--data', reordered, '--standardize', '--steps', '1', '--lr', '1e-9', '--eval-every', '0', '--out', out]), 'train further');
    assert.match(t.stdout, /Test accuracy after 1 steps: (9\d|100)\.\d\d%/);
    const model = JSON.parse(readFileSync(join(run, 'model.json'), 'utf8'));
    const further = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
    assert.deepEqual(further.preprocessing, model.preprocessing);
    assert.deepEqual(further.classNames, model.classNames);
    const e = JSON.parse(ok(await bnlab(['evaluate', '--model', out, '--json']), 'evaluate').stdout);
    assert.ok(e.accuracy > 0.9);
    const missing = join(tmp, 'missing-column.csv');
    writeFileSync(missing, reorder(readFileSync(csv, 'utf8'), [0, 1, 2, 4]));
    refused(await bnlab(['train', '--model', run, '--data', missing, '--standardize', '--epochs', '1', '--out', join(tmp, 'f2')]), /missing-column\.csv, line 1: its columns differ from those of the model .*: missing "huge"/, join(tmp, 'f2'));
    const classes = join(tmp, 'other-classes.csv');
    writeFileSync(classes, readFileSync(csv, 'utf8').replace(/gamma/g, 'delta'));
    refused(await bnlab(['train', '--model', run, '--data', classes, '--standardize', '--epochs', '1', '--out', join(tmp, 'f3')]), /other-classes\.csv, line \d+, column "kind": label "delta" is not one of the model's classes \("alpha", "beta", "gamma"\)/, join(tmp, 'f3'));
    const raw = join(tmp, 'raw');
    ok(await bnlab(['train', '--data', csv, '--model', 'mlp', '--hidden', '4', '--steps', '2', '--out', raw]), 'raw model');
    refused(await bnlab(['train', '--model', raw, '--data', csv, '--standardize', '--steps', '1', '--out', join(tmp, 'f4')]), /was trained on input that was not standardized; drop --standardize/, join(tmp, 'f4'));
  });
});

describe('files that are not what they seem are refused, naming the file, the line and the fix', () => {
  test('no header, a regression target, Latin-1 text, UTF-16 text, gzip, a binary file, test data of another kind, a missing --test-data, a batch or epoch too small', async () => {
    const rows = readFileSync(csv, 'utf8').trim().split('\n').slice(1);
    const write = (name: string, text: string | Buffer) => {
      writeFileSync(join(tmp, name), text);
      return join(tmp, name);
    };
    const noHeader = write('no-header.csv', rows.join('\n') + '\n');
    const regression = write('regression.csv', ['a,b,price', ...rows.map((r, i) => `${r.split(',').slice(0, 2).join(',')},${(i * 1.37).toFixed(2)}`)].join('\n') + '\n');
    const latin1 = write('latin1.csv', Buffer.from(readFileSync(csv, 'utf8').replace(/alpha/g, 'sétosa'), 'latin1'));
    const gz = write('data.csv.gz', Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]));
    const utf16 = write('utf16.csv', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(readFileSync(csv, 'utf8'), 'utf16le')]));
    // Bytes no text has (a model file, a picture given by mistake): once quoted back by the parser as garbage.
    const binary = write('binary.csv', Buffer.from([0x22, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d]));
    const noise = write('noise.csv', Buffer.from(Array.from({ length: 64 }, (_, i) => 0x80 + ((i * 37) % 120))));
    const images = join(tmp, 'images');
    for (const cls of ['a', 'b']) {
      const dir = join(images, cls);
      mkdirSync(dir, { recursive: true });
      writePng(join(dir, '1.png'), 4, 4, () => (cls === 'a' ? [0, 0, 0] : [255, 255, 255]));
      writePng(join(dir, '2.png'), 4, 4, () => (cls === 'a' ? [10, 0, 0] : [250, 255, 255]));
    }
    const cases: Array<[string[], RegExp]> = [
      [['--data', noHeader], /no-header\.csv, line 1: the first line \(.*\) looks like data, not a header: add a header line naming the columns/],
      [['--data', regression], /regression\.csv: the label column "price" looks like a regression target .*: 300 distinct values in 300 rows\. bnlab classifies/],
      [['--data', latin1], /latin1\.csv, line \d+, column "kind": is not UTF-8 text: "s\uFFFDtosa"/],
      [['--data', utf16], /utf16\.csv: is UTF-16 text .*save it as CSV UTF-8/],
      [['--data', binary], /binary\.csv: is not a text file \(byte 9 is 0, which CSV text never has\); give a CSV file/],
      [['--data', noise], /noise\.csv: is not a text file \(\d+% of its first \d+ characters are not text\)/],
      [['--data', gz], /data\.csv\.gz: is gzip-compressed; bnlab reads plain CSV text only: decompress it first \(gunzip -k data\.csv\.gz\)/],
      [['--data', images, '--test-data', csv, '--model', 'cnn'], /separable\.csv: is a CSV file, the training data .*images is a folder of class folders; give --test-data of the same kind/],
      [['--data', csv, '--test-data', join(tmp, 'nowhere.csv')], /nowhere\.csv: no such file or directory; --test-data takes/],
      [['--data', csv, '--batch', '500'], /--batch 500 is larger than the training set \(240 samples\); use --batch 240 or less/],
      [['--data', csv, '--epochs', '0.01', '--batch', '60'], /--epochs 0\.01 rounds to 0 steps: an epoch is 4 batches of 60 \(240 training samples\), so one step takes --epochs 0\.25 or more/],
      [['--data', images, '--label', 'kind', '--model', 'cnn'], /--label names a CSV column, but .*images is a folder of class folders/],
      [['--data', csv, '--image-size', '8'], /--image-size applies to folders of PNG images, but .*separable\.csv is a CSV file; drop it/],
    ];
    await Promise.all(
      cases.map(async ([args, message], i) => {
        const out = join(tmp, `refused-${i}`);
        refused(await bnlab(['train', '--model', 'mlp', ...args, '--out', out]), message, out);
      }),
    );
  });

  test('numeric labels are numbers: 1 and 1.0 are one class, in training, evaluate and predict', async () => {
    const lines = readFileSync(csv, 'utf8').trim().split('\n');
    const spelled = (names: Record<string, string>) => [lines[0], ...lines.slice(1).map((l, i) => l.replace(/(alpha|beta|gamma)$/, (m) => (i % 2 ? names[m] : String(Number(names[m])))))].join('\n') + '\n';
    const trainFile = join(tmp, 'numeric.csv');
    writeFileSync(trainFile, spelled({ alpha: '0.0', beta: '1.0', gamma: '2.0' }));
    const out = join(tmp, 'numeric');
    const t = ok(await bnlab(['train', '--data', trainFile, '--model', 'mlp', '--hidden', '8', '--standardize', '--epochs', '5', '--batch', '30', '--out', out]), 'train numeric');
    assert.match(t.stdout, /Data: 3 classes \(0(\.0)?, 1(\.0)?, 2(\.0)?\)/);
    const other = join(tmp, 'numeric-plain.csv');
    writeFileSync(other, [lines[0], ...lines.slice(1).map((l) => l.replace(/alpha$/, '0').replace(/beta$/, '1').replace(/gamma$/, '2'))].join('\n') + '\n');
    const e = JSON.parse(ok(await bnlab(['evaluate', '--model', out, '--data', other, '--json']), 'evaluate numeric').stdout);
    assert.equal(e.count, 300);
    const p = ok(await bnlab(['predict', '--model', out, '--csv', other]), 'predict numeric').stdout;
    assert.doesNotMatch(p, /not a class of the model/);
    assert.match(p, /of 300 labelled rows predicted correctly/);
  });

  test('IDX labels that leave classes empty name the label and the sample', async () => {
    const idx = (name: string, labels: number[]) => {
      const dir = join(tmp, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'train-images-idx3-ubyte'), encodeIdx([labels.length, 2, 2], new Uint8Array(labels.length * 4).map((_, i) => i % 251)));
      writeFileSync(join(dir, 'train-labels-idx1-ubyte'), encodeIdx([labels.length], Uint8Array.from(labels)));
      return dir;
    };
    const outlier = idx('idx-outlier', [0, 1, 2, 0, 1, 200, 2, 0, 1, 2]);
    const fromOne = idx('idx-from-one', [1, 2, 3, 1, 2, 3, 1, 2, 3, 1]);
    refused(await bnlab(['train', '--data', outlier, '--model', 'mlp', '--out', join(tmp, 'io')]), /train-labels-idx1-ubyte: label 200 \(sample 5\) leaves classes 3\.\.199 with no samples: IDX labels are class indices, so the class count is the largest label \+ 1 \(201 here\)/, join(tmp, 'io'));
    refused(await bnlab(['train', '--data', fromOne, '--model', 'mlp', '--out', join(tmp, 'i1')]), /the labels run from 1 to 3, so class 0 has no samples: .* Subtract 1 from every label/, join(tmp, 'i1'));
  });
});


describe('what a run says about itself', () => {
  test('a class missing from one side is warned about; the summary names the test set used and --test-limit', async () => {
    const lines = readFileSync(csv, 'utf8').trim().split('\n');
    const rare = join(tmp, 'rare.csv');
    writeFileSync(rare, [...lines, '1e-3,1,100,1e5,"rare, one"'].join('\n') + '\n');
    const t = ok(await bnlab(['train', '--data', rare, '--model', 'mlp', '--hidden', '4', '--steps', '2', '--test-limit', '5', '--out', join(tmp, 'rare')]), 'train rare');
    assert.match(t.stderr, /bnlab warning: class "rare, one" has 1 training and 0 test samples: it is never tested/);
    assert.match(t.stdout, /Data: 4 classes \(alpha, beta, gamma, "rare, one"\), .*; test: the first 5 of 60 samples of 0\.2 of each class held out \(seed 1\) \(--test-limit\)/);
    assert.doesNotMatch(t.stdout, /IDX test pair/);
  });

  test('evaluate leaves classes with no samples and no predictions out of the macro average, and says so', async () => {
    // The rows the model gets right, gamma's left out: 100% accuracy, and gamma neither occurs nor is predicted.
    const lines = readFileSync(csv, 'utf8').trim().split('\n');
    const p = JSON.parse(ok(await bnlab(['predict', '--model', run, '--csv', csv, '--json']), 'predict').stdout);
    const right = p.predictions.map((q: { predicted: number; label: number }, i: number) => (q.predicted === q.label && q.label !== 2 ? lines[i + 1] : null)).filter(Boolean);
    const twoClasses = join(tmp, 'two-classes.csv');
    writeFileSync(twoClasses, [lines[0], ...right].join('\n') + '\n');
    const e = ok(await bnlab(['evaluate', '--model', run, '--data', twoClasses]), 'evaluate');
    assert.match(e.stdout, /accuracy 100\.00%/);
    assert.match(e.stdout, /^macro avg\s+1\.000\s+1\.000\s+1\.000/m);
    assert.match(e.stdout, /\(macro avg over the 2 of 3 classes that occur; left out, with no samples and no predictions here: gamma\)/);
    const json = JSON.parse(ok(await bnlab(['evaluate', '--model', run, '--data', twoClasses, '--json']), 'evaluate json').stdout);
    assert.deepEqual(json.absentClasses, ['gamma']);
    assert.equal(json.macro.f1, 1);
  });

  test('a cosine run cannot be extended: plain words and a true way on', async () => {
    const cos = join(tmp, 'cos');
    ok(await bnlab(['train', '--data', csv, '--model', 'mlp', '--hidden', '4', '--schedule', 'cosine', '--steps', '4', '--checkpoint-every', '2', '--out', cos]), 'cosine');
    refused(await bnlab(['train', '--resume', cos, '--steps', '8']), /uses a cosine learning-rate schedule, which decays the rate to its minimum over exactly the run's 4 steps, so it cannot be extended to 8 steps\. It has finished them; to train more, train further from its model in a new run: bnlab train --model \S+cos --steps N --out NEW_DIR/);
  });
});

describe('columns, unlabelled rows and where output goes', () => {
  test('--ignore-columns is recorded; predict and evaluate skip columns the model does not read, with a note', async () => {
    const lines = readFileSync(csv, 'utf8').trim().split('\n');
    const withId = join(tmp, 'with-id.csv');
    writeFileSync(withId, lines.map((l, i) => `${i === 0 ? 'id' : 1000 + i},${l}`).join('\n') + '\n');
    const out = join(tmp, 'with-id');
    ok(await bnlab(['train', '--data', withId, '--ignore-columns', 'id', '--model', 'mlp', '--hidden', '4', '--steps', '2', '--out', out]), 'train --ignore-columns');
    const json = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8'));
    assert.deepEqual(json.preprocessing.features, ['tiny', 'unit', 'hundreds', 'huge']);
    assert.deepEqual(json.preprocessing.ignoredColumns, ['id']);
    const p = ok(await bnlab(['predict', '--model', out, '--csv', withId]), 'predict with id');
    assert.doesNotMatch(p.stderr, /skipping/);
    const extra = join(tmp, 'extra-column.csv');
    writeFileSync(extra, lines.map((l, i) => `${l},${i === 0 ? 'notes' : 'x'}`).join('\n') + '\n');
    const q = ok(await bnlab(['predict', '--model', run, '--csv', extra]), 'predict extra column');
    assert.match(q.stderr, /bnlab note: .*extra-column\.csv: skipping column "notes", which the model does not read/);
    refused(await bnlab(['train', '--data', csv, '--ignore-columns', 'nothing', '--model', 'mlp', '--out', join(tmp, 'ig')]), /--ignore-columns nothing: no such column/, join(tmp, 'ig'));
  });

  test('recalibrate --data takes rows without the label column', async () => {
    const lines = readFileSync(csv, 'utf8').trim().split('\n');
    const unlabelled = join(tmp, 'inputs-only.csv');
    writeFileSync(unlabelled, lines.map((l) => l.split(',').slice(0, 4).join(',')).join('\n') + '\n');
    const r = ok(await bnlab(['recalibrate', '--model', run, '--data', unlabelled, '--batch', '30', '--batches', '5', '--out', join(tmp, 'recal')]), 'recalibrate unlabelled');
    assert.match(r.stdout, /over 5 batches of 30 from .*inputs-only\.csv \(300 samples\)/);
  });

  test('output that cannot be written is named with the fix; export quotes paths that need it', async () => {
    refused(await bnlab(['export', '--model', run, '--onnx', join(tmp, 'no-such-dir', 'm.onnx')]), /--onnx \S+m\.onnx: cannot write this file: the directory \S+no-such-dir does not exist; create it first/);
    refused(await bnlab(['export', '--model', run, '--onnx', tmp]), /--onnx \S+: cannot write this file: it is a directory; give a file name/);
    const spaced = join(tmp, 'model pt ü');
    const e = ok(await bnlab(['export', '--model', run, '--pytorch', spaced]), 'export');
    assert.ok(e.stdout.includes(`Try it: cd '${spaced}' && python3 example.py`), e.stdout);
    refused(await bnlab(['predict', '--model', 'mlp', '--csv', csv]), /--model mlp is sized from the data when training; train it first/);
    const help = ok(await bnlab(['predict', '--help']), 'help').stdout;
    assert.doesNotMatch(help, /sized from the data/);
  });
});

describe('formatting', () => {
  test('losses compactly, shell words quoted, class names quoted in lists, write errors in words', async () => {
    const { formatLoss, shellQuote, nameList } = await import('../src/cli/format.js');
    const { writeError } = await import('../src/io/node-atomic.js');
    assert.equal(formatLoss(9.644258191162722e33), '9.644e+33');
    assert.equal(formatLoss(0.19481), '0.1948');
    assert.equal(shellQuote('runs/a'), 'runs/a');
    assert.equal(shellQuote("runs/machines pt ü"), "'runs/machines pt ü'");
    assert.equal(nameList(['setosa, L.', 'a\nb', 'plain']), '"setosa, L.", "a\\nb", plain');
    const denied = writeError(Object.assign(new Error('EACCES: permission denied, open \'/x/.m.tmp-1\''), { code: 'EACCES' }), '/x/out', 'directory', '--out');
    assert.equal(denied.message, '--out /x/out: cannot write this directory: permission denied (/x is not writable for you); choose another --out');
  });
});
