// convlens projector: the mouse on the map: zoom (wheel), pan (drag), hover (a tooltip with the
// thumbnail), click (focus a point), lasso (select the points inside).
import { applyColours } from "./colours.js";
import { pick3d, rotate3d, zoom3d } from "./scatter3d.js";
import { focusPoint } from "./side.js";
import { P, labelOf, rowInfo, shortPath, thumbUrl } from "./state.js";
import { devPos, fitSelection, fitView, panBy, requestDraw } from "./view.js";

export function setMode(m) { P.mode = m; P.stage.className = `stage ${m}`; }

function pick(px, py) {  // device px -> nearest point index within the hit radius, or null
  if (P.dims === 3) return pick3d(px, py);
  const v = P.view, wx = (px - v.tx) / v.scale, wy = (py - v.ty) / v.scale;
  const zoom = v.scale / v.base;
  const rPx = P.thumbsDrawn ? Math.min(160, P.baseThumb * Math.sqrt(zoom)) * P.dpr / 2 : 6 * P.dpr;
  const rw = rPx / v.scale, G = P.G;
  const gx0 = Math.max(0, Math.floor((wx - rw) * G)), gx1 = Math.min(G - 1, Math.floor((wx + rw) * G));
  const gy0 = Math.max(0, Math.floor((wy - rw) * G)), gy1 = Math.min(G - 1, Math.floor((wy + rw) * G));
  let best = null, bd = Infinity;
  for (let gy = gy0; gy <= gy1; gy++) for (let gx = gx0; gx <= gx1; gx++) {
    const c = gy * G + gx;
    for (let k = P.gridStart[c]; k < P.gridStart[c + 1]; k++) {
      const i = P.gridOrder[k], dx = Math.abs(P.world[2 * i] - wx), dy = Math.abs(P.world[2 * i + 1] - wy);
      if (dx > rw || dy > rw || P.rgba[4 * i + 3] === 0) continue;  // hidden points are not picked
      const d = dx * dx + dy * dy;
      if (d < bd || (d === bd && i > best)) { bd = d; best = i; }
    }
  }
  return best;
}

export function wireMouse() {
  P.mode = "pan";
  let drag = null, dragPrev = null;
  const pos = (e) => { const r = P.stage.getBoundingClientRect(); return [(e.clientX - r.left) * P.dpr, (e.clientY - r.top) * P.dpr]; };
  P.stage.addEventListener("wheel", (e) => {
    if (!P.view) return;
    e.preventDefault();
    const [x, y] = pos(e), f = Math.exp(-e.deltaY * 0.0015), v = P.view;
    if (P.dims === 3) { zoom3d(f); requestDraw(); return; }
    const ns = Math.max(v.base * 0.2, Math.min(v.base * 5000, v.scale * f)), k = ns / v.scale;
    v.tx = x - (x - v.tx) * k; v.ty = y - (y - v.ty) * k; v.scale = ns;
    requestDraw();
  }, { passive: false });
  P.stage.addEventListener("mousedown", (e) => {
    if (!P.view || e.button !== 0) return;
    const [x, y] = pos(e);
    drag = { x, y, x0: x, y0: y, moved: false };
    dragPrev = [x, y];
    if (P.mode === "lasso") P.lasso = [[x, y]];
  });
  window.addEventListener("mousemove", (e) => {
    if (!P.view) return;
    const [x, y] = pos(e);
    if (drag) {
      if (!dragPrev) dragPrev = [drag.x, drag.y];
      if (Math.abs(x - drag.x0) + Math.abs(y - drag.y0) > 3 * P.dpr) drag.moved = true;
      if (P.mode === "lasso") P.lasso.push([x, y]);
      drag.x = x; drag.y = y;
      hideTip();
      if (P.mode === "lasso") requestDraw();
      else if (P.dims === 3) { rotate3d((x - dragPrev[0]) * 0.008 / P.dpr, (y - dragPrev[1]) * 0.008 / P.dpr); requestDraw(); }
      else panBy(x - dragPrev[0], y - dragPrev[1]);
      dragPrev = [x, y];
      return;
    }
    if (e.target !== P.overlay && e.target !== P.canvas && !P.stage.contains(e.target)) return;
    const i = pick(x, y);
    if (i !== P.hover) { P.hover = i; requestDraw(); }
    if (i === null) hideTip(); else showTip(i, x / P.dpr, y / P.dpr);
  });
  window.addEventListener("mouseup", () => {
    if (!drag) return;
    const d = drag;
    drag = null;
    if (P.mode === "lasso" && d.moved) { finishLasso(); return; }
    P.lasso = null;
    if (!d.moved) {
      const i = pick(d.x0, d.y0);
      if (i !== null) focusPoint(i);
    }
    requestDraw();
  });
  P.stage.addEventListener("mouseleave", () => { P.hover = null; hideTip(); requestDraw(); });
}

