/** Metrics as CSV and JSON, and downloads of bytes the page made (no server involved). */
import { TWINS } from './worker/protocol.js';
import type { LabData } from './engine.js';

/** One row per step and twin: `twin,step,train_loss,test_loss,test_accuracy` (test columns empty between evaluations). */
export function exportMetricsCsv(data: LabData): string {
  const rows = ['twin,step,train_loss,test_loss,test_accuracy'];
  for (const twin of TWINS) {
    const run = data.runs[twin];
    const tests = new Map(run.test.map((t) => [t.step, t]));
    const last = Math.max(run.trainLoss.length, ...run.test.map((t) => t.step));
    for (let step = 0; step <= last; step++) {
      const t = tests.get(step);
      const loss = step >= 1 && step <= run.trainLoss.length ? String(run.trainLoss[step - 1]) : '';
      if (loss === '' && !t) continue;
      rows.push(`${twin},${step},${loss},${t ? t.loss : ''},${t ? t.accuracy : ''}`);
    }
  }
  return rows.join('\n') + '\n';
}

/** The snapshot plus evaluations and divergence, as JSON. NaN/∞ losses become strings ("NaN"). */
export function exportMetricsJson(data: LabData): string {
  const runs = Object.fromEntries(TWINS.map((t) => [t, { trainLoss: data.runs[t].trainLoss, test: data.runs[t].test, diverged: data.runs[t].diverged, lr: data.runs[t].lr }]));
  return JSON.stringify({ format: 'bnlab-lab-metrics/1', step: data.step, config: data.applied, runs }, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2) + '\n';
}

export function downloadBytes(name: string, bytes: Uint8Array, type = 'application/octet-stream'): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function downloadText(name: string, text: string, type: string): void {
  downloadBytes(name, new TextEncoder().encode(text), type);
}
