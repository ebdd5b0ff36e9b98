// convlens explorer: the embedding projector (/projector). Maps are computed on the server (POST
// /api/projector/project, a job); the page receives raw float32 coordinates (coords.bin) and 16 x 16
// thumbnail atlases (atlas.png) for what is visible, and draws with WebGL (points and textured quads)
// or, without WebGL, with Canvas2D (ImageData points + drawImage). Its parts are ES modules under
// static/projector/: state, renderers, view (drawing, atlases), colours, mouse, side (neighbours,
// why-similar), snapshot (PNG export, test hooks). The word neighbours are static/words.js.
import { applyColours, loadColours } from "./projector/colours.js";
import { setMode, wireMouse } from "./projector/mouse.js";
import { Canvas2DRenderer, GLRenderer, softwareWebGL } from "./projector/renderers.js";
import { renderSide } from "./projector/side.js";
import { exportPng } from "./projector/snapshot.js";
import { P, mapParams, qs, query } from "./projector/state.js";
import { buildGrid, fitView, requestDraw, sizeCanvas } from "./projector/view.js";

const CSS = `
.proj { display: grid; grid-template-columns: 230px minmax(300px, 1fr) 330px; gap: 12px; align-items: start; }
.proj .panel { background: var(--card); border: 1px solid var(--line); border-radius: 6px; padding: 10px; }
.proj .panel h3 { margin: 0 0 6px; font-size: 13px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.proj label { font-size: 13px; }
.proj input[type=number] { width: 80px; }
.proj select { max-width: 200px; }
.proj pre.params { font-size: 11px; background: #f4f4f2; padding: 6px; white-space: pre-wrap; margin: 6px 0; }
.proj .stage { position: relative; height: 660px; border: 1px solid var(--line); border-radius: 6px; background: #fff; overflow: hidden; }
.proj .stage canvas { position: absolute; left: 0; top: 0; width: 100%; height: 100%; }
.proj .stage canvas.overlay { pointer-events: none; }
.proj .stage.lasso { cursor: crosshair; } .proj .stage.pan { cursor: grab; }
.proj .tip { position: absolute; pointer-events: none; background: #fff; border: 1px solid var(--line); border-radius: 4px; padding: 4px; font-size: 11px; box-shadow: 0 2px 6px #0002; display: none; z-index: 3; }
.proj .tip img { width: 96px; height: 96px; display: block; image-rendering: auto; }
.proj .hud { position: absolute; right: 6px; bottom: 4px; font-size: 11px; color: var(--muted); background: #fffc; padding: 0 4px; }
.proj .legend div { font-size: 12px; display: flex; align-items: center; gap: 4px; }
.proj .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; }
.proj .nb { display: grid; grid-template-columns: 40px 1fr auto; gap: 2px 6px; align-items: center; font-size: 12px; }
.proj .nb img { width: 40px; height: 40px; object-fit: cover; cursor: pointer; border-radius: 3px; }
.proj .nb button { padding: 1px 6px; font-size: 11px; }
.proj .focus img.big { width: 160px; height: 160px; object-fit: cover; border-radius: 4px; }
.proj .why img { max-width: 100%; margin-top: 6px; }
.proj .selthumbs img { width: 36px; height: 36px; object-fit: cover; margin: 1px; }`;

function injectCss() {
  if (!document.getElementById("projector-css")) document.head.append(CL.el("style", { id: "projector-css" }, CSS));
}

