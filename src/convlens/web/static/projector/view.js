// convlens projector: the view transform, drawing and thumbnail atlases. World coordinates are in
// [0, 1]^2 (y down); the view maps them to device px of the drawing canvases.
import { draw3d } from "./scatter3d.js";
import { MAX_FETCH, P, THUMB_LIMIT } from "./state.js";

export function buildGrid() {  // a uniform grid over [0, 1]^2 for hover / click hit tests
  const G = P.G = Math.max(8, Math.min(256, Math.round(Math.sqrt(P.n / 4))));
  const cellOf = new Int32Array(P.n), counts = new Int32Array(G * G + 1);
  for (let i = 0; i < P.n; i++) {
    const gx = Math.min(G - 1, Math.max(0, Math.floor(P.world[2 * i] * G)));
    const gy = Math.min(G - 1, Math.max(0, Math.floor(P.world[2 * i + 1] * G)));
    cellOf[i] = gy * G + gx; counts[cellOf[i] + 1]++;
  }
  for (let c = 0; c < G * G; c++) counts[c + 1] += counts[c];
  const order = new Int32Array(P.n), fill = counts.slice();
  for (let i = 0; i < P.n; i++) order[fill[cellOf[i]]++] = i;
  P.gridStart = counts; P.gridOrder = order;
}

// The drawing canvases are larger than the stage by a margin M on each side: a pan moves them with a
// CSS transform (the compositor's work, no redraw) until the offset nears M or the pan pauses, then
// one redraw re-centres them. Zooming redraws every frame. The overlay (rings, lasso) is stage-sized.
export function sizeCanvas() {
  const r = P.stage.getBoundingClientRect();
  P.dpr = window.devicePixelRatio || 1;
  const W = Math.max(50, Math.round(r.width * P.dpr)), H = Math.max(50, Math.round(r.height * P.dpr));
  if (W === P.W && H === P.H) return;
  const old = P.W ? { W: P.W, H: P.H } : null;
  P.W = W; P.H = H;
  const M = P.M = Math.round(0.3 * Math.max(W, H));
  P.renderer.resize(W + 2 * M, H + 2 * M);
  for (const c of drawCanvases()) {
    Object.assign(c.style, { left: `${-M / P.dpr}px`, top: `${-M / P.dpr}px`, width: `${(W + 2 * M) / P.dpr}px`,
      height: `${(H + 2 * M) / P.dpr}px`, transform: "" });
  }
  P.overlay.width = W; P.overlay.height = H;
  if (P.view && old) { P.view.tx += (W - old.W) / 2; P.view.ty += (H - old.H) / 2; }
}

function drawCanvases() { return P.renderer.under ? [P.renderer.under.canvas, P.canvas] : [P.canvas]; }

function setShift(dx, dy) {  // device px
  const t = dx || dy ? `translate(${dx / P.dpr}px, ${dy / P.dpr}px)` : "";
  for (const c of drawCanvases()) c.style.transform = t;
}

let settleTimer = null;
export function panBy(dx, dy) {  // device px; returns true when the frame needed no redraw
  const v = P.view, r = P.rendered;
  v.tx += dx; v.ty += dy;
  const ox = r ? v.tx - r.tx : 0, oy = r ? v.ty - r.ty : 0;
  clearTimeout(settleTimer);
  if (r && r.scale === v.scale && Math.abs(ox) < 0.9 * P.M && Math.abs(oy) < 0.9 * P.M) {
    setShift(ox, oy);
    drawOverlay(P.thumbPx);
    settleTimer = setTimeout(requestDraw, 200);
    return true;
  }
  requestDraw();
  return false;
}

export function fitView() {
  const s = Math.min(P.W, P.H) * 0.96 - (P.baseThumb || 0) * P.dpr;  // room for the edge thumbnails
  P.view = { scale: s, tx: P.W / 2 - 0.5 * s, ty: P.H / 2 - 0.5 * s, base: s };
}

export function devPos(i) {  // device px on the stage (the 3-D view: where the last frame drew it)
  if (P.dims === 3) return [P.scr[2 * i], P.scr[2 * i + 1]];
  const v = P.view;
  return [P.world[2 * i] * v.scale + v.tx, P.world[2 * i + 1] * v.scale + v.ty];
}

export function toScreen(i) {  // CSS px relative to the stage
  const [x, y] = devPos(i);
  return [x / P.dpr, y / P.dpr];
}

