// convlens explorer: the layer browser (/layers, /layers/<layer>) and unit views (/layers/<layer>/<channel>).
// Every view has its own URL (?image=<sample or upload id>&model=&source=samples&n=200&scale=), so it can be
// bookmarked; the image follows the user to the other views (common.js); a unit links to the lab.
"use strict";
(() => {
  const { el } = CL;
  let catalogue = null;   // GET /api/layers, fetched once per model
  let samples = null;     // GET /api/samples, fetched once

  const style = document.createElement("style");
  style.textContent = `
    .lb-bar { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
    .lb-bar select { max-width: 320px; }
    .lb-grid-wrap { position: relative; display: inline-block; cursor: pointer; }
    .lb-grid-wrap img { display: block; max-width: 100%; border: 1px solid var(--line); }
    .lb-hover { position: absolute; pointer-events: none; border: 2px solid var(--accent); display: none; }
    .lb-tip { min-height: 1.4em; }
    .lb-crumbs a, a.lb-links { color: var(--accent); text-decoration: none; margin-right: 8px; }
    .lb-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 12px; }
    .lb-cards .card img { max-width: 100%; display: block; }
    .lb-cards h3 { margin: 0 0 6px; font-size: 15px; }
    .lb-stats { font-variant-numeric: tabular-nums; }
    .thumbs.lb-samples img { width: 48px; height: 48px; }
    .lb-cards .card.wide { grid-column: 1 / -1; }
    img.lb-input { width: 224px; height: 224px; object-fit: cover; border: 1px solid var(--line); }
    .lb-upload img { width: 48px; height: 48px; object-fit: cover; border: 2px solid var(--accent); vertical-align: middle; }
    .lb-upload input[type=file] { max-width: 200px; }
    .lb-lab a { margin-right: 10px; }
  `;
  document.head.append(style);

  // --- URL state ---------------------------------------------------------------------------------
  function parse() {
    const parts = location.pathname.split("/").filter(Boolean).slice(1).map(decodeURIComponent);
    const q = new URLSearchParams(location.search);
    return {
      layer: parts[0] || null,
      channel: parts.length > 1 ? parts[1] : null,
      image: q.get("image") || "chelsea",
      source: q.get("source") || "samples",
      n: q.get("n") || "200",
      k: q.get("k") || "9",
      model: q.get("model") || "",
      scale: q.get("scale") === "channel" ? "channel" : "layer",
    };
  }
  function href(s) {
    const q = new URLSearchParams({ image: s.image });
    if (s.model) q.set("model", s.model);
    if (s.scale === "channel" && s.channel === null) q.set("scale", "channel");
    if (s.source !== "samples") q.set("source", s.source);
    if (s.n !== "200") q.set("n", s.n);
    if (s.k !== "9") q.set("k", s.k);
    let p = "/layers";
    if (s.layer) p += "/" + encodeURIComponent(s.layer);
    if (s.layer && s.channel !== null && s.channel !== undefined) p += "/" + s.channel;
    return `${p}?${q}`;
  }
  function go(url) { history.pushState({}, "", url); CL.route(); }
  function link(url, text, attrs = {}) {
    return el("a", { href: url, ...attrs, onclick: (e) => { if (!e.ctrlKey && !e.metaKey) { e.preventDefault(); go(url); } } }, text);
  }
  window.addEventListener("popstate", () => { if (location.pathname.startsWith("/layers")) CL.route(); });

  // An indeterminate progress bar with what is being computed (issue 23: every long action shows one).
  function loading(text) {
    return el("p", { class: "lb-loading", "data-testid": "layers-loading" },
      el("progress", { "aria-label": text }), el("span", { class: "muted" }, ` ${text}`));
  }
  // Show ``bar`` in ``parent`` while ``promise`` runs (removed however it ends); returns the promise's value.
  async function during(parent, text, promise) {
    const bar = loading(text);
    parent.append(bar);
    try { return await promise; } finally { bar.remove(); }
  }

  // An <img> with a progress bar until it is drawn; shows the server's JSON error message if the PNG fails.
  function picture(src, id, alt) {
    const box = el("div");
    const bar = loading(`computing ${alt}…`);
    const img = el("img", { id, alt, src });
    img.addEventListener("load", () => bar.remove());
    img.addEventListener("error", async () => {
      bar.remove();
      try { await CL.api(src); } catch (err) { CL.showError(box, err); }
      img.remove();
    });
    box.append(bar, img);
    return box;
  }

  // --- the header: layer picker and image picker --------------------------------------------------
  function bar(s) {
    const stages = new Set(catalogue.stages);
    const opt = (li) => el("option", { value: li.name, selected: li.name === s.layer },
      `${li.name}  (${li.channels}×${li.size.join("×")}, ${li.type})`);
    const select = el("select", { id: "layer-select", onchange: (e) => go(href({ ...s, layer: e.target.value, channel: null, scale: "layer" })) },
      el("optgroup", { label: "Stages (last block of each resolution)" }, catalogue.layers.filter((li) => stages.has(li.name)).map(opt)),
      el("optgroup", { label: "All layers with a (C, H, W) output" }, catalogue.layers.map(opt)));
    const thumbs = el("div", { class: "thumbs lb-samples" },
      (samples || []).map((x) => el("img", {
        src: x.thumb || x.url, title: `${x.name}: ${x.description}`, alt: x.name, class: x.name === s.image ? "selected" : "",
        onclick: () => go(href({ ...s, image: x.name })),
      })));
    const known = (samples || []).some((x) => x.name === s.image);
    const status = el("span", { class: "muted", "data-testid": "layers-upload-status" });
    const file = el("input", { type: "file", accept: "image/*", "data-testid": "layers-upload", onchange: async (e) => {
      const f = e.target.files[0];
      if (!f) return;
      const fd = new FormData();
      fd.append("file", f, f.name);
      status.textContent = " uploading…";
      try {
        const r = await CL.api("/api/images", { method: "POST", body: fd });
        CL.setCurrent({ image: r.id });
        go(href({ ...s, image: r.id }));
      } catch (err) { status.textContent = ""; CL.showError(status.parentElement, err); }
    } });
    return el("div", { class: "card lb-bar" },
      el("label", {}, "Layer ", select),
      el("span", { class: "muted" }, "Image"), thumbs,
      el("span", { class: "lb-upload" },
        known ? "" : el("img", { src: `/api/images/${encodeURIComponent(s.image)}.png`, alt: s.image, title: `upload ${s.image}`, "data-testid": "layers-current-upload" }),
        " ", el("label", {}, "upload ", file), status));
  }

  function modelQ(s, sep = "&") { return s.model ? `${sep}model=${encodeURIComponent(s.model)}` : ""; }
  function imageUrl(s) {
    return (samples || []).some((x) => x.name === s.image) ? `/api/samples/${encodeURIComponent(s.image)}.png`
      : `/api/images/${encodeURIComponent(s.image)}.png`;
  }

  // --- the activation grid of one layer -----------------------------------------------------------
  async function gridView(main, s) {
    const info = catalogue.layers.find((li) => li.name === s.layer);
    const q = `?image=${encodeURIComponent(s.image)}${modelQ(s)}`;
    const stats = await during(main, `computing the activations of ${s.image} at ${s.layer}…`,
      CL.api(`/api/layers/${encodeURIComponent(s.layer)}/activations${q}`));
    document.title = `${s.layer} · ${s.image} · convlens layers`;
    const L = stats.layout;
    const tip = el("p", { class: "lb-tip muted" }, "Hover a map for its channel, click it for the unit view.");
    const hover = el("div", { class: "lb-hover" });
    const img = el("img", { id: "layers-grid", alt: `activations of ${s.image} at ${s.layer}`,
      src: `/api/layers/${encodeURIComponent(s.layer)}/activations.png${q}&scale=${s.scale}` });
    const gridBar = loading("drawing the activation grid…");
    img.addEventListener("load", () => gridBar.remove());
    img.addEventListener("error", () => gridBar.remove());
    const scale = el("select", { id: "grid-scale", onchange: (e) => {
      s.scale = e.target.value;
      history.replaceState({}, "", href(s));
      img.src = `/api/layers/${encodeURIComponent(s.layer)}/activations.png${q}&scale=${e.target.value}`; } },
      el("option", { value: "layer" }, "one scale for the layer"), el("option", { value: "channel" }, "each map to its own max"));
    scale.value = s.scale;
    const wrap = el("div", { class: "lb-grid-wrap" }, img, hover);
    const input = el("img", { src: imageUrl(s), alt: s.image, class: "lb-input",
      title: `${s.image}, as the model sees it: resized and centre-cropped` });
    const channelAt = (e) => {
      const r = img.getBoundingClientRect();
      const f = L.width / r.width;
      const x = (e.clientX - r.left) * f - L.pad, y = (e.clientY - r.top) * f - L.pad;
      const col = Math.floor(x / (L.tile + L.pad)), row = Math.floor(y / (L.tile + L.pad));
      if (x < 0 || y < 0 || col >= L.cols) return null;
      const c = row * L.cols + col;
      return c < stats.channels ? { c, row, col, f } : null;
    };
    wrap.addEventListener("mousemove", (e) => {
      const h = channelAt(e);
      if (!h) { hover.style.display = "none"; return; }
      const px = (v) => `${v / h.f}px`;
      Object.assign(hover.style, { display: "block", left: px(L.pad + h.col * (L.tile + L.pad) - 1),
        top: px(L.pad + h.row * (L.tile + L.pad) - 1), width: px(L.tile + 2), height: px(L.tile + 2) });
      tip.textContent = `channel ${h.c}: mean ${stats.mean[h.c].toFixed(3)}, max ${stats.max[h.c].toFixed(3)}, ` +
        `${(100 * stats.active[h.c]).toFixed(0)}% > 0`;
    });
    wrap.addEventListener("mouseleave", () => { hover.style.display = "none"; });
    wrap.addEventListener("click", (e) => { const h = channelAt(e); if (h) go(href({ ...s, channel: h.c })); });
    main.append(el("div", { class: "card" },
      el("h2", {}, `${s.layer}: ${stats.channels} channels of ${stats.size.join("×")}`),
      el("p", { class: "muted" }, `${info ? info.type : ""} · activations of ${s.image}, channel order ` +
        (stats.signed ? "(red > 0, blue < 0)" : "(black = 0, white = strong)") + ". Strongest by mean: ",
        stats.strongest.map((c) => link(href({ ...s, channel: c }), `c${c}`, { class: "lb-links" })).flatMap((a) => [a, " "])),
      el("p", { class: "lb-lab" }, el("a", { href: CL.labUrl({ image: s.image, technique: "grad_cam", layer: s.layer, model: s.model }),
        "data-testid": "layer-lab-link" }, `Grad-CAM of ${s.image} at ${s.layer} in the lab →`)),
      el("label", {}, "Scale ", scale), tip, gridBar, el("div", { class: "row" }, input, wrap)));
  }

  // --- one unit -----------------------------------------------------------------------------------
  async function unitView(main, s) {
    const base = `/api/layers/${encodeURIComponent(s.layer)}`;
    const q = `?image=${encodeURIComponent(s.image)}${modelQ(s)}`;
    const u = await during(main, `computing channel ${s.channel} of ${s.layer} on ${s.image}…`, CL.api(`${base}/channels/${s.channel}${q}`));
    const c = u.channel;
    document.title = `${s.layer} · channel ${c} · ${s.image} · convlens layers`;
    const crumbs = el("p", { class: "lb-crumbs" },
      link(href({ ...s, channel: null }), `← ${s.layer} (all ${u.channels} channels)`),
      c > 0 ? link(href({ ...s, channel: c - 1 }), `‹ c${c - 1}`) : "",
      c + 1 < u.channels ? link(href({ ...s, channel: c + 1 }), `c${c + 1} ›`) : "");
    const rf = u.receptive_field ? `receptive field ${u.receptive_field.size.join("×")} px, stride ${u.receptive_field.stride[0]}` : "";
    const conv = u.conv ? `produced by ${u.conv.name} (${u.conv.kernel.join("×")}, ${u.conv.in_channels} inputs` +
      (u.conv.groups > 1 ? `, groups ${u.conv.groups}` : "") + ")" : "no conv produces this layer's channels";
    main.append(el("div", { class: "card" },
      crumbs,
      el("h2", { id: "unit-title" }, `${s.layer} · channel ${c}`),
      el("p", { class: "lb-stats muted" },
        `On ${s.image}: mean ${u.mean.toFixed(3)}, max ${u.max.toFixed(3)} at (${u.argmax.join(", ")}), ` +
        `${(100 * u.active).toFixed(0)}% of positions > 0 · ${conv} · ${rf}`),
      el("p", { class: "lb-lab" }, "In the lab: ",
        el("a", { href: CL.labUrl({ image: s.image, technique: "channelviz", layer: s.layer, channel: c, model: s.model }), "data-testid": "unit-lab-viz" },
          "feature visualization"),
        el("a", { href: CL.labUrl({ image: s.image, technique: "guided_backprop", layer: s.layer, channel: c, model: s.model }), "data-testid": "unit-lab-guided" },
          "guided backprop"),
        el("a", { href: CL.labUrl({ image: s.image, technique: "grad_cam", layer: s.layer, model: s.model }) }, "Grad-CAM at this layer"))));

    const cards = el("div", { class: "lb-cards" });
    main.append(cards);
    const card = (title, ...body) => { const d = el("div", { class: "card" }, el("h3", {}, title), ...body); cards.append(d); return d; };
    card(`Activation on ${s.image}`, picture(`${base}/channels/${c}/map.png${q}`, "unit-map", "channel map"));
    card("Filter weights", picture(`${base}/channels/${c}/filters.png${modelQ(s, "?")}`, "unit-filters", "filter weights"),
      u.conv ? el("p", { class: "muted" }, "Strongest inputs: " +
        u.conv.strongest_inputs.map((x) => `c${x.input} (${x.norm.toFixed(3)})`).join(", ")) : "");
    const guided = el("div", {}, picture(`${base}/channels/${c}/guided.png${q}`, "unit-guided", "guided backprop"));
    card(`Guided backprop on ${s.image}`, guided,
      el("label", {}, el("input", { type: "checkbox", onchange: (e) => guided.replaceChildren(
        picture(`${base}/channels/${c}/guided.png${q}&unit=${e.target.checked ? "max" : "sum"}`, "unit-guided", "guided backprop")) }),
        " strongest position only (Zeiler & Fergus) instead of the whole channel"),
      el("p", { class: "muted" }, "The gradient of the channel's activation, passed back through positive ReLU paths only (Springenberg et al. 2015)."));
    vizCard(card, base, c, s);
    patchesCard(card, base, s, c);
  }

  function progressLine() {
    const bar = el("progress", { max: 1, value: 0 });
    const text = el("span", { class: "muted" }, " queued");
    return { node: el("p", {}, bar, text), update(job) {
      if (job.total) { bar.max = job.total; bar.value = job.done; }
      text.textContent = ` ${CL.jobText(job)}`;
    } };
  }

  function patchesCard(card, base, s, c) {
    const pq = `source=${encodeURIComponent(s.source)}&n=${s.n}&k=${s.k}${modelQ(s)}`;
    const where = s.source === "samples" ? `${s.n} images of the bundled sample set`
      : s.source === "store" ? `${s.n} thumbnails of the server's store` : `folder '${s.source}'`;
    const body = el("div");
    const d = card(`Max-activating patches over ${where}`, body);
    d.classList.add("wide");
    (async () => {
      const prog = progressLine();
      body.append(prog.node);
      try {
        const { job } = await CL.api(`${base}/patches?${pq}`, { method: "POST" });
        const stop = el("button", { id: "patches-cancel", onclick: () => CL.api(`/api/jobs/${job}`, { method: "DELETE" }) },
          "Stop (keep the images seen so far)");
        prog.node.append(" ", stop);
        const done = await CL.follow(job, prog.update);
        if (done.status === "error") throw new Error(done.error);
        prog.node.remove();
        if (done.status === "cancelled") {
          body.append(el("p", { class: "muted" }, `stopped: over the first ${done.result.n_images} images`));
          if (!done.result.n_images) return;
        }
        let whole = false;
        const show = () => {
          body.querySelectorAll("div.pic").forEach((x) => x.remove());
          const pic = picture(`${base}/channels/${c}/patches.png?${pq}&whole=${whole}`, "unit-patches", "max-activating patches");
          pic.className = "pic";
          body.append(pic);
        };
        body.append(el("label", {}, el("input", { type: "checkbox", onchange: (e) => { whole = e.target.checked; show(); } }),
          " whole images (receptive field outlined)"));
        show();
      } catch (err) { prog.node.remove(); CL.showError(d, err); }   // no progress bar left running
    })();
  }

  function vizCard(card, base, c, s) {
    const steps = el("input", { type: "number", min: 1, max: 2000, style: "width:6em" });
    // the default is VizConfig's, as the lab's channelviz form shows it (one source: the config dataclass)
    CL.api("/api/techniques").then((ts) => {
      const viz = ts.find((t) => t.name === "channelviz");
      const f = viz && viz.fields.find((x) => x.name === "steps");
      if (f && !steps.value) steps.value = f.default;
    }).catch(() => {});
    const preview = el("img", { id: "unit-viz", alt: "feature visualization", style: "display:none" });
    const out = el("div", {}, preview);
    const start = el("button", { class: "primary", id: "viz-start" }, "Visualize");
    const cancel = el("button", { id: "viz-cancel", disabled: true }, "Cancel");
    const d = card("Feature visualization",
      el("p", { class: "muted" }, "An image maximizing the channel's mean activation (robust preset: Fourier parameterization, " +
        "decorrelated colour, random transforms). Previews stream while it runs; cancelling keeps the best so far."),
      el("p", {}, "Steps ", steps, " ", start, " ", cancel), out);
    start.addEventListener("click", async () => {
      start.disabled = true;
      const prog = progressLine();
      out.querySelectorAll(".error").forEach((x) => x.remove());
      out.prepend(prog.node);
      try {
        const q = (Number(steps.value) > 0 ? `?steps=${Number(steps.value)}` : "?") + modelQ(s);   // empty: the server's default
        const { job } = await CL.api(`${base}/channels/${c}/visualize${q}`, { method: "POST" });
        cancel.disabled = false;
        cancel.onclick = () => CL.api(`/api/jobs/${job}`, { method: "DELETE" });
        const done = await CL.follow(job, (j) => {
          prog.update(j);
          if (j.has_preview) { preview.src = `/api/jobs/${job}/preview.png?v=${j.version}`; preview.style.display = "block"; }
        });
        if (done.status === "error") throw new Error(done.error);
        if (done.result && done.result.image) { preview.src = done.result.image; preview.style.display = "block"; }
        prog.node.replaceWith(el("p", { class: "muted" },
          `${done.status}: ${done.result.steps} steps, mean activation ${done.result.score.toFixed(3)}`));
        if (CL.unitEvidence && done.result && done.result.params) CL.unitEvidence(card, base, c, s, done.result.params);   // layers_evidence.js
      } catch (err) { prog.node.remove(); CL.showError(d, err); }
      start.disabled = false;
      cancel.disabled = true;
    });
  }

  CL.register({
    name: "layers", title: "Layers", path: "/layers",
    match: (p) => p === "/layers" || p.startsWith("/layers/"),
    async render(main) {
      const s = parse();
      if (!catalogue || catalogue.asked !== s.model) {
        [catalogue, samples] = await during(main, `loading the model${s.model ? " " + s.model : ""} and its layers…`,
          Promise.all([CL.api(`/api/layers${modelQ(s, "?")}`), samples || CL.api("/api/samples")]));
        catalogue.asked = s.model;
      }
      if (!s.layer) { history.replaceState({}, "", href({ ...s, layer: catalogue.default })); s.layer = catalogue.default; }
      main.append(bar(s));
      if (s.channel === null) await gridView(main, s);
      else await unitView(main, s);
    },
  });
})();
