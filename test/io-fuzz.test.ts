/**
 * Property-based fuzzing (fast-check, fixed seeds, about 1.5 s per parser) of every file parser: random
 * bytes, random headers, and valid files with bytes flipped, cut or inserted. Each parser either returns a
 * result consistent with the file or throws its documented error class (ModelFileError, IdxFormatError,
 * ImageFileError), nothing else. An allocation sized by an unchecked header would show up here too: a
 * claimed size of gigabytes fails with a RangeError, which is not a documented class.
 */
import assert from 'node:assert/strict';
import { after, before, test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { IdxFormatError, encodeIdx, parseIdx } from '../src/data/idx.js';
import { ImageFileError, ModelFileError } from '../src/io/errors.js';
import { decodeModel, parseModelJson } from '../src/io/model-file.js';
import { decodePngGray } from '../src/io/node-png.js';
import { entrySize, parseSafetensors, readFloat32 } from '../src/io/safetensors.js';
import { setWarningHandler } from '../src/nn/warnings.js';
import { pngBytes, rawSafetensors, smallModelFiles } from './support/io-hostile-cases.js';

const TIME_LIMIT_MS = 1500;

/** Check `property` for TIME_LIMIT_MS with a fixed seed; reports the number of inputs tried. */
function fuzz<T>(t: TestContext, property: fc.IProperty<T>, seed: number): void {
  const details = fc.check(property, { seed, numRuns: 1_000_000, interruptAfterTimeLimit: TIME_LIMIT_MS });
  if (details.failed) throw new Error(fc.defaultReportMessage(details));
  t.diagnostic(`${details.numRuns} inputs in ${TIME_LIMIT_MS} ms (seed ${seed})`);
}

let restoreWarnings: ReturnType<typeof setWarningHandler>;
before(() => (restoreWarnings = setWarningHandler(() => {})));
after(() => setWarningHandler(restoreWarnings));

/** Run `parse`; anything thrown must be `errorClass`. Returns the result or null. */
function only<T>(errorClass: new (...args: never[]) => Error, parse: () => T): T | null {
  try {
    return parse();
  } catch (e) {
    if (e instanceof errorClass) return null;
    throw new Error(`threw ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}, expected only ${errorClass.name}`);
  }
}

/** A valid file damaged at random: bytes replaced, the file cut, bytes inserted. */
function damaged(valid: Uint8Array): fc.Arbitrary<Uint8Array> {
  const flips = fc.array(fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }).map((changes) => {
    const out = valid.slice();
    for (const [i, b] of changes) out[i] = b;
    return out;
  });
  const cut = fc.nat(valid.length).map((n) => valid.slice(0, n));
  const insert = fc.tuple(fc.nat(valid.length), fc.uint8Array({ minLength: 1, maxLength: 16 })).map(([at, bytes]) => Uint8Array.from([...valid.subarray(0, at), ...bytes, ...valid.subarray(at)]));
  return fc.oneof(flips, cut, insert);
}

/** Four little-endian bytes of a u32, for splicing lengths into headers. */
const le32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

test('safetensors: random bytes, random headers and damaged files get a result or a ModelFileError', (t) => {
  const valid = smallModelFiles().safetensors;
  const dims = fc.oneof(fc.integer({ min: -2, max: 8 }), fc.constantFrom(2 ** 31, 2 ** 53, 1.5, Number.MAX_SAFE_INTEGER));
  const entry = fc.record({
    dtype: fc.oneof(fc.constantFrom('F32', 'F64', 'F16', 'BF16', 'I64', 'U8', 'BOOL', 'F8_E4M3', 'X'), fc.string()),
    shape: fc.oneof(fc.array(dims, { maxLength: 9 }), fc.jsonValue()),
    data_offsets: fc.oneof(fc.tuple(fc.integer({ min: -4, max: 80 }), fc.integer({ min: -4, max: 80 })), fc.jsonValue()),
  });
  const header = fc.dictionary(fc.oneof(fc.constantFrom('a', 'b', '__metadata__', '__proto__', 'constructor'), fc.string()), fc.oneof(entry, fc.jsonValue()), { maxKeys: 4 });
  const structured = fc.tuple(header, fc.uint8Array({ maxLength: 80 }), fc.option(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }))).map(([h, data, length]) => rawSafetensors(h, data, length ?? undefined));
  // Valid layouts nudged a little (an offset moved, a range shared, bytes added or missing): where the
  // overlap, gap and size rules are decided.
  const SIZES: Record<string, number> = { F32: 4, F64: 8, F16: 2, I64: 8, U8: 1 };
  const nearlyValid = fc
    .tuple(
      fc.array(fc.record({ dtype: fc.constantFrom('F32', 'F64', 'F16', 'I64', 'U8'), shape: fc.array(fc.nat(3), { maxLength: 3 }) }), { minLength: 1, maxLength: 4 }),
      fc.array(fc.tuple(fc.nat(3), fc.nat(2), fc.integer({ min: -8, max: 8 })), { maxLength: 2 }),
      fc.oneof(fc.constant(0), fc.integer({ min: -4, max: 4 })),
    )
    .map(([tensors, nudges, extra]) => {
      let offset = 0;
      const entries = tensors.map((t) => {
        const size = t.shape.reduce((a, b) => a * b, 1) * SIZES[t.dtype];
        const e = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + size] };
        offset += size;
        return e;
      });
      // Move a begin, an end, or both (a shifted tensor that keeps its size).
      for (const [i, which, delta] of nudges) {
        const o = entries[i % entries.length].data_offsets;
        if (which !== 1) o[0] += delta;
        if (which !== 0) o[1] += delta;
      }
      const end = Math.max(...entries.map((e) => e.data_offsets[1]));
      const header = Object.fromEntries(entries.map((e, i) => [`t${i}`, e]));
      return rawSafetensors(header, new Uint8Array(Math.max(0, end + extra)));
    });
  const random = fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.tuple(fc.nat(0xffffffff), fc.nat(0xffffffff), fc.uint8Array({ maxLength: 64 })).map(([lo, hi, rest]) => Uint8Array.from([...le32(lo), ...le32(hi), ...rest])));
  let accepted = 0;
  fuzz(
    t,
    fc.property(fc.oneof(structured, nearlyValid, random, damaged(valid)), (bytes) => {
      const file = only(ModelFileError, () => parseSafetensors(bytes, 'fuzz.safetensors'));
      if (!file) return;
      accepted++;
      let total = 0;
      for (const e of file.entries.values()) {
        assert.ok(e.begin <= e.end && e.end <= file.data.length);
        total += e.end - e.begin;
        assert.equal(readFloat32(file, e.name).length, entrySize(e));
        assert.equal(e.shape.reduce((a, b) => a * b, 1), entrySize(e), 'the shape matches the byte range');
      }
      assert.equal(total, file.data.length, 'the tensors cover the data section exactly');
    }),
    101,
  );
  assert.ok(accepted > 0, 'some generated files were valid');
});