function showTip(i, x, y) {
  if (P.tipFor !== i) {
    const text = CL.el("div", {}, `#${i} ${labelOf(i)}`);
    P.tip.replaceChildren(CL.el("img", { src: thumbUrl(i), alt: `#${i}` }), text);
    P.tipFor = i;
    rowInfo(i).then((r) => { if (P.tipFor === i) text.replaceChildren(`#${i} ${r.label || ""}`, CL.el("br"), CL.el("small", {}, shortPath(r.path))); })
      .catch(() => {});
  }
  const r = P.stage.getBoundingClientRect();
  P.tip.style.left = `${Math.min(x + 14, r.width - 110)}px`;
  P.tip.style.top = `${Math.min(y + 14, r.height - 130)}px`;
  P.tip.style.display = "block";
}
function hideTip() { P.tip.style.display = "none"; }

function finishLasso() {  // in device px: works for the 2-D and the 3-D view alike
  const poly = P.lasso;
  P.lasso = null;
  let bx0 = Infinity, bx1 = -Infinity, by0 = Infinity, by1 = -Infinity;
  for (const [x, y] of poly) { bx0 = Math.min(bx0, x); bx1 = Math.max(bx1, x); by0 = Math.min(by0, y); by1 = Math.max(by1, y); }
  const sel = [];
  for (let i = 0; i < P.n; i++) {
    if (P.rgba[4 * i + 3] === 0) continue;
    const [x, y] = devPos(i);
    if (!(x >= bx0 && x <= bx1 && y >= by0 && y <= by1)) continue;
    let inside = false;
    for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
      const [xa, ya] = poly[a], [xb, yb] = poly[b];
      if ((ya > y) !== (yb > y) && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inside = !inside;
    }
    if (inside) sel.push(i);
  }
  setSelection(sel.length ? sel : null);
}

export function setSelection(sel, search = "") {
  P.selection = sel;
  P.search = sel ? search : "";
  if (!sel) P.isolate = false;
  applyColours();
  if (P.onChange) P.onChange();
  if (!sel) { P.selInfo.replaceChildren(search ? `No row matches “${search}”.` : "No selection."); return; }
  const counts = {};
  for (const i of sel) { const l = labelOf(i) || "(none)"; counts[l] = (counts[l] || 0) + 1; }
  const top = !P.colour ? "" : ": " + Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([l, c]) => `${l} ${c}`).join(", ");
  const d = P.dims, axes = ["x", "y", "z"].slice(0, d);
  const csv = `index,${axes.join(",")},label\n` + sel.map((i) => `${i},${axes.map((_, a) => P.xy[d * i + a]).join(",")},"${(labelOf(i) || "").replace(/"/g, '""')}"`).join("\n") + "\n";
  const url = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
  const isolate = CL.el("button", { type: "button", "data-testid": "isolate", title: "draw only the selection (again: every point)",
    onclick: () => setIsolate(!P.isolate) }, P.isolate ? "show all" : `isolate ${sel.length}`);
  P.selInfo.replaceChildren(
    CL.el("div", { "data-testid": "selection-count" }, `${sel.length} ${search ? `match${sel.length > 1 ? "es" : ""} of “${search}”` : "selected"}${top}`),
    CL.el("div", { class: "selthumbs" }, sel.slice(0, 24).map((i) => CL.el("img", { src: thumbUrl(i), title: `#${i}`, onclick: () => focusPoint(i) }))),
    CL.el("a", { href: url, download: "selection.csv" }, "selection (CSV)"), " ", isolate, " ",
    CL.el("button", { type: "button", onclick: () => setSelection(null) }, "clear"));
}

export function setIsolate(on) {  // draw only the selection, and bring it into view
  if (!P.selection) on = false;
  P.isolate = on;
  applyColours();
  if (on) fitSelection(P.selection); else fitView();
  const b = P.selInfo.querySelector("[data-testid=isolate]");
  if (b) b.textContent = on ? "show all" : `isolate ${P.selection.length}`;
  if (P.hover !== null && P.hover !== undefined && on && !P.selection.includes(P.hover)) P.hover = null;
  requestDraw();
  if (P.onChange) P.onChange();
}
