/**
 * Running Debian's PyTorch from the tests: always /usr/bin/python3 (the python3 first on PATH may be
 * another one, without torch). A missing torch fails the test with the command that installs it.
 */
import { spawn, spawnSync } from 'node:child_process';

export const PYTHON = '/usr/bin/python3';
export const INSTALL_TORCH = 'PyTorch not found for /usr/bin/python3: apt-get install python3-torch libopenblas0-pthread';

let checked: boolean | null = null;

/** Throws INSTALL_TORCH unless `import torch` works in /usr/bin/python3. */
export function requireTorch(): void {
  checked ??= spawnSync(PYTHON, ['-c', 'import torch, numpy'], { stdio: 'ignore', timeout: 120_000 }).status === 0;
  if (!checked) throw new Error(INSTALL_TORCH);
}

export interface PythonResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Run `args` with /usr/bin/python3 (or `command` instead, e.g. torchrun), killing the whole process group
 * after `timeoutMs` so a hung distributed run cannot stall the suite.
 */
export function runPython(args: string[], options: { cwd?: string; timeoutMs?: number; command?: string } = {}): Promise<PythonResult> {
  requireTorch();
  return new Promise((done, fail) => {
    const child = spawn(options.command ?? PYTHON, args, { cwd: options.cwd, detached: true, env: { ...process.env, OMP_NUM_THREADS: '1', PYTHONDONTWRITEBYTECODE: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${options.timeoutMs} ms)`;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, options.timeoutMs ?? 120_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

/** The last line of stdout that parses as a JSON object (scripts print their results that way). */
export function lastJson(out: string): Record<string, unknown> {
  const lines = out.trim().split('\n').reverse();
  for (const line of lines) {
    const start = line.indexOf('{');
    if (start < 0) continue;
    try {
      return JSON.parse(line.slice(start));
    } catch {
      // not JSON: keep looking
    }
  }
  throw new Error(`no JSON line in the output:\n${out}`);
}
