/**
 * One twin in the worker: its run (model, optimizer, trainer from src/runs), divergence watch, test
 * evaluations at the run's interval, and the probes the panels asked for.
 */
import type { Dataset } from '@bnlab/data/dataset.js';
import { DivergenceError } from '@bnlab/train/trainer.js';
import { Evaluator } from '@bnlab/train/evaluate.js';
import type { Sequential } from '@bnlab/nn/sequential.js';
import { buildTwin, createRun, twinRunConfig, type Run, type TwinId, type TwinSpec } from '@bnlab/runs/index.js';
import type { Tensor } from '@bnlab/tensor/tensor.js';
import { PROBES } from './probes.js';
import type { Divergence, ProbeRequest, ProbeResult, TestPoint } from './protocol.js';

/**
 * "Far above its start": from step EXPLODE_FROM on, the mean loss of the last EXPLODE_WINDOW steps above
 * EXPLODE_FACTOR times step 1's. Not judged earlier, because a network may overshoot in its first steps
 * and recover: the paper's network with batch norm at rate 30 averages 7.6 (3.3x its start) over steps
 * 1-50, then trains to 91% test accuracy by step 1,500; the one without stays near 6.5 and is stopped.
 */
export const EXPLODE_FACTOR = 3;
export const EXPLODE_WINDOW = 25;
export const EXPLODE_FROM = 50;

export interface TwinData {
  trainSet: Dataset;
  testSet: Dataset;
  probeInput: Tensor;
  probeLabels: Uint8Array;
}

export class Twin {
  diverged: Divergence | null = null;
  private firstLoss = NaN;
  private recent: number[] = [];

  /**
   * A second network of the same layers for every forward pass at another batch size (evaluation,
   * probes, classifying one input), synced from the trained one before use. The modules keep one output
   * buffer per layer for the last batch size, so evaluating the trained network itself would swap them
   * between the training and the evaluation sizes every time, and the wasm memory would grow with
   * buffers waiting for the garbage collector.
   */
  private replica: Sequential | null = null;
  private replicaStep = -1;
  private evaluator: Evaluator | null = null;

  private constructor(readonly id: TwinId, readonly spec: TwinSpec, readonly run: Run, readonly data: TwinData) {}

  static async create(id: TwinId, spec: TwinSpec, data: TwinData): Promise<Twin> {
    const { model, inputShape } = buildTwin(spec, id);
    const run = await createRun(twinRunConfig(spec), { trainSet: data.trainSet, testSet: data.testSet }, { model, inputShape });
    return new Twin(id, spec, run, data);
  }

  /** The replica with the trained network's current parameters and running statistics. */
  evalModel(): Sequential {
    this.replica ??= buildTwin(this.spec, this.id).model;
    if (this.replicaStep !== this.step) {
      this.replica.loadStateDict(this.run.model.stateDict());
      this.replicaStep = this.step;
    }
    return this.replica;
  }

  get step(): number {
    return this.run.trainer.step;
  }

  set lr(lr: number) {
    this.run.optimizer.lr = lr;
  }

  get lr(): number {
    return this.run.optimizer.lr;
  }

  /** Test loss and accuracy of the network as trained so far (eval mode: running statistics). */
  evaluate(): TestPoint {
    this.evaluator ??= new Evaluator(this.data.testSet, { inputShape: this.run.inputShape });
    const r = this.evaluator.run(this.evalModel());
    return { step: this.step, loss: r.loss, accuracy: r.accuracy };
  }

  /**
   * Up to `steps` training steps; stops early when the twin diverges. Returns each step's loss, the
   * evaluations and probe results due on the way.
   */
  train(steps: number, probes: readonly ProbeRequest[], out: { losses: number[]; tests: TestPoint[]; probes: ProbeResult[] }): void {
    const { trainer } = this.run;
    const evalEvery = this.spec.evalEvery;
    for (let i = 0; i < steps && !this.diverged; i++) {
      let loss: number;
      try {
        loss = trainer.trainStep();
      } catch (e) {
        if (!(e instanceof DivergenceError)) throw e;
        // The trainer stops before the update on a NaN/∞ loss; the step is counted here so it shows on the curve.
        trainer.step++;
        loss = e.loss;
      }
      out.losses.push(loss);
      this.watch(loss);
      if (this.diverged) break;
      if (evalEvery > 0 && this.step % evalEvery === 0) out.tests.push(this.evaluate());
      this.probe(probes, out.probes);
    }
  }

  /** The probes due at the current step (every `every` steps, and at step 0). */
  probe(probes: readonly ProbeRequest[], out: ProbeResult[]): void {
    for (const p of probes) {
      if (this.step % Math.max(1, p.every) !== 0) continue;
      const fn = PROBES[p.name];
      if (!fn) throw new Error(`unknown probe "${p.name}" (known: ${Object.keys(PROBES).join(', ')})`);
      const value = fn(
        { twin: this.id, step: this.step, spec: this.spec, model: this.run.model, evalModel: () => this.evalModel(), run: this.run, trainSet: this.data.trainSet, testSet: this.data.testSet, probeInput: this.data.probeInput, probeLabels: this.data.probeLabels, lastBatch: this.run.trainer.lastBatch },
        p.params ?? {},
      );
      // undefined: the probe keeps its own schedule and has nothing at this step.
      if (value !== undefined) out.push({ id: p.id ?? p.name, step: this.step, value });
    }
  }

  private watch(loss: number): void {
    const step = this.step;
    if (!Number.isFinite(loss)) {
      this.diverged = { step, loss, cause: 'non-finite', message: `the loss became ${loss} at step ${step}: the updates overshot until the numbers overflowed` };
      return;
    }
    if (Number.isNaN(this.firstLoss)) this.firstLoss = loss;
    this.recent.push(loss);
    if (this.recent.length > EXPLODE_WINDOW) this.recent.shift();
    const mean = this.recent.reduce((a, b) => a + b, 0) / this.recent.length;
    if (step >= EXPLODE_FROM && mean > EXPLODE_FACTOR * this.firstLoss) {
      this.diverged = {
        step,
        loss: mean,
        cause: 'exploded',
        message: `the loss averaged ${mean.toFixed(2)} over steps ${step - EXPLODE_WINDOW + 1}-${step}, more than ${EXPLODE_FACTOR}x its start (${this.firstLoss.toFixed(2)}): the steps are too large for this network`,
      };
    }
  }

  /** Ends the run and gives every buffer of this twin back to the backend (a reset or a sweep drops twins). */
  close(): void {
    this.run.close();
    this.run.trainer.dispose();
    this.run.model.dispose();
    this.replica?.dispose();
    this.replica = null;
    this.evaluator?.dispose();
    this.evaluator = null;
  }
}
