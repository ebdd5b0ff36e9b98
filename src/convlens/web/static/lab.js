// convlens explorer: the image lab. Pick a sample, upload an image or use the webcam, see the top-5 (a row
// sets the target), run any technique with a form generated from GET /api/techniques (the CLI's config
// dataclasses; class, layer and style fields get searchable pickers), follow progress and previews over
// server-sent events, cancel (the best result so far is kept). The result shows beside the input on wide
// screens and is scrolled to on narrow ones; the URL restores image, model, technique and every parameter;
// results go to this session's history and can be pinned side by side (lab/history.js, lab/result.js).
"use strict";
(() => {
  const el = (...a) => CL.el(...a);
  const $ = (id) => document.getElementById(id);
  const lab = {
    image: "chelsea", imageName: "chelsea", model: null, defaultModel: null, models: [], techniques: [], job: null,
    previews: [],   // pixel digests of the previews drawn (tests read them)
    current: null,  // the history id of the result shown
    uploads: JSON.parse(sessionStorage.getItem("convlens-lab-uploads") || "{}"),   // upload id -> file name
  };
  window.CL_LAB = lab;
  const RESERVED = new Set(["image", "technique", "model"]);   // URL keys of the lab itself
  const urlKey = (name) => (RESERVED.has(name) ? `p.${name}` : name);
  const isUpload = (ref) => /^[0-9a-f]{16}$/.test(ref);
  const imageUrl = (ref) => (isUpload(ref) ? `/api/images/${ref}.png` : `/api/samples/${encodeURIComponent(ref)}.png`);
  const FINISHED = ["done", "error", "cancelled"];
  const QUICK_WAIT = 1;   // seconds the server may hold Run for a short job, to answer with its result
  const currentTech = () => lab.techniques.find((x) => x.name === $("lab-technique").value);

  // ---- what the pickers choose from ------------------------------------------------------------
  const modelInfo = {};
  const info = (model) => (modelInfo[model] ||= CL.api(`/api/model?model=${encodeURIComponent(model)}`));
  let styles = null, samples = [];

  async function classItems() {
    const names = (await info(lab.model)).classes || [];
    const seen = {};
    names.forEach((c) => { seen[c] = (seen[c] || 0) + 1; });
    return names.map((c, i) => ({ value: seen[c] > 1 ? String(i) : c, label: c, detail: `#${i}` }));
  }

  async function targetValue(p) {   // a top-5 row as a target: its name, or its index when the name is ambiguous
    const items = await classItems();
    return items[p.index] ? items[p.index].value : String(p.index);
  }

  const PICKERS = {
    class: classItems,
    layer: async () => {
      const m = await info(lab.model);
      const items = m.layers.map((l) => ({ value: l.name, label: l.name, detail: `${l.type}${l.shape ? ` ${l.shape.join("×")}` : ""}` }));
      return currentTech().name === "facets" ? [{ value: "class", label: "class", detail: "the class logits" }, ...items] : items;
    },
    style: async () => (await (styles ||= CL.api("/api/styles"))).map((s) => ({ value: s.name, label: s.name, detail: s.group, thumb: s.thumb })),
    image: async () => [
      ...Object.entries(lab.uploads).map(([id, name]) => ({ value: id, label: name, detail: "upload", thumb: `/api/images/${id}.png` })),
      ...samples.map((s) => ({ value: s.name, label: s.name, detail: s.description, thumb: s.thumb })),
    ],
  };

  // ---- the URL and the tab title: the whole state ----------------------------------------------
  const fieldDefault = (f) => (f.default === null || f.default === undefined ? "" : (Array.isArray(f.default) ? f.default.join(",") : String(f.default)));

  function fieldValue(i) { return i.type === "checkbox" ? String(i.checked) : i.value; }

  function changedParams() {   // the form's values that differ from the defaults (what the URL and history keep)
    const t = currentTech(), out = {};
    if (!t) return out;
    for (const f of t.fields) {
      const i = $(`lab-f-${f.name}`);
      if (!i) continue;
      const v = fieldValue(i), d = f.kind === "bool" ? String(!!f.default) : fieldDefault(f);
      if (v !== d) out[f.name] = v;
    }
    return out;
  }

  function syncUrl() {   // /lab?image=coffee&technique=grad_cam&target=espresso&layer=features.14
    const t = currentTech();
    const q = new URLSearchParams({ image: lab.image });
    if (lab.model && lab.model !== lab.defaultModel) q.set("model", lab.model);
    if (t) q.set("technique", t.name);
    for (const [k, v] of Object.entries(changedParams())) q.set(urlKey(k), v);
    history.replaceState(null, "", `${location.pathname}?${q}`);
    const what = t ? (t.needs_image ? `${t.name} · ${lab.imageName}` : t.name) : lab.imageName;
    document.title = `${what} — convlens`;
  }

  function urlParams(t) {   // a technique's parameters named in the URL
    const q = new URLSearchParams(location.search), out = {};
    for (const f of t.fields) if (q.has(urlKey(f.name))) out[f.name] = q.get(urlKey(f.name));
    return out;
  }

  // ---- input: samples, upload, webcam, top-5 ------------------------------------------------
  function clearInputErrors() { $("lab-input").querySelectorAll(".error").forEach((x) => x.remove()); }

  function badImage(ref, why) {
    const cur = $("lab-current");
    cur.hidden = true;
    cur.removeAttribute("src");
    $("lab-current-name").textContent = "";
    const msg = `image '${ref}' ${why}; pick a sample or upload the image again`;
    CL.showError($("lab-input"), msg);
    $("lab-top5").replaceChildren(el("p", { class: "muted" }, "no image, no prediction"));
  }

  async function setImage(ref, name) {
    clearInputErrors();
    lab.image = ref;
    lab.imageName = name || lab.uploads[ref] || ref;
    document.querySelectorAll("#lab-samples img").forEach((i) => i.classList.toggle("selected", i.dataset.name === ref));
    syncUrl();
    if (!isUpload(ref) && !samples.some((s) => s.name === ref)) { badImage(ref, "is neither a bundled sample nor an upload id"); return; }
    const cur = $("lab-current");
    cur.hidden = false;
    cur.onerror = () => { if (lab.image === ref) badImage(ref, "could not be loaded (an upload this server no longer has?)"); };
    cur.src = imageUrl(ref);
    cur.alt = lab.imageName;
    $("lab-current-name").textContent = lab.imageName;
    await showTop5();
  }

  async function showTop5() {
    const box = $("lab-top5");
    const image = lab.image, model = lab.model;
    box.replaceChildren(el("p", { class: "muted" }, "predicting…"));
    try {
      const r = await CL.api("/api/predict", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ image, model }) });
      if (image !== lab.image || model !== lab.model) return;  // a newer image was picked meanwhile: its answer wins
      box.replaceChildren(el("table", { class: "lab-top5" }, el("tr", {}, el("th", {}, "class"), el("th", {}, "probability")),
        r.top.map((p) => el("tr", { class: "lab-top5-row", "data-index": p.index, title: "use this class as the target",
          onclick: (e) => useTarget(p, e.currentTarget) },
          el("td", {}, `${p.label} (${p.index})`),
          el("td", {}, el("span", { class: "lab-bar", style: `width:${Math.round(120 * p.prob)}px` }), ` ${(100 * p.prob).toFixed(1)}%`)))),
        el("small", { class: "muted" }, "click a row to make it the target"));
    } catch (err) {
      if (image === lab.image) box.replaceChildren(el("p", { class: "error" }, String(err.message || err)));
    }
  }

  async function useTarget(p, row) {
    const input = $("lab-f-target");
    document.querySelectorAll(".lab-top5-row").forEach((r) => r.classList.toggle("selected", r === row));
    if (!input) {
      CL.showError($("lab-top5"), `${currentTech().name} takes no target class; pick e.g. Grad-CAM or saliency`);
      return;
    }
    input.value = await targetValue(p);
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
    input.classList.remove("lab-flash"); void input.offsetWidth; input.classList.add("lab-flash");
  }

  async function upload(blob, name) {
    const fd = new FormData();
    fd.append("file", blob, name || "upload.png");
    const status = $("lab-upload-status");
    clearInputErrors();
    status.textContent = "uploading…";
    try {
      const r = await CL.api("/api/images", { method: "POST", body: fd });
      status.textContent = `uploaded ${r.width}×${r.height} (id ${r.id})`;
      lab.uploads[r.id] = name || r.id;
      sessionStorage.setItem("convlens-lab-uploads", JSON.stringify(lab.uploads));
      await setImage(r.id, name);
    } catch (err) { status.textContent = ""; CL.showError($("lab-input"), err); }
  }

  async function webcam(box) {
    clearInputErrors();
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
  function fieldInput(f, value) {
    const id = `lab-f-${f.name}`;
    const v = value !== undefined ? value : (f.kind === "bool" ? !!f.default : fieldDefault(f));
    let input;
    if (f.kind === "bool") {
      input = el("input", { type: "checkbox", id, name: f.name, checked: v === true || v === "true" });
    } else if (f.choices) {
      input = el("select", { id, name: f.name },
        f.optional ? el("option", { value: "" }, "(default)") : [],
        f.choices.map((c) => el("option", { value: c, selected: String(c) === String(v) }, String(c))));
    } else {
      const num = f.kind === "int" || f.kind === "float";
      input = el("input", { id, name: f.name, type: num ? "number" : "text", step: f.kind === "float" ? "any" : (num ? "1" : undefined),
        value: v, placeholder: f.optional ? "(default)" : "", size: num ? 8 : 18 });
    }
    input.dataset.kind = f.kind;
    const label = el("label", { title: f.help, class: "lab-field" }, el("span", { class: "lab-fname" }, f.name.replace(/_/g, " ")), input,
      el("small", { class: "muted" }, ` ${f.help}`));
    if (f.picker && PICKERS[f.picker]) {
      LabPicker.attach(input, { items: PICKERS[f.picker], multi: /comma-separated/.test(f.help), preview: f.picker === "style" || f.picker === "image" });
    }
    return label;
  }

  function renderForm(values = {}) {
    const t = currentTech();
    const form = $("lab-form");
    const shown = t.fields.slice(0, 7), more = t.fields.slice(7);  // the rest folded: forms stay short
    form.replaceChildren(...shown.map((f) => fieldInput(f, values[f.name])));
    if (more.length) {
      form.append(el("details", { open: more.some((f) => f.name in values) }, el("summary", {}, `${more.length} more parameters`),
        more.map((f) => fieldInput(f, values[f.name]))));
    }
    $("lab-needs").textContent = t.needs_image ? "" : "(this technique does not use the input image)";
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

  function setModel(name) {
    clearInputErrors();
    lab.model = name;
    const sel = $("lab-model");
    if (sel) sel.value = name;
    renderForm(changedParams());   // the pickers read the new model's classes and layers
    showTop5();
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
    const img = $("lab-preview");
    if (!job.has_preview || img.dataset.version === String(job.preview_version)) return;
    img.dataset.version = String(job.preview_version);
    img.src = `/api/jobs/${job.id}/preview.png?v=${job.preview_version}`;
  }

  function showProgress(job) {
    const bar = $("lab-progress");
    bar.max = job.total || 1;
    bar.value = job.status === "done" ? bar.max : (job.total ? job.done : 0);
    $("lab-status").textContent = `${CL.jobText(job)}${job.seconds ? ` · ${job.seconds.toFixed(2)} s` : ""}`;
  }

  // The result card in view: beside the input on wide screens (a sticky column), scrolled to on narrow ones.
  function revealResult() {
    const card = $("lab-result-card");
    card.classList.add("lab-has-run");
    const r = card.getBoundingClientRect(), top = document.querySelector("header.top")?.offsetHeight || 0;
    const beside = window.matchMedia("(min-width: 1200px)").matches;   // the sticky column of the wide layout
    if (!beside || r.top < top || r.top > window.innerHeight - 160) card.scrollIntoView({ block: "start" });
  }

  function showEntry(e, history = true) {
    lab.current = e.id;
    const pin = el("button", { type: "button", id: "lab-pin", class: LabHistory.pinned(e.id) ? "pinned" : "",
      title: "keep this result in the compare view", onclick: () => LabHistory.togglePin(e.id) },
    LabHistory.pinned(e.id) ? "pinned ✓" : "pin to compare");
    $("lab-results").replaceChildren(
      el("div", { class: "lab-result-head" }, el("span", { class: "muted lab-caption" }, LabResult.caption(e)), pin, ...[judgeButton(e)].filter(Boolean),
        el("a", { href: "#lab-compare", class: "lab-to-compare", hidden: !LabHistory.pins().length,
          onclick: (ev) => { ev.preventDefault(); $("lab-compare").scrollIntoView({ block: "start" }); } }, `compare (${LabHistory.pins().length}) ↓`)),
      ...LabResult.body(e, false));
    if (history) drawHistory();
  }

  // An attribution map on screen: "how faithful is it?" runs the report card with it as the focus (issue 22).
  function judgeButton(e) {
    const card = lab.techniques.find((t) => t.name === "evaluate");
    const focus = card && card.fields.find((f) => f.name === "focus");
    if (!e.result || !focus || !(focus.choices || []).includes(e.technique)) return null;
    return el("button", { type: "button", id: "lab-judge", title: "rank this map among the other methods with faithfulness metrics",
      onclick: () => {
        $("lab-technique").value = "evaluate";
        renderForm({ focus: e.technique, ...(e.params && e.params.target ? { target: e.params.target } : {}) });
        run();
      } }, "how faithful is this map?");
  }

  function drawHistory() {
    LabHistory.strip($("lab-history"), openEntry, lab.current);
    LabHistory.compare($("lab-compare"), openEntry);
    const pin = $("lab-pin");
    if (pin && lab.current) {
      pin.textContent = LabHistory.pinned(lab.current) ? "pinned ✓" : "pin to compare";
      pin.classList.toggle("pinned", LabHistory.pinned(lab.current));
      const link = document.querySelector(".lab-to-compare");
      link.hidden = !LabHistory.pins().length;
      link.textContent = `compare (${LabHistory.pins().length}) ↓`;
    }
  }

  async function openEntry(e) {   // a history or compare entry back in the lab: model, technique, parameters, image, result
    if (e.model && lab.models.includes(e.model)) { lab.model = e.model; if ($("lab-model")) $("lab-model").value = e.model; }
    if (lab.techniques.some((t) => t.name === e.technique)) $("lab-technique").value = e.technique;
    renderForm(e.params || {});
    $("lab-status").textContent = `${e.status} (from the history)`;
    showEntry(e);
    revealResult();
    await setImage(e.image, e.imageName);
  }

  async function run() {
    const t = currentTech();
    const box = $("lab-run-box");
    box.querySelectorAll(".error").forEach((x) => x.remove());
    clearInputErrors();
    const results = $("lab-results");
    const before = [...results.childNodes];
    const prev = $("lab-preview");
    prev.removeAttribute("src"); prev.dataset.version = ""; lab.previews = [];
    results.replaceChildren(el("p", { class: "muted" }, "running…"));
    $("lab-status").textContent = "submitting";
    $("lab-progress").value = 0;
    revealResult();
    const params = formParams(), changed = changedParams();
    const image = lab.image, imageName = lab.imageName, model = lab.model;
    let started;
    try {
      // A short job answers with its result, images inline (no event stream, no image fetches); an
      // iterative one, or one still running after `wait` seconds, is followed through its events.
      started = await CL.api("/api/run", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ technique: t.name, image, params, model, wait: t.iterative ? 0 : QUICK_WAIT }) });
    } catch (err) {   // refused (4xx): say why next to the form, and put back what was shown
      CL.showError(box, err);
      results.replaceChildren(...before);
      $("lab-status").textContent = "refused: see the message above Run";
      return;
    }
    $("lab-cached").textContent = started.cached ? "(from the cache)" : "";
    let job = FINISHED.includes(started.status) && "result" in started ? started : null;   // answered with its result
    if (!job) { lab.job = started.job; $("lab-cancel").disabled = false; }
    try {
      job = job || await CL.follow(started.job, (j) => { showProgress(j); showPreview(j); });
      while (!FINISHED.includes(job.status)) {  // the event stream dropped: poll
        await new Promise((r) => setTimeout(r, 500));
        job = await CL.api(`/api/jobs/${started.job}`);
        showProgress(job); showPreview(job);
      }
    } catch (err) {   // the server went away or forgot the job: say so instead of "running…" forever
      results.replaceChildren(el("p", { class: "error" }, `lost track of the job: ${err.message || err}; run it again`));
      $("lab-status").textContent = "lost";
      return;
    } finally {
      $("lab-cancel").disabled = true;
      lab.job = null;
    }
    showProgress(job);
    const entry = { id: job.id, technique: t.name, title: t.title, needsImage: t.needs_image, image, imageName, model,
      params: changed, status: job.status, error: job.error, seconds: job.seconds, result: job.result };
    showEntry(entry, false);   // the result first, the history once it is on screen
    revealResult();
    requestAnimationFrame(() => setTimeout(() => { LabHistory.add(entry); drawHistory(); }));
  }

  async function cancel() {
    if (!lab.job) return;
    try { await CL.api(`/api/jobs/${lab.job}`, { method: "DELETE" }); } catch (err) { CL.showError($("lab-run-box"), err); }
  }

  // ---- the view ----------------------------------------------------------------------------------
  async function render(main) {
    if (!document.getElementById("lab-css")) document.head.append(el("link", { rel: "stylesheet", href: "/static/lab.css", id: "lab-css" }));
    const health = await CL.api("/api/health");
    lab.models = health.models || [health.model];
    lab.defaultModel = health.model;
    samples = await CL.api("/api/samples");
    lab.techniques = await CL.api("/api/techniques");
    const q = new URLSearchParams(location.search);
    lab.model = lab.models.includes(q.get("model")) ? q.get("model") : lab.defaultModel;
    const families = [...new Set(lab.techniques.map((t) => t.family))];
    const fileInput = el("input", { type: "file", id: "lab-file", accept: "image/*" });
    fileInput.addEventListener("change", () => fileInput.files[0] && upload(fileInput.files[0], fileInput.files[0].name));
    const input = el("section", { class: "card lab-col", id: "lab-input" },
      el("h3", {}, "Input"),
      el("div", { class: "thumbs", id: "lab-samples" }, samples.map((s) =>
        el("img", { src: s.thumb || s.url, alt: s.name, title: `${s.name}: ${s.description}`, "data-name": s.name,
          onclick: () => setImage(s.name) }))),
      el("p", {}, fileInput, " ", el("button", { id: "lab-webcam", onclick: (e) => webcam(e.target.closest("section")) }, "webcam"),
        " ", el("span", { id: "lab-upload-status", class: "muted" })),
      el("img", { id: "lab-current", class: "result lab-current", alt: "" }),
      el("p", { class: "muted", id: "lab-current-name" }),
      el("h4", {}, "Top-5"), el("div", { id: "lab-top5" }));
    const select = el("select", { id: "lab-technique", onchange: () => { clearInputErrors(); $("lab-run-box").querySelectorAll(".error").forEach((x) => x.remove()); renderForm(); } },
      families.map((fam) => el("optgroup", { label: fam }, lab.techniques.filter((t) => t.family === fam)
        .map((t) => el("option", { value: t.name }, t.title)))));
    const modelPick = lab.models.length > 1
      ? el("p", {}, el("label", { class: "lab-model" }, "model ",
        el("select", { id: "lab-model", onchange: (e) => setModel(e.target.value) },
          lab.models.map((m) => el("option", { value: m, selected: m === lab.model }, m)))))
      : [];
    const form = el("form", { id: "lab-form", onsubmit: (e) => { e.preventDefault(); run(); } });
    form.addEventListener("input", syncUrl);
    form.addEventListener("change", syncUrl);
    const runBox = el("section", { class: "card lab-col", id: "lab-run-box" },
      el("h3", {}, "Technique"), modelPick, el("p", {}, select, " ", el("span", { id: "lab-needs", class: "muted" })),
      form,
      el("p", {}, el("button", { class: "primary", id: "lab-run", onclick: run }, "Run"), " ",
        el("button", { id: "lab-cancel", disabled: true, onclick: cancel }, "Cancel")));
    const resultCard = el("section", { class: "card lab-col lab-result-card", id: "lab-result-card" },
      el("div", { class: "lab-history", id: "lab-history" }),
      el("p", { class: "lab-runline" }, el("progress", { id: "lab-progress", value: 0, max: 1 }), " ",
        el("span", { id: "lab-status", class: "muted" }), " ", el("span", { id: "lab-cached", class: "muted" })),
      el("img", { id: "lab-preview", class: "lab-preview", alt: "" }),
      el("div", { id: "lab-results" }, el("p", { class: "muted" }, "Results appear here.")));
    main.append(el("div", { class: "lab lab-grid" }, input, runBox, resultCard),
      el("section", { class: "card lab-compare", id: "lab-compare", hidden: true }));
    $("lab-preview").addEventListener("load", (e) => lab.previews.push(digest(e.target)));
    const want = q.get("technique");
    if (want && lab.techniques.some((t) => t.name === want)) select.value = want;
    renderForm(urlParams(currentTech()));
    LabHistory.onChange(drawHistory);
    drawHistory();
    const img = q.get("image") || "chelsea";
    await setImage(img);
  }

  CL.register({ name: "lab", title: "Image lab", path: "/lab",
    match: (p) => p === "/" || p === "/lab" || p.startsWith("/lab/"), render });
})();
