// convlens projector: the view as a PNG download, and the hooks tests and benchmarks call on
// window.CLProjector (pixels drawn, frame loops for pan and zoom).
import { rotate3d, zoom3d } from "./scatter3d.js";
import { focusPoint } from "./side.js";
import { BG, P, THUMB_LIMIT } from "./state.js";
import { draw, panBy, requestDraw, toScreen } from "./view.js";

export function exportPng() {
  const c = document.createElement("canvas");
  c.width = P.W; c.height = P.H;
  const ctx = c.getContext("2d");
  draw();  // re-centred, no CSS shift
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, c.width, c.height);
  composite(ctx);
  ctx.drawImage(P.overlay, 0, 0);
  c.toBlob((blob) => {
    const a = CL.el("a", { href: URL.createObjectURL(blob), download: `projector-${P.store}-${P.form.method.value}.png` });
    document.body.append(a); a.click(); a.remove();
  });
}

P.toScreen = toScreen;
function composite(ctx) {  // the drawing of the stage: the 3-D canvas, or the 2-D canvases' window
  if (P.dims === 3) ctx.drawImage(P.canvas3d, 0, 0);
  else P.renderer.composite(ctx, P.M, P.W, P.H);
}
function stagePixels() {  // what the stage shows (drawing canvases only), redrawn without a CSS shift
  draw();
  const c = document.createElement("canvas");
  c.width = P.W; c.height = P.H;
  const ctx = c.getContext("2d");
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, c.width, c.height);
  composite(ctx);
  return ctx;
}
P.drawnPixels = () => {  // pixels of the stage's drawing that differ from the background
  const ctx = stagePixels(), c = ctx.canvas;
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let k = 0; k < d.length; k += 4) if (d[k] !== BG[0] || d[k + 1] !== BG[1] || d[k + 2] !== BG[2]) n++;
  return n;
};
P.pixelAt = (x, y) => {  // CSS px on the stage -> [r, g, b] drawn there
  const ctx = stagePixels();
  return [...ctx.getImageData(Math.round(x * P.dpr), Math.round(y * P.dpr), 1, 1).data.slice(0, 3)];
};
P.allThumbsLoaded = () => P.visible <= THUMB_LIMIT && P.fetching === 0 && P.thumbsDrawn > 0;
// run `act(k)` in `frames` animation frames; resolves with the frame intervals and act's times (ms)
const frameLoop = (frames, act) => new Promise((resolve) => {
  const intervals = [], draws = [];
  let last = null, k = 0;
  const step = (t) => {
    if (last !== null) intervals.push(t - last);
    last = t;
    if (k++ >= frames) { resolve({ intervals, draws }); return; }
    const t0 = performance.now();
    act(k);
    draws.push(performance.now() - t0);
    requestAnimationFrame(step);
  };
  requestAnimationFrame(step);
});
// pan by dx CSS px a frame, as a mouse drag does (a redraw, when needed, in the next frame)
P.benchPan = (frames, dx = 3) => frameLoop(frames, (k) => panBy(dx * P.dpr * (k % 120 < 60 ? 1 : -1), 0));
// zoom in and out around the centre by `factor` a frame: every frame is a full redraw
P.benchZoom = (frames, factor = 1.01) => frameLoop(frames, (k) => { zoomAround(k % 120 < 60 ? factor : 1 / factor); draw(); });
// the 3-D view: orbit by `step` radians a frame, or zoom in and out by `factor` a frame (each a full redraw)
P.benchRotate = (frames, step = 0.01) => frameLoop(frames, () => { rotate3d(step, 0); draw(); });
P.benchZoom3d = (frames, factor = 1.01) => frameLoop(frames, (k) => { zoom3d(k % 120 < 60 ? factor : 1 / factor); draw(); });
const zoomAround = (f) => { const v = P.view, cx = P.W / 2, cy = P.H / 2; v.tx = cx - (cx - v.tx) * f; v.ty = cy - (cy - v.ty) * f; v.scale *= f; };
P.zoom = (factor) => { zoomAround(factor); requestDraw(); };
P.focusPoint = focusPoint;
P.requestDraw = requestDraw;
P.rotate3d = (dyaw, dpitch) => { rotate3d(dyaw, dpitch); requestDraw(); };
