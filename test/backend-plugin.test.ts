/**
 * Backends are plug-ins: a folder that registers a provider by name (test/example-backend/) trains a
 * network through the registry, and callers see its capabilities, not its name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CrossEntropyLoss, Rng, SGD, Tensor, availableBackends, backendProviders, buildPreset, getBackend, initBackend, registerBackendProvider, setBackend } from '../src/index.js';
import { exampleBackend, exampleCalls } from './example-backend/index.js';

registerBackendProvider(exampleBackend);

function train(steps: number): number[] {
  const model = buildPreset('ioffe-mlp', { bn: true, seed: 3 });
  const loss = new CrossEntropyLoss();
  const optimizer = new SGD(model.parameters(), { lr: 0.5 });
  const data = new Rng(4);
  const x = new Tensor([32, 784], Float32Array.from({ length: 32 * 784 }, () => data.uniform()));
  const y = Int32Array.from({ length: 32 }, () => data.int(10));
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    optimizer.zeroGrad();
    losses.push(loss.forward(model.forward(x), y));
    model.backward(loss.backward());
    optimizer.step();
  }
  return losses;
}

test('a backend registered from its own folder trains a network, and agrees with the reference', async () => {
  const previous = getBackend().name;
  try {
    assert.ok(availableBackends().includes('example'));
    assert.ok(backendProviders().some((p) => p.name === 'example'));
    const kernels = await initBackend('example');
    assert.equal(kernels.name, 'example');
    assert.equal(kernels.capabilities.variant, 'example (i-k-j matmul)');
    const onExample = train(20);
    assert.ok(exampleCalls.matmul >= 20 * 12, `the example matmul ran ${exampleCalls.matmul} times`);
    assert.ok(onExample[19] < 0.5 * onExample[0], `loss ${onExample[0]} → ${onExample[19]}: the network learns the batch`);
    setBackend('ts');
    const onReference = train(20);
    for (let s = 0; s < 20; s++) assert.ok(Math.abs(onExample[s] - onReference[s]) < 1e-4, `step ${s}: ${onExample[s]} vs ${onReference[s]}`);
    // 'auto' takes the most preferred available backend, never this one (priority -1).
    assert.notEqual((await initBackend('auto')).name, 'example');
  } finally {
    setBackend(previous);
  }
});

test('unknown names and impossible uses say what exists', async () => {
  await assert.rejects(initBackend('nope'), /Unknown backend "nope"\. Available: .*example/);
  assert.throws(() => registerBackendProvider({ ...exampleBackend, name: 'auto' }), /"auto" is not a backend name/);
});
