// convlens explorer: the concepts panel (/concepts). Per class: a layer's concepts (CRAFT: NMF of the
// activations of random crops), their strongest crops, their importance for the class (Sobol total index,
// gradient x input) and each concept's heat map on the current image.
// URL state: /concepts?layer=...&class=...&source=gcompris&image=chelsea (bookmarkable).
"use strict";
(() => {
  const { el } = CL;
  let catalogue = null;   // GET /api/layers
  let samples = null;     // GET /api/samples

  const style = document.createElement("style");
  style.textContent = `
    .cc-bar { display: flex; gap: 14px; align-items: center; flex-wrap: wrap; }
    .cc-bar select, .cc-bar input[type=text] { max-width: 260px; }
    .cc-cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
    .cc-card img { display: block; max-width: 100%; }
    .cc-card img.cc-crops { max-width: calc(100% - 175px); }
    .cc-card .cc-row { display: flex; gap: 10px; align-items: flex-start; }
    .cc-card h3 { margin: 0 0 6px; font-size: 15px; }
    .cc-bar-fill { display: inline-block; height: 8px; background: var(--accent); vertical-align: middle; margin-left: 6px; }
    .cc-classes a { margin-right: 10px; color: var(--accent); text-decoration: none; }
    .thumbs.cc-samples img { width: 44px; height: 44px; }
    img.cc-input { width: 224px; height: 224px; object-fit: cover; border: 1px solid var(--line); }
  `;
  document.head.append(style);

  function parse() {
    const q = new URLSearchParams(location.search);
    return { layer: q.get("layer") || "", cls: q.get("class") || "", source: q.get("source") || "gcompris",
             image: q.get("image") || "chelsea", concepts: q.get("concepts") || "6" };
  }
  function href(s) {
    const q = new URLSearchParams({ layer: s.layer, source: s.source, image: s.image });
    if (s.cls) q.set("class", s.cls);
    if (s.concepts !== "6") q.set("concepts", s.concepts);
    return `/concepts?${q}`;
  }
  function go(url) { history.pushState({}, "", url); CL.route(); }
  window.addEventListener("popstate", () => { if (location.pathname.startsWith("/concepts")) CL.route(); });

  function controls(s, run) {
    const layer = el("select", { id: "cc-layer" },
      catalogue.layers.map((li) => el("option", { value: li.name, selected: li.name === s.layer },
        `${li.name} (${li.channels}×${li.size.join("×")})`)));
    const source = el("select", { id: "cc-source" },
      ["gcompris", "imagenet20", "samples"].map((n) => el("option", { value: n, selected: n === s.source }, n)));
    const cls = el("input", { id: "cc-class", type: "text", value: s.cls, placeholder: "most predicted class" });
    const k = el("input", { id: "cc-k", type: "number", min: 1, max: 16, value: s.concepts, style: "width: 4em" });
    const button = el("button", { id: "cc-run", onclick: () => go(href({ ...s, layer: layer.value, source: source.value,
      cls: cls.value.trim(), concepts: k.value })) }, "Find concepts");
    const thumbs = el("div", { class: "thumbs cc-samples" }, (samples || []).map((x) => el("img", {
      src: x.thumb || x.url, title: `${x.name}: ${x.description}`, alt: x.name, class: x.name === s.image ? "selected" : "",
      onclick: () => go(href({ ...s, image: x.name })) })));
    return el("div", { class: "card cc-bar" }, el("label", {}, "Layer ", layer), el("label", {}, "Images ", source),
      el("label", {}, "Class ", cls), el("label", {}, "Concepts ", k), button,
      el("span", { class: "muted" }, "Maps on"), thumbs);
  }

  function results(main, s, r) {
    const enc = encodeURIComponent;
    const top = Math.max(...r.sobol, 1e-12), gtop = Math.max(...r.gxi.map(Math.abs), 1e-12);
    const classes = el("p", { class: "cc-classes muted" }, "Classes the model sees in these images: ",
      (r.classes || []).map((c) => el("a", { href: href({ ...s, cls: c.name }), onclick: (e) => {
        e.preventDefault(); go(href({ ...s, cls: c.name })); } }, `${c.name} (${c.images})`)));
    main.append(el("div", { class: "card" },
      el("h3", {}, `'${r.class}' at ${r.layer}: ${r.n} concepts`),
      el("p", { class: "muted", id: "cc-summary" }, `${r.crops} crops of ${r.n_images} images predicted '${r.class}'; ` +
        `NMF relative error ${r.nmf_error.toFixed(3)}${r.split ? " (activations split into positive and negative parts)" : ""}. ` +
        "Concepts are ranked by their Sobol total index for the class logit."), classes));
    const own = el("p", { class: "muted" }, "Maps on the class's own images: ",
      el("span", { class: "thumbs cc-samples" }, Array.from({ length: Math.min(r.n_images, 12) }, (_, i) => el("img", {
        src: `/api/concepts/${enc(r.key)}/images/${i}.png`, alt: `class image ${i}`, title: `image ${i} of '${r.class}'`,
        class: s.image === `class:${i}` ? "selected" : "", onclick: () => go(href({ ...s, image: `class:${i}` })) }))));
    main.append(own);
    const cards = el("div", { class: "cc-cards" });
    r.sobol.forEach((sv, k) => {
      const map = `/api/concepts/${enc(r.key)}/${k}/map.png?image=${enc(s.image)}`;
      cards.append(el("div", { class: "card cc-card" },
        el("h3", {}, `concept ${k + 1}`),
        el("p", { class: "muted" }, `Sobol ${sv.toFixed(3)}`, el("span", { class: "cc-bar-fill", style: `width:${Math.round(120 * sv / top)}px` }),
          `  ·  grad×input ${r.gxi[k].toPrecision(3)}`,
          el("span", { class: "cc-bar-fill", style: `width:${Math.round(120 * Math.abs(r.gxi[k]) / gtop)}px; opacity: 0.6` })),
        el("div", { class: "cc-row" },
          el("img", { class: "cc-map", alt: `concept ${k + 1} on ${s.image}`, src: map, width: 160, height: 160,
                      title: `concept ${k + 1} on ${s.image} (bright = its strongest response on the class's images)` }),
          el("img", { class: "cc-crops", alt: `concept ${k + 1}: strongest crops`, src: `/api/concepts/${enc(r.key)}/${k}/crops.png` }))));
    });
    main.append(cards);
  }

  async function render(main) {
    const s = parse();
    [catalogue, samples] = await Promise.all([catalogue || CL.api("/api/layers"), samples || CL.api("/api/samples")]);
    if (!s.layer) s.layer = catalogue.stages[catalogue.stages.length - 1] || catalogue.default;
    main.append(controls(s), el("p", { class: "muted" },
      "CRAFT (Fel et al. 2023): random crops of the images the model assigns to the class, their activations at the " +
      "layer factorized by NMF; each concept is shown by its strongest crops and located on the current image."));
    if (!new URLSearchParams(location.search).has("layer")) return;   // wait for "Find concepts"
    const status = el("p", { id: "cc-status", class: "muted" }, "starting…");
    main.append(status);
    const q = new URLSearchParams({ layer: s.layer, source: s.source, concepts: s.concepts });
    if (s.cls) q.set("target", s.cls);
    const { job } = await CL.api(`/api/concepts?${q}`, { method: "POST" });
    const done = await CL.follow(job, (j) => { status.textContent = `concepts: ${CL.jobText(j)}`; });
    if (done.status !== "done") throw new Error(done.error || `the job ended: ${done.status}`);
    const r = done.result;
    if (!r.complete) {
      status.textContent = r.error || "cancelled";
      if (r.classes) main.append(el("p", { class: "cc-classes" }, "Classes here: ", r.classes.map((c) =>
        el("a", { href: href({ ...s, cls: c.name }), onclick: (e) => { e.preventDefault(); go(href({ ...s, cls: c.name })); } },
          `${c.name} (${c.images})`))));
      return;
    }
    status.textContent = `done in ${done.seconds != null ? done.seconds.toFixed(1) : "?"} s`;
    results(main, s, r);
  }

  CL.register({ name: "concepts", title: "Concepts", path: "/concepts",
                match: (p) => p.startsWith("/concepts"), render });
})();
