// convlens projector: the 3-D view (a map computed with dims=3): a rotatable perspective scatter, drawn
// into an ImageData with a depth buffer (the nearer point wins a pixel). Drag orbits the camera, the
// wheel zooms. The screen position of every point in the last frame (P.scr, device px; NaN: hidden)
// serves hover, click, lasso and the overlay's rings, as the 2-D view's transform does.
import { BG, P } from "./state.js";

const DIST = 2.5;  // camera distance from the centre of the cloud (the cloud spans 1)

export function resetCamera() { P.cam = { yaw: 0.6, pitch: 0.35, zoom: 1 }; }

export function setPoints3d(xyz) {  // (n, 3) float32 -> centred, largest side 1
  const n = xyz.length / 3, lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < n; i++) for (let a = 0; a < 3; a++) {
    const v = xyz[3 * i + a];
    if (v < lo[a]) lo[a] = v; if (v > hi[a]) hi[a] = v;
  }
  const span = Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) || 1;
  const w = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let a = 0; a < 3; a++) w[3 * i + a] = (xyz[3 * i + a] - (lo[a] + hi[a]) / 2) / span;
  P.world3 = w;
  P.scr = new Float32Array(2 * n).fill(NaN);
  P.depth = new Float32Array(n);
  if (!P.cam) resetCamera();
}

export function rotate3d(dyaw, dpitch) {
  P.cam.yaw += dyaw;
  P.cam.pitch = Math.max(-1.55, Math.min(1.55, P.cam.pitch + dpitch));
}

export function zoom3d(f) { P.cam.zoom = Math.max(0.2, Math.min(50, P.cam.zoom * f)); }

// project every point with the current camera: fills P.scr and P.depth; returns the projection of one
// point (for the axes). The loop is inlined over typed arrays: no allocation per point (100k a frame).
function project(W, H) {
  const { yaw, pitch, zoom } = P.cam, cy = Math.cos(yaw), sy = Math.sin(yaw), cp = Math.cos(pitch), sp = Math.sin(pitch);
  const S = Math.min(W, H) * 0.55 * zoom * DIST, w = P.world3, n = P.n, rgba = P.rgba, scr = P.scr, dep = P.depth;
  const ox = W / 2, oy = H / 2;
  for (let i = 0; i < n; i++) {
    if (rgba && rgba[4 * i + 3] === 0) { scr[2 * i] = NaN; scr[2 * i + 1] = NaN; continue; }  // isolated away
    const x = w[3 * i], y = w[3 * i + 1], z = w[3 * i + 2];
    const x1 = cy * x + sy * z, z1 = -sy * x + cy * z, y2 = cp * y - sp * z1, d = DIST - (sp * y + cp * z1), k = S / d;
    scr[2 * i] = ox + x1 * k; scr[2 * i + 1] = oy - y2 * k; dep[i] = d;
  }
  return (x, y, z) => {
    const x1 = cy * x + sy * z, z1 = -sy * x + cy * z, y2 = cp * y - sp * z1, d = DIST - (sp * y + cp * z1), k = S / d;
    return [ox + x1 * k, oy - y2 * k, d];
  };
}

// the rows of a disc of diameter s as [dy, dx0, dx1) spans, made once per size
const DISCS = [];
function disc(s) {
  if (!DISCS[s]) {
    const r2 = (s / 2) * (s / 2) + 0.5, c0 = (s - 1) / 2, spans = [];
    for (let dy = 0; dy < s; dy++) {
      let a = -1, b = -1;
      for (let dx = 0; dx < s; dx++) if ((dx - c0) * (dx - c0) + (dy - c0) * (dy - c0) <= r2) { if (a < 0) a = dx; b = dx + 1; }
      if (a >= 0) spans.push(dy, a, b);
    }
    DISCS[s] = Int16Array.from(spans);
  }
  return DISCS[s];
}

export function draw3d() {
  const c = P.canvas3d, W = P.W, H = P.H;
  if (c.width !== W || c.height !== H || !P.img3) {
    c.width = W; c.height = H;
    P.img3 = c.getContext("2d").createImageData(W, H);
    P.u32 = new Uint32Array(P.img3.data.buffer);
    P.zbuf = new Float32Array(W * H);
  }
  const ctx = c.getContext("2d"), u32 = P.u32, zbuf = P.zbuf, rgba = P.rgba, scr = P.scr, dep = P.depth;
  u32.fill((255 << 24 | BG[2] << 16 | BG[1] << 8 | BG[0]) >>> 0);
  zbuf.fill(Infinity);
  const at = project(W, H);
  const base = (P.basePoint || 5) * 1.3 * P.dpr * Math.pow(P.cam.zoom, 0.3);
  const b0 = BG[0], b1 = BG[1], b2 = BG[2];
  for (let i = 0; i < P.n; i++) {
    const x = scr[2 * i];
    if (x !== x) continue;  // NaN: hidden
    const d = dep[i], s = Math.max(2, Math.round(base * DIST / d)), h = s >> 1;
    const x0 = Math.round(x) - h, y0 = Math.round(scr[2 * i + 1]) - h;
    if (x0 < 0 || y0 < 0 || x0 + s > W || y0 + s > H || d <= 0.05) continue;
    // far points paler (fog), then the point's alpha over the background: BG + f (rgb - BG)
    const fog = 0.75 + 0.25 * Math.min(1, Math.max(0, (DIST + 0.9 - d) / 1.8)), f = fog * rgba[4 * i + 3] / 255;
    const r = (b0 + f * (rgba[4 * i] - b0) + 0.5) | 0, g = (b1 + f * (rgba[4 * i + 1] - b1) + 0.5) | 0,
      bl = (b2 + f * (rgba[4 * i + 2] - b2) + 0.5) | 0;
    const col = (255 << 24 | bl << 16 | g << 8 | r) >>> 0;
    const spans = disc(s);
    for (let k = 0; k < spans.length; k += 3) {
      const o = (y0 + spans[k]) * W + x0, end = o + spans[k + 2];
      for (let p = o + spans[k + 1]; p < end; p++) if (d < zbuf[p]) { zbuf[p] = d; u32[p] = col; }
    }
  }
  ctx.putImageData(P.img3, 0, 0);
  // the three axes through the centre, as orientation
  ctx.lineWidth = P.dpr;
  [["#d62728", [0.5, 0, 0]], ["#2ca02c", [0, 0.5, 0]], ["#1f77b4", [0, 0, 0.5]]].forEach(([colour, [x, y, z]]) => {
    const [ax, ay] = at(-x, -y, -z), [bx, by] = at(x, y, z);
    ctx.strokeStyle = colour + "66";
    ctx.beginPath(); ctx.moveTo(ax, ay); ctx.lineTo(bx, by); ctx.stroke();
  });
}

export function pick3d(px, py) {  // device px -> the nearest drawn point under the cursor (the front one on ties)
  const r = Math.max(6 * P.dpr, (P.basePoint || 5) * P.dpr), r2 = r * r;
  let best = null, bd = Infinity, bz = Infinity;
  for (let i = 0; i < P.n; i++) {
    const x = P.scr[2 * i];
    if (Number.isNaN(x)) continue;
    const dx = x - px, dy = P.scr[2 * i + 1] - py, d = dx * dx + dy * dy;
    if (d > r2) continue;
    if (d < bd - 1 || (Math.abs(d - bd) <= 1 && P.depth[i] < bz)) { bd = d; bz = P.depth[i]; best = i; }
  }
  return best;
}
