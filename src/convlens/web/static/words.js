// convlens explorer: the word-neighbours page (/words). Each query's nearest words or phrases by cosine
// (GET /api/words/neighbors), in the lecture's layout; suggested queries from GET /api/words/vocab.
const CSS = `
.words textarea { width: 320px; height: 120px; font: inherit; }
.words pre.out { font-size: 15px; line-height: 1.5; background: var(--card); border: 1px solid var(--line); padding: 10px 14px; border-radius: 6px; min-width: 360px; }
.words .chips button { margin: 2px; padding: 1px 6px; font-size: 12px; }`;

function injectCss() {
  if (!document.getElementById("words-css")) document.head.append(CL.el("style", { id: "words-css" }, CSS));
}

function qs() { return new URLSearchParams(location.search); }

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
