// convlens explorer: the image lab. Pick a sample, upload an image or use the webcam, see the top-5,
// run any technique with a form generated from GET /api/techniques (the CLI's config dataclasses),
// follow progress and previews over server-sent events, cancel (the best result so far is kept).
"use strict";
(() => {
  const el = (...a) => CL.el(...a);
  const lab = {
    image: "chelsea", techniques: [], job: null, previews: [],   // previews: pixel digests (tests read them)
  };
  window.CL_LAB = lab;

  function fmt(v) {
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(4);
    return String(v);
  }

  // ---- input: samples, upload, webcam, top-5 ------------------------------------------------
  async function setImage(ref, url) {
    lab.image = ref;
    document.querySelectorAll("#lab-samples img").forEach((i) => i.classList.toggle("selected", i.dataset.name === ref));
    const cur = document.getElementById("lab-current");
    cur.src = url;
    cur.alt = ref;
    document.getElementById("lab-current-name").textContent = ref;
    syncUrl();
    await showTop5();
  }

  function syncUrl() {  // the view is bookmarkable: /lab?image=coffee&technique=grad_cam
    const sel = document.getElementById("lab-technique");
    const q = new URLSearchParams({ image: lab.image });
    if (sel && sel.value) q.set("technique", sel.value);
    history.replaceState(null, "", `${location.pathname}?${q}`);
  }

  async function showTop5() {
    const box = document.getElementById("lab-top5");
    const image = lab.image;
    box.replaceChildren(el("p", { class: "muted" }, "predicting…"));
    try {
      const r = await CL.api("/api/predict", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ image }) });
      if (image !== lab.image) return;  // a newer image was picked meanwhile: its answer wins
      box.replaceChildren(el("table", {}, el("tr", {}, el("th", {}, "class"), el("th", {}, "probability")),
        r.top.map((p) => el("tr", {}, el("td", {}, `${p.label} (${p.index})`),
          el("td", {}, el("span", { class: "lab-bar", style: `width:${Math.round(120 * p.prob)}px` }), ` ${(100 * p.prob).toFixed(1)}%`)))));
    } catch (err) { if (image === lab.image) CL.showError(box, err); }
  }

  async function upload(blob, name) {
    const fd = new FormData();
    fd.append("file", blob, name || "upload.png");
    const status = document.getElementById("lab-upload-status");
    status.textContent = "uploading…";
    try {
      const r = await CL.api("/api/images", { method: "POST", body: fd });
      status.textContent = `uploaded ${r.width}×${r.height} (id ${r.id})`;
      await setImage(r.id, r.url);
    } catch (err) { status.textContent = ""; CL.showError(document.getElementById("lab-input"), err); }
  }

  async function webcam(box) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      CL.showError(box, "no webcam available in this browser (it needs localhost or https)");
      return;
    }
    const video = el("video", { autoplay: true, playsinline: true, width: 224 });
    const snap = el("button", {}, "capture");
    const wrap = el("div", { class: "lab-webcam" }, video, snap);
    box.append(wrap);
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true });
      video.srcObject = stream;
      snap.addEventListener("click", () => {
        const c = el("canvas", { width: video.videoWidth, height: video.videoHeight });
        c.getContext("2d").drawImage(video, 0, 0);
        stream.getTracks().forEach((t) => t.stop());
        wrap.remove();
        c.toBlob((b) => upload(b, "webcam.png"), "image/png");
      });
    } catch (err) { wrap.remove(); CL.showError(box, err); }
  }

  // ---- technique form --------------------------------------------------------------------------
  function fieldInput(f) {
    const id = `lab-f-${f.name}`;
    let input;
    if (f.kind === "bool") {
      input = el("input", { type: "checkbox", id, name: f.name, checked: !!f.default });
    } else if (f.choices) {
      input = el("select", { id, name: f.name },
        f.optional ? el("option", { value: "" }, "(default)") : [],
        f.choices.map((c) => el("option", { value: c, selected: String(c) === String(f.default) }, String(c))));
    } else {
      const num = f.kind === "int" || f.kind === "float";
      const dflt = f.default === null || f.default === undefined ? "" : (Array.isArray(f.default) ? f.default.join(",") : f.default);
      input = el("input", { id, name: f.name, type: num ? "number" : "text", step: f.kind === "float" ? "any" : (num ? "1" : undefined),
        value: dflt, placeholder: f.optional ? "(default)" : "", size: num ? 8 : 18 });
    }
    input.dataset.kind = f.kind;
    return el("label", { title: f.help, class: "lab-field" }, el("span", { class: "lab-fname" }, f.name.replace(/_/g, " ")), input,
      el("small", { class: "muted" }, ` ${f.help}`));
  }

  function renderForm() {
    const t = lab.techniques.find((x) => x.name === document.getElementById("lab-technique").value);
    const form = document.getElementById("lab-form");
    const shown = t.fields.slice(0, 7), more = t.fields.slice(7);  // the rest folded: forms stay short
    form.replaceChildren(...shown.map(fieldInput));
    if (more.length) form.append(el("details", {}, el("summary", {}, `${more.length} more parameters`), more.map(fieldInput)));
    document.getElementById("lab-needs").textContent = t.needs_image ? "" : "(this technique does not use the input image)";
    syncUrl();
  }

  function formParams() {
    const params = {};
    document.querySelectorAll("#lab-form [name]").forEach((i) => {
      if (i.type === "checkbox") params[i.name] = i.checked;
      else if (i.value !== "") params[i.name] = (i.dataset.kind === "int" || i.dataset.kind === "float") ? Number(i.value) : i.value;
    });
    return params;
  }

  // ---- running, progress, previews, results ----------------------------------------------------
  function digest(img) {  // a tiny pixel signature: proves the preview was drawn, and that it changed
    const c = document.createElement("canvas");
    c.width = c.height = 8;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0, 8, 8);
    return Array.from(g.getImageData(0, 0, 8, 8).data).join(",");
  }

  function showPreview(job) {
    const img = document.getElementById("lab-preview");
    if (!job.has_preview || img.dataset.version === String(job.preview_version)) return;
    img.dataset.version = String(job.preview_version);
    img.src = `/api/jobs/${job.id}/preview.png?v=${job.preview_version}`;
  }

  function showProgress(job) {
    const bar = document.getElementById("lab-progress");
    bar.max = job.total || 1;
    bar.value = job.total ? job.done : 0;
    document.getElementById("lab-status").textContent =
      `${CL.jobText(job)}${job.seconds ? ` · ${job.seconds.toFixed(2)} s` : ""}`;
  }

  function figuresTable(fig) {
    const rows = [];
    for (const [k, v] of Object.entries(fig || {})) {
      if (k === "objective" || k === "summary") continue;
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

  function showResult(job) {
    const out = document.getElementById("lab-results");
    out.replaceChildren();
    if (job.status === "error") { CL.showError(out, job.error); return; }
    const r = job.result;
    if (!r) { out.append(el("p", { class: "muted" }, "cancelled before any result was finished")); return; }
    if (job.status === "cancelled") out.append(el("p", { class: "lab-kept" }, "cancelled: showing the best result so far"));
    out.append(el("h3", {}, r.title));
    out.append(el("div", { class: "row" }, r.images.map((im) =>
      el("figure", { class: "lab-figure" }, el("img", { class: "result", src: im.url, alt: im.label }),
        el("figcaption", {}, im.label)))));
    if (r.figures && r.figures.objective && r.figures.objective.length) out.append(curve(r.figures.objective));
    if (r.figures && r.figures.summary) out.append(el("pre", {}, r.figures.summary));
    out.append(figuresTable(r.figures));
  }

  async function run() {
    const tech = document.getElementById("lab-technique").value;
    const box = document.getElementById("lab-run-box");
    box.querySelectorAll(".error").forEach((x) => x.remove());
    const prev = document.getElementById("lab-preview");
    prev.removeAttribute("src"); prev.dataset.version = ""; lab.previews = [];
    document.getElementById("lab-results").replaceChildren(el("p", { class: "muted" }, "running…"));
    document.getElementById("lab-status").textContent = "submitting";
    let started;
    try {
      started = await CL.api("/api/run", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ technique: tech, image: lab.image, params: formParams() }) });
    } catch (err) { CL.showError(box, err); return; }
    lab.job = started.job;
    document.getElementById("lab-cancel").disabled = false;
    document.getElementById("lab-cached").textContent = started.cached ? "(from the cache)" : "";
    let job = await CL.follow(started.job, (j) => { showProgress(j); showPreview(j); });
    while (!["done", "error", "cancelled"].includes(job.status)) {  // the event stream dropped: poll
      await new Promise((r) => setTimeout(r, 500));
      job = await CL.api(`/api/jobs/${started.job}`);
      showProgress(job); showPreview(job);
    }
    showProgress(job);
    document.getElementById("lab-cancel").disabled = true;
    lab.job = null;
    showResult(job);
  }

  async function cancel() {
    if (!lab.job) return;
    try { await CL.api(`/api/jobs/${lab.job}`, { method: "DELETE" }); } catch (err) { CL.showError(document.getElementById("lab-run-box"), err); }
  }

  // ---- the view ----------------------------------------------------------------------------------
  async function render(main) {
    if (!document.getElementById("lab-css")) document.head.append(el("link", { rel: "stylesheet", href: "/static/lab.css", id: "lab-css" }));
    const samples = await CL.api("/api/samples");
    lab.techniques = await CL.api("/api/techniques");
    const families = [...new Set(lab.techniques.map((t) => t.family))];
    const fileInput = el("input", { type: "file", id: "lab-file", accept: "image/*" });
    fileInput.addEventListener("change", () => fileInput.files[0] && upload(fileInput.files[0], fileInput.files[0].name));
    const input = el("section", { class: "card lab-col", id: "lab-input" },
      el("h3", {}, "Input"),
      el("div", { class: "thumbs", id: "lab-samples" }, samples.map((s) =>
        el("img", { src: s.thumb || s.url, alt: s.name, title: `${s.name}: ${s.description}`, "data-name": s.name,
          onclick: () => setImage(s.name, s.url) }))),
      el("p", {}, fileInput, " ", el("button", { id: "lab-webcam", onclick: (e) => webcam(e.target.closest("section")) }, "webcam"),
        " ", el("span", { id: "lab-upload-status", class: "muted" })),
      el("img", { id: "lab-current", class: "result lab-current", alt: "" }),
      el("p", { class: "muted", id: "lab-current-name" }),
      el("h4", {}, "Top-5"), el("div", { id: "lab-top5" }));
    const select = el("select", { id: "lab-technique", onchange: renderForm },
      families.map((fam) => el("optgroup", { label: fam }, lab.techniques.filter((t) => t.family === fam)
        .map((t) => el("option", { value: t.name }, t.title)))));
    const runBox = el("section", { class: "card lab-col", id: "lab-run-box" },
      el("h3", {}, "Technique"), el("p", {}, select, " ", el("span", { id: "lab-needs", class: "muted" })),
      el("form", { id: "lab-form", onsubmit: (e) => { e.preventDefault(); run(); } }),
      el("p", {}, el("button", { class: "primary", id: "lab-run", onclick: run }, "Run"), " ",
        el("button", { id: "lab-cancel", disabled: true, onclick: cancel }, "Cancel"), " ",
        el("progress", { id: "lab-progress", value: 0, max: 1 }), " ", el("span", { id: "lab-status", class: "muted" }),
        " ", el("span", { id: "lab-cached", class: "muted" })),
      el("img", { id: "lab-preview", class: "result lab-preview", alt: "" }));
    const results = el("section", { class: "card", id: "lab-results" }, el("p", { class: "muted" }, "Results appear here."));
    main.append(el("div", { class: "row lab" }, input, runBox), results);
    document.getElementById("lab-preview").addEventListener("load", (e) => lab.previews.push(digest(e.target)));
    const q = new URLSearchParams(location.search);
    const want = q.get("technique");
    if (want && lab.techniques.some((t) => t.name === want)) select.value = want;
    renderForm();
    const img = q.get("image") || "chelsea";
    await setImage(img, /^[0-9a-f]{16}$/.test(img) ? `/api/images/${img}.png` : `/api/samples/${img}.png`);
  }

  CL.register({ name: "lab", title: "Image lab", path: "/lab",
    match: (p) => p === "/" || p === "/lab" || p.startsWith("/lab/"), render });
})();
