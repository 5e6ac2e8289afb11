// GreenPost dashboard: calls the API with the key the user pasted (kept in
// sessionStorage, so it leaves with the tab) and shows the city, its
// districts and the current alerts against the city's targets.
"use strict";

const KEY = "gp.key";
const $ = (id) => document.getElementById(id);

function pct(v, digits = 1) {
  return v === null || v === undefined ? "—" : (v * 100).toFixed(digits) + " %";
}

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}

// api fetches a path with the key and returns the JSON answer; problem
// answers (RFC 9457) become errors carrying their detail.
async function api(path) {
  const key = sessionStorage.getItem(KEY);
  const res = await fetch(path, { headers: { Authorization: "Bearer " + key, Accept: "application/json" } });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const detail = body && body.detail ? body.detail : res.statusText;
    throw new Error(res.status + " " + (body && body.title ? body.title : "") + ": " + detail);
  }
  return body;
}

function windowQuery() {
  const hours = parseInt($("window").value, 10);
  const to = new Date();
  to.setSeconds(0, 0);
  const from = new Date(to.getTime() - hours * 3600 * 1000);
  return "from=" + encodeURIComponent(from.toISOString()) + "&to=" + encodeURIComponent(to.toISOString());
}

function showBar(prefix, value, target) {
  const fill = $(prefix + "-bar");
  fill.style.width = value === null ? "0" : Math.min(100, value * 100) + "%";
  fill.className = "fill" + (value !== null && value < target ? " bad" : "");
  $(prefix + "-target").style.left = "calc(" + target * 100 + "% - 1px)";
}

function showCard(id, prefix, value, target, meets, note) {
  const el = $(id);
  el.textContent = pct(value);
  el.className = "big " + (meets ? "ok" : "bad");
  showBar(prefix, value, target);
  $(prefix + "-note").textContent = note;
}

function showCity(city, targets) {
  showCard("city-green-rate", "city-green", city.green_rate, targets.green_rate, city.meets.green_rate,
    city.parcels.green + " of " + city.parcels.total + " parcels green; target " + pct(targets.green_rate, 0));
  showCard("city-outlet-coverage", "city-outlet", city.outlet_coverage, targets.outlet_coverage, city.meets.outlet_coverage,
    city.covered_outlets + " of " + city.outlets + " outlets; target " + pct(targets.outlet_coverage, 0));
  const binMeets = city.bin_coverage !== null && city.bin_coverage >= targets.bin_coverage;
  showCard("city-bin-coverage", "city-bin", city.bin_coverage, targets.bin_coverage, binMeets,
    "mean over outlets; waste-free bar " + pct(targets.bin_coverage, 0) + "; " + city.waste_free_outlets + " outlets pass it");
  const c = city.completeness || {};
  $("city-trust").textContent = "Data behind these figures: counters reporting " + pct(c.counter_reporting) +
    " of the time; " + (c.outlets_reporting_parcels ?? "?") + " of " + city.outlets + " outlets sent parcel counts; " +
    (c.silent_outlets ?? "?") + " outlets silent.";
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function showDistricts(groups) {
  const body = $("districts").querySelector("tbody");
  body.replaceChildren();
  for (const g of groups) {
    const tr = document.createElement("tr");
    tr.dataset.key = g.key;
    cell(tr, g.key);
    cell(tr, String(g.outlets), "num");
    cell(tr, String(g.parcels.total), "num");
    cell(tr, pct(g.green_rate), "num " + (g.meets.green_rate ? "ok" : "bad"));
    cell(tr, pct(g.outlet_coverage), "num " + (g.meets.outlet_coverage ? "ok" : "bad"));
    cell(tr, pct(g.bin_coverage), "num");
    cell(tr, pct(g.completeness ? g.completeness.counter_reporting : null), "num");
    const met = [g.meets.green_rate ? "green rate" : null, g.meets.outlet_coverage ? "coverage" : null].filter(Boolean);
    cell(tr, met.length ? met.join(", ") : "none");
    body.appendChild(tr);
  }
}

function showAlerts(alerts) {
  const body = $("alerts").querySelector("tbody");
  body.replaceChildren();
  $("alert-count").textContent = "(" + alerts.length + ")";
  for (const a of alerts) {
    const tr = document.createElement("tr");
    tr.dataset.kind = a.kind;
    cell(tr, a.kind.replace("_", " "));
    cell(tr, a.outlet);
    cell(tr, a.device || "—");
    cell(tr, new Date(a.since).toLocaleString());
    cell(tr, a.value === null ? "—" : a.kind === "below_target" ? pct(a.value) : a.value.toFixed(1), "num");
    cell(tr, a.detail || "");
    body.appendChild(tr);
  }
}

async function load() {
  if (!sessionStorage.getItem(KEY)) {
    setStatus("Paste a key to load the figures. It is kept only in this tab.", false);
    return;
  }
  setStatus("Loading…", false);
  try {
    const q = windowQuery();
    const [city, districts, alerts] = await Promise.all([
      api("/v1/rates?group_by=city&" + q),
      api("/v1/rates?group_by=district&" + q),
      api("/v1/alerts"),
    ]);
    showCity(city.groups[0], city.targets);
    showDistricts(districts.groups);
    showAlerts(alerts.alerts);
    setStatus("Figures for " + new Date(city.from).toLocaleString() + " to " + new Date(city.to).toLocaleString() + ".", false);
    document.body.dataset.loaded = "yes";
  } catch (e) {
    setStatus(e.message, true);
    document.body.dataset.loaded = "error";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const k = $("key").value.trim();
    if (k) sessionStorage.setItem(KEY, k);
    $("key").value = "";
    load();
  });
  $("forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.reload();
  });
  $("window").addEventListener("change", load);
  load();
});
