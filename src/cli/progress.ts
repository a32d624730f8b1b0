/**
 * Training progress for the terminal: a cli-progress bar when the stream is a TTY, otherwise plain
 * lines (at every test evaluation and at least every `intervalSeconds`), so logs and CI output stay
 * readable instead of filling with carriage returns.
 */
import { formatLoss } from './format.js';
import cliProgress from 'cli-progress';
import type { TrainMetrics } from '../train/trainer.js';

export interface ProgressOptions {
  /** Steps of the whole run. */
  total: number;
  /** Shown before the bar / at the start of each line, e.g. the model name. */
  label?: string;
  /** Where the bar goes (default stderr, so stdout stays for results). */
  stream?: NodeJS.WriteStream;
  /** Force bar (true) or plain lines (false); default: whether `stream` is a TTY. */
  tty?: boolean;
  /** Plain mode: longest gap between two lines. Default 10 s. */
  intervalSeconds?: number;
  /** Plain mode: where lines go. Default console.log. */
  log?: (line: string) => void;
}

export interface ProgressReporter {
  onMetrics(m: TrainMetrics): void;
  /** Call after every step with the number of steps done. */
  onStep(step: number): void;
  stop(): void;
}

/** "93.21%" or "-" before the first evaluation. */
export function formatAccuracy(accuracy: number | undefined): string {
  return accuracy === undefined ? '-' : `${(accuracy * 100).toFixed(2)}%`;
}

export function createProgress(options: ProgressOptions): ProgressReporter {
  const stream = options.stream ?? process.stderr;
  const tty = options.tty ?? Boolean(stream.isTTY);
  const label = options.label ? `${options.label} ` : '';
  const total = options.total;
  let loss: number | undefined;
  let accuracy: number | undefined;
  let startStep: number | null = null;
  let startTime = 0;
  let step = 0;

  const rate = (): number => {
    const seconds = (Date.now() - startTime) / 1000;
    return startStep === null || seconds <= 0 ? 0 : (step - startStep) / seconds;
  };
  const payload = () => ({ loss: loss === undefined ? '-' : formatLoss(loss), acc: formatAccuracy(accuracy), rate: rate().toFixed(1) });

  if (tty) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: `${label}{bar} {percentage}% | step {value}/{total} | loss {loss} | test acc {acc} | {rate} steps/s | ETA {eta_formatted}`,
        // Keep the cursor: the training loop is synchronous, so no handler could restore it on Ctrl+C.
        hideCursor: false,
        etaBuffer: 200,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      onMetrics(m) {
        if (m.split === 'train') loss = m.loss;
        else accuracy = m.accuracy;
      },
      onStep(s) {
        step = s;
        if (!started) {
          started = true;
          startStep = s - 1;
          startTime = Date.now();
          bar.start(total, s, payload());
        } else bar.update(s, payload());
      },
      stop() {
        if (started) {
          bar.update(step, payload());
          bar.stop();
        }
      },
    };
  }

  const log = options.log ?? ((line: string) => console.log(line));
  const interval = (options.intervalSeconds ?? 10) * 1000;
  let lastLine = 0;
  const width = String(total).length;
  const line = () => {
    lastLine = Date.now();
    log(`${label}step ${String(step).padStart(width)}/${total}  loss ${payload().loss}  test acc ${formatAccuracy(accuracy)}  ${payload().rate} steps/s`);
  };
  return {
    onMetrics(m) {
      if (m.split === 'train') loss = m.loss;
      else {
        accuracy = m.accuracy;
        step = m.step;
        line();
      }
    },
    onStep(s) {
      if (startStep === null) {
        startStep = s - 1;
        startTime = lastLine = Date.now();
      }
      step = s;
      if (Date.now() - lastLine >= interval) line();
    },
    stop() {},
  };
}
