/**
 * The datasets as the build wrote them (scripts/lab-data.mjs): the original IDX files, served from the
 * lab's own origin under data/<dataset>/, fetched with progress reported as bytes arrive.
 */
import type { DataBytes } from './worker/protocol.js';

export const DATA_FILES = ['train-images', 'train-labels', 'test-images', 'test-labels'] as const;

export interface DataManifest {
  datasets: Record<string, Record<(typeof DATA_FILES)[number], { file: string; bytes: number }>>;
}

/** Fetch one dataset's four files; `onProgress(loaded, total)` as bytes arrive. */
export async function fetchDataset(dataset: string, onProgress: (loaded: number, total: number) => void): Promise<DataBytes> {
  const base = new URL('data/', document.baseURI);
  const manifest = (await (await fetch(new URL('manifest.json', base))).json()) as DataManifest;
  const entry = manifest.datasets[dataset];
  if (!entry) throw new Error(`dataset ${dataset} is not in this build (have ${Object.keys(manifest.datasets).join(', ')})`);
  const total = DATA_FILES.reduce((n, f) => n + entry[f].bytes, 0);
  let loaded = 0;
  const read = async (name: (typeof DATA_FILES)[number]): Promise<ArrayBufferLike> => {
    const url = new URL(entry[name].file, base);
    const response = await fetch(url);
    if (!response.ok || !response.body) throw new Error(`fetching ${url.pathname} failed (${response.status} ${response.statusText})`);
    // Cross-origin isolated: shared bytes, which both workers read without a copy.
    const out = new Uint8Array(globalThis.crossOriginIsolated ? new SharedArrayBuffer(entry[name].bytes) : new ArrayBuffer(entry[name].bytes));
    let offset = 0;
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (offset + value.length > out.length) throw new Error(`${url.pathname} is longer than the manifest says (${out.length} bytes)`);
      out.set(value, offset);
      offset += value.length;
      loaded += value.length;
      onProgress(loaded, total);
    }
    if (offset !== out.length) throw new Error(`${url.pathname} ended after ${offset} of ${out.length} bytes`);
    return out.buffer;
  };
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all(DATA_FILES.map(read));
  return { dataset, trainImages, trainLabels, testImages, testLabels };
}
