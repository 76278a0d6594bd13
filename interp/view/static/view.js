// interp view: applies the views' payloads to the page's Bokeh models (see interp/view/page.py).
// window.INTERP_CONFIG = {params, resets, notes, stores}; window.INTERP_PAYLOADS / INTERP_ASSETS (export only).
(function () {
  "use strict";
  const cfg = window.INTERP_CONFIG;
  const state = { doc: null, pending: 0, errors: [], requests: 0, values: {} };
  window.interpView = state;

  function model(name) { return state.doc.get_model_by_name(name); }

  function key(view, params) {
    const names = Object.keys(params).sort();
    const q = new URLSearchParams();
    for (const n of names) q.append(n, params[n]);
    return view + "?" + q.toString();
  }

  function params(view, reset) {
    const out = { store: model("store").value || "0" };
    for (const [p, widget] of Object.entries(cfg.params[view] || {})) {
      out[p] = (reset || []).includes(p) ? "" : (model(widget).value || "");
    }
    return out;
  }

  async function get(view, p) {
    const k = key(view, p);
    if (window.INTERP_PAYLOADS !== undefined) {
      const hit = window.INTERP_PAYLOADS[k];
      if (hit !== undefined) return hit;
      const divs = {};
      divs[cfg.notes[view]] = '<div class="interp-note">This selection is not in the exported file; ' +
        "open the store with <code>interp view</code> to see it.</div>";
      return { divs: divs };
    }
    const r = await fetch("api/" + k);
    if (!r.ok) throw new Error("request " + k + " failed: " + r.status + " " + (await r.text()));
    return await r.json();
  }

  function apply(p) {
    {
      for (const [n, d] of Object.entries(p.sources || {})) {
        const m = model(n);
        if (!m) continue;
        const assets = window.INTERP_ASSETS;  // export: images are named "asset:N" in the payloads
        m.data = d.url && assets ? Object.assign({}, d, { url: d.url.map((u) => assets[u] || u) }) : d;
      }
      for (const [n, f] of Object.entries(p.factors || {})) { const m = model(n); if (m && f.length) m.factors = f; }
      for (const [n, l] of Object.entries(p.mappers || {})) { const m = model(n); if (m) { m.low = l[0]; m.high = l[1]; } }
      for (const [n, l] of Object.entries(p.ranges || {})) { const m = model(n); if (m) { m.start = l[0]; m.end = l[1]; } }
      for (const [n, s] of Object.entries(p.selects || {})) {
        const m = model(n);
        if (m) m.setv({ options: s.options, value: s.value });  // together: the view renders both at once
        state.values[n] = s.value;
      }
      for (const [n, h] of Object.entries(p.divs || {})) { const m = model(n); if (m) m.text = h; }
    }
  }

  async function refresh(view, p) {
    const asked = p || params(view);
    state.pending += 1;
    state.requests += 1;
    try {
      apply(await get(view, asked));
    } catch (err) {
      state.errors.push(String(err));
      const divs = {};
      divs[cfg.notes[view]] = '<div class="interp-error">' + String(err) + "</div>";
      apply({ divs: divs });
    } finally {
      state.pending -= 1;
    }
  }

  state.changed = function (view, widget) {
    if (view === "store") { for (const v of cfg.initial) refresh(v, params(v, Object.keys(cfg.params[v] || {}))); return; }
    // BokehJS runs property callbacks after the change: a select echoing a payload's value is no change
    if (model(widget).value === state.values[widget]) return;
    state.values[widget] = model(widget).value;
    refresh(view, params(view, cfg.resets[widget] || []));
    if (view === "dynamics") model("heat_src").selected.indices = [];
  };

  state.cell = function (index) {
    const src = model("heat_src");
    const p = params("dynamics");
    p.site = src.data.site[index];
    p.step = src.data.step[index];
    refresh("cell", p);
  };

  state.idle = function () { return state.doc !== null && state.pending === 0 && state.started; };

  function start() {
    if (typeof Bokeh === "undefined" || Bokeh.documents.length === 0 || model_missing()) { setTimeout(start, 30); return; }
    const all = cfg.initial.map((v) => refresh(v));
    state.started = true;
    Promise.all(all).then(() => { document.body.dataset.interpReady = "1"; });
  }

  function model_missing() {
    state.doc = Bokeh.documents[0];
    return state.doc.get_model_by_name("store") === null;
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
