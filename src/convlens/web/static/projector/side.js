// convlens projector: the side panel of a focused point: its image, its nearest neighbours (in the
// original space or the 2-D map) and "why are these two similar?" (a job on the server).
import { P, labelOf, query, thumbUrl } from "./state.js";
import { requestDraw } from "./view.js";

export async function focusPoint(i) {
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

export function renderSide() {
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
