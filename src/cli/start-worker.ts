/**
 * Worker thread for `bnlab start`: runs one training job (`runTraining`) and reports to the main
 * thread by message. Node-only. Messages: start, metrics, step (every few steps), done, error.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { runTraining, type TrainConfig, type TrainResult } from './commands/train.js';
import type { TrainMetrics } from '../train/trainer.js';

export type WorkerMessage =
  | { type: 'start'; runDir: string; totalSteps: number }
  | { type: 'metrics'; metrics: TrainMetrics }
  | { type: 'step'; step: number }
  | { type: 'done'; result: Omit<TrainResult, 'history'> }
  | { type: 'error'; name: string; message: string };

const STEP_REPORT_EVERY = 10;

if (parentPort) {
  const port = parentPort;
  const post = (m: WorkerMessage) => port.postMessage(m);
  const config = (workerData as { config: TrainConfig }).config;
  runTraining(config, {
    onStart: (run) => post({ type: 'start', runDir: run.runDir, totalSteps: run.trainer.totalSteps }),
    onMetrics: (metrics) => post({ type: 'metrics', metrics }),
    onStep: (run) => {
      const step = run.trainer.step;
      if (step % STEP_REPORT_EVERY === 0 || step === run.trainer.totalSteps) post({ type: 'step', step });
    },
  }).then(
    ({ history: _history, ...result }) => post({ type: 'done', result }),
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      post({ type: 'error', name: e.name, message: e.message });
    },
  );
}
