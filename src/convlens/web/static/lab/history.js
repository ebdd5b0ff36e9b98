// convlens lab: this session's results (history) and the pinned ones (compare), kept in sessionStorage so a
// reload keeps them. LabHistory.add(entry) after each run; strip(box, open) draws the history chips;
// compare(box, open) draws the pinned results side by side.
"use strict";
window.LabHistory = (() => {
  const el = (...a) => CL.el(...a);
  const KEY = "convlens-lab-history", PINS = "convlens-lab-pins", KEEP = 40, MAX_PINS = 4;
  const read = (k) => { try { return JSON.parse(sessionStorage.getItem(k)) || []; } catch (e) { return []; } };
  // stored without inline images (a result's `data`): its `url` serves the same PNG, and the storage stays small
  const noInline = (key, val) => (key === "data" && typeof val === "string" && val.startsWith("data:") ? undefined : val);
  const write = (k, v) => { try { sessionStorage.setItem(k, JSON.stringify(v, noInline)); } catch (e) { /* full or disabled: memory only */ } };
  let entries = read(KEY), pins = read(PINS);
  const listeners = [];

  function changed() { write(KEY, entries); write(PINS, pins); listeners.forEach((f) => f()); }

  function add(entry) {
    entries = [entry, ...entries.filter((e) => e.id !== entry.id)].slice(0, KEEP);
    pins = pins.filter((id) => entries.some((e) => e.id === id));
    changed();
  }

  const get = (id) => entries.find((e) => e.id === id);
  const pinned = (id) => pins.includes(id);

  function togglePin(id) {
    if (pinned(id)) pins = pins.filter((p) => p !== id);
    else pins = [...pins, id].slice(-MAX_PINS);   // the oldest pin leaves past four
    changed();
  }

  function thumb(e) {
    const im = e.result && e.result.images && e.result.images[Math.min(1, e.result.images.length - 1)];
    return im ? el("img", { src: im.data || im.url, alt: "", class: "lab-hist-thumb", onerror: (ev) => ev.target.remove() })
      : el("span", { class: "lab-hist-thumb lab-hist-none" }, e.status === "error" ? "!" : "–");
  }

  // One chip per result, newest first: clicking one restores its image, technique, parameters and result.
  function strip(box, open, current) {
    if (!entries.length) { box.replaceChildren(el("span", { class: "muted" }, "History: results of this session appear here.")); return; }
    box.replaceChildren(el("span", { class: "muted" }, "History:"), ...entries.map((e) =>
      el("button", { type: "button", class: `lab-hist${e.id === current ? " current" : ""}${pinned(e.id) ? " pinned" : ""}`,
        title: `${LabResult.caption(e)} (${e.status}${e.seconds ? `, ${e.seconds.toFixed(2)} s` : ""})`, "data-id": e.id,
        onclick: () => open(e) }, thumb(e), el("span", {}, `${e.technique}${e.needsImage === false ? "" : ` · ${e.imageName || e.image}`}`))));
  }

  // The pinned results side by side: caption, images, numbers; "open" restores one, "×" unpins it.
  function compare(box, open) {
    const shown = pins.map(get).filter(Boolean);
    box.hidden = !shown.length;
    box.replaceChildren(el("h3", {}, `Compare (${shown.length} pinned)`,
      el("small", { class: "muted" }, "  pin up to four results: two methods on one image, one method on two images…")),
      el("div", { class: "lab-compare-row" }, shown.map((e) => el("article", { class: "lab-compare-card", "data-id": e.id },
        el("header", {}, el("strong", {}, LabResult.caption(e)), " ",
          el("button", { type: "button", class: "lab-open", title: "restore this result in the lab", onclick: () => open(e) }, "open"), " ",
          el("button", { type: "button", class: "lab-unpin", title: "unpin", onclick: () => togglePin(e.id) }, "×")),
        LabResult.body(e, true)))));
  }

  return { add, get, pinned, togglePin, strip, compare, entries: () => entries, pins: () => pins,
    onChange: (f) => listeners.push(f) };
})();
