/**
 * Inference speed-up from folding batch norm into the preceding layer (fuseBatchNorm), on the
 * `mnist-cnn` and `mlp-relu` presets with trained-looking statistics, reference kernels.
 *
 *   npx tsx bench/fuse.ts [--batch 256] [--seconds 3]
 */
import { parseArgs } from 'node:util';
import { buildPreset } from '../src/models/presets.js';
import { BatchNormBase } from '../src/nn/batchnorm.js';
import { fuseBatchNorm } from '../src/nn/fuse.js';
import type { Sequential } from '../src/nn/sequential.js';
import { Rng } from '../src/tensor/rng.js';
import { Tensor } from '../src/tensor/tensor.js';

const { values: args } = parseArgs({ options: { batch: { type: 'string', default: '256' }, seconds: { type: 'string', default: '3' } } });
const batch = Number(args.batch);
const seconds = Number(args.seconds);

function randomInput(shape: number[], rng: Rng): Tensor {
  const x = new Tensor(shape);
  for (let i = 0; i < x.size; i++) x.data[i] = rng.uniform();
  return x;
}

/** Milliseconds per forward pass, the median of rounds of about 0.2 s each. */
function msPerForward(model: Sequential, x: Tensor): number {
  for (let i = 0; i < 3; i++) model.forward(x); // warm-up: JIT and buffer allocation
  const rounds: number[] = [];
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    const start = performance.now();
    let n = 0;
    do {
      model.forward(x);
      n++;
    } while (performance.now() - start < 200);
    rounds.push((performance.now() - start) / n);
  }
  rounds.sort((a, b) => a - b);
  return rounds[Math.floor(rounds.length / 2)];
}

for (const [name, sampleShape] of [['mnist-cnn', [1, 28, 28]], ['mlp-relu', [784]]] as const) {
  const rng = new Rng(0);
  const model = buildPreset(name, { seed: 0 });
  model.train();
  for (let i = 0; i < 5; i++) model.forward(randomInput([batch, ...sampleShape], rng));
  model.eval();
  const fused = fuseBatchNorm(model);
  const x = randomInput([batch, ...sampleShape], rng);
  let maxDiff = 0;
  const reference = model.forward(x).clone();
  const out = fused.forward(x);
  for (let i = 0; i < out.size; i++) maxDiff = Math.max(maxDiff, Math.abs(out.data[i] - reference.data[i]));
  // Alternate the two so that a change in machine load affects both alike.
  const unfusedMs: number[] = [];
  const fusedMs: number[] = [];
  for (let r = 0; r < 2; r++) {
    unfusedMs.push(msPerForward(model, x));
    fusedMs.push(msPerForward(fused, x));
  }
  const u = Math.min(...unfusedMs);
  const f = Math.min(...fusedMs);
  const bnLayers = [...model.modules()].filter((m) => m instanceof BatchNormBase).length;
  console.log(`${name} (batch ${batch}, ${bnLayers} BN layers folded): unfused ${u.toFixed(2)} ms, fused ${f.toFixed(2)} ms per forward; speed-up ${(u / f).toFixed(3)}x; max |difference| ${maxDiff.toExponential(2)}`);
}