export function fitSelection(rows) {  // zoom and pan the 2-D view onto these rows
  if (!rows || !rows.length || P.dims === 3) return;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const i of rows) {
    const x = P.world[2 * i], y = P.world[2 * i + 1];
    x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y);
  }
  const base = P.view.base, span = Math.max(x1 - x0, y1 - y0, 0.02);
  const s = Math.min(base * 200, (Math.min(P.W, P.H) * 0.8 - (P.baseThumb || 0) * P.dpr) / span);
  P.view = { scale: s, tx: P.W / 2 - (x0 + x1) / 2 * s, ty: P.H / 2 - (y0 + y1) / 2 * s, base };
}

// ------------------------------------------------------------ drawing and atlases
let drawQueued = false;
export function requestDraw() {
  if (drawQueued) return;
  drawQueued = true;
  requestAnimationFrame(() => { drawQueued = false; draw(); });
}

function visibleRange() {  // points on the stage and in the margin around it (one pass over the coordinates)
  const v = P.view, W = P.W, H = P.H, w = P.world, m = P.M;
  const x0 = -v.tx / v.scale, x1 = (W - v.tx) / v.scale, y0 = -v.ty / v.scale, y1 = (H - v.ty) / v.scale;
  const mx0 = (-m - v.tx) / v.scale, mx1 = (W + m - v.tx) / v.scale, my0 = (-m - v.ty) / v.scale, my1 = (H + m - v.ty) / v.scale;
  let count = 0, inMargin = 0;
  const atl = new Set(), region = new Set(), per = P.info.atlas.per_atlas;
  for (let i = 0; i < P.n; i++) {
    const x = w[2 * i], y = w[2 * i + 1];
    if (x < mx0 || x > mx1 || y < my0 || y > my1) continue;
    const a = Math.floor(P.slot[i] / per);
    if (++inMargin <= 3 * THUMB_LIMIT) region.add(a);
    if (x >= x0 && x <= x1 && y >= y0 && y <= y1) { count++; if (count <= THUMB_LIMIT) atl.add(a); }
  }
  return { count, atlases: [...atl].sort((a, b) => a - b), region: [...region].sort((a, b) => a - b) };
}

function draw3dFrame(t0) {
  draw3d();
  P.thumbsDrawn = 0;
  P.rendered = null;
  drawOverlay(0);
  const dt = performance.now() - t0;
  P.frames.push(dt);
  if (P.frames.length > 600) P.frames.splice(0, 300);
  if (P.firstPoints === null) P.firstPoints = performance.now();
  P.visible = P.n;
  P.hud.textContent = `3-D · ${P.n.toLocaleString()} points · drag to rotate, wheel to zoom · ${dt.toFixed(1)} ms`;
  if (P.onView) P.onView();
}

export function draw() {
  if (!P.world || !P.view) return;
  const t0 = performance.now();
  if (P.dims === 3) { draw3dFrame(t0); return; }
  const v = P.view, zoom = v.scale / v.base;
  const vis = visibleRange();
  const thumbPx = Math.min(160, P.baseThumb * Math.sqrt(zoom)) * P.dpr;
  const cell = thumbPx > 40 ? 64 : 32;
  const useThumbs = P.thumbs !== false && vis.count <= THUMB_LIMIT;
  const keys = useThumbs ? vis.atlases.map((a) => `${cell}:${a}`) : [];
  if (useThumbs) for (const a of vis.atlases) requestAtlas(a, cell);  // fetched: what the stage shows
  // drawn: every loaded atlas of the stage and its margin (the other cell size while a sharper one loads)
  const other = cell === 64 ? 32 : 64;
  const drawKeys = !useThumbs ? [] : vis.region.map((a) => (P.loaded.has(`${cell}:${a}`) ? `${cell}:${a}` : `${other}:${a}`)).filter((k) => P.loaded.has(k));
  P.rendered = { tx: v.tx, ty: v.ty, scale: v.scale };
  setShift(0, 0);
  const drawn = P.renderer.draw({ scale: v.scale, tx: v.tx + P.M, ty: v.ty + P.M, pointSize: Math.min(14, P.basePoint * Math.pow(zoom, 0.3)) * P.dpr,
    thumbPx, atlases: drawKeys, border: P.colour && P.colour.kind === "category" ? 0.08 : 0 });
  P.thumbPx = thumbPx;
  drawOverlay(thumbPx);
  const dt = performance.now() - t0;
  P.frames.push(dt);
  if (P.frames.length > 600) P.frames.splice(0, 300);
  P.thumbsDrawn = drawn;
  P.visible = vis.count;
  if (P.firstPoints === null) P.firstPoints = performance.now();
  if (P.firstThumbs === null && useThumbs && keys.length && keys.every((k) => P.loaded.has(k))) P.firstThumbs = performance.now();
  P.hud.textContent = `${P.renderer.kind} · ${P.n.toLocaleString()} points · ${vis.count.toLocaleString()} visible` +
    (useThumbs ? ` · ${drawn} thumbnails` : " · zoom in for thumbnails") + ` · ${dt.toFixed(1)} ms`;
  if (P.onView) P.onView();
}

