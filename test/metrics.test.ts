/** Confusion matrix, precision, recall and F1 on a small case worked out by hand. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Linear } from '../src/nn/linear.js';
import { Sequential } from '../src/nn/sequential.js';
import { evaluate } from '../src/train/evaluate.js';
import { classificationReport, confusionMatrix } from '../src/train/metrics.js';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

test('confusion matrix and per-class precision, recall, F1 of a known case', () => {
  // truth:      a a a a b b c c c c
  // predicted:  a a b c b b c c a c
  const labels = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2];
  const predicted = [0, 0, 1, 2, 1, 1, 2, 2, 0, 2];
  const m = confusionMatrix(labels, predicted, 3);
  assert.deepEqual(m, [
    [2, 1, 1],
    [0, 2, 0],
    [1, 0, 3],
  ]);
  const r = classificationReport(m, ['a', 'b', 'c']);
  assert.equal(r.count, 10);
  close(r.accuracy, 0.7);
  const [a, b, c] = r.perClass;
  close(a.precision, 2 / 3);
  close(a.recall, 2 / 4);
  close(a.f1, (2 * (2 / 3) * 0.5) / (2 / 3 + 0.5));
  close(b.precision, 2 / 3);
  close(b.recall, 1);
  close(b.f1, 0.8);
  close(c.precision, 3 / 4);
  close(c.recall, 3 / 4);
  assert.deepEqual(r.perClass.map((x) => x.support), [4, 2, 4]);
  close(r.macro.recall, (0.5 + 1 + 0.75) / 3);
  close(r.weighted.recall, (4 * 0.5 + 2 * 1 + 4 * 0.75) / 10); // = accuracy, as always for weighted recall
});

test('a class that is never predicted has precision 0 (nothing to divide by), not NaN', () => {
  const r = classificationReport(confusionMatrix([0, 1, 1], [0, 0, 0], 2));
  assert.equal(r.perClass[1].precision, 0);
  assert.equal(r.perClass[1].f1, 0);
  assert.throws(() => confusionMatrix([0, 3], [0, 0], 2), /sample 1 has label 3/);
});

test('the macro average leaves out classes with no samples and no predictions, as scikit-learn', () => {
  // Classes 0 and 1 all right; class 2 neither occurs nor is predicted: macro avg 1, not 0.667.
  const r = classificationReport(confusionMatrix([0, 1, 1, 0], [0, 1, 1, 0], 3), ['a', 'b', 'c']);
  assert.equal(r.accuracy, 1);
  assert.deepEqual(r.macro, { precision: 1, recall: 1, f1: 1, support: 4 });
  assert.deepEqual(r.absent, ['c']);
  // A class that is predicted but has no samples stays in (precision 0), as scikit-learn keeps it.
  const predictedOnly = classificationReport(confusionMatrix([0, 1], [0, 2], 3));
  assert.deepEqual(predictedOnly.absent, []);
  assert.equal(predictedOnly.macro.recall, (1 + 0 + 0) / 3);
});

test('evaluate() returns each prediction in dataset order', () => {
  const model = new Sequential(new Linear(2, 2));
  const w = model.parameters()[0].value.data;
  w.set([1, 0, 0, 1]); // logits = x
  model.parameters()[1].value.data.fill(0);
  const ds = { name: 't', images: Float32Array.from([1, 0, 0, 1, 0, 2, 3, 1]), labels: Uint8Array.from([0, 1, 0, 0]), count: 4, sampleShape: [2], numClasses: 2 };
  const r = evaluate(model, ds, { batchSize: 3, predictions: true });
  assert.deepEqual([...r.predicted!], [0, 1, 1, 0]);
  assert.equal(r.accuracy, 0.75);
});
