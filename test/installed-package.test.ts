/**
 * bnlab as a user gets it: `npm pack`, the tarball installed into a new, empty project, then the
 * installed command through `npx bnlab` (the node_modules/.bin symlink) and the library through its
 * package exports. npm may fetch package metadata from the registry; the tarballs come from npm's cache
 * when `npm ci` has run.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { CLI, ROOT } from './support/cli.js';
import { freePort } from './support/net.js';
import { launch, openLab } from './support/lab.js';
import { serveLab } from '../src/lab-server/index.js';
import { loadDataset } from '../src/data/node.js';

const run = promisify(execFile);
let tmp: string;
let project: string;

/** The user's environment: none of the npm_* variables that `npm test` sets for this process. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { FORCE_COLOR: '0' };
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD' && k !== 'NODE_OPTIONS') env[k] = v;
  return env;
}

async function npx(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('npx', ['--no-install', 'bnlab', ...args], { cwd: project, env: userEnv(), maxBuffer: 16 << 20 });
}


before(async () => {
  assert.ok(existsSync(CLI), `${CLI} is missing: run npm run build first (npm test does)`);
  assert.ok(existsSync(join(ROOT, 'dist-lab/index.html')), 'dist-lab/ is missing: run npm run lab:build first (npm test does)');
  tmp = mkdtempSync(join(tmpdir(), 'bnlab-installed-'));
  // dist/ and dist-lab/ are built already (npm test's pretest), so packing need not build again: of
  // prepack (lab:build, then the manifest's strip) and postpack, only the manifest steps run here.
  await run('node', ['scripts/pack-manifest.mjs', 'strip'], { cwd: ROOT });
  let stdout: string;
  try {
    ({ stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT, env: userEnv() }));
  } finally {
    await run('node', ['scripts/pack-manifest.mjs', 'restore'], { cwd: ROOT });
  }
  const [{ filename }] = JSON.parse(stdout) as { filename: string }[];
  project = join(tmp, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-bnlab', version: '1.0.0', private: true, type: 'module' }, null, 2));
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', join(tmp, filename)], { cwd: project, env: userEnv(), maxBuffer: 16 << 20 });
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('the installed package', () => {
  test('npx bnlab --help prints the commands', async () => {
    const { stdout } = await npx(['--help']);
    assert.match(stdout, /^Usage: bnlab /m);
    for (const cmd of ['train', 'predict', 'summary']) assert.match(stdout, new RegExp(`^  ${cmd} `, 'm'));
  });

  test('npx bnlab train, then predict and evaluate on the run', async () => {
    const train = await npx(['train', '--steps', '60', '--train-limit', '1200', '--test-limit', '300', '--eval-every', '0', '--out', 'run']);
    assert.match(train.stdout, /Test accuracy after 60 steps: \d+\.\d+%/);
    for (const f of ['config.json', 'metrics.jsonl', 'model.json', 'model.safetensors']) assert.ok(existsSync(join(project, 'run', f)), `run/${f}`);
    const predict = await npx(['predict', '--model', 'run', '--mnist-test', '0']);
    assert.match(predict.stdout, /^mnist test image 0, label 7$/m);
    assert.match(predict.stdout, /^Predicted: \d \((correct|wrong|incorrect)[^)]*\)$/m);
    const evaluate = await npx(['evaluate', '--model', 'run', '--json']);
    const report = JSON.parse(evaluate.stdout) as { accuracy: number; confusionMatrix: number[][] };
    assert.ok(report.accuracy > 0.3 && report.accuracy <= 1, `accuracy ${report.accuracy}`);
    assert.equal(report.confusionMatrix.length, 10);
    const table = await npx(['evaluate', '--model', 'run']);
    assert.match(table.stdout, /Confusion matrix/);
  });

  test('the library imports from the project, and the CLI module does not run when imported', async () => {
    writeFileSync(
      join(project, 'use.mjs'),
      `import { Tensor, argmax, buildPreset } from 'bnlab';
import { loadDataset } from 'bnlab/node';
const test = loadDataset('mnist', 'test');
const model = buildPreset('ioffe-mlp', { bn: true, seed: 1 });
model.eval();
const out = model.forward(new Tensor([2, 784], test.images.slice(0, 2 * 784)));
console.log(JSON.stringify({ shape: out.shape, classes: argmax(out).length, count: test.count }));
await import(${JSON.stringify(join(project, 'node_modules/bnlab/dist/src/cli/main.js'))});
`,
    );
    const { stdout, stderr } = await run(process.execPath, ['use.mjs'], { cwd: project, env: userEnv() });
    assert.deepEqual(JSON.parse(stdout.trim()), { shape: [2, 10], classes: 2, count: 10000 });
    assert.doesNotMatch(stdout + stderr, /Usage: bnlab/);
  });

  test('npx bnlab lab serves the prebuilt lab with the isolation headers, and the data from the installed packages', async () => {
    assert.ok(!existsSync(join(project, 'node_modules/bnlab/dist-lab/data')), 'the package ships no copy of the datasets');
    const port = await freePort();
    const child = spawn('npx', ['--no-install', 'bnlab', 'lab', '--port', String(port)], { cwd: project, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    child.stderr.on('data', (b: Buffer) => (out += b));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no URL printed within 60 s: ${out}`)), 60_000);
        child.stdout.on('data', () => {
          const m = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve(m[0]);
          }
        });
        child.once('exit', (code) => reject(new Error(`bnlab lab exited with ${code}: ${out}`)));
      });
      assert.equal(url, `http://127.0.0.1:${port}/`);
      const page = await fetch(url);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<script[^>]+src="\.\/assets\/index-[^"]+\.js"/);
      for (const r of [page, await fetch(url + 'data/mnist/test-labels.idx')]) {
        assert.equal(r.headers.get('cross-origin-opener-policy'), 'same-origin');
        assert.equal(r.headers.get('cross-origin-embedder-policy'), 'require-corp');
      }
      const labels = new Uint8Array(await (await fetch(url + 'data/mnist/test-labels.idx')).arrayBuffer());
      assert.equal(labels.length, 8 + 10000);
      assert.deepEqual([...labels.slice(0, 4)], [0, 0, 8, 1], 'IDX magic of a label file');
      assert.equal(labels[8], 7, 'the first MNIST test image is a 7');
      const manifest = (await (await fetch(url + 'data/manifest.json')).json()) as { datasets: Record<string, unknown> };
      assert.deepEqual(Object.keys(manifest.datasets), ['mnist', 'fashion-mnist']);
      // The same port again: a clear error, not a stack trace.
      const taken = await npx(['lab', '--port', String(port)]).then(
        () => assert.fail('a second server on the same port started'),
        (e: { stderr: string; code: number }) => e,
      );
      assert.equal(taken.code, 1);
      assert.match(taken.stderr, new RegExp(`^error: port ${port} on 127\\.0\\.0\\.1 is in use: choose another with --port N`, 'm'));
      const bad = await npx(['lab', '--port', '70000']).then(
        () => assert.fail('port 70000 accepted'),
        (e: { stderr: string; code: number }) => e,
      );
      assert.match(bad.stderr, /option '--port <n>' argument '70000' is invalid\. Expected a port number from 0 to 65535/);
    } finally {
      process.kill(-child.pid!, 'SIGTERM'); // npx and the node process under it
      await new Promise((resolve) => (child.exitCode === null && child.signalCode === null ? child.once('exit', resolve) : resolve(null)));
    }
  });

  test("the README's web-page example, bundled by Vite from the installed package, classifies a digit drawn on a canvas in Chromium as predict does", { timeout: 180_000 }, async () => {
    await npx(['train', '--steps', '300', '--train-limit', '3000', '--test-limit', '300', '--eval-every', '0', '--out', 'web-model']);
    const web = join(project, 'web');
    mkdirSync(join(web, 'public/model'), { recursive: true });
    for (const f of ['model.json', 'model.safetensors']) writeFileSync(join(web, 'public/model', f), readFileSync(join(project, 'web-model', f)));
    // The README's code as it stands, after a prelude that draws MNIST test image 0 ten times larger on the canvas.
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const example = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.includes('digitFromRgba(data'));
    assert.ok(example, 'the README has the web-page example');
    const digit = Array.from(loadDataset('mnist', 'test').images.subarray(0, 784), (v) => Math.round(v * 255));
    const prelude = `const pixels = ${JSON.stringify(digit)};
const image = new ImageData(280, 280);
for (let i = 0; i < 280 * 280; i++) {
  const v = pixels[Math.floor(Math.floor(i / 280) / 10) * 28 + Math.floor((i % 280) / 10)];
  image.data.set([v, v, v, 255], 4 * i);
}
document.querySelector('canvas')!.getContext('2d')!.putImageData(image, 0, 0);
`;
    writeFileSync(join(web, 'main.ts'), `${prelude}${example}\ndocument.body.dataset.result = JSON.stringify(Array.from(probabilities));\n`);
    writeFileSync(join(web, 'index.html'), '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>digit</title></head><body><canvas width="280" height="280"></canvas><script type="module" src="./main.ts"></script></body></html>\n');
    await run(process.execPath, [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', 'web', '--outDir', '../dist-web', '--emptyOutDir', '--logLevel', 'warn'], { cwd: project, env: userEnv() });
    const server = await serveLab({ dir: join(project, 'dist-web'), isolated: false });
    const browser = await launch();
    try {
      const page = await openLab(browser, server.url, { waitForReady: false });
      await page.page.waitForFunction(() => document.body.dataset.result, null, { timeout: 60_000 });
      const probabilities = JSON.parse((await page.page.evaluate(() => document.body.dataset.result))!) as number[];
      const predicted = JSON.parse((await npx(['predict', '--model', 'web-model', '--mnist-test', '0', '--json'])).stdout) as { predicted: number; probabilities: { probability: number }[] };
      assert.equal(probabilities.indexOf(Math.max(...probabilities)), predicted.predicted);
      probabilities.forEach((p, i) => assert.ok(Math.abs(p - predicted.probabilities[i].probability) < 1e-3, `class ${i}: ${p} in the page, ${predicted.probabilities[i].probability} from predict`));
      assert.deepEqual(page.errors, []);
      assert.deepEqual(page.foreign, []);
    } finally {
      await browser.close();
      await server.close();
    }
  });

  test('the packed manifest has no install script, so npm does not list bnlab among the packages with install scripts', () => {
    const { scripts = {} } = JSON.parse(readFileSync(join(project, 'node_modules/bnlab/package.json'), 'utf8')) as { scripts?: Record<string, string> };
    for (const name of ['preinstall', 'install', 'postinstall', 'prepare']) assert.equal(scripts[name], undefined, `scripts.${name}`);
    const repo = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.equal(repo.scripts.prepare, 'npm run build', "the repository's own manifest keeps prepare");
  });

  test('the installed entry is the packed file, reached through a symlink', () => {
    const manifest = JSON.parse(readFileSync(join(project, 'node_modules/bnlab/package.json'), 'utf8')) as { bin: Record<string, string> };
    assert.equal(manifest.bin.bnlab, './dist/src/cli/main.js');
    assert.ok(existsSync(join(project, 'node_modules/.bin/bnlab')));
  });
});
