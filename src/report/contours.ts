/**
 * Level lines of a function sampled on a regular grid (marching squares), as straight segments that a
 * chart draws with rule marks. Vega-Lite has no contour mark for gridded values, and the two-feature
 * experiment's loss surfaces are small enough (a few thousand cells) to trace here.
 */

export interface Segment {
  x: number;
  y: number;
  x2: number;
  y2: number;
}

/**
 * Segments where `values` crosses `level`. `values[row·xs.length + col]` is the value at (xs[col], ys[row]).
 * Each cell contributes 0, 1 or 2 segments, their ends linearly interpolated along the cell's edges;
 * a saddle cell (two opposite corners above) is split by the value at its centre.
 */
export function levelSegments(xs: ArrayLike<number>, ys: ArrayLike<number>, values: ArrayLike<number>, level: number): Segment[] {
  const nx = xs.length;
  const ny = ys.length;
  if (values.length !== nx * ny) throw new Error(`levelSegments: ${values.length} values for a ${nx}×${ny} grid`);
  const out: Segment[] = [];
  const at = (r: number, c: number) => values[r * nx + c];
  for (let r = 0; r + 1 < ny; r++) {
    for (let c = 0; c + 1 < nx; c++) {
      // Corners counter-clockwise from the bottom left: (c, r), (c+1, r), (c+1, r+1), (c, r+1).
      const v = [at(r, c), at(r, c + 1), at(r + 1, c + 1), at(r + 1, c)];
      if (v.some((x) => !Number.isFinite(x))) continue;
      const p: Array<[number, number]> = [[xs[c], ys[r]], [xs[c + 1], ys[r]], [xs[c + 1], ys[r + 1]], [xs[c], ys[r + 1]]];
      const above = v.map((x) => x > level);
      // Where the level crosses each edge i (corner i to corner i+1), if it does.
      const cross: Array<[number, number] | null> = [0, 1, 2, 3].map((i) => {
        const j = (i + 1) % 4;
        if (above[i] === above[j]) return null;
        const t = (level - v[i]) / (v[j] - v[i]);
        return [p[i][0] + t * (p[j][0] - p[i][0]), p[i][1] + t * (p[j][1] - p[i][1])];
      });
      const edges = [0, 1, 2, 3].filter((i) => cross[i] !== null);
      if (edges.length === 2) {
        out.push(segment(cross[edges[0]]!, cross[edges[1]]!));
      } else if (edges.length === 4) {
        // Saddle: the centre joins the two corners on its side; the segments cut off the other two
        // (corner 1 lies between edges 0 and 1, corner 0 between edges 3 and 0).
        const centreAbove = (v[0] + v[1] + v[2] + v[3]) / 4 > level;
        const pairs = centreAbove === above[0] ? [[0, 1], [2, 3]] : [[3, 0], [1, 2]];
        for (const [a, b] of pairs) out.push(segment(cross[a]!, cross[b]!));
      }
    }
  }
  return out;
}

function segment(a: [number, number], b: [number, number]): Segment {
  return { x: a[0], y: a[1], x2: b[0], y2: b[1] };
}
