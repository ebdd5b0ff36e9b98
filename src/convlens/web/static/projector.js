// convlens explorer: the embedding projector (/projector) and the word-neighbours panel (/words).
// Maps are computed on the server (POST /api/projector/project, a job); the page receives raw float32
// coordinates (coords.bin) and 16 x 16 thumbnail atlases (atlas.png) for what is visible, and draws
// with WebGL (points and textured quads) or, without WebGL, with Canvas2D (ImageData points + drawImage).
"use strict";
(() => {
  const PALETTE = [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
    [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207], [174, 199, 232], [255, 187, 120],
    [152, 223, 138], [255, 152, 150], [197, 176, 213], [196, 156, 148], [247, 182, 210], [199, 199, 199],
    [219, 219, 141], [158, 218, 229]];
  const DEFAULT_RGB = [49, 101, 156];
  const THUMB_LIMIT = 10000;     // draw thumbnails when at most this many points are visible
  const MAX_FETCH = 6;           // atlases fetched at once
  const BG = [255, 255, 255];

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
  .words textarea { width: 320px; height: 120px; font: inherit; }
  .words pre.out { font-size: 15px; line-height: 1.5; background: var(--card); border: 1px solid var(--line); padding: 10px 14px; border-radius: 6px; min-width: 360px; }
  .words .chips button { margin: 2px; padding: 1px 6px; font-size: 12px; }`;

  function injectCss() {
    if (!document.getElementById("projector-css")) document.head.append(CL.el("style", { id: "projector-css" }, CSS));
  }

  // ---------------------------------------------------------------- renderers
  function compile(gl, type, src) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s));
    return s;
  }
  function program(gl, vs, fs) {
    const p = gl.createProgram();
    gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, vs));
    gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, fs));
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(p));
    const loc = {};
    const n = gl.getProgramParameter(p, gl.ACTIVE_ATTRIBUTES);
    for (let i = 0; i < n; i++) { const a = gl.getActiveAttrib(p, i); loc[a.name] = gl.getAttribLocation(p, a.name); }
    const m = gl.getProgramParameter(p, gl.ACTIVE_UNIFORMS);
    for (let i = 0; i < m; i++) { const u = gl.getActiveUniform(p, i); loc[u.name] = gl.getUniformLocation(p, u.name); }
    return { p, loc };
  }
  const VS_HEAD = `uniform vec2 u_res; uniform float u_scale; uniform vec2 u_trans;
    vec4 clip(vec2 p) { return vec4(p.x / u_res.x * 2.0 - 1.0, 1.0 - p.y / u_res.y * 2.0, 0.0, 1.0); }`;

  function softwareWebGL(gl) {  // SwiftShader / llvmpipe: WebGL emulated on the CPU
    const ext = gl.getExtension("WEBGL_debug_renderer_info");
    const name = ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
    return /swiftshader|llvmpipe|software|softpipe/i.test(String(name));
  }

  // WebGL: points (gl.POINTS) and thumbnails (textured quads, one buffer per atlas). On a software
  // WebGL (no GPU) rasterizing 100k point sprites costs ~60 ms a frame, so the points are then drawn
  // by the Canvas2D renderer on a canvas underneath (`under`) and WebGL draws only the thumbnails.
  class GLRenderer {
    constructor(canvas, under) {
      const gl = canvas.getContext("webgl", { alpha: !!under, premultipliedAlpha: true, preserveDrawingBuffer: true, antialias: false });
      if (!gl) throw new Error("no WebGL");
      this.kind = "webgl";
      this.gl = gl;
      this.canvas = canvas;
      this.software = softwareWebGL(gl);
      this.under = under ? new Canvas2DRenderer(under) : null;
      if (this.under) this.kind = "webgl+2d";
      this.points = program(gl, `attribute vec2 a_pos; attribute vec4 a_col; ${VS_HEAD}
        uniform float u_size; varying vec4 v_col;
        void main() { gl_Position = clip(a_pos * u_scale + u_trans); gl_PointSize = u_size; v_col = a_col; }`,
      `precision mediump float; varying vec4 v_col;
        void main() { vec2 d = gl_PointCoord - 0.5; if (dot(d, d) > 0.25) discard; gl_FragColor = vec4(v_col.rgb * v_col.a, v_col.a); }`);
      this.thumbs = program(gl, `attribute vec2 a_center; attribute vec2 a_corner; attribute vec2 a_uv; attribute vec4 a_col;
        ${VS_HEAD} uniform float u_thumb; varying vec2 v_uv; varying vec2 v_local; varying vec4 v_col;
        void main() { gl_Position = clip(a_center * u_scale + u_trans + a_corner * u_thumb);
          v_uv = a_uv; v_local = a_corner + 0.5; v_col = a_col; }`,
      `precision mediump float; uniform sampler2D u_tex; uniform float u_border;
        varying vec2 v_uv; varying vec2 v_local; varying vec4 v_col;
        void main() {
          if (u_border > 0.0 && (v_local.x < u_border || v_local.y < u_border || v_local.x > 1.0 - u_border || v_local.y > 1.0 - u_border)) {
            gl_FragColor = vec4(v_col.rgb * v_col.a, v_col.a); return; }
          vec4 c = texture2D(u_tex, v_uv); if (c.a < 0.01) discard;
          float a = c.a * v_col.a; gl_FragColor = vec4(c.rgb * a, a); }`);
      this.posBuf = gl.createBuffer();
      this.colBuf = gl.createBuffer();
      this.atlases = new Map();   // key -> {tex, buf, count}
      this.n = 0;
    }
    resize(w, h) { this.canvas.width = w; this.canvas.height = h; this.gl.viewport(0, 0, w, h); if (this.under) this.under.resize(w, h); }
    composite(ctx, m, w, h) { if (this.under) this.under.composite(ctx, m, w, h); ctx.drawImage(this.canvas, m, m, w, h, 0, 0, w, h); }
    setPoints(world) {
      const gl = this.gl;
      if (this.under) this.under.setPoints(world);
      gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuf);
      gl.bufferData(gl.ARRAY_BUFFER, world, gl.STATIC_DRAW);
      this.n = world.length / 2;
      this.world = world;
      this.dropAtlases();
    }
    setColours(rgba) {
      const gl = this.gl;
      gl.bindBuffer(gl.ARRAY_BUFFER, this.colBuf);
      gl.bufferData(gl.ARRAY_BUFFER, rgba, gl.STATIC_DRAW);
      this.rgba = rgba;
      if (this.under) this.under.setColours(rgba);
      for (const a of this.atlases.values()) this.fillQuads(a);
    }
    dropAtlases() {
      for (const a of this.atlases.values()) { this.gl.deleteTexture(a.tex); this.gl.deleteBuffer(a.buf); }
      this.atlases.clear();
    }
    addAtlas(key, atlas) {  // atlas: {img, index, cell, per, side, first, count}
      const gl = this.gl;
      const tex = gl.createTexture();
      gl.bindTexture(gl.TEXTURE_2D, tex);
      gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, atlas.img);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      const rec = { ...atlas, tex, buf: gl.createBuffer() };
      this.fillQuads(rec);
      this.atlases.set(key, rec);
    }
    fillQuads(a) {  // 6 vertices a thumbnail: center(2) corner(2) uv(2) colour(4 bytes as 1 float slot)
      const gl = this.gl, per = a.side, f = 1 / per, inset = 0.5 / (per * a.cell);
      const data = new ArrayBuffer(a.count * 6 * 28);
      const fv = new Float32Array(data), bv = new Uint8Array(data);
      const corners = [[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]];
      for (let j = 0; j < a.count; j++) {
        const i = a.order[a.first + j], u0 = (j % per) * f, v0 = Math.floor(j / per) * f;
        for (let c = 0; c < 6; c++) {
          const o = (j * 6 + c) * 7, [cx, cy] = corners[c];
          fv[o] = this.world[2 * i]; fv[o + 1] = this.world[2 * i + 1]; fv[o + 2] = cx; fv[o + 3] = cy;
          fv[o + 4] = u0 + (cx < 0 ? inset : f - inset); fv[o + 5] = v0 + (cy < 0 ? inset : f - inset);
          bv.set(this.rgba.subarray(4 * i, 4 * i + 4), (o + 6) * 4);
        }
      }
      gl.bindBuffer(gl.ARRAY_BUFFER, a.buf);
      gl.bufferData(gl.ARRAY_BUFFER, data, gl.STATIC_DRAW);
    }
    draw(v) {  // v: {scale, tx, ty (device px), pointSize, thumbPx, atlases: [keys], border}
      const gl = this.gl;
      if (this.under) { this.under.draw({ ...v, atlases: [] }); gl.clearColor(0, 0, 0, 0); }
      else gl.clearColor(BG[0] / 255, BG[1] / 255, BG[2] / 255, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.enable(gl.BLEND);
      gl.blendFunc(gl.ONE, gl.ONE_MINUS_SRC_ALPHA);  // premultiplied colours
      if (!this.under) this.drawPoints(v);
      return this.drawThumbs(v);
    }
    drawPoints(v) {
      const gl = this.gl, P = this.points;
      gl.useProgram(P.p);
      gl.uniform2f(P.loc.u_res, this.canvas.width, this.canvas.height);
      gl.uniform1f(P.loc.u_scale, v.scale);
      gl.uniform2f(P.loc.u_trans, v.tx, v.ty);
      gl.uniform1f(P.loc.u_size, v.pointSize);
      gl.bindBuffer(gl.ARRAY_BUFFER, this.posBuf);
      gl.enableVertexAttribArray(P.loc.a_pos);
      gl.vertexAttribPointer(P.loc.a_pos, 2, gl.FLOAT, false, 0, 0);
      gl.bindBuffer(gl.ARRAY_BUFFER, this.colBuf);
      gl.enableVertexAttribArray(P.loc.a_col);
      gl.vertexAttribPointer(P.loc.a_col, 4, gl.UNSIGNED_BYTE, true, 0, 0);
      gl.drawArrays(gl.POINTS, 0, this.n);
      gl.disableVertexAttribArray(P.loc.a_pos);
      gl.disableVertexAttribArray(P.loc.a_col);
    }
    drawThumbs(v) {
      const gl = this.gl;
      let drawn = 0;
      if (v.atlases.length) {
        const T = this.thumbs;
        gl.useProgram(T.p);
        gl.uniform2f(T.loc.u_res, this.canvas.width, this.canvas.height);
        gl.uniform1f(T.loc.u_scale, v.scale);
        gl.uniform2f(T.loc.u_trans, v.tx, v.ty);
        gl.uniform1f(T.loc.u_thumb, v.thumbPx);
        gl.uniform1f(T.loc.u_border, v.border);
        gl.uniform1i(T.loc.u_tex, 0);
        gl.activeTexture(gl.TEXTURE0);
        const attrs = [["a_center", 2, gl.FLOAT, false, 0], ["a_corner", 2, gl.FLOAT, false, 8],
          ["a_uv", 2, gl.FLOAT, false, 16], ["a_col", 4, gl.UNSIGNED_BYTE, true, 24]];
        for (const key of v.atlases) {
          const a = this.atlases.get(key);
          if (!a) continue;
          gl.bindTexture(gl.TEXTURE_2D, a.tex);
          gl.bindBuffer(gl.ARRAY_BUFFER, a.buf);
          for (const [name, size, type, norm, off] of attrs) {
            gl.enableVertexAttribArray(T.loc[name]);
            gl.vertexAttribPointer(T.loc[name], size, type, norm, 28, off);
          }
          gl.drawArrays(gl.TRIANGLES, 0, a.count * 6);
          drawn += a.count;
        }
        for (const [name] of attrs) gl.disableVertexAttribArray(T.loc[name]);
      }
      return drawn;
    }
  }

  class Canvas2DRenderer {
    constructor(canvas) {
      this.kind = "canvas2d";
      this.canvas = canvas;
      this.ctx = canvas.getContext("2d");
      this.atlases = new Map();
      this.n = 0;
    }
    resize(w, h) {
      this.canvas.width = w; this.canvas.height = h;
      this.img = this.ctx.createImageData(w, h);
      this.u32 = new Uint32Array(this.img.data.buffer);
    }
    setPoints(world) { this.world = world; this.n = world.length / 2; this.atlases.clear(); }
    setColours(rgba) {  // pre-blended with the white background, as one uint32 per point (ABGR in memory)
      this.rgba = rgba;
      this.packed = new Uint32Array(this.n);
      for (let i = 0; i < this.n; i++) {
        const a = rgba[4 * i + 3] / 255;
        const c = [0, 1, 2].map((k) => Math.round(rgba[4 * i + k] * a + BG[k] * (1 - a)));
        this.packed[i] = (255 << 24 | c[2] << 16 | c[1] << 8 | c[0]) >>> 0;
      }
    }
    addAtlas(key, atlas) { this.atlases.set(key, atlas); }
    dropAtlases() { this.atlases.clear(); }
    composite(ctx, m, w, h) { ctx.drawImage(this.canvas, m, m, w, h, 0, 0, w, h); }  // the stage's window
    draw(v) {
      const { ctx, u32, world, packed } = this;
      const W = this.canvas.width, H = this.canvas.height;
      u32.fill(0xffffffff);
      const s = Math.max(1, Math.round(v.pointSize * 0.8)), h = s >> 1;
      for (let i = 0; i < this.n; i++) {
        const x = Math.round(world[2 * i] * v.scale + v.tx) - h, y = Math.round(world[2 * i + 1] * v.scale + v.ty) - h;
        if (x < 0 || y < 0 || x + s > W || y + s > H) continue;
        const c = packed[i];
        for (let dy = 0; dy < s; dy++) { const o = (y + dy) * W + x; for (let dx = 0; dx < s; dx++) u32[o + dx] = c; }
      }
      ctx.putImageData(this.img, 0, 0);
      let drawn = 0;
      const t = v.thumbPx, ht = t / 2;
      for (const key of v.atlases) {
        const a = this.atlases.get(key);
        if (!a) continue;
        for (let j = 0; j < a.count; j++) {
          const i = a.order[a.first + j];
          const x = world[2 * i] * v.scale + v.tx - ht, y = world[2 * i + 1] * v.scale + v.ty - ht;
          if (x > W || y > H || x + t < 0 || y + t < 0) continue;
          ctx.globalAlpha = this.rgba[4 * i + 3] / 255;
          if (v.border > 0) {
            ctx.fillStyle = `rgb(${this.rgba[4 * i]},${this.rgba[4 * i + 1]},${this.rgba[4 * i + 2]})`;
            ctx.fillRect(x, y, t, t);
          }
          const b = v.border * t;
          ctx.drawImage(a.img, (j % a.side) * a.cell, Math.floor(j / a.side) * a.cell, a.cell, a.cell, x + b, y + b, t - 2 * b, t - 2 * b);
          drawn++;
        }
      }
      ctx.globalAlpha = 1;
      return drawn;
    }
  }

  // ---------------------------------------------------------------- the projector view
  const P = window.CLProjector = {
    ready: false, renderer: null, n: 0, frames: [], firstPoints: null, firstThumbs: null, thumbsDrawn: 0,
    selection: null, focus: null, neighbors: null, error: null,
  };

  function qs() { return new URLSearchParams(location.search); }

  function mapParams() {
    const f = P.form;
    const p = { store: P.store, method: f.method.value, seed: +f.seed.value };
    if (p.method === "tsne") { p.perplexity = +f.perplexity.value; p.n_iter = +f.n_iter.value; }
    if (p.method === "umap") p.n_neighbors = +f.n_neighbors.value;
    return p;
  }
  function query(extra = {}) {
    const p = { ...mapParams(), ...extra };
    return new URLSearchParams(Object.entries(p).filter(([, v]) => v !== undefined && v !== null)).toString();
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

  async function loadColours() {
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

  function rgbOf(i) {
    const c = P.colour;
    if (!c) return DEFAULT_RGB;
    if (c.kind === "category") return PALETTE[c.data[i] % PALETTE.length];
    const t = c.max > c.min ? (c.data[i] - c.min) / (c.max - c.min) : 0.5;  // dark blue -> yellow
    return [Math.round(68 + t * (253 - 68)), Math.round(1 + t * (231 - 1)), Math.round(84 + t * (37 - 84))];
  }

  function applyColours() {
    if (!P.world) return;
    const rgba = new Uint8Array(P.n * 4);
    const sel = P.selection ? new Uint8Array(P.n) : null;
    if (sel) for (const i of P.selection) sel[i] = 1;
    for (let i = 0; i < P.n; i++) {
      const c = rgbOf(i);
      rgba[4 * i] = c[0]; rgba[4 * i + 1] = c[1]; rgba[4 * i + 2] = c[2];
      rgba[4 * i + 3] = sel && !sel[i] ? 40 : 255;
    }
    P.rgba = rgba;
    P.renderer.setColours(rgba);
    requestDraw();
  }

  function renderLegend() {
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

  function buildGrid() {  // a uniform grid over [0, 1]^2 for hover / click hit tests
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
  function sizeCanvas() {
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
  function panBy(dx, dy) {  // device px; returns true when the frame needed no redraw
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

  function fitView() {
    const s = Math.min(P.W, P.H) * 0.96 - (P.baseThumb || 0) * P.dpr;  // room for the edge thumbnails
    P.view = { scale: s, tx: P.W / 2 - 0.5 * s, ty: P.H / 2 - 0.5 * s, base: s };
  }

  function toScreen(i) {  // CSS px relative to the stage
    const v = P.view;
    return [(P.world[2 * i] * v.scale + v.tx) / P.dpr, (P.world[2 * i + 1] * v.scale + v.ty) / P.dpr];
  }

  // ------------------------------------------------------------ drawing and atlases
  let drawQueued = false;
  function requestDraw() {
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

  function draw() {
    if (!P.world || !P.view) return;
    const t0 = performance.now();
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

  function drawOverlay(thumbPx) {
    const ctx = P.overlay.getContext("2d");
    ctx.clearRect(0, 0, P.W, P.H);
    const ring = (i, colour, width, r) => {
      const v = P.view, x = P.world[2 * i] * v.scale + v.tx, y = P.world[2 * i + 1] * v.scale + v.ty;
      ctx.strokeStyle = colour; ctx.lineWidth = width * P.dpr;
      if (P.thumbsDrawn) ctx.strokeRect(x - r, y - r, 2 * r, 2 * r);
      else { ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke(); }
    };
    const r = P.thumbsDrawn ? thumbPx / 2 + 2 * P.dpr : 8 * P.dpr;
    const lift = (i) => {  // the focused / hovered thumbnail drawn on top of its neighbours
      if (!P.thumbsDrawn || i === null || i === undefined) return;
      const per = P.info.atlas.per_atlas, a = Math.floor(P.slot[i] / per);
      const rec = P.loaded.get(`64:${a}`) || P.loaded.get(`32:${a}`);
      if (!rec) return;
      const j = P.slot[i] - rec.first, v = P.view, x = P.world[2 * i] * v.scale + v.tx, y = P.world[2 * i + 1] * v.scale + v.ty;
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

  // ------------------------------------------------------------ mouse: zoom, pan, hover, click, lasso
  function setMode(m) { P.mode = m; P.stage.className = `stage ${m}`; }

  function pick(px, py) {  // device px -> nearest point index within the hit radius, or null
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
        if (dx > rw || dy > rw) continue;
        const d = dx * dx + dy * dy;
        if (d < bd || (d === bd && i > best)) { bd = d; best = i; }
      }
    }
    return best;
  }

  function wireMouse() {
    P.mode = "pan";
    let drag = null, dragPrev = null;
    const pos = (e) => { const r = P.stage.getBoundingClientRect(); return [(e.clientX - r.left) * P.dpr, (e.clientY - r.top) * P.dpr]; };
    P.stage.addEventListener("wheel", (e) => {
      if (!P.view) return;
      e.preventDefault();
      const [x, y] = pos(e), f = Math.exp(-e.deltaY * 0.0015), v = P.view;
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
        if (P.mode !== "lasso") panBy(x - dragPrev[0], y - dragPrev[1]); else requestDraw();
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

  function thumbUrl(i) { return `/api/projector/thumb.png?store=${encodeURIComponent(P.store)}&i=${i}`; }
  function labelOf(i) {
    const c = P.colour;
    return c && c.kind === "category" ? c.categories[c.data[i]] : c ? String(c.data[i]) : "";
  }

  function showTip(i, x, y) {
    if (P.tipFor !== i) {
      P.tip.replaceChildren(CL.el("img", { src: thumbUrl(i), alt: `#${i}` }), CL.el("div", {}, `#${i} ${labelOf(i)}`));
      P.tipFor = i;
    }
    const r = P.stage.getBoundingClientRect();
    P.tip.style.left = `${Math.min(x + 14, r.width - 110)}px`;
    P.tip.style.top = `${Math.min(y + 14, r.height - 130)}px`;
    P.tip.style.display = "block";
  }
  function hideTip() { P.tip.style.display = "none"; }

  function finishLasso() {
    const poly = P.lasso.map(([x, y]) => [(x - P.view.tx) / P.view.scale, (y - P.view.ty) / P.view.scale]);
    P.lasso = null;
    let bx0 = Infinity, bx1 = -Infinity, by0 = Infinity, by1 = -Infinity;
    for (const [x, y] of poly) { bx0 = Math.min(bx0, x); bx1 = Math.max(bx1, x); by0 = Math.min(by0, y); by1 = Math.max(by1, y); }
    const sel = [];
    for (let i = 0; i < P.n; i++) {
      const x = P.world[2 * i], y = P.world[2 * i + 1];
      if (x < bx0 || x > bx1 || y < by0 || y > by1) continue;
      let inside = false;
      for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
        const [xa, ya] = poly[a], [xb, yb] = poly[b];
        if ((ya > y) !== (yb > y) && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inside = !inside;
      }
      if (inside) sel.push(i);
    }
    setSelection(sel.length ? sel : null);
  }

  function setSelection(sel) {
    P.selection = sel;
    applyColours();
    if (!sel) { P.selInfo.replaceChildren("No selection."); return; }
    const counts = {};
    for (const i of sel) { const l = labelOf(i) || "(none)"; counts[l] = (counts[l] || 0) + 1; }
    const top = !P.colour ? "" : ": " + Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([l, c]) => `${l} ${c}`).join(", ");
    const csv = "index,x,y,label\n" + sel.map((i) => `${i},${P.xy[2 * i]},${P.xy[2 * i + 1]},"${(labelOf(i) || "").replace(/"/g, '""')}"`).join("\n") + "\n";
    const url = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
    P.selInfo.replaceChildren(
      CL.el("div", { "data-testid": "selection-count" }, `${sel.length} selected${top}`),
      CL.el("div", { class: "selthumbs" }, sel.slice(0, 24).map((i) => CL.el("img", { src: thumbUrl(i), title: `#${i}`, onclick: () => focusPoint(i) }))),
      CL.el("a", { href: url, download: "selection.csv" }, "selection (CSV)"), " ",
      CL.el("button", { type: "button", onclick: () => setSelection(null) }, "clear"));
  }

  // ------------------------------------------------------------ focus: image, neighbours, why-similar
  async function focusPoint(i) {
    P.focus = i;
    P.neighbors = null;
    renderSide();
    await loadNeighbors();
  }

  async function loadNeighbors() {
    const i = P.focus;
    if (i === null) return;
    const space = P.side.querySelector("input[name=space]:checked")?.value || "original";
    const k = +(P.side.querySelector("input[name=k]")?.value || 10);
    try {
      P.neighbors = await CL.api(`/api/projector/neighbors?${query({ i, k, space })}`);
    } catch (err) { CL.showError(P.side, err); return; }
    if (P.focus !== i) return;
    renderNeighbors();
    requestDraw();
  }

  function renderSide() {
    const i = P.focus;
    if (i === null || i === undefined || !P.world) {
      P.side.replaceChildren(CL.el("h3", {}, "Point"), CL.el("p", { class: "muted" }, "Hover a point to see its image; click it for its nearest neighbours."));
      return;
    }
    const spaceSel = CL.el("div", {}, [["original", "original space (cosine)"], ["map", "2-D map (distance)"]].map(([v, t]) =>
      CL.el("label", { style: "display:inline;margin-right:8px" }, CL.el("input", { type: "radio", name: "space", value: v, checked: v === (P.space || "original"),
        onchange: () => { P.space = v; loadNeighbors(); } }), t)));
    P.side.replaceChildren(
      CL.el("h3", {}, `Point #${i}`),
      CL.el("div", { class: "focus" }, CL.el("img", { class: "big", src: thumbUrl(i), alt: `#${i}` }),
        CL.el("div", {}, labelOf(i) ? `${P.colourSel.value}: ${labelOf(i)}` : "")),
      CL.el("h3", { style: "margin-top:8px" }, "Nearest neighbours"), spaceSel,
      CL.el("label", {}, "k ", CL.el("input", { type: "number", name: "k", value: P.k || 10, min: 1, max: 100, onchange: (e) => { P.k = +e.target.value; loadNeighbors(); } })),
      CL.el("div", { class: "nb", "data-testid": "neighbors" }, CL.el("span", { class: "muted" }, "…")),
      CL.el("div", { class: "why" }));
  }

  function renderNeighbors() {
    const box = P.side.querySelector(".nb");
    if (!box || !P.neighbors) return;
    const sc = P.neighbors.space === "original" ? "cosine" : "distance";
    box.replaceChildren(...P.neighbors.neighbors.flatMap((nb) => [
      CL.el("img", { src: thumbUrl(nb.index), alt: `#${nb.index}`, title: "focus this point", onclick: () => focusPoint(nb.index) }),
      CL.el("span", { class: "nbrow", "data-index": nb.index, "data-score": nb.score }, `#${nb.index} ${nb.label || ""}`, CL.el("br"),
        CL.el("b", {}, `${sc} ${nb.score.toFixed(4)}`)),
      P.info.explainable ? CL.el("button", { type: "button", title: "why are these two similar? (Grad-CAM of the cosine)", onclick: () => why(P.focus, nb.index) }, "why?") : CL.el("span"),
    ]));
  }

  async function why(a, b) {
    const box = P.side.querySelector(".why");
    box.replaceChildren(CL.el("p", { class: "muted" }, `why #${a} ~ #${b}: running on the server…`));
    try {
      const { job } = await CL.api("/api/projector/why", { method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ store: P.store, a, b }) });
      const done = await CL.follow(job);
      if (done.status !== "done") throw new Error(done.error || done.status);
      if (P.focus !== a) return;
      box.replaceChildren(CL.el("h3", {}, `Why #${a} ~ #${b}`),
        CL.el("a", { href: done.result.image, target: "_blank", title: "full size" },
          CL.el("img", { src: done.result.image, alt: "why similar", "data-testid": "why-image" })),
        CL.el("div", { class: "muted" }, `cosine ${done.result.cosine.toFixed(4)}, Grad-CAM of the cosine at ${done.result.layer}`));
    } catch (err) { CL.showError(box, err); }
  }

  function exportPng() {
    const c = document.createElement("canvas");
    c.width = P.W; c.height = P.H;
    const ctx = c.getContext("2d");
    draw();  // re-centred, no CSS shift
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, c.width, c.height);
    P.renderer.composite(ctx, P.M, P.W, P.H);
    ctx.drawImage(P.overlay, 0, 0);
    c.toBlob((blob) => {
      const a = CL.el("a", { href: URL.createObjectURL(blob), download: `projector-${P.store}-${P.form.method.value}.png` });
      document.body.append(a); a.click(); a.remove();
    });
  }

  // ------------------------------------------------------------ hooks for tests and benchmarks
  P.toScreen = toScreen;
  function stagePixels() {  // what the stage shows (drawing canvases only), redrawn without a CSS shift
    draw();
    const c = document.createElement("canvas");
    c.width = P.W; c.height = P.H;
    const ctx = c.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, c.width, c.height);
    P.renderer.composite(ctx, P.M, P.W, P.H);
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
  const zoomAround = (f) => { const v = P.view, cx = P.W / 2, cy = P.H / 2; v.tx = cx - (cx - v.tx) * f; v.ty = cy - (cy - v.ty) * f; v.scale *= f; };
  P.zoom = (factor) => { zoomAround(factor); requestDraw(); };
  P.focusPoint = focusPoint;
  P.requestDraw = requestDraw;

  CL.register({ name: "projector", title: "Projector", path: "/projector", match: (p) => p.startsWith("/projector"), render: renderProjector });

  // ---------------------------------------------------------------- the word-neighbours panel
  async function renderWords(main) {
    injectCss();
    const q = qs();
    const text = CL.el("textarea", { name: "q", "data-testid": "words-queries" }, (q.getAll("q").length ? q.getAll("q") : ["麻辣烫", "馄饨", "黄焖鸡"]).join("\n"));
    const topk = CL.el("input", { type: "number", name: "topk", value: q.get("topk") || 10, min: 1, max: 100 });
    const vocab = CL.el("select", { name: "vocab", "data-testid": "words-vocab" },
      ...[["auto", "shipped word vectors (Chinese or English by the queries)"], ["zh", "Chinese word vectors (cnsyn, 129,691 words)"],
          ["en", "English word2vec (GoogleNews, 26,423 words)"], ["food", "food phrases through the e5 sentence encoder"]]
        .map(([v, t]) => CL.el("option", { value: v }, t)));
    vocab.value = q.get("vocab") || "auto";
    const out = CL.el("pre", { class: "out", "data-testid": "words-out" });
    const info = CL.el("p", { class: "muted" });
    const chips = CL.el("div", { class: "chips" });
    const run = async () => {
      const qsList = text.value.split("\n").map((s) => s.trim()).filter(Boolean);
      if (!qsList.length) return;
      const u = new URLSearchParams();
      qsList.forEach((s) => u.append("q", s));
      u.set("topk", topk.value);
      u.set("vocab", vocab.value);
      out.textContent = "…";
      try {
        const r = await CL.api(`/api/words/neighbors?${u}`);
        out.textContent = r.text;
        info.textContent = r.encoder ? `${r.size} entries of the ${r.vocab} vocabulary, encoder ${r.encoder}; cosine similarity, the query itself excluded.`
          : `${r.size.toLocaleString()} words: ${r.source}; cosine similarity, the query itself excluded.`;
        history.replaceState(null, "", `/words?${u}`);
      } catch (err) { out.textContent = ""; CL.showError(main, err); }
    };
    main.append(CL.el("div", { class: "words" },
      CL.el("h2", {}, "Word neighbours"),
      CL.el("div", { class: "row" },
        CL.el("div", { class: "card" },
          CL.el("label", {}, "Queries, one a line (a word outside the vocabulary is segmented and its parts averaged)"), text,
          CL.el("label", {}, "Neighbours ", topk),
          CL.el("label", {}, "Vectors ", vocab),
          CL.el("button", { class: "primary", type: "button", onclick: run }, "Find neighbours"),
          CL.el("h3", { class: "muted", style: "font-size:12px" }, "From the vocabulary"), chips),
        CL.el("div", {}, out, info))));
    try {
      const v = await CL.api("/api/words/vocab?n=30");
      chips.replaceChildren(...v.entries.map((w) => CL.el("button", { type: "button", onclick: () => { text.value = `${text.value.trim()}\n${w}`.trim(); run(); } }, w)));
    } catch (err) { /* the panel still works with typed queries */ }
    await run();
  }

  CL.register({ name: "words", title: "Words", path: "/words", match: (p) => p.startsWith("/words"), render: renderWords });
})();
