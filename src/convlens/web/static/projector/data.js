// convlens projector: the store's data beyond the map: the neighbours of an outside image (the current
// image of the other views, or an upload), near-duplicates, and a new store embedded from uploaded images
// (a job with a progress bar). Results become the selection, so isolate / CSV / search work on them.
import { setSelection } from "./mouse.js";
import { P, query, shortPath, thumbUrl } from "./state.js";
import { focusPoint } from "./side.js";

const json = (body) => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

async function upload(file) {
  const fd = new FormData();
  fd.append("file", file, file.name);
  return CL.api("/api/images", { method: "POST", body: fd });
}

export function dataPanel() {
  const el = CL.el, status = el("div", { class: "muted", "data-testid": "data-status" });
  const show = (...x) => status.replaceChildren(...x);
  const fail = (err) => { show(); CL.showError(status, err); };

  // neighbours of an image from outside the store
  const current = CL.current().image;
  const queryFile = el("input", { type: "file", accept: "image/*", "data-testid": "query-upload" });
  const imageNeighbors = async (image) => {
    show("embedding the image as the store's were…");
    try {
      const r = await CL.api(`/api/projector/image-neighbors?store=${encodeURIComponent(P.store)}&image=${encodeURIComponent(image)}&k=${P.k || 10}`);
      setSelection(r.neighbors.map((n) => n.index));
      const src = /^[0-9a-f]{16}$/.test(image) ? `/api/images/${image}.png` : `/api/samples/${encodeURIComponent(image)}.png`;
      P.side.replaceChildren(el("h3", {}, "Neighbours of an image"),
        el("div", { class: "focus" }, el("img", { class: "big", src, alt: image })),
        el("div", { class: "nb", "data-testid": "image-neighbors" }, r.neighbors.flatMap((nb) => [
          el("img", { src: thumbUrl(nb.index), alt: `#${nb.index}`, title: nb.path || "", onclick: () => focusPoint(nb.index) }),
          el("span", { class: "nbrow", "data-index": nb.index, "data-score": nb.score, title: nb.path || "" },
            `#${nb.index} ${nb.label || ""}`, el("br"), el("small", {}, shortPath(nb.path)), el("br"), el("b", {}, `cosine ${nb.score.toFixed(4)}`)),
          el("span")])));
      show(`${r.neighbors.length} nearest rows selected`);
    } catch (err) { fail(err); }
  };
  queryFile.addEventListener("change", async () => {
    const f = queryFile.files[0];
    if (!f) return;
    try { const r = await upload(f); CL.setCurrent({ image: r.id }); await imageNeighbors(r.id); } catch (err) { fail(err); }
  });

  // near-duplicates
  const threshold = el("input", { type: "number", name: "threshold", value: 0.95, min: -1, max: 1, step: 0.01, style: "width:64px" });
  const duplicates = async () => {
    show("…");
    try {
      const r = await CL.api(`/api/projector/duplicates?store=${encodeURIComponent(P.store)}&threshold=${threshold.value}`);
      setSelection(r.rows.length ? r.rows : null);
      show(el("span", { "data-testid": "duplicates" }, `${r.pairs.length} pair${r.pairs.length === 1 ? "" : "s"} at cosine ≥ ${r.threshold}` +
        (r.pairs.length ? `; closest #${r.pairs[0].a} ~ #${r.pairs[0].b} (${r.pairs[0].cosine.toFixed(4)})` : "")));
    } catch (err) { fail(err); }
  };

  // a new store from uploaded images
  const files = el("input", { type: "file", accept: "image/*", multiple: true, "data-testid": "embed-upload" });
  const name = el("input", { type: "text", name: "newstore", placeholder: "new store name", style: "width:120px", "data-testid": "embed-name" });
  const bar = el("progress", { max: 1, value: 0, style: "width:100%;display:none", "data-testid": "embed-progress" });
  const embed = async () => {
    const list = [...files.files];
    if (!list.length || !name.value.trim()) { fail("pick images and name the new store"); return; }
    bar.style.display = "";
    bar.removeAttribute("value");
    try {
      const ids = [];
      for (const [k, f] of list.entries()) { show(`uploading ${k + 1}/${list.length}…`); ids.push((await upload(f)).id); }
      const { job } = await CL.api("/api/projector/embed", json({ name: name.value.trim(), images: ids }));
      const done = await CL.follow(job, (j) => { if (j.total) { bar.max = j.total; bar.value = j.done; } show(`embedding · ${CL.jobText(j)}`); });
      if (done.status !== "done") throw new Error(done.error || done.status);
      location.href = `/projector?store=${encodeURIComponent(done.result.store)}`;
    } catch (err) { fail(err); } finally { bar.style.display = "none"; }
  };

  // an approximate index (saved with the store), as a job
  const indexBar = el("progress", { max: 1, value: 0, style: "width:100%;display:none" });
  const buildIndex = async () => {
    indexBar.style.display = "";
    indexBar.removeAttribute("value");
    try {
      const { job } = await CL.api("/api/projector/index", json({ store: P.store }));
      const done = await CL.follow(job, (j) => { if (j.total) { indexBar.max = j.total; indexBar.value = j.done; } show(`index · ${CL.jobText(j)}`); });
      if (done.status !== "done") throw new Error(done.error || done.status);
      show(el("span", { "data-testid": "index-done" }, `${done.result.kind} index of ${done.result.rows} rows, recall@10 ` +
        `${done.result.recall_at_10 === null ? "n/a" : done.result.recall_at_10.toFixed(3)} against exact search (${done.result.seconds} s)`));
    } catch (err) { fail(err); } finally { indexBar.style.display = "none"; }
  };
  const grid = el("a", { href: "#", target: "_blank", "data-testid": "grid-link", title: "every thumbnail in one cell of a grid, along this map",
    onclick: () => { grid.href = `/api/projector/grid.png?${query()}`; } }, "grid of this map (PNG)");
  const tb = el("a", { href: "#", "data-testid": "export-link", title: "tensors.tsv, metadata.tsv, sprite.png for projector.tensorflow.org",
    onclick: () => { tb.href = `/api/projector/export.zip?store=${encodeURIComponent(P.store)}`; } }, "TensorBoard projector (zip)");

  return el("div", {},
    el("div", { style: "margin-bottom:6px" }, grid, " · ", tb, " · ", el("button", { type: "button", onclick: buildIndex, "data-testid": "index-run" }, "Build index"), indexBar),
    el("div", {}, "Neighbours of ", current
      ? el("a", { href: "#", "data-testid": "current-neighbors", onclick: (e) => { e.preventDefault(); imageNeighbors(current); } }, `the current image (${current})`)
      : "an image", " or an upload: ", queryFile),
    el("div", { style: "margin-top:6px" }, el("button", { type: "button", onclick: duplicates, "data-testid": "find-duplicates" }, "Near-duplicates"), " at cosine ≥ ", threshold),
    el("div", { style: "margin-top:6px" }, "New store from images: ", files, name, " ", el("button", { type: "button", onclick: embed, "data-testid": "embed-run" }, "Embed"), bar),
    status);
}