function requestAtlas(a, cell) {
  const key = `${cell}:${a}`;
  if (P.loaded.has(key) || P.pending.has(key)) return;
  if (P.fetching >= MAX_FETCH) { P.waiting = true; return; }
  P.pending.add(key);
  P.fetching++;
  const storeAtStart = P.store, worldAtStart = P.world;
  const img = new Image();
  img.onload = () => {
    P.fetching--; P.pending.delete(key);
    if (P.store !== storeAtStart || P.world !== worldAtStart) return;
    const per = P.info.atlas.per_atlas;
    const rec = { img, cell, side: P.info.atlas.per_row, first: a * per, count: Math.min(per, P.n - a * per), order: P.order };
    P.renderer.addAtlas(key, rec);
    P.loaded.set(key, rec);
    requestDraw();
  };
  img.onerror = () => { P.fetching--; P.pending.delete(key); };
  img.src = `/api/projector/atlas.png?${P.atlasQuery}&atlas=${a}&cell=${cell}&v=${P.info.version}`;
}

export function drawOverlay(thumbPx) {
  const ctx = P.overlay.getContext("2d");
  ctx.clearRect(0, 0, P.W, P.H);
  const hidden = (i) => P.rgba && P.rgba[4 * i + 3] === 0;  // outside an isolated selection
  const ring = (i, colour, width, r) => {
    const [x, y] = devPos(i);
    if (Number.isNaN(x) || hidden(i)) return;
    ctx.strokeStyle = colour; ctx.lineWidth = width * P.dpr;
    if (P.thumbsDrawn) ctx.strokeRect(x - r, y - r, 2 * r, 2 * r);
    else { ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke(); }
  };
  const r = P.thumbsDrawn ? thumbPx / 2 + 2 * P.dpr : 8 * P.dpr;
  const lift = (i) => {  // the focused / hovered thumbnail drawn on top of its neighbours
    if (!P.thumbsDrawn || i === null || i === undefined || hidden(i)) return;
    const per = P.info.atlas.per_atlas, a = Math.floor(P.slot[i] / per);
    const rec = P.loaded.get(`64:${a}`) || P.loaded.get(`32:${a}`);
    if (!rec) return;
    const j = P.slot[i] - rec.first, [x, y] = devPos(i);
    ctx.drawImage(rec.img, (j % rec.side) * rec.cell, Math.floor(j / rec.side) * rec.cell, rec.cell, rec.cell,
      x - thumbPx / 2, y - thumbPx / 2, thumbPx, thumbPx);
  };
  lift(P.focus);
  lift(P.hover);
  if (P.neighbors) for (const nb of P.neighbors.neighbors) ring(nb.index, "#2563eb", 2, r);
  if (P.focus !== null) ring(P.focus, "#c2410c", 3, r + 2 * P.dpr);
  if (P.hover !== null && P.hover !== undefined) ring(P.hover, "#111", 1.5, r);
  if (P.lasso && P.lasso.length > 1) {
    ctx.strokeStyle = "#c2410c"; ctx.lineWidth = 1.5 * P.dpr; ctx.setLineDash([5, 4]);
    ctx.beginPath(); ctx.moveTo(P.lasso[0][0], P.lasso[0][1]);
    for (const [x, y] of P.lasso) ctx.lineTo(x, y);
    ctx.closePath(); ctx.stroke(); ctx.setLineDash([]);
    ctx.fillStyle = "#c2410c14"; ctx.fill();
  }
}
