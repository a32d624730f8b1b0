// Writes examples/machines.csv: a seeded synthetic table of pump sensor readings labelled with the
// pump's condition (normal, worn, faulty). The features are on very different scales (pressure in
// pascals ~2e5, vibration in metres ~1e-3), the situation where unscaled inputs hurt gradient descent.
// Run: node examples/make-machines-csv.mjs (the same file every time: seed 12).
import { writeFileSync } from 'node:fs';

function mulberry32(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const uniform = mulberry32(12);
const normal = () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());

// Per class: [mean, std] of each reading. Each alone separates the classes poorly; together well.
const columns = ['temperature_c', 'pressure_pa', 'vibration_m', 'current_a', 'speed_rpm', 'hours'];
const classes = {
  normal: [[60, 5], [201000, 8000], [0.0008, 0.0002], [12.0, 1.2], [1482, 8], [21000, 12000]],
  worn: [[66, 5], [191000, 8000], [0.00125, 0.00025], [12.9, 1.2], [1472, 8], [30000, 12000]],
  faulty: [[72, 6], [182000, 9000], [0.0018, 0.0003], [12.3, 1.4], [1462, 9], [27000, 12000]],
};
const digits = [1, 0, 7, 2, 0, 0];
const rows = [];
for (const [label, params] of Object.entries(classes)) {
  for (let i = 0; i < 300; i++) {
    const values = params.map(([m, s], j) => {
      const v = Math.max(j === 5 ? 0 : -Infinity, m + s * normal());
      return digits[j] >= 2 ? v.toPrecision(3) : v.toFixed(digits[j]);
    });
    rows.push([...values, label].join(','));
  }
}
// Shuffled, so the file is not sorted by class.
for (let i = rows.length - 1; i > 0; i--) {
  const j = Math.floor(uniform() * (i + 1));
  [rows[i], rows[j]] = [rows[j], rows[i]];
}
const out = new URL('./machines.csv', import.meta.url);
writeFileSync(out, [[...columns, 'condition'].join(','), ...rows].join('\n') + '\n');
console.log(`wrote ${rows.length} rows to ${out.pathname}`);