async function renderProjector(main) {
  injectCss();
  const q = qs();
  const stores = (await CL.api("/api/projector/stores")).stores.filter((s) => !s.error);
  if (!stores.length) {
    main.append(CL.el("div", { class: "card" }, CL.el("h2", {}, "Embedding projector"),
      CL.el("p", {}, "No embedding store. Start the server with ", CL.el("code", {}, "convlens serve --store photos.emb"),
        " (make one with ", CL.el("code", {}, "convlens embed photos/ --out photos.emb"), ")."))); 
    return;
  }
  const num = (name, value, min, max, step) => CL.el("input", { type: "number", name, value, min, max, step: step || 1 });
  const form = CL.el("form", { class: "ctl", onsubmit: (e) => { e.preventDefault(); computeMap(); } },
    CL.el("label", {}, "Store ", CL.el("select", { name: "store" }, stores.map((s) => CL.el("option", { value: s.name }, `${s.name} (${s.count})`)))),
    CL.el("label", {}, "Map ", CL.el("select", { name: "method" }, ["pca", "tsne", "umap"].map((m) =>
      CL.el("option", { value: m }, { pca: "PCA", tsne: "t-SNE", umap: "UMAP" }[m])))),
    CL.el("label", {}, "Seed ", num("seed", q.get("seed") || 0, 0, 2147483647)),
    CL.el("label", { class: "p-tsne" }, "Perplexity ", num("perplexity", q.get("perplexity") || 30, 2, 100, "any")),
    CL.el("label", { class: "p-tsne" }, "Iterations ", num("n_iter", q.get("n_iter") || 500, 50, 2000)),
    CL.el("label", { class: "p-umap" }, "Neighbours ", num("n_neighbors", q.get("n_neighbors") || 15, 2, 200)),
    CL.el("button", { class: "primary", type: "submit" }, "Compute map"), " ",
    CL.el("progress", { max: 1, value: 0, style: "width:90px;visibility:hidden" }));
  P.form = form.elements;
  form.elements.store.value = stores.some((s) => s.name === q.get("store")) ? q.get("store") : stores[0].name;
  form.elements.method.value = ["pca", "tsne", "umap"].includes(q.get("method")) ? q.get("method") : "pca";
  P.progress = form.querySelector("progress");
  P.paramsBox = CL.el("pre", { class: "params" }, "");
  P.colourSel = CL.el("select", { name: "colour" }, CL.el("option", { value: "" }, "none"),
    ["label", "folder", "width", "height"].map((c) => CL.el("option", { value: c }, c)));
  P.colourSel.value = q.has("colour") ? q.get("colour") : "label";
  P.legend = CL.el("div", { class: "legend" });
  P.modeSel = CL.el("div", {}, ["pan", "lasso"].map((m) => CL.el("label", { style: "display:inline;margin-right:8px" },
    CL.el("input", { type: "radio", name: "mode", value: m, checked: m === "pan", onchange: () => setMode(m) }), m === "pan" ? "zoom / pan" : "lasso")));
  P.selInfo = CL.el("div", { class: "selinfo muted" }, "No selection.");
  P.csvLink = CL.el("a", { href: "#", download: "" }, "coordinates (CSV)");
  const controls = CL.el("div", { class: "panel" },
    CL.el("h3", {}, "Map"), form, P.paramsBox,
    CL.el("h3", {}, "Colour by"), P.colourSel, P.legend,
    CL.el("h3", { style: "margin-top:8px" }, "Mouse"), P.modeSel,
    CL.el("button", { type: "button", onclick: () => { fitView(); requestDraw(); } }, "Reset view"),
    CL.el("h3", { style: "margin-top:8px" }, "Selection"), P.selInfo,
    CL.el("h3", { style: "margin-top:8px" }, "Export"),
    CL.el("div", {}, P.csvLink), CL.el("div", {}, CL.el("a", { href: "#", onclick: (e) => { e.preventDefault(); exportPng(); } }, "view (PNG)")));

  P.stage = CL.el("div", { class: "stage pan", "data-testid": "projector-stage" });
  P.canvas = CL.el("canvas", { class: "main", "data-testid": "projector-canvas" });
  P.overlay = CL.el("canvas", { class: "overlay" });
  P.tip = CL.el("div", { class: "tip" });
  P.hud = CL.el("div", { class: "hud" });
  P.stage.append(P.canvas, P.overlay, P.tip, P.hud);
  P.side = CL.el("div", { class: "panel side" }, CL.el("h3", {}, "Point"), CL.el("p", { class: "muted" }, "Hover a point to see its image; click it for its neighbours."));
  main.append(CL.el("div", { class: "proj" }, controls, P.stage, P.side));

  const want = qs().get("renderer");
  try {
    if (want === "canvas2d") throw new Error("canvas2d requested");
    // auto: WebGL; on a software WebGL (no GPU) the points go to a 2D canvas underneath
    const probe = document.createElement("canvas").getContext("webgl");
    if (!probe) throw new Error("no WebGL");
    const hybrid = want !== "webgl" && softwareWebGL(probe);
    probe.getExtension("WEBGL_lose_context")?.loseContext();
    let under = null;
    if (hybrid) { under = CL.el("canvas", { class: "under" }); P.canvas.before(under); }
    P.renderer = new GLRenderer(P.canvas, under);
  } catch (e) {
    P.stage.querySelectorAll("canvas.under").forEach((c) => c.remove());
    P.canvas.replaceWith(P.canvas = CL.el("canvas", { class: "main", "data-testid": "projector-canvas" }));
    P.renderer = new Canvas2DRenderer(P.canvas);
  }
  P.hudBase = P.renderer.kind;
  wireMouse();
  new ResizeObserver(() => { sizeCanvas(); requestDraw(); }).observe(P.stage);
  sizeCanvas();
  const showParams = () => {
    const m = form.elements.method.value;
    form.querySelectorAll(".p-tsne").forEach((x) => { x.style.display = m === "tsne" ? "" : "none"; });
    form.querySelectorAll(".p-umap").forEach((x) => { x.style.display = m === "umap" ? "" : "none"; });
  };
  showParams();
  form.elements.method.addEventListener("change", () => { showParams(); computeMap(); });
  form.elements.store.addEventListener("change", () => loadStore().then(computeMap));
  P.colourSel.addEventListener("change", () => loadColours().then(() => { syncUrl(); requestDraw(); }));
  await loadStore();
  await computeMap();
}

