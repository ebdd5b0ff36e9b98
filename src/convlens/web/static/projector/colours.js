// convlens projector: colours of the points by a metadata column (GET /api/projector/colours), the
// legend, and the selection's dimming.
import { DEFAULT_RGB, P, PALETTE } from "./state.js";
import { requestDraw } from "./view.js";

export async function loadColours() {
  const col = P.colourSel.value;
  P.colour = col ? await CL.api(`/api/projector/colours?store=${encodeURIComponent(P.store)}&column=${col}`) : null;
  if (P.colour) {
    const raw = atob(P.colour.kind === "category" ? P.colour.codes : P.colour.values);
    const bytes = Uint8Array.from(raw, (c) => c.charCodeAt(0));
    P.colour.data = P.colour.kind === "category" ? bytes : new Float32Array(bytes.buffer);
  }
  renderLegend();
  applyColours();
}

export function rgbOf(i) {
  const c = P.colour;
  if (!c) return DEFAULT_RGB;
  if (c.kind === "category") return PALETTE[c.data[i] % PALETTE.length];
  const t = c.max > c.min ? (c.data[i] - c.min) / (c.max - c.min) : 0.5;  // dark blue -> yellow
  return [Math.round(68 + t * (253 - 68)), Math.round(1 + t * (231 - 1)), Math.round(84 + t * (37 - 84))];
}

export function applyColours() {
  if (!P.world) return;
  const rgba = new Uint8Array(P.n * 4);
  const sel = P.selection ? new Uint8Array(P.n) : null;
  if (sel) for (const i of P.selection) sel[i] = 1;
  for (let i = 0; i < P.n; i++) {
    const c = rgbOf(i);
    rgba[4 * i] = c[0]; rgba[4 * i + 1] = c[1]; rgba[4 * i + 2] = c[2];
    rgba[4 * i + 3] = sel && !sel[i] ? (P.isolate ? 0 : 40) : 255;  // isolated: only the selection is drawn
  }
  P.rgba = rgba;
  P.renderer.setColours(rgba);
  requestDraw();
}

export function renderLegend() {
  const c = P.colour;
  if (!c) { P.legend.replaceChildren(); return; }
  if (c.kind === "category") {
    P.legend.replaceChildren(...c.categories.map((name, k) => CL.el("div", {},
      CL.el("i", { style: `background:rgb(${PALETTE[k % PALETTE.length].join(",")})` }), `${name} (${c.counts[k]})`)));
  } else {
    P.legend.replaceChildren(CL.el("div", {}, CL.el("i", { style: "background:rgb(68,1,84)" }), String(c.min), " … ",
      CL.el("i", { style: "background:rgb(253,231,37)" }), String(c.max)));
  }
}
