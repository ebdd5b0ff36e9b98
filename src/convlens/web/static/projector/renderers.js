// convlens projector: the two renderers of the map. WebGL draws points (gl.POINTS) and thumbnails
// (textured quads, one buffer per atlas); without WebGL, Canvas2D draws points into ImageData and
// thumbnails with drawImage. Both take world coordinates in [0, 1]^2 and a view {scale, tx, ty, ...}.
import { BG } from "./state.js";

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

export function softwareWebGL(gl) {  // SwiftShader / llvmpipe: WebGL emulated on the CPU
  const ext = gl.getExtension("WEBGL_debug_renderer_info");
  const name = ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
  return /swiftshader|llvmpipe|software|softpipe/i.test(String(name));
}

// WebGL: points (gl.POINTS) and thumbnails (textured quads, one buffer per atlas). On a software
// WebGL (no GPU) rasterizing 100k point sprites costs ~60 ms a frame, so the points are then drawn
// by the Canvas2D renderer on a canvas underneath (`under`) and WebGL draws only the thumbnails.
export class GLRenderer {
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
  composite(ctx, m, w, h) {
    if (this.under) this.under.composite(ctx, m, w, h);
    if (this.canvas.style.visibility !== "hidden") ctx.drawImage(this.canvas, m, m, w, h, 0, 0, w, h);
  }
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
    if (this.under) {
      this.under.draw({ ...v, atlases: [] });
      // no thumbnails over the points: hide the (transparent) WebGL layer instead of clearing and
      // compositing it every frame (software WebGL: its clear and the compositing cost the CPU)
      const empty = v.atlases.length === 0;
      this.canvas.style.visibility = empty ? "hidden" : "";
      if (empty) return 0;
      gl.clearColor(0, 0, 0, 0);
    }
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

export class Canvas2DRenderer {
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
      if (this.rgba[4 * i + 3] === 0) continue;  // hidden (an isolated selection shows only itself)
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
        if (this.rgba[4 * i + 3] === 0) continue;
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