test('model.json: random JSON and damaged valid files get a model or a ModelFileError', (t) => {
  const { modelJson, safetensors } = smallModelFiles();
  const base = JSON.parse(modelJson);
  const value = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.integer({ min: -3, max: 2 ** 22 }), fc.constantFrom(0, -1, 1e400, 2 ** 20, 2 ** 31, '4', null));
  const field = fc.constantFrom('format', 'formatVersion', 'inputShape', 'layers', 'batchNorm', 'preset', 'classNames', 'dataset');
  const layerKey = fc.constantFrom('type', 'inFeatures', 'outFeatures', 'numFeatures', 'momentum', 'eps', 'affine', 'biasCorrection', 'bias', 'p', 'kernelSize');
  const mutatedJson = fc.oneof(
    fc.tuple(field, value).map(([k, v]) => ({ ...base, [k]: v })),
    fc.tuple(fc.nat(base.layers.length - 1), layerKey, value).map(([i, k, v]) => ({ ...base, layers: base.layers.map((l: object, j: number) => (j === i ? { ...l, [k]: v } : l)) })),
    fc.tuple(fc.nat(base.layers.length), fc.record({ type: fc.constantFrom('Linear', 'ReLU', 'BatchNorm1d', 'Conv2d', 'Flatten', 'MaxPool2d', 'GroupNorm', 'Nope'), inFeatures: value, outFeatures: value, numFeatures: value })).map(([i, l]) => ({ ...base, layers: [...base.layers.slice(0, i), l, ...base.layers.slice(i)] })),
  );
  const text = fc.oneof(
    mutatedJson.map((j) => JSON.stringify(j)),
    fc.jsonValue().map((j) => JSON.stringify(j)),
    damaged(new TextEncoder().encode(modelJson)).map((b) => new TextDecoder().decode(b)),
  );
  let built = 0;
  fuzz(
    t,
    fc.property(text, (t) => {
      if (!only(ModelFileError, () => parseModelJson(t, 'model.json'))) return;
      // A model.json that parses is built against real weights: they must match, or a ModelFileError.
      const loaded = only(ModelFileError, () => decodeModel({ modelJson: t, safetensors }));
      if (loaded) built++;
    }),
    202,
  );
  assert.ok(built > 0, 'some mutations left a loadable model');
});

test('IDX: random bytes, random headers and damaged files get data or an IdxFormatError', (t) => {
  const valid = encodeIdx([3, 4, 5], Array.from({ length: 60 }, (_, i) => i));
  const header = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 6 }), fc.array(fc.oneof(fc.nat(8), fc.nat(0xffffffff)), { maxLength: 6 }), fc.uint8Array({ maxLength: 100 })).map(([type, n, dims, rest]) => {
    const out = new Uint8Array(4 + 4 * dims.length + rest.length);
    out[2] = type;
    out[3] = n;
    const view = new DataView(out.buffer);
    dims.forEach((d, i) => view.setUint32(4 + 4 * i, d));
    out.set(rest, 4 + 4 * dims.length);
    return out;
  });
  fuzz(
    t,
    fc.property(fc.oneof(header, fc.uint8Array({ maxLength: 40 }), damaged(valid)), (bytes) => {
      const idx = only(IdxFormatError, () => parseIdx(bytes, 'fuzz-idx3-ubyte'));
      if (idx) assert.equal(idx.data.length, idx.dims.reduce((a, b) => a * b, 1));
    }),
    303,
  );
});

test('PNG: random bytes and damaged files get 28x28 pixels in [0, 1] or an ImageFileError', (t) => {
  const valid = [pngBytes(28, 28), pngBytes(28, 28, { colorType: 0 }), pngBytes(28, 28, { colorType: 2, bitDepth: 16 })];
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  const afterSignature = fc.uint8Array({ maxLength: 120 }).map((rest) => Uint8Array.from([...signature, ...rest]));
  let decoded = 0;
  fuzz(
    t,
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), afterSignature, fc.constantFrom(...valid), ...valid.map(damaged)), (bytes) => {
      const png = only(ImageFileError, () => decodePngGray(bytes, 'fuzz.png', { width: 28, height: 28 }));
      if (!png) return;
      decoded++;
      assert.equal(png.pixels.length, 784);
      assert.ok(png.pixels.every((v) => v >= 0 && v <= 1));
    }),
    404,
  );
  assert.ok(decoded > 0, 'the undamaged files decode');
});
