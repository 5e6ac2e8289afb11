// The page's language: Chinese by default, English on the switch; every
// visible string comes from one table per language (i18n/zh.js, i18n/en.js).
import zh from "../i18n/zh.js";
import en from "../i18n/en.js";

const tables = { zh, en };
const STORE = "gp.lang";
let current = "zh";

/**
 * chooseLang picks the language: the address's ?lang= first (a shared link
 * keeps its language), then the switch's choice kept in local storage, then
 * Chinese — the city's language, whatever the browser prefers.
 */
export function chooseLang(fromURL) {
  let l = fromURL;
  if (!tables[l]) {
    try {
      l = localStorage.getItem(STORE);
    } catch {
      l = null;
    }
  }
  setLang(tables[l] ? l : "zh");
  return current;
}

/** setLang switches the language, remembers it, and sets <html lang>. */
export function setLang(l) {
  if (!tables[l]) return;
  current = l;
  try {
    localStorage.setItem(STORE, l);
  } catch {
    /* private mode: the address still carries it */
  }
  document.documentElement.lang = l === "zh" ? "zh-CN" : "en";
}

/** lang is the current language ("zh" or "en"). */
export function lang() {
  return current;
}

/** t returns the string for key with {name} placeholders filled in. */
export function t(key, vars) {
  let s = tables[current][key];
  if (s === undefined) {
    console.error("missing string", current, key); // the browser test fails on any console error
    s = key;
  }
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] === undefined ? m : String(vars[k])));
  return s;
}

/** tn picks the _one or _other form by the count n (English has both). */
export function tn(key, n, vars) {
  const form = new Intl.PluralRules(current === "zh" ? "zh-CN" : "en").select(n) === "one" ? "_one" : "_other";
  return t(key + form, { n, ...vars });
}

/** keys lists a table's keys (the tests check both tables hold the same). */
export function keys(l) {
  return Object.keys(tables[l]);
}
