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

/**
 * Progress reports at most this often (ms). Each message wakes the main thread, which then takes a core
 * from a training worker for a moment: reporting every 10 steps cost thousands of context switches a run.
 */
const STEP_REPORT_MS = 100;

if (parentPort) {
  const port = parentPort;
  const post = (m: WorkerMessage) => port.postMessage(m);
  const config = (workerData as { config: TrainConfig }).config;
  let lastReport = 0;
  runTraining(config, {
    onStart: (run) => post({ type: 'start', runDir: run.runDir, totalSteps: run.trainer.totalSteps }),
    onMetrics: (metrics) => post({ type: 'metrics', metrics }),
    onStep: (run) => {
      const step = run.trainer.step;
      const now = Date.now();
      if (now - lastReport >= STEP_REPORT_MS || step === run.trainer.totalSteps) {
        lastReport = now;
        post({ type: 'step', step });
      }
    },
  }).then(
    ({ history: _history, ...result }) => post({ type: 'done', result }),
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      post({ type: 'error', name: e.name, message: e.message });
    },
  );
}
