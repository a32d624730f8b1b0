/**
 * Checkpoint directories of a run (Node only): `RUN/checkpoints/step-00000100/`, each written as a
 * whole with writeDirectoryAtomic (temporary directory, fsync every file and the directory, rename), so
 * a process killed mid-write leaves only a `.step-....tmp-*` leftover and every `step-*` directory
 * complete. The last K are kept; older ones are renamed away before they are deleted, so a kill during
 * the deletion cannot leave a half-deleted `step-*` either.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CHECKPOINT_FILES, decodeCheckpoint, encodeCheckpoint, type DecodedCheckpoint, type TrainingParts } from './checkpoint.js';
import { ModelFileError } from './errors.js';
import type { ModelInfo } from './model-file.js';
import { removeLeftoverTemporaries, temporaryName, writeDirectoryAtomic } from './node-atomic.js';
import { readFileChecked } from './node-model-dir.js';

export const CHECKPOINTS_DIR = 'checkpoints';
const STEP_DIR = /^step-(\d{8,})$/;

/** `step-00000100`: zero-padded so the names sort in step order. */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

export interface SaveCheckpointOptions {
  /** Keep this many most recent checkpoints (default 3); older ones are deleted after the new one is complete. */
  keep?: number;
  /** What the caller needs to rebuild the run on resume (the CLI's options). */
  config?: unknown;
  /** Called after each file is on disk, before the directory is renamed into place (progress, tests). */
  afterFile?: (name: string) => void;
}

/** Write a checkpoint of the current step to `runDir/checkpoints/step-N/`; returns its path. */
export function saveCheckpoint(runDir: string, parts: TrainingParts, info: ModelInfo, options: SaveCheckpointOptions = {}): string {
  const keep = options.keep ?? 3;
  if (!Number.isInteger(keep) || keep < 1) throw new Error(`keep must be a positive integer (checkpoints to keep), got ${keep}`);
  const root = path.join(runDir, CHECKPOINTS_DIR);
  const dir = path.join(root, checkpointName(parts.trainer.step));
  writeDirectoryAtomic(dir, encodeCheckpoint(parts, info, options.config ?? null), options.afterFile);
  removeLeftoverTemporaries(root);
  const all = listCheckpoints(runDir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) removeDirectoryAtomic(old.dir);
  return dir;
}

/**
 * Delete a checkpoint so that no moment shows it half deleted: a rename takes it out of the `step-*`
 * names first (a kill during the deletion that follows leaves a temporary, which the next save removes).
 */
function removeDirectoryAtomic(dir: string): void {
  const doomed = temporaryName(dir);
  try {
    fs.renameSync(dir, doomed);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // already gone (as rmSync's force allowed)
    throw e;
  }
  fs.rmSync(doomed, { recursive: true, force: true });
}

/** The complete checkpoints of a run, oldest first. */
export function listCheckpoints(runDir: string): Array<{ step: number; dir: string }> {
  const root = path.join(runDir, CHECKPOINTS_DIR);
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return [];
  }
  return names
    .map((n) => STEP_DIR.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), dir: path.join(root, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

/** Read and validate one checkpoint directory. Throws ModelFileError only. */
export function loadCheckpoint(dir: string): DecodedCheckpoint {
  const files = {} as Record<(typeof CHECKPOINT_FILES)[number], Uint8Array>;
  for (const f of CHECKPOINT_FILES) files[f] = readFileChecked(path.join(dir, f), 2 ** 31 - 1);
  return decodeCheckpoint(files, dir);
}

/**
 * The newest checkpoint of a run that loads. A newer one that fails validation (a damaged disk; a
 * completed write cannot be partial) is reported through `onSkip` and the next older one is tried.
 */
export function loadLatestCheckpoint(runDir: string, onSkip: (dir: string, error: ModelFileError) => void = () => {}): { dir: string; step: number; checkpoint: DecodedCheckpoint } {
  const all = listCheckpoints(runDir);
  for (let i = all.length - 1; i >= 0; i--) {
    try {
      return { dir: all[i].dir, step: all[i].step, checkpoint: loadCheckpoint(all[i].dir) };
    } catch (e) {
      if (!(e instanceof ModelFileError)) throw e;
      onSkip(all[i].dir, e);
    }
  }
  throw new ModelFileError(path.join(runDir, CHECKPOINTS_DIR), 'not found', all.length ? `none of the ${all.length} checkpoints loads` : 'no checkpoints: train with --checkpoint-every N to write them');
}
