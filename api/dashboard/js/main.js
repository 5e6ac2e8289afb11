// The page: header controls, the key, the router over the address, and the
// refresh every minute (paused while the tab is hidden). Each view is a
// module of its own (views/); they share the context made here.
import { t, lang, chooseLang, setLang } from "./i18n.js";
import { get, key, setKey, onUnauthorized, allOutlets, ApiError, backoff } from "./api.js";
import { setZone, dateTime, zoneName } from "./format.js";
import { read, go, span, href, WINDOWS } from "./state.js";
import { h, message, memo } from "./ui.js";
import { disposeAll } from "./charts.js";
import overview from "./views/overview.js";
import mapView from "./views/map.js";
import outletView from "./views/outlet.js";
import alertsView from "./views/alerts.js";

const views = { overview, map: mapView, outlets: outletView, alerts: alertsView };
const REFRESH_MS = 60000;
const $ = (id) => document.getElementById(id);

let current = null; // the view's controller: {refresh(), dispose()}
let lastLoad = 0;

/** loadCity reads the city's districts, time zone and targets. */
async function loadCity(s) {
  const a = await get("/v1/districts", { retry: false });
  setZone(a.time_zone);
  const byId = new Map();
  for (const d of a.districts) {
    const name = lang() === "zh" ? d.name_zh : d.name_en;
    byId.set(d.id, { ...d, name, nameZH: d.name_zh, short: name });
  }
  fillDistrictPicker(a.districts, s.district, a.scope);
  return { byId, targets: a.targets, scope: a.scope };
}

/** context is what every view gets: the state, the window, shared data. */
function context(s, city) {
  return {
    state: s,
    win: span(s), // after loadCity: days are the city's days
    districts: async () => city.byId,
    targets: async () => city.targets,
    // A scoped key's scope (ops-v1), or undefined: then "the whole city"
    // is the scope's outlets, and the page says so.
    scope: city.scope,
    // Shared within one load of a view: several panels need it; each panel
    // that needs it retries on its own.
    outlets: memo(() => allOutlets({ retry: false }).then((os) => new Map(os.map((o) => [o.id, o])))),
  };
}

function fillDistrictPicker(ds, selected, scope) {
  const sel = $("district");
  const keep = sel.value;
  sel.replaceChildren(h("option", { value: "" }, t(scope ? "whole_scope" : "whole_city")), ...ds.map((d) => h("option", { value: d.id }, lang() === "zh" ? d.name_zh : d.name_en)));
  sel.value = selected || keep || "";
}

/** texts fills in every fixed string of the page in the current language. */
function texts() {
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  for (const el of document.querySelectorAll("[data-t-label]")) el.setAttribute("aria-label", t(el.dataset.tLabel));
  for (const el of document.querySelectorAll("[data-t-placeholder]")) el.placeholder = t(el.dataset.tPlaceholder);
  const langBtn = $("lang");
  // The switch names the other language in that language.
  langBtn.textContent = lang() === "zh" ? "EN" : "中文";
  langBtn.setAttribute("lang", lang() === "zh" ? "en" : "zh-CN");
  langBtn.setAttribute("aria-label", t("switch_lang"));
  const win = $("window");
  win.replaceChildren(...WINDOWS.map((w) => h("option", { value: w }, t("window_" + w))));
}

function renderNav(s) {
  const nav = $("nav");
  nav.replaceChildren(...["overview", "map", "alerts"].map((v) => {
    const here = s.view === v || (v === "overview" && s.view === "outlets" && false);
    return h("a", { href: href({ ...s, view: v, id: "", tab: v === s.view ? s.tab : "" }), "aria-current": here ? "page" : null }, t("nav_" + v));
  }));
}

function showKeyBox(err) {
  stopView();
  document.body.dataset.signedIn = "no";
  $("keybox").hidden = false;
  $("main").hidden = true;
  $("key-msg").textContent = err ? message(err) : t("key_intro");
  $("key-msg").className = err ? "error" : "";
  document.body.dataset.loaded = err ? "error" : "key";
  $("key").focus();
}