async function loadStore() {
  P.store = P.form.store.value;
  P.info = await CL.api(`/api/projector/info?store=${encodeURIComponent(P.store)}`);
  P.n = P.info.count;
  P.world = null;
  P.focus = null; P.neighbors = null; P.selection = null;
  P.loaded = new Map(); P.pending = new Set(); P.fetching = 0;
  P.renderer.dropAtlases();
  await loadColours();
}

async function computeMap() {
  const p = mapParams();
  P.progress.style.visibility = "visible";
  P.progress.removeAttribute("value");
  P.paramsBox.textContent = `computing ${p.method} on the server…`;
  try {
    const { job } = await CL.api("/api/projector/project", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(p) });
    const done = await CL.follow(job, (j) => {
      if (j.total) P.progress.value = j.done / j.total;
      P.paramsBox.textContent = `computing ${p.method} on the server… ${CL.jobText(j)}`;
    });
    if (done.status !== "done") throw new Error(done.error || `the map job ended: ${done.status}`);
    const r = await fetch(done.result.coords);
    if (!r.ok) throw new Error((await r.json()).error);
    const xy = new Float32Array(await r.arrayBuffer());
    const ro = await fetch(done.result.order);  // atlas slots: rows along a Z-order curve of the map
    if (!ro.ok) throw new Error((await ro.json()).error);
    P.order = new Uint32Array(await ro.arrayBuffer());
    P.slot = new Uint32Array(P.order.length);
    for (let s = 0; s < P.order.length; s++) P.slot[P.order[s]] = s;
    P.atlasQuery = query();
    P.xy = xy;
    P.params = done.result;
    P.paramsBox.textContent = JSON.stringify({ ...done.result.params, seconds: done.result.seconds, points: done.result.count }, null, 1)
      + "\n(recorded in the store's manifest)";
    P.csvLink.href = done.result.csv;
    setPoints(xy);
    syncUrl();
    P.ready = true;
  } catch (err) {
    P.error = String(err.message || err);
    CL.showError(P.side, err);
    P.paramsBox.textContent = "";
  } finally {
    P.progress.style.visibility = "hidden";
  }
}

function syncUrl() {
  const u = new URLSearchParams(query());
  if (P.colourSel.value !== "label") u.set("colour", P.colourSel.value);
  const r = qs().get("renderer");
  if (r) u.set("renderer", r);
  history.replaceState(null, "", `/projector?${u}`);
}

function setPoints(xy) {
  const n = xy.length / 2;
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  const span = Math.max(x1 - x0, y1 - y0) || 1, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const world = new Float32Array(2 * n);  // [0, 1]^2, y pointing down
  for (let i = 0; i < n; i++) {
    world[2 * i] = (xy[2 * i] - cx) / span + 0.5;
    world[2 * i + 1] = 0.5 - (xy[2 * i + 1] - cy) / span;
  }
  P.world = world;
  P.n = n;
  buildGrid();
  P.renderer.setPoints(world);
  P.loaded = new Map(); P.pending = new Set();
  applyColours();
  const area = (P.W / P.dpr) * (P.H / P.dpr);
  P.baseThumb = Math.max(12, Math.min(64, Math.sqrt(area / Math.max(1, n)) * 0.9));
  P.basePoint = n < 1000 ? 7 : n < 20000 ? 5 : 3;
  fitView();
  renderSide();
  requestDraw();
}

CL.register({ name: "projector", title: "Projector", path: "/projector", match: (p) => p.startsWith("/projector"), render: renderProjector });
