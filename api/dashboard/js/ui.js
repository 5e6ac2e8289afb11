// Small pieces every view uses: building elements, panels that load on
// their own (a failed one says so and retries, the others keep working),
// sortable tables and CSV buttons.
import { t } from "./i18n.js";
import { get, ApiError, backoff } from "./api.js";

/** h builds an element: h("a", {href: "#/"}, "text", child, ...). Text is never parsed as HTML. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** memo keeps one promise for a load; a failed one is dropped so a retry asks again. */
export function memo(fn) {
  let p;
  return () => (p ??= fn().catch((e) => {
    p = undefined;
    throw e;
  }));
}

/** message is the words for a failed request. */
export function message(e) {
  if (!(e instanceof ApiError)) return t("err_page");
  switch (true) {
    case e.status === 401:
      return t("err_key");
    case e.status === 403:
      return t("err_forbidden");
    case e.status === 404:
      return t("err_not_found");
    case e.status === 400:
      return t("err_bad_request", { detail: e.detail });
    case e.status === 429:
      return t("err_rate");
    case e.status === 503:
      return t("preparing");
    case e.code === "timeout" || e.status === 504:
      return t("err_timeout");
    case e.code === "network":
      return t("err_network");
    default:
      return t("err_server", { status: e.status });
  }
}

/**
 * Panel is one box of a view that loads by itself. load(fn) runs
 * fn(signal, onWait) and shows its state: busy, "being prepared" (a 503
 * that api.get retries), or a failure with a retry on its own after a
 * growing wait. One panel failing never stops another.
 */
export class Panel {
  constructor(el) {
    this.el = el;
    this.status = h("p", { class: "panel-status", role: "status", "aria-live": "polite" });
    const head = el.querySelector(".box-head");
    if (head) head.after(this.status);
    else el.prepend(this.status);
    this.ctl = null;
    this.retryTimer = 0;
    this.failures = 0;
  }

  load(fn) {
    this.stop();
    const ctl = new AbortController();
    this.ctl = ctl;
    this.el.setAttribute("aria-busy", "true");
    this.el.dataset.state = "loading";
    const onWait = () => {
      if (ctl.signal.aborted) return;
      this.say(t("preparing"), "wait");
      this.el.dataset.state = "waiting";
    };
    return fn(ctl.signal, onWait).then(
      () => {
        if (ctl.signal.aborted) return;
        this.failures = 0;
        this.say("", "");
        this.el.dataset.state = "ok";
        this.el.removeAttribute("aria-busy");
      },
      (e) => {
        if (ctl.signal.aborted) return;
        if (!(e instanceof ApiError)) console.error(e); // a bug of the page: the test sees it
        this.failures++;
        const wait = backoff(this.failures);
        const retry = e instanceof ApiError && e.status !== 401 && e.status !== 403 && e.status !== 400 && e.status !== 404;
        this.say(message(e) + (retry ? " " + t("retrying", { s: Math.round(wait / 1000) }) : ""), "error");
        this.el.dataset.state = "error";
        this.el.removeAttribute("aria-busy");
        if (retry) this.retryTimer = setTimeout(() => this.load(fn), wait);
      },
    );
  }

  say(text, kind) {
    this.status.textContent = text;
    this.status.className = "panel-status" + (kind ? " " + kind : "");
  }

  stop() {
    clearTimeout(this.retryTimer);
    this.ctl?.abort(new DOMException("replaced", "AbortError"));
  }
}

/**
 * table builds a sortable table inside a scrolling box. columns:
 * {label, value(row) for sorting, cell(row) -> Node|string, num, cls(row)}.
 */
export function table({ caption, columns, rows, sort = 0, desc = false, empty, rowAttrs }) {
  const wrap = h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption });
  let key = sort;
  let down = desc;
  const render = () => {
    const col = columns[key];
    const sorted = col.value ? [...rows].sort((a, b) => cmp(col.value(a), col.value(b)) * (down ? -1 : 1)) : rows;
    const head = h("tr", {}, columns.map((c, i) => {
      const label = c.value
        ? h("button", { type: "button", class: "sort", onclick: () => { down = key === i ? !down : !!c.desc; key = i; render(); } }, c.label)
        : c.label;
      return h("th", { scope: "col", class: c.num ? "num" : "", "aria-sort": i === key && c.value ? (down ? "descending" : "ascending") : null }, label);
    }));
    const body = sorted.length
      ? sorted.map((r) => h("tr", rowAttrs ? rowAttrs(r) : {}, columns.map((c) => h("td", { class: [c.num ? "num" : "", c.cls ? c.cls(r) : ""].join(" ").trim() || null, "data-label": c.label }, c.cell(r)))))
      : [h("tr", {}, h("td", { colspan: String(columns.length), class: "empty" }, empty || t("no_rows")))];
    wrap.replaceChildren(h("table", {}, h("caption", { class: "sr-only" }, caption), h("thead", {}, head), h("tbody", {}, body)));
  };
  render();
  return wrap;
}

function cmp(a, b) {
  const na = a === null || a === undefined;
  const nb = b === null || b === undefined;
  if (na || nb) return na === nb ? 0 : na ? 1 : -1; // nothing to show sorts last
  return typeof a === "string" ? a.localeCompare(b) : a - b;
}

/** parseCSV reads RFC 4180 text into rows of cells. */
export function parseCSV(text) {
  const rows = [];
  let row = [];
  let cell = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") {
      row.push(cell);
      cell = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = "";
    } else cell += c;
  }
  if (cell !== "" || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

function toCSV(rows) {
  return rows.map((r) => r.map((c) => (/[",\r\n]/.test(c) ? '"' + c.replace(/"/g, '""') + '"' : c)).join(",")).join("\r\n") + "\r\n";
}

/**
 * csvButton downloads the API's own CSV for what a panel shows (the API's
 * formula guard stays on every cell); keep(header, row) drops rows the page
 * does not show. A UTF-8 byte order mark goes first, so Excel on Chinese
 * Windows reads the file as UTF-8.
 */
export function csvButton(name, path, keep) {
  const b = h("button", { type: "button", class: "csv" }, t("csv"));
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      let text = await get(path(), { csv: true });
      if (keep) {
        const [header, ...rows] = parseCSV(text);
        text = toCSV([header, ...rows.filter((r) => keep(header, r))]);
      }
      if (!text.startsWith("\uFEFF")) text = "\uFEFF" + text;
      const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
      const a = h("a", { href: url, download: name() + ".csv", class: "sr-only" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      b.dataset.done = String(Number(b.dataset.done || 0) + 1);
    } catch (e) {
      b.title = message(e);
      b.dataset.failed = "yes";
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

/** section builds a titled panel box: its heading, tools (buttons), body. */
export function box(title, { tools = [], id } = {}) {
  const body = h("div", { class: "box-body" });
  const el = h("section", { class: "box", "aria-labelledby": id ? id + "-h" : null }, h("div", { class: "box-head" }, h("h2", { id: id ? id + "-h" : null }, title), h("div", { class: "tools" }, tools)), body);
  const panel = new Panel(el);
  return { el, body, panel };
}
