// convlens explorer: shared helpers. Every view talks to the server only through /api (see /openapi.json).
"use strict";
const CL = {
  views: [],  // {name, title, path, match(pathname) -> bool, render(main)} registered by each view's script

  // The server's token (index.html's meta tag, filled in by the server): every POST and DELETE sends it.
  token: document.querySelector('meta[name="convlens-token"]')?.content || "",

  async api(path, opts = {}) {
    const method = (opts.method || "GET").toUpperCase();
    if (method !== "GET" && method !== "HEAD") opts = { ...opts, headers: { ...(opts.headers || {}), "X-Convlens-Token": CL.token } };
    const r = await fetch(path, opts);
    const type = r.headers.get("content-type") || "";
    const body = type.includes("application/json") ? await r.json() : await r.blob();
    if (!r.ok) throw new Error((body && body.error) || `HTTP ${r.status}`);
    return body;
  },

  // One line for a job's state: "queued · 2 jobs ahead", "running · 12/64", "cancelled: no client followed it…".
  jobText(job) {
    if (job.status === "queued" && job.position != null)
      return `queued · ${job.position ? `${job.position} job${job.position > 1 ? "s" : ""} ahead` : "next"}`;
    const count = job.total ? ` · ${job.done}/${job.total}` : "";
    return `${job.note || job.status}${count}`;
  },

  // Follow a job's server-sent events; onUpdate(job) on each change; resolves with the finished job.
  follow(jobId, onUpdate) {
    return new Promise((resolve) => {
      const es = new EventSource(`/api/jobs/${jobId}/events`);
      es.onmessage = (e) => {
        const job = JSON.parse(e.data);
        onUpdate && onUpdate(job);
        if (["done", "error", "cancelled"].includes(job.status)) { es.close(); resolve(job); }
      };
      es.onerror = async () => { es.close(); resolve(await CL.api(`/api/jobs/${jobId}`)); };
    });
  },

  el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  },

  showError(where, err) {
    where.querySelectorAll(".error").forEach((x) => x.remove());
    where.prepend(CL.el("p", { class: "error" }, String(err.message || err)));
  },

  register(view) { CL.views.push(view); },

  // The current image and model follow the user across views: a view's URL names them (?image=, ?model=),
  // the nav's links carry them to the views that take an image (lab, layers), and the session keeps the
  // last ones for views that do not (projector, words).
  IMAGE_VIEWS: ["lab", "layers"],
  current() {
    let saved = {};
    try { saved = JSON.parse(sessionStorage.getItem("convlens.current") || "{}"); } catch (e) { /* private mode */ }
    const q = new URLSearchParams(location.search), view = CL.views.find((v) => v.match(location.pathname));
    const here = view && CL.IMAGE_VIEWS.includes(view.name) ? { image: q.get("image"), model: q.get("model") } : {};
    return { image: here.image || saved.image || null, model: here.model || saved.model || null };
  },
  setCurrent(c) {
    const next = { ...CL.current(), ...c };
    try { sessionStorage.setItem("convlens.current", JSON.stringify(next)); } catch (e) { /* private mode */ }
  },
  carry(view) {  // the nav link of a view, with the current image and model when it takes them
    const c = CL.current(), q = new URLSearchParams();
    if (CL.IMAGE_VIEWS.includes(view.name)) {
      if (c.image) q.set("image", c.image);
      if (c.model) q.set("model", c.model);
    }
    return q.toString() ? `${view.path}?${q}` : view.path;
  },
  // The lab's URL for an image and a technique (and any of its form's parameters), as lab.js reads it.
  labUrl({ image, technique, ...params }) {
    const q = new URLSearchParams();
    if (image) q.set("image", image);
    if (technique) q.set("technique", technique);
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    return `/lab?${q}`;
  },

  async route() {
    const main = document.getElementById("view");
    const nav = document.getElementById("nav");
    nav.replaceChildren(...CL.views.map((v) => {
      const a = CL.el("a", { href: CL.carry(v), class: v.match(location.pathname) ? "active" : "", "data-view": v.name }, v.title);
      const fresh = () => { a.href = CL.carry(v); };  // the image may have changed since the nav was drawn
      a.addEventListener("mouseenter", fresh); a.addEventListener("focus", fresh); a.addEventListener("click", fresh);
      return a;
    }));
    const view = CL.views.find((v) => v.match(location.pathname)) || CL.views[0];
    const c = CL.current();
    if (view && CL.IMAGE_VIEWS.includes(view.name) && c.image) CL.setCurrent(c);
    document.title = view ? `${view.title} · convlens explorer` : "convlens explorer";  // views refine it
    main.replaceChildren();
    if (!view) { main.append(CL.el("p", { class: "muted" }, "No views are installed.")); return; }
    try { await view.render(main); } catch (err) { CL.showError(main, err); }
  },
};

window.addEventListener("pagehide", () => CL.setCurrent({}));  // the image this page ended on

window.addEventListener("DOMContentLoaded", async () => {
  try {
    const h = await CL.api("/api/health");
    const models = h.models || [h.model];
    document.getElementById("model-name").textContent = models.length > 1 ? `models: ${models.join(", ")}` : `model: ${h.model}`;
  } catch (err) { /* the view shows its own errors */ }
  CL.route();
});
