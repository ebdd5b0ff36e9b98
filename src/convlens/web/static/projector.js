// convlens explorer: the embedding projector (/projector). Maps are computed on the server (POST
// /api/projector/project, a job); the page receives raw float32 coordinates (coords.bin) and 16 x 16
// thumbnail atlases (atlas.png) for what is visible, and draws with WebGL (points and textured quads)
// or, without WebGL, with Canvas2D (ImageData points + drawImage). Its parts are ES modules under
// static/projector/: state, renderers, view (drawing, atlases), scatter3d (the rotatable 3-D view),
// colours, mouse (zoom, pan, lasso, isolate), side (path, label, neighbours, why-similar), snapshot (PNG
// export, test hooks). The URL records everything the view shows (map, colour, point, zoom / camera,
// selection or search, isolation), so a reload or a bookmark restores it. The word neighbours: words.js.
import { applyColours, loadColours } from "./projector/colours.js";
import { dataPanel } from "./projector/data.js";
import { setIsolate, setMode, setSelection, wireMouse } from "./projector/mouse.js";
import { Canvas2DRenderer, GLRenderer, softwareWebGL } from "./projector/renderers.js";
import { resetCamera, setPoints3d } from "./projector/scatter3d.js";
import { focusPoint, renderSide } from "./projector/side.js";
import { exportPng } from "./projector/snapshot.js";
import { P, decodeRows, encodeRows, mapParams, qs, query, rowInfo } from "./projector/state.js";
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
.proj .selthumbs img { width: 36px; height: 36px; object-fit: cover; margin: 1px; }
.proj .stage canvas.s3d { display: none; }
.proj .stage.three canvas.s3d { display: block; }
.proj .stage.three canvas.main, .proj .stage.three canvas.under { visibility: hidden; }
.proj .ident { font-size: 12px; word-break: break-all; margin-top: 4px; }
.proj .search { display: flex; gap: 4px; margin-bottom: 6px; } .proj .search input { flex: 1; min-width: 0; }
.proj p.links { font-size: 13px; margin: 6px 0; }
@media (max-width: 1100px) { .proj { grid-template-columns: 1fr; } .proj .stage { height: 520px; order: -1; } }`;

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
    CL.el("label", {}, " in ", CL.el("select", { name: "dims", "data-testid": "dims" },
      CL.el("option", { value: "2" }, "2-D"), CL.el("option", { value: "3" }, "3-D (rotatable)"))),
    CL.el("label", {}, "Seed ", num("seed", q.get("seed") || 0, 0, 2147483647)),
    CL.el("label", { class: "p-tsne" }, "Perplexity ", num("perplexity", q.get("perplexity") || 30, 2, 100, "any")),
    CL.el("label", { class: "p-tsne" }, "Iterations ", num("n_iter", q.get("n_iter") || 500, 50, 2000)),
    CL.el("label", { class: "p-umap" }, "Neighbours ", num("n_neighbors", q.get("n_neighbors") || 15, 2, 200)),
    CL.el("button", { class: "primary", type: "submit" }, "Compute map"), " ",
    CL.el("progress", { max: 1, value: 0, style: "width:90px;visibility:hidden" }));
  P.form = form.elements;
  form.elements.store.value = stores.some((s) => s.name === q.get("store")) ? q.get("store") : stores[0].name;
  form.elements.method.value = ["pca", "tsne", "umap"].includes(q.get("method")) ? q.get("method") : "pca";
  form.elements.dims.value = q.get("dims") === "3" ? "3" : "2";
  P.progress = form.querySelector("progress");
  P.paramsBox = CL.el("pre", { class: "params" }, "");
  P.colourSel = CL.el("select", { name: "colour" }, CL.el("option", { value: "" }, "none"),
    ["label", "folder", "width", "height"].map((c) => CL.el("option", { value: c }, c)));
  P.colourSel.value = q.has("colour") ? q.get("colour") : "label";
  P.legend = CL.el("div", { class: "legend" });
  P.modeSel = CL.el("div", {}, ["pan", "lasso"].map((m) => CL.el("label", { style: "display:inline;margin-right:8px" },
    CL.el("input", { type: "radio", name: "mode", value: m, checked: m === "pan", onchange: () => setMode(m) }), m === "pan" ? "zoom / pan" : "lasso")));
  P.selInfo = CL.el("div", { class: "selinfo muted" }, "No selection.");
  P.searchBox = CL.el("input", { type: "search", name: "search", placeholder: "path or label, or #row", "data-testid": "search",
    value: q.get("q") || "" });
  const search = CL.el("form", { class: "search", onsubmit: (e) => { e.preventDefault(); runSearch(P.searchBox.value); } },
    P.searchBox, CL.el("button", { type: "submit" }, "Find"));
  P.csvLink = CL.el("a", { href: "#", download: "" }, "coordinates (CSV)");
  const controls = CL.el("div", { class: "panel" },
    CL.el("h3", {}, "Map"), form, P.paramsBox,
    CL.el("h3", {}, "Colour by"), P.colourSel, P.legend,
    CL.el("h3", { style: "margin-top:8px" }, "Mouse"), P.modeSel,
    CL.el("button", { type: "button", onclick: () => { fitView(); if (P.dims === 3) resetCamera(); requestDraw(); } }, "Reset view"),
    CL.el("h3", { style: "margin-top:8px" }, "Search"), search,
    CL.el("h3", { style: "margin-top:8px" }, "Selection"), P.selInfo,
    CL.el("h3", { style: "margin-top:8px" }, "Data"), dataPanel(),
    CL.el("h3", { style: "margin-top:8px" }, "Export"),
    CL.el("div", {}, P.csvLink), CL.el("div", {}, CL.el("a", { href: "#", onclick: (e) => { e.preventDefault(); exportPng(); } }, "view (PNG)")));

  P.stage = CL.el("div", { class: "stage pan", "data-testid": "projector-stage" });
  P.canvas = CL.el("canvas", { class: "main", "data-testid": "projector-canvas" });
  P.overlay = CL.el("canvas", { class: "overlay" });
  P.tip = CL.el("div", { class: "tip" });
  P.hud = CL.el("div", { class: "hud" });
  P.canvas3d = CL.el("canvas", { class: "s3d", "data-testid": "projector-canvas-3d" });
  P.stage.append(P.canvas, P.canvas3d, P.overlay, P.tip, P.hud);
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
  form.elements.dims.addEventListener("change", () => computeMap());
  form.elements.store.addEventListener("change", () => loadStore().then(computeMap).catch((err) => CL.showError(P.side, err)));
  P.colourSel.addEventListener("change", () => loadColours().then(() => { syncUrl(); requestDraw(); })
    .catch((err) => CL.showError(P.legend, err)));
  P.onChange = syncUrl;
  let viewTimer = null;
  P.onView = () => { clearTimeout(viewTimer); viewTimer = setTimeout(syncUrl, 250); };
  P.restore = q;  // applied once the first map is drawn
  P.space = q.get("space") === "map" ? "map" : "original";
  P.k = Math.max(1, Math.min(100, +q.get("k") || 10));
  await loadStore();
  await computeMap();
}

async function runSearch(text) {
  text = text.trim();
  if (!text) { setSelection(null); return; }
  try {
    const r = await CL.api(`/api/projector/search?store=${encodeURIComponent(P.store)}&q=${encodeURIComponent(text)}`);
    setSelection(r.indices.length ? r.indices : null, text);
  } catch (err) { CL.showError(P.selInfo, err); }
}

// What the URL records beyond the map: colour, point, view (2-D: zoom and centre; 3-D: camera),
// selection (as the search that made it, or its rows), isolation, the neighbours' space and k.
function syncUrl() {
  if (!P.ready && P.restore) return;  // still restoring: keep the URL as it was given
  const u = new URLSearchParams(query());
  if (P.colourSel.value !== "label") u.set("colour", P.colourSel.value);
  if (P.focus !== null && P.focus !== undefined) u.set("point", P.focus);
  if (P.dims === 3 && P.cam) u.set("cam", [P.cam.yaw, P.cam.pitch, P.cam.zoom].map((x) => +x.toFixed(4)).join(","));
  else if (P.view && P.view.base) {
    const v = P.view, z = v.scale / v.base, cx = (P.W / 2 - v.tx) / v.scale, cy = (P.H / 2 - v.ty) / v.scale;
    if (Math.abs(z - 1) > 1e-3 || Math.abs(cx - 0.5) > 1e-4 || Math.abs(cy - 0.5) > 1e-4) u.set("view", [z, cx, cy].map((x) => +x.toFixed(5)).join(","));
  }
  if (P.search) u.set("q", P.search);
  else if (P.selection) { const rows = encodeRows(P.selection); if (rows.length < 6000) u.set("sel", rows); }
  if (P.isolate) u.set("iso", "1");
  if (P.focus !== null && P.focus !== undefined) {
    if (P.space === "map") u.set("space", "map");
    if (P.k && P.k !== 10) u.set("k", P.k);
  }
  const r = qs().get("renderer");
  if (r) u.set("renderer", r);
  const next = `/projector?${u}`;
  if (location.pathname + location.search !== next) history.replaceState(null, "", next);
  setTitle();
}

function setTitle() {
  const m = { pca: "PCA", tsne: "t-SNE", umap: "UMAP" }[P.form.method.value];
  const key = `${P.store}:${P.focus}`;
  const row = P.focus !== null && P.focus !== undefined ? P.rows.get(key) : null;
  let point = "";
  if (row) row.then((r) => { if (`${P.store}:${P.focus}` === key) document.title = title(m, `#${P.focus} ${r.label || ""}`.trim()); }).catch(() => {});
  else if (P.focus !== null && P.focus !== undefined) point = `#${P.focus}`;
  document.title = title(m, point);
}
const title = (m, point) => `${point ? `${point} · ` : ""}${P.store} · ${m}${P.dims === 3 ? " 3-D" : ""} · convlens projector`;

