// convlens lab: how one result is drawn (the result card, the compare view and the history share it).
// An entry is {id, technique, title, image, imageName, model, params, status, error, seconds, result}.
"use strict";
window.LabResult = (() => {
  const el = (...a) => CL.el(...a);

  function fmt(v) {
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(4);
    return String(v);
  }

  function figuresTable(fig) {
    const rows = [];
    for (const [k, v] of Object.entries(fig || {})) {
      if (k === "objective" || k === "summary" || (k === "table" && Array.isArray(v))) continue;
      const val = (v !== null && typeof v === "object") ? JSON.stringify(v, (kk, vv) => (typeof vv === "number" ? Number(vv.toPrecision(4)) : vv)) : fmt(v);
      rows.push(el("tr", {}, el("th", {}, k), el("td", {}, val)));
    }
    return el("table", { class: "lab-figures" }, rows);
  }

  function curve(points) {  // the objective per step, Canvas2D
    const c = el("canvas", { width: 320, height: 120, class: "lab-curve" });
    const g = c.getContext("2d");
    const ys = points.map((p) => p[1]).filter((y) => y !== null);
    if (!ys.length) return c;
    const lo = Math.min(...ys), hi = Math.max(...ys), n = points[points.length - 1][0];
    g.strokeStyle = "#c2410c"; g.lineWidth = 2; g.beginPath();
    points.forEach(([x, y], i) => {
      const px = 8 + (304 * (x - 1)) / Math.max(1, n - 1), py = 112 - (104 * (y - lo)) / ((hi - lo) || 1);
      i ? g.lineTo(px, py) : g.moveTo(px, py);
    });
    g.stroke();
    g.fillStyle = "#6e6e73"; g.font = "11px sans-serif";
    g.fillText(`objective ${fmt(hi)}`, 10, 12); g.fillText(`${fmt(lo)}  (${n} steps)`, 10, 118);
    return c;
  }

  // "grad_cam · chelsea · target=tabby" (what the entry shows, in one line)
  function caption(e) {
    const params = Object.entries(e.params || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    return [e.technique, e.needsImage === false ? null : e.imageName || e.image, e.model, params || null].filter(Boolean).join(" · ");
  }

  // The body of a result: title, images, curve, summary, numbers. ``compact`` (compare cards) keeps it short.
  function body(e, compact) {
    const out = [];
    if (e.status === "error") { out.push(el("p", { class: "error" }, e.error || "failed")); return out; }
    const r = e.result;
    if (!r) { out.push(el("p", { class: "muted" }, "cancelled before any result was finished")); return out; }
    if (e.status === "cancelled") out.push(el("p", { class: "lab-kept" }, "cancelled: showing the best result so far"));
    out.push(el(compact ? "h4" : "h3", {}, r.title));
    out.push(el("div", { class: "row lab-images" }, r.images.map((im) =>
      el("figure", { class: `lab-figure${im.width > 1.4 * im.height ? " wide" : ""}` }, el("img", { class: "result", src: im.data || im.url, alt: im.label,
        onerror: (ev) => ev.target.replaceWith(el("p", { class: "muted lab-expired" }, "(this image has expired on the server: run it again)")) }),
        el("figcaption", {}, im.label)))));
    if (r.figures && r.figures.objective && r.figures.objective.length) out.push(curve(r.figures.objective));
    if (r.figures && r.figures.summary && !compact) out.push(el("pre", {}, r.figures.summary));
    if (r.figures && r.figures.rank) out.push(rankLine(r.figures));
    if (r.figures && Array.isArray(r.figures.table) && r.figures.table.length) out.push(rowsTable(r.figures.table));
    out.push(figuresTable(r.figures));
    return out;
  }

  // A list of records (the report card's summary) as a table: a column per key.
  function rowsTable(rows) {
    const keys = Object.keys(rows[0]);
    return el("table", { class: "lab-figures lab-rows" }, el("tr", {}, keys.map((k) => el("th", {}, k))),
      rows.map((r) => el("tr", {}, keys.map((k) => el("td", {}, r[k] === null || r[k] === undefined ? "–" : fmt(r[k]))))));
  }

  // The report card's verdict on the map on screen: "grad_cam ranks 1 of 5 on insertion (↑ better) ..."
  function rankLine(f) {
    const parts = Object.entries(f.rank).map(([k, r]) => `${r ?? "–"} of ${f.of} on ${k} (${f.better[k] === "higher" ? "↑" : "↓"} better)`);
    return el("p", { class: "lab-rank" }, el("b", {}, f.method), ` ranks ${parts.join(", ")}` +
      (f.stopped ? " (cancelled: the metrics finished so far)" : ""));
  }

  return { fmt, figuresTable, curve, caption, body };
})();