function stopView() {
  current?.dispose();
  current = null;
  disposeAll();
}

let generation = 0;

/** render shows the view of the address. */
async function render() {
  const gen = ++generation;
  const s = read();
  if (s.lang && s.lang !== lang()) setLang(s.lang);
  texts();
  renderNav(s);
  $("window").value = s.window;
  $("window-controls").hidden = s.view === "alerts"; // alerts are about now
  $("custom").hidden = s.window !== "custom";
  if (s.window === "custom") {
    $("from").value = s.from;
    $("to").value = s.to;
  }
  if (!key()) {
    showKeyBox(null);
    return;
  }
  $("keybox").hidden = true;
  $("main").hidden = false;
  document.body.dataset.signedIn = "yes";
  stopView();
  const main = $("main");
  main.replaceChildren();
  document.body.dataset.loaded = "loading";
  let city;
  for (let n = 1; !city; n++) {
    try {
      city = await loadCity(s);
    } catch (e) {
      if (gen !== generation || (e instanceof ApiError && e.status === 401)) return;
      const wait = backoff(n);
      $("status").textContent = message(e) + " " + t("retrying", { s: Math.round(wait / 1000) });
      $("status").className = "error";
      await new Promise((r) => setTimeout(r, wait));
      if (gen !== generation) return;
    }
  }
  if (gen !== generation) return;
  $("status").className = "";
  const ctx = context(s, city);
  current = views[s.view](main, ctx);
  lastLoad = Date.now();
  showWindow(ctx);
  current.done.then(() => {
    if (gen === generation && document.body.dataset.loaded === "loading") document.body.dataset.loaded = "yes";
  });
}

function showWindow(ctx) {
  const w = ctx.win;
  if (ctx.state.view === "alerts") {
    $("status").textContent = t("alerts_now", { at: dateTime(new Date().toISOString()) });
    return;
  }
  $("status").textContent = t("window_shown", { from: dateTime(w.from.toISOString()), to: dateTime(w.to.toISOString()), zone: zoneName() })
    + " · " + t("refreshed", { at: dateTime(new Date().toISOString()) });
}

function refresh() {
  if (!current || document.hidden) return;
  // A new window (now moved on) and fresh shared data, same view.
  render();
}

document.addEventListener("DOMContentLoaded", () => {
  const s = read();
  chooseLang(s.lang);
  onUnauthorized((e) => {
    setKey("");
    showKeyBox(e);
  });
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const k = $("key").value.trim();
    $("key").value = "";
    if (!k) return;
    setKey(k);
    render();
  });
  $("logout").addEventListener("click", () => {
    setKey("");
    showKeyBox(null);
  });
  $("lang").addEventListener("click", () => {
    setLang(lang() === "zh" ? "en" : "zh");
    const cur = read();
    if (cur.lang) go({ lang: lang() });
    else render();
  });
  $("window").addEventListener("change", (ev) => {
    const w = ev.target.value;
    if (w === "custom") {
      $("custom").hidden = false;
      const s2 = read();
      const to = new Date();
      $("to").value ||= to.toISOString().slice(0, 10);
      $("from").value ||= new Date(to.getTime() - 13 * 86400000).toISOString().slice(0, 10);
      if (s2.window !== "custom") $("from").focus();
      return;
    }
    go({ window: w, from: "", to: "" });
  });
  $("custom").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const from = $("from").value;
    const to = $("to").value;
    if (from && to && from <= to) go({ window: "custom", from, to });
    else $("from").setCustomValidity(t("custom_invalid"));
  });
  $("from").addEventListener("input", () => $("from").setCustomValidity(""));
  $("district").addEventListener("change", (ev) => go({ district: ev.target.value }));
  window.addEventListener("hashchange", render);
  setInterval(refresh, REFRESH_MS);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && Date.now() - lastLoad >= REFRESH_MS) refresh();
  });
  render();
});
