/**
 * Crash-safe file writes (Node only). A file is written to a temporary name in the same directory,
 * flushed to disk (fsync), renamed over the target (atomic on POSIX file systems), and the directory is
 * fsynced so the rename itself survives a power cut. A reader therefore sees the old file or the new
 * one, never a half-written one, even if the writer is killed with SIGKILL.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

let counter = 0;

/** A name for a temporary sibling of `target` that no other writer (process or call) uses. */
export function temporaryName(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Date.now().toString(36)}-${counter++}`);
}

/** Write `data` to `file` and fsync it, without renaming (the caller renames). */
export function writeFileSynced(file: string, data: Uint8Array | string): void {
  const fd = fs.openSync(file, 'w', 0o644);
  try {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let offset = 0;
    while (offset < bytes.length) offset += fs.writeSync(fd, bytes, offset, bytes.length - offset);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** fsync a directory, so renames and new entries in it are on disk. Platforms that cannot (Windows) skip it. */
export function fsyncDirectory(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fs.fsyncSync(fd);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM') throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/** Replace `file` with `data` atomically: temporary file, fsync, rename, directory fsync. */
export function writeFileAtomic(file: string, data: Uint8Array | string): void {
  const tmp = temporaryName(file);
  try {
    writeFileSynced(tmp, data);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    // The temporary name means nothing to the user: the error names the file they asked for.
    throw writeError(e, file, 'file');
  }
  fsyncDirectory(path.dirname(file));
}

/**
 * Write a set of files as one directory, atomically: the files go into a temporary sibling directory,
 * each fsynced, then the directory is fsynced and renamed to `dir`. An existing `dir` is moved aside
 * first and deleted after. `afterFile` is called after each file is on disk (progress, tests).
 */
export function writeDirectoryAtomic(dir: string, files: ReadonlyArray<[name: string, data: Uint8Array | string]>, afterFile?: (name: string) => void): void {
  const parent = path.dirname(dir);
  const tmp = temporaryName(dir);
  try {
    fs.mkdirSync(parent, { recursive: true });
    fs.mkdirSync(tmp);
  } catch (e) {
    throw writeError(e, dir, 'directory');
  }
  try {
    for (const [name, data] of files) {
      writeFileSynced(path.join(tmp, name), data);
      afterFile?.(name);
    }
    fsyncDirectory(tmp);
    let old: string | null = null;
    if (fs.existsSync(dir)) {
      old = temporaryName(dir);
      fs.renameSync(dir, old);
    }
    fs.renameSync(tmp, dir);
    fsyncDirectory(parent);
    if (old) fs.rmSync(old, { recursive: true, force: true });
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw writeError(e, dir, 'directory');
  }
}

/** Temporary files and directories left in `dir` by writers that were killed mid-write. */
export function leftoverTemporaries(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => /^\..+\.tmp-\d+-/.test(n)).map((n) => path.join(dir, n));
}

/** Delete leftovers of killed writers, except the current process's (it may be writing now). */
export function removeLeftoverTemporaries(dir: string): void {
  for (const p of leftoverTemporaries(dir)) {
    if (path.basename(p).includes(`.tmp-${process.pid}-`)) continue;
    fs.rmSync(p, { recursive: true, force: true });
  }
}

/** Why `target` cannot be written and what to do, from a file-system error code; null for other codes. */
function writeProblem(code: string | undefined, target: string, kind: 'file' | 'directory', option?: string): string | null {
  const parent = path.dirname(path.resolve(target));
  const elsewhere = option ? `choose another ${option}` : 'write elsewhere';
  if (code === 'ENOENT') return `the directory ${parent} does not exist; create it first (mkdir -p ${parent}) or ${elsewhere}`;
  if (code === 'EISDIR') return `it is a directory; give a ${kind === 'file' ? `file name, e.g. ${path.join(target, 'model.onnx')}` : 'new directory'}`;
  if (code === 'ENOTDIR') return `a part of the path is a file, not a directory; ${elsewhere}`;
  if (code === 'EACCES' || code === 'EPERM') return `permission denied (${parent} is not writable for you); ${elsewhere}`;
  if (code === 'EROFS') return `the file system is read-only; ${elsewhere}`;
  if (code === 'ENOSPC' || code === 'EDQUOT') return `no space left on the device; free some or ${elsewhere}`;
  return null;
}

/** A file-system error while writing `target` as an Error naming `target` (not a temporary file) and what to do. */
export function writeError(e: unknown, target: string, kind: 'file' | 'directory', option?: string): Error {
  const problem = writeProblem((e as NodeJS.ErrnoException).code, target, kind, option);
  if (!problem) return e instanceof Error ? e : new Error(String(e));
  return new Error(`${option ? `${option} ` : ''}${target}: cannot write ${kind === 'file' ? 'this file' : 'this directory'}: ${problem}`);
}

/**
 * Check, before any work, that `target` (a file, or a directory that will be created with its parents)
 * can be written: a file's directory must exist and a file must not be a directory, and the nearest
 * existing directory must be writable. `option` names the flag for the message ("--out").
 */
export function checkWritable(target: string, kind: 'file' | 'directory', option: string): void {
  const abs = path.resolve(target);
  const fail = (code: string) => {
    throw writeError(Object.assign(new Error(code), { code }), target, kind, option);
  };
  let dir: string;
  if (fs.existsSync(abs)) {
    const isDir = fs.statSync(abs).isDirectory();
    if (kind === 'file' && isDir) fail('EISDIR');
    if (kind === 'directory' && !isDir) throw new Error(`${option} ${target}: exists and is a file, not a directory; choose another ${option}`);
    dir = kind === 'file' ? path.dirname(abs) : abs;
  } else {
    dir = path.dirname(abs);
    if (kind === 'file' && !fs.existsSync(dir)) fail('ENOENT');
    while (!fs.existsSync(dir)) dir = path.dirname(dir); // created with its parents: the nearest existing one counts
    if (!fs.statSync(dir).isDirectory()) fail('ENOTDIR');
  }
  try {
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw writeError(e, target, kind, option);
  }
}
