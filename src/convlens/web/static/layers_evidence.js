// convlens explorer: synthetic and natural evidence side by side in the unit view (/layers/<layer>/<channel>).
// layers.js calls CL.unitEvidence when a feature visualization has finished. It waits for the channel's patch
// pass (POST .../patches with the patches card's parameters returns that same job), then shows
// GET .../evidence: the plausibility score computed on the server by natural_evidence's own scoring function
// (recipes/evidence.py), one line saying what it means, and the figure: the visualization, then its patches.
"use strict";
(() => {
  const { el } = CL;

  CL.unitEvidence = async (card, base, c, s, params) => {
    const pq = new URLSearchParams({ source: s.source, n: s.n, k: s.k });
    if (s.model) pq.set("model", s.model);
    const q = new URLSearchParams({ ...params, ...Object.fromEntries(pq) });
    const score = el("p", { class: "lb-stats", "data-testid": "unit-evidence-score" }, "waiting for the max-activating patches…");
    const why = el("p", { class: "muted", "data-testid": "unit-evidence-explain" });
    const fig = el("div");
    document.getElementById("unit-evidence-card")?.remove();   // a new visualization replaces the old comparison
    const d = card("Synthetic vs natural evidence", score, why, fig);
    d.id = "unit-evidence-card";
    d.classList.add("wide");
    try {
      const { job } = await CL.api(`${base}/patches?${pq}`, { method: "POST" });
      const done = await CL.follow(job);
      if (done.status === "error") throw new Error(done.error);
      const e = await CL.api(`${base}/channels/${c}/evidence?${q}`);
      score.textContent = `plausibility ${e.plausibility.toFixed(3)} · the ${e.exemplars} patches among themselves ` +
        `${e.reference.toFixed(3)} · uniform noise ${e.noise.toFixed(3)}`;
      why.textContent = e.explanation;
      fig.append(el("img", { id: "unit-evidence", alt: "the visualization beside its natural exemplars", src: e.figure,
        style: "max-width: 100%" }));
    } catch (err) { score.textContent = ""; CL.showError(d, err); }
  };
})();
