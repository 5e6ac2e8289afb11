// The page's state lives in the address (#/outlets/o-0001?window=7d&lang=zh),
// so every view can be bookmarked, shared and opened by a test.
import { midnight, ymd } from "./format.js";

export const WINDOWS = ["24h", "7d", "30d", "custom"];
export const VIEWS = ["overview", "map", "outlets", "alerts"];

/** read parses location.hash into {view, id, window, from, to, district, lang, tab, indicator, hours}. */
export function read(hash = location.hash) {
  const [path, qs] = hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean);
  const q = new URLSearchParams(qs || "");
  const s = {
    view: VIEWS.includes(parts[0]) ? parts[0] : "overview",
    id: parts[0] === "outlets" && parts[1] ? decodeURIComponent(parts[1]) : "",
    window: WINDOWS.includes(q.get("window")) ? q.get("window") : "7d",
    from: /^\d{4}-\d{2}-\d{2}$/.test(q.get("from") || "") ? q.get("from") : "",
    to: /^\d{4}-\d{2}-\d{2}$/.test(q.get("to") || "") ? q.get("to") : "",
    district: /^[a-z0-9][a-z0-9_-]{0,63}$/.test(q.get("district") || "") ? q.get("district") : "",
    lang: q.get("lang") || "",
    tab: q.get("tab") || "",
    indicator: q.get("indicator") || "",
    hours: /^\d{1,3}$/.test(q.get("hours") || "") ? q.get("hours") : "",
  };
  if (s.view === "outlets" && !s.id) s.view = "overview";
  if (s.window === "custom" && (!s.from || !s.to || s.from > s.to)) s.window = "7d";
  return s;
}

/** href builds the address of a state (only what differs from defaults). */
export function href(s) {
  const path = s.view === "outlets" ? "/outlets/" + encodeURIComponent(s.id) : "/" + s.view;
  const q = new URLSearchParams();
  if (s.window !== "7d") q.set("window", s.window);
  if (s.window === "custom") {
    q.set("from", s.from);
    q.set("to", s.to);
  }
  for (const k of ["district", "tab", "indicator", "hours", "lang"]) if (s[k]) q.set(k, s[k]);
  const qs = q.toString();
  return "#" + path + (qs ? "?" + qs : "");
}

/** go changes the address; the router renders the new state. */
export function go(changes) {
  location.hash = href({ ...read(), ...changes });
}

/**
 * span is the window as the page asks for it: the last 24 hours from the
 * start of this hour a day ago (hourly steps fall on whole hours), or the
 * last 7 or 30 calendar days in the city's zone, today included (daily
 * steps fall on the city's midnights), or whole custom days.
 * prev is the window of the same length just before (is it getting better?).
 */
export function span(s, now = new Date()) {
  let from;
  let to = new Date(Math.floor(now.getTime() / 60000) * 60000);
  let step = "1d";
  if (s.window === "24h") {
    from = new Date(Math.floor(to.getTime() / 3600000) * 3600000 - 24 * 3600000);
    step = "1h";
  } else if (s.window === "custom") {
    from = midnight(s.from);
    const end = midnight(nextDay(s.to));
    if (end < to) to = end;
    if (to - from <= 2 * 86400000) step = "1h";
  } else {
    const days = s.window === "7d" ? 7 : 30;
    from = midnight(ymd(new Date(to.getTime() - (days - 1) * 86400000)));
  }
  const len = to - from;
  return { from, to, step, prevFrom: new Date(from.getTime() - len), prevTo: from };
}

function nextDay(d) {
  const [y, m, dd] = d.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, dd + 1)).toISOString().slice(0, 10);
}

/** query is the from=&to= of a window. */
export function query(w) {
  return "from=" + encodeURIComponent(w.from.toISOString()) + "&to=" + encodeURIComponent(w.to.toISOString());
}
