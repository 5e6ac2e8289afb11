// Every number, percentage, date and duration the page shows is formatted
// here, through Intl, for the page's language and the city's time zone.
import { t, lang } from "./i18n.js";

let zone = "Asia/Shanghai";

/** setZone sets the city's time zone (from GET /v1/districts). */
export function setZone(z) {
  zone = z || "Asia/Shanghai";
}

/** zoneName is the city's time zone as people call it ("中国标准时间"). */
export function zoneName() {
  const p = fmt("d", { timeZoneName: "long" }).formatToParts(new Date()).find((x) => x.type === "timeZoneName");
  return p ? p.value : zone;
}

const locale = () => (lang() === "zh" ? "zh-CN" : "en-GB");

const cache = new Map();
function fmt(kind, opts) {
  const key = kind + locale() + zone + JSON.stringify(opts);
  let f = cache.get(key);
  if (!f) {
    f = kind === "n" ? new Intl.NumberFormat(locale(), opts) : new Intl.DateTimeFormat(locale(), { timeZone: zone, ...opts });
    cache.set(key, f);
  }
  return f;
}

/**
 * shownRate is the rate as the page shows it: cut (never rounded) to a
 * tenth of a percent, so that a miss never looks like the target (0.8999
 * shows 89.9 %, not 90.0 %) and a meet never looks like a miss. Against a
 * target it also holds when the cut lands on the target by floating-point
 * noise.
 */
export function shownRate(v, target) {
  if (v === null || v === undefined) return null;
  let s = Math.floor(v * 1000 + 1e-9) / 1000;
  if (target !== undefined && target !== null && v < target && s >= target) s = Math.round(target * 1000 - 1) / 1000;
  return s;
}

/** pct formats a rate in 0..1 as a percentage with one decimal ("—" for null). */
export function pct(v, target) {
  const s = shownRate(v, target);
  if (s === null) return t("none");
  return fmt("n", { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(s);
}

/** pctTarget formats a target (90 %, 100 %) without needless decimals. */
export function pctTarget(v) {
  return fmt("n", { style: "percent", maximumFractionDigits: 1 }).format(v);
}

/** points formats a difference of two rates in percentage points, signed. */
export function points(d) {
  const v = Math.trunc(d * 1000) / 10;
  const s = fmt("n", { minimumFractionDigits: 1, maximumFractionDigits: 1, signDisplay: "exceptZero" }).format(v);
  return t("pp", { v: s });
}

/** num formats a count. */
export function num(n) {
  if (n === null || n === undefined) return t("none");
  return fmt("n", { maximumFractionDigits: 1 }).format(n);
}

/** coord formats a latitude or longitude (five decimals: about a metre). */
export function coord(v) {
  return fmt("n", { minimumFractionDigits: 5, maximumFractionDigits: 5 }).format(v);
}

/** dateTime formats a moment in the city's zone ("12月7日 10:37"). */
export function dateTime(iso) {
  if (!iso) return t("none");
  return fmt("d", { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(new Date(iso));
}

/** day formats a date in the city's zone ("12月7日"). */
export function day(iso) {
  return fmt("d", { month: "short", day: "numeric" }).format(new Date(iso));
}

/** hour formats a time of day in the city's zone ("10:00"). */
export function hour(iso) {
  return fmt("d", { hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(new Date(iso));
}

/** ymd is the calendar date (YYYY-MM-DD) of a moment in the city's zone. */
export function ymd(d) {
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" })
    .formatToParts(d).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}`;
}

/** zoneOffsetMin is the city's UTC offset in minutes at moment d. */
function zoneOffsetMin(d) {
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric",
    day: "numeric", hour: "numeric", minute: "numeric" }).formatToParts(d).map((x) => [x.type, x.value]));
  const asUTC = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour % 24, +p.minute);
  return Math.round((asUTC - Math.floor(d.getTime() / 60000) * 60000) / 60000);
}

/** midnight is the city's midnight starting the calendar day YYYY-MM-DD. */
export function midnight(dateStr) {
  const [y, m, d] = dateStr.split("-").map(Number);
  const guess = new Date(Date.UTC(y, m - 1, d));
  return new Date(guess.getTime() - zoneOffsetMin(guess) * 60000);
}

/** duration says how long ago since was, in words ("35 分钟", "2 h 5 min"). */
export function duration(sinceIso, now = Date.now()) {
  let min = Math.max(0, Math.floor((now - new Date(sinceIso).getTime()) / 60000));
  const d = Math.floor(min / 1440);
  const h = Math.floor((min % 1440) / 60);
  const m = min % 60;
  if (d > 0) return t("dur_dh", { d, h });
  if (h > 0) return t("dur_hm", { h, m });
  if (min === 0) return t("dur_0");
  return t("dur_m", { m: min });
}
