// convlens lab: a searchable picker on a text input (class names, layers, style images with thumbnails).
// LabPicker.attach(input, { items: async () => [{value, label, detail, thumb}], multi, preview }) keeps the
// input a plain text field (typing a value the list lacks still works: an upload id, a class index),
// and adds a list that filters as you type, with arrow keys, Enter and Escape.
"use strict";
window.LabPicker = (() => {
  const el = (...a) => CL.el(...a);
  const SHOWN = 400;   // rows drawn at once (every layer of a model; the 1000 class names filter down as you type)

  function part(value, multi) {   // the comma-separated entry being edited
    return multi ? value.split(",").pop().trim() : value.trim();
  }

  function attach(input, opts) {
    const list = el("ul", { class: "lab-picker-list", role: "listbox", hidden: true });
    const browse = el("button", { type: "button", class: "lab-picker-browse", title: "browse the choices", tabindex: "-1" }, "▾");
    const preview = opts.preview ? el("img", { class: "lab-picker-preview", alt: "" }) : null;
    const wrap = el("span", { class: "lab-picker" });
    input.replaceWith(wrap);
    wrap.append(input, browse, list);
    if (preview) wrap.append(preview);
    input.setAttribute("autocomplete", "off");
    input.setAttribute("role", "combobox");
    let items = null, shown = [], active = -1;

    async function load() {
      if (!items) {
        try { items = await opts.items(); } catch (err) { items = []; list.replaceChildren(el("li", { class: "error" }, String(err.message || err))); }
      }
      return items;
    }

    function showPreview() {
      if (!preview || !items) return;
      const hit = items.find((i) => i.value === input.value.trim());
      if (hit && hit.thumb) { preview.src = hit.thumb; preview.title = hit.label; preview.hidden = false; } else preview.hidden = true;
    }

    function choose(item) {
      if (opts.multi) {
        const parts = input.value.split(",").map((s) => s.trim()).filter(Boolean);
        if (parts.length && !items.some((i) => i.value === parts[parts.length - 1])) parts.pop();   // the typed fragment
        parts.push(item.value);
        input.value = parts.join(",");
      } else input.value = item.value;
      close();
      showPreview();
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }

    function draw(query) {
      const q = (query || "").toLowerCase();
      const hits = q ? items.filter((i) => `${i.label} ${i.value} ${i.detail || ""}`.toLowerCase().includes(q)) : items;
      shown = hits.slice(0, SHOWN);
      active = shown.length ? 0 : -1;
      list.replaceChildren(...shown.map((i, k) => el("li", { role: "option", class: k === active ? "active" : "", "data-value": i.value,
        onmousedown: (e) => { e.preventDefault(); choose(i); } },
        i.thumb ? el("img", { src: i.thumb, alt: "", loading: "lazy" }) : [],
        el("span", { class: "lab-picker-label" }, i.label), i.detail ? el("small", { class: "muted" }, ` ${i.detail}`) : [])));
      if (hits.length > shown.length) list.append(el("li", { class: "muted lab-picker-more" }, `${hits.length - shown.length} more: type to narrow`));
      if (!hits.length) list.append(el("li", { class: "muted lab-picker-more" }, q ? `no match for “${query}”` : "no choices"));
      list.hidden = false;
    }

    function move(d) {
      if (!shown.length) return;
      list.children[active]?.classList.remove("active");
      active = (active + d + shown.length) % shown.length;
      list.children[active].classList.add("active");
      list.children[active].scrollIntoView({ block: "nearest" });
    }

    function close() { list.hidden = true; active = -1; }

    input.addEventListener("input", async (e) => {
      if (!e.isTrusted) return;   // our own event after a choice
      await load();
      const q = part(input.value, opts.multi);
      const exact = items.some((i) => i.value.toLowerCase() === q.toLowerCase() || i.label.toLowerCase() === q.toLowerCase());
      if (!q || exact) close(); else draw(q);   // the list opens while a value is being typed, not once it is complete
      showPreview();
    });
    input.addEventListener("blur", () => setTimeout(close, 120));
    input.addEventListener("keydown", (e) => {
      if (list.hidden) return;
      if (e.key === "ArrowDown") { e.preventDefault(); move(1); }
      else if (e.key === "ArrowUp") { e.preventDefault(); move(-1); }
      else if (e.key === "Enter" && active >= 0) { e.preventDefault(); choose(shown[active]); }
      else if (e.key === "Escape") { e.preventDefault(); close(); }
    });
    browse.addEventListener("click", async () => {
      if (!list.hidden) { close(); return; }
      input.focus(); await load(); draw("");
    });
    input.addEventListener("change", showPreview);
    load().then(showPreview);
    return { refresh: showPreview };
  }

  return { attach };
})();