// The first map of the page: the rest of the URL's state (once).
async function restoreFromUrl() {
  const q = P.restore;
  P.restore = null;
  if (!q) return;
  const view = (q.get("view") || "").split(",").map(Number);
  if (P.dims === 2 && view.length === 3 && view.every(Number.isFinite) && view[0] > 0) {
    const v = P.view, s = v.base * view[0];
    P.view = { ...v, scale: s, tx: P.W / 2 - view[1] * s, ty: P.H / 2 - view[2] * s };
  }
  const cam = (q.get("cam") || "").split(",").map(Number);
  if (P.dims === 3 && cam.length === 3 && cam.every(Number.isFinite) && cam[2] > 0) P.cam = { yaw: cam[0], pitch: cam[1], zoom: cam[2] };
  if (q.get("q")) await runSearch(q.get("q"));
  else if (q.get("sel")) { const rows = decodeRows(q.get("sel"), P.n); if (rows.length) setSelection(rows); }
  if (q.get("iso") === "1" && P.selection) {
    const keep = P.view;
    setIsolate(true);
    if (q.get("view")) P.view = keep;  // the bookmarked zoom wins over "fit the selection"
  }
  const point = Number(q.get("point"));
  if (q.get("point") !== null && Number.isInteger(point) && point >= 0 && point < P.n) {
    P.focus = point;
    rowInfo(point).catch(() => {});
  }
}

