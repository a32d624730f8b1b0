/**
 * A Keras-style summary: one row per layer with its output shape and parameter counts, then totals.
 * Non-trainable parameters are the running statistics (as Keras counts moving mean/variance) plus any
 * frozen parameters; for batch-norm layers the row also shows the state of the running statistics.
 */
import { BatchNormBase } from './batchnorm.js';
import type { Module } from './module.js';
import { Sequential } from './sequential.js';

export interface SummaryRow {
  path: string;
  layer: string;
  outputShape: number[];
  trainable: number;
  nonTrainable: number;
  note: string;
}

export function summaryRows(model: Module, inputShape: readonly number[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  let shape = [...inputShape];
  const layers = model instanceof Sequential ? model.layers : [model];
  for (const layer of layers) {
    shape = layer.outputShape(shape);
    let trainable = 0;
    let nonTrainable = 0;
    for (const p of layer.parameters()) {
      if (p.trainable) trainable += p.value.size;
      else nonTrainable += p.value.size;
    }
    for (const [name, b] of layer.namedBuffers()) if (!name.endsWith('num_batches_tracked')) nonTrainable += b.size;
    rows.push({ path: layer.path, layer: layer.describe(), outputShape: shape, trainable, nonTrainable, note: note(layer) });
  }
  return rows;
}

function note(layer: Module): string {
  if (!(layer instanceof BatchNormBase)) return '';
  if (!layer.trackRunningStats) return 'no running stats (batch stats in eval)';
  const t = layer.numBatchesTracked;
  if (t === 0) return 'running stats: never updated';
  const { mean, variance } = layer.inferenceStatistics();
  const avg = (a: Float32Array) => a.reduce((s, v) => s + v, 0) / a.length;
  const corr = layer.biasCorrection && layer.momentum !== null ? `, bias-corrected ÷${layer.biasCorrectionFactor().toFixed(3)}` : '';
  return `running stats: t=${t}, mean avg ${avg(mean).toFixed(3)}, var avg ${avg(variance).toFixed(3)}${corr}`;
}

export function summary(model: Module, inputShape: readonly number[], title = 'Model'): string {
  const rows = summaryRows(model, inputShape);
  const fmt = (n: number) => n.toLocaleString('en-US');
  const shapeStr = (s: number[]) => `(${['None', ...s.slice(1)].join(', ')})`;
  const table = [['#', 'Layer (type)', 'Output shape', 'Trainable', 'Non-trainable', 'Running statistics'], ...rows.map((r) => [r.path, r.layer, shapeStr(r.outputShape), fmt(r.trainable), fmt(r.nonTrainable), r.note])];
  const widths = table[0].map((_, c) => Math.max(...table.map((row) => row[c].length)));
  const line = (row: string[]) => row.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd();
  const rule = '─'.repeat(widths.reduce((a, b) => a + b + 2, -2));
  const trainable = rows.reduce((s, r) => s + r.trainable, 0);
  const nonTrainable = rows.reduce((s, r) => s + r.nonTrainable, 0);
  return [
    `${title}: input ${shapeStr([0, ...inputShape.slice(1)])}, mode: ${model.training ? 'train (batch statistics, running averages updated)' : 'eval (running statistics)'}`,
    rule,
    line(table[0]),
    rule,
    ...table.slice(1).map(line),
    rule,
    `Total params: ${fmt(trainable + nonTrainable)}`,
    `Trainable params: ${fmt(trainable)}`,
    `Non-trainable params: ${fmt(nonTrainable)}`,
  ].join('\n');
}
