// convlens projector: the side panel of a focused point: its image, stored path and label, links to the
// lab and the layer browser, its nearest neighbours (in the original space or the map) and "why are these
// two similar?" (a job on the server). Every request's "…" gives way to its answer or its error.
import { P, query, rowInfo, shortPath, thumbUrl } from "./state.js";
import { requestDraw } from "./view.js";

export async function focusPoint(i) {
  P.focus = i;
  P.neighbors = null;
  renderSide();
  if (P.onChange) P.onChange();
  await loadNeighbors();
}

export async function loadNeighbors() {
  const i = P.focus;
  if (i === null || i === undefined) return;
  const token = P.nbToken = (P.nbToken || 0) + 1;  // a newer request (point, k, space, map) wins
  const box = P.side.querySelector(".nb");
  if (box) box.replaceChildren(CL.el("span", { class: "muted" }, "…"));
  const space = P.space || "original";
  const k = P.k || 10;
  try {
    const nb = await CL.api(`/api/projector/neighbors?${query({ i, k, space })}`);
    if (token !== P.nbToken) return;
    P.neighbors = nb;
  } catch (err) {
    if (token !== P.nbToken) return;
    P.neighbors = null;
    const b = P.side.querySelector(".nb");
    if (b) b.replaceChildren(CL.el("p", { class: "error", "data-testid": "neighbors-error" }, String(err.message || err)));
    requestDraw();
    return;
  }
  renderNeighbors();
  requestDraw();
}

// Row i's image as an upload (its file, or its stored thumbnail): the lab and the layer browser open it.
async function openElsewhere(i, where) {
  try {
    const r = await CL.api("/api/projector/as-image", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ store: P.store, i }) });
    CL.setCurrent({ image: r.id });
    location.href = where === "lab" ? CL.labUrl({ image: r.id, technique: "grad_cam" }) : `/layers?image=${r.id}`;
  } catch (err) { CL.showError(P.side, err); }
}

export function renderSide() {
  const i = P.focus;
  if (i === null || i === undefined || !P.world) {
    P.side.replaceChildren(CL.el("h3", {}, "Point"), CL.el("p", { class: "muted" }, "Hover a point to see its image; click it for its nearest neighbours."));
    return;
  }
  const spaceSel = CL.el("div", {}, [["original", "original space (cosine)"], ["map", `${P.dims}-D map (distance)`]].map(([v, t]) =>
    CL.el("label", { style: "display:inline;margin-right:8px" }, CL.el("input", { type: "radio", name: "space", value: v, checked: v === (P.space || "original"),
      onchange: () => { P.space = v; if (P.onChange) P.onChange(); loadNeighbors(); } }), t)));
  const ident = CL.el("div", { class: "ident", "data-testid": "point-ident" }, CL.el("span", { class: "muted" }, "…"));
  rowInfo(i).then((r) => {
    if (P.focus !== i) return;
    ident.replaceChildren(
      CL.el("div", {}, CL.el("b", {}, "label "), CL.el("span", { "data-testid": "point-label" }, r.label ?? "(no label stored)")),
      CL.el("div", { title: r.path || "" }, CL.el("b", {}, "path "), CL.el("span", { "data-testid": "point-path" }, shortPath(r.path) || "(none)")),
      r.width ? CL.el("div", { class: "muted" }, `${r.width}×${r.height} px`) : "");
    if (P.onChange) P.onChange();  // the tab title names the point
  }).catch((err) => ident.replaceChildren(CL.el("p", { class: "error" }, String(err.message || err))));
  P.side.replaceChildren(
    CL.el("h3", {}, `Point #${i}`),
    CL.el("div", { class: "focus" }, CL.el("img", { class: "big", src: thumbUrl(i), alt: `#${i}` }), ident),
    CL.el("p", { class: "links" },
      CL.el("a", { href: "#", "data-testid": "open-lab", title: "this image in the lab (Grad-CAM; any technique from there)",
        onclick: (e) => { e.preventDefault(); openElsewhere(i, "lab"); } }, "explain in the lab"), " · ",
      CL.el("a", { href: "#", "data-testid": "open-layers", title: "this image's activations, layer by layer",
        onclick: (e) => { e.preventDefault(); openElsewhere(i, "layers"); } }, "layer browser")),
    CL.el("h3", { style: "margin-top:8px" }, "Nearest neighbours"), spaceSel,
    CL.el("label", {}, "k ", CL.el("input", { type: "number", name: "k", value: P.k || 10, min: 1, max: 100,
      onchange: (e) => { P.k = +e.target.value; if (P.onChange) P.onChange(); loadNeighbors(); } })),
    CL.el("div", { class: "nb", "data-testid": "neighbors" }, CL.el("span", { class: "muted" }, "…")),
    CL.el("div", { class: "why" }));
}

function renderNeighbors() {
  const box = P.side.querySelector(".nb");
  if (!box || !P.neighbors) return;
  const sc = P.neighbors.space === "original" ? "cosine" : "distance";
  box.replaceChildren(...P.neighbors.neighbors.flatMap((nb) => [
    CL.el("img", { src: thumbUrl(nb.index), alt: `#${nb.index}`, title: nb.path || "focus this point", onclick: () => focusPoint(nb.index) }),
    CL.el("span", { class: "nbrow", "data-index": nb.index, "data-score": nb.score, title: nb.path || "" }, `#${nb.index} ${nb.label || ""}`, CL.el("br"),
      CL.el("b", {}, `${sc} ${nb.score.toFixed(4)}`)),
    P.info.explainable ? CL.el("button", { type: "button", title: "why are these two similar? (Grad-CAM of the cosine)", onclick: () => why(P.focus, nb.index) }, "why?") : CL.el("span"),
  ]));
}

async function why(a, b) {
  const box = P.side.querySelector(".why");
  const bar = CL.el("progress", { max: 1, style: "width:100%" });   // indeterminate until the job reports
  box.replaceChildren(CL.el("p", { class: "muted" }, `why #${a} ~ #${b}: running on the server…`), bar);
  try {
    const { job } = await CL.api("/api/projector/why", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ store: P.store, a, b }) });
    const done = await CL.follow(job, (j) => { if (j.total && j.done) { bar.max = j.total; bar.value = j.done; } });
    if (done.status !== "done") throw new Error(done.error || done.status);
    if (P.focus !== a) return;
    box.replaceChildren(CL.el("h3", {}, `Why #${a} ~ #${b}`),
      CL.el("a", { href: done.result.image, target: "_blank", title: "full size" },
        CL.el("img", { src: done.result.image, alt: "why similar", "data-testid": "why-image" })),
      CL.el("div", { class: "muted" }, `cosine ${done.result.cosine.toFixed(4)}, Grad-CAM of the cosine at ${done.result.layer}`));
  } catch (err) { box.replaceChildren(); CL.showError(box, err); }
}
