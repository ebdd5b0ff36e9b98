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
  selection: null, focus: null, neighbors: null, error: null,
};

export function qs() { return new URLSearchParams(location.search); }

export function mapParams() {
  const f = P.form;
  const p = { store: P.store, method: f.method.value, seed: +f.seed.value };
  if (p.method === "tsne") { p.perplexity = +f.perplexity.value; p.n_iter = +f.n_iter.value; }
  if (p.method === "umap") p.n_neighbors = +f.n_neighbors.value;
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