async function loadStore() {
  P.store = P.form.store.value;
  P.info = await CL.api(`/api/projector/info?store=${encodeURIComponent(P.store)}`);
  P.n = P.info.count;
  P.world = null;
  P.focus = null; P.neighbors = null; P.selection = null; P.isolate = false; P.search = "";
  if (P.selInfo) P.selInfo.replaceChildren("No selection.");
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
    const dims = +(r.headers.get("X-Dims") || 2);
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
    setPoints(xy, dims);
    if (P.restore) await restoreFromUrl();
    P.ready = true;
    syncUrl();
    if (P.focus !== null && P.focus !== undefined) focusPoint(P.focus);  // its neighbours in this map
    requestDraw();
  } catch (err) {
    P.error = String(err.message || err);
    CL.showError(P.side, err);
    P.paramsBox.textContent = "";
    P.ready = P.ready || !!P.world;
  } finally {
    P.progress.style.visibility = "hidden";
  }
}

function setPoints(xy, dims = 2) {
  const n = xy.length / dims;
  P.dims = dims;
  P.stage.classList.toggle("three", dims === 3);
  if (dims === 3) { setPoints3d(xy); if (!P.cam) resetCamera(); }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = xy[dims * i], y = xy[dims * i + 1];
    if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
  }
  const span = Math.max(x1 - x0, y1 - y0) || 1, cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const world = new Float32Array(2 * n);  // [0, 1]^2, y pointing down
  for (let i = 0; i < n; i++) {
    world[2 * i] = (xy[dims * i] - cx) / span + 0.5;   // the 3-D view's first two axes: hit grid, atlases
    world[2 * i + 1] = 0.5 - (xy[dims * i + 1] - cy) / span;
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

P.setCamera = (yaw, pitch, zoom) => { P.cam = { yaw, pitch, zoom: zoom ?? P.cam.zoom }; requestDraw(); };

CL.register({ name: "projector", title: "Projector", path: "/projector", match: (p) => p.startsWith("/projector"), render: renderProjector });
