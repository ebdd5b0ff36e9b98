// convlens projector: the page's state (one object, also window.CLProjector for tests and benchmarks),
// constants, and the map parameters of the form as a query string.
export const PALETTE = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
  [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207], [174, 199, 232], [255, 187, 120],
  [152, 223, 138], [255, 152, 150], [197, 176, 213], [196, 156, 148], [247, 182, 210], [199, 199, 199],
  [219, 219, 141], [158, 218, 229]];
export const DEFAULT_RGB = [49, 101, 156];
export const THUMB_LIMIT = 10000;     // draw thumbnails when at most this many points are visible
export const MAX_FETCH = 6;           // atlases fetched at once
export const BG = [255, 255, 255];

export const P = window.CLProjector = {
  ready: false, renderer: null, n: 0, frames: [], firstPoints: null, firstThumbs: null, thumbsDrawn: 0,
  selection: null, focus: null, neighbors: null, error: null, dims: 2, isolate: false, search: "",
  rows: new Map(),  // row -> {path, label, ...} (GET /api/projector/point), fetched on demand
};

export function qs() { return new URLSearchParams(location.search); }

export function mapParams() {
  const f = P.form;
  const p = { store: P.store, method: f.method.value, seed: +f.seed.value };
  if (p.method === "tsne") { p.perplexity = +f.perplexity.value; p.n_iter = +f.n_iter.value; }
  if (p.method === "umap") p.n_neighbors = +f.n_neighbors.value;
  if (f.dims.value === "3") p.dims = 3;
  return p;
}
export function query(extra = {}) {
  const p = { ...mapParams(), ...extra };
  return new URLSearchParams(Object.entries(p).filter(([, v]) => v !== undefined && v !== null)).toString();
}

export function thumbUrl(i) { return `/api/projector/thumb.png?store=${encodeURIComponent(P.store)}&i=${i}`; }
export function labelOf(i) {
  const c = P.colour;
  return c && c.kind === "category" ? c.categories[c.data[i]] : c ? String(c.data[i]) : "";
}

// What a row is (its stored path and label), fetched once per row.
export async function rowInfo(i) {
  const key = `${P.store}:${i}`;
  if (!P.rows.has(key)) P.rows.set(key, CL.api(`/api/projector/point?store=${encodeURIComponent(P.store)}&i=${i}`)
    .catch((err) => { P.rows.delete(key); throw err; }));
  return P.rows.get(key);
}

// Rows in a URL: sorted runs as "a-b" joined by "." ("3-7.12"), short for a lasso's contiguous rows.
export function encodeRows(rows) {
  const s = [...rows].sort((a, b) => a - b), out = [];
  for (let k = 0; k < s.length;) {
    let j = k;
    while (j + 1 < s.length && s[j + 1] === s[j] + 1) j++;
    out.push(j > k ? `${s[k]}-${s[j]}` : `${s[k]}`);
    k = j + 1;
  }
  return out.join(".");
}
export function decodeRows(text, n) {
  const rows = [];
  for (const part of (text || "").split(".")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) continue;
    for (let i = +m[1]; i <= Math.min(+(m[2] ?? m[1]), n - 1); i++) rows.push(i);
  }
  return rows;
}

export function shortPath(p) { return !p ? "" : p.length > 48 ? `…${p.slice(-46)}` : p; }
