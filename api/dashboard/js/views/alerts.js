// Alerts, one tab per kind: the collection list first (/v1/collections:
// bins full now — the longest full first —, then those predicted to fill
// within the look-ahead, soonest first, then silent ones), offline devices,
// outlets below target. The collection list prints per district.
// collectionRows is the one function that feeds both the table and the print.
import { t, tn } from "../i18n.js";
import { get } from "../api.js";
import { pct, pctTarget, num, dateTime, duration } from "../format.js";
import { href } from "../state.js";
import { h, box, table, csvButton } from "../ui.js";

const TABS = [
  { id: "full", kind: "bin_full" },
  { id: "offline", kind: "device_offline" },
  { id: "below", kind: "below_target" },
];

/** AHEADS are the look-aheads the collection list offers, in hours. */
export const AHEADS = ["2", "24"];

/** collectionRows are the collection list's bins with their outlets, in the list's order. */
export function collectionRows(list, outlets) {
  return list.bins.map((b, i) => ({ ...b, order: i, o: outlets.get(b.outlet) || { id: b.outlet, name: b.name, district: b.district, address: b.address } }));
}

/** when says a bin's state in words: full for how long, full at about when, silent for how long. */
export function when(b, at) {
  switch (b.state) {
    case "full":
      return t("full_for_words", { d: duration(b.full_at, at) });
    case "filling":
      return t("full_at_words", { t: dateTime(b.full_at) });
    default:
      return t("stale_for_words", { d: duration(b.reported_at, at) });
  }
}

export default function alertsView(main, ctx) {
  const s = ctx.state;
  const tab = TABS.find((x) => x.id === s.tab) || TABS[0];
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": t("alerts_title") });
  let shown = new Set();
  const hours = AHEADS.includes(s.hours) ? s.hours : "24";
  const collections = "/v1/collections?hours=" + hours + (s.district ? "&district=" + s.district : "");
  const list = box(t("alerts_title"), {
    id: "alerts",
    tools: [
      tab.id === "full" ? h("span", { class: "toggle", role: "group", "aria-label": t("ahead") }, AHEADS.map((x) =>
        h("a", { href: href({ ...s, hours: x === "24" ? "" : x }), "aria-pressed": x === hours ? "true" : "false", class: x === hours ? "current" : "" }, t("ahead_" + x)))) : null,
      tab.id === "full" ? h("button", { type: "button", onclick: () => window.print() }, t("print_list")) : null,
      tab.id === "full"
        ? csvButton(() => "collection-list-" + hours + "h", () => collections + "&format=csv")
        : csvButton(() => "alerts-" + tab.id, () => "/v1/alerts?format=csv&kind=" + tab.kind, (head, row) => shown.has(row[head.indexOf("outlet")])),
    ],
  });
  const printable = h("section", { class: "print-only", id: "collection-list", "aria-hidden": "true" });
  main.append(tabs, list.el, printable);

  const load = list.panel.load(async (signal, onWait) => {
    const [a, c, os, names, tg] = await Promise.all([get("/v1/alerts", { signal, onWait }), get(collections, { signal, onWait }),
      ctx.outlets(), ctx.districts(), ctx.targets()]);
    const at = new Date(a.at);
    const cat = new Date(c.at);
    const dname = (o) => names.get(o.district)?.name || o.district || t("unregistered");
    const withOutlet = (x) => ({ ...x, o: os.get(x.outlet) || { id: x.outlet, name: x.outlet, district: "", address: "" } });
    const inFilter = (x) => !s.district || x.o.district === s.district;
    const rows = {
      full: collectionRows(c, os),
      offline: a.alerts.filter((x) => x.kind === "device_offline").map(withOutlet).filter(inFilter).sort((x, y) => new Date(x.since) - new Date(y.since)),
      below: a.alerts.filter((x) => x.kind === "below_target").map(withOutlet).filter(inFilter).sort((x, y) => (x.value ?? 0) - (y.value ?? 0)),
    };
    tabs.replaceChildren(...TABS.map((x) => h("a", {
      role: "tab", id: "tab-" + x.id, href: href({ ...s, tab: x.id }), "aria-selected": x.id === tab.id ? "true" : "false",
      "aria-controls": "alerts", class: x.id === tab.id ? "current" : "",
    }, t("tab_" + x.id), " ", h("span", { class: "count" }, num(rows[x.id].length)))));
    list.el.setAttribute("role", "tabpanel");
    list.el.setAttribute("aria-labelledby", "tab-" + tab.id);
    list.el.querySelector("h2").textContent = t("tab_" + tab.id);
    shown = new Set(rows[tab.id].map((x) => x.outlet));
    const outletCell = (x) => (os.has(x.outlet) ? h("a", { href: href({ ...s, view: "outlets", id: x.outlet, tab: "" }) }, x.o.name) : h("span", {}, x.outlet + " (" + t("unregistered") + ")"));
    const cols = {
      full: [
        { label: t("outlet"), value: (x) => x.o.name, cell: outletCell },
        { label: t("district"), value: dname2(dname), cell: (x) => dname(x.o) },
        { label: t("bin"), value: (x) => x.device, cell: (x) => h("code", {}, x.device) },
        { label: t("when"), value: (x) => x.order, cell: (x) => when(x, cat), cls: (x) => (x.state === "filling" ? "" : "bad") },
        { label: t("fill"), num: true, value: (x) => x.fill_pct, cell: (x) => num(x.fill_pct) + "%" },
        { label: t("confidence"), value: (x) => ["high", "medium", "low"].indexOf(x.confidence), cell: (x) => t("conf_" + x.confidence) },
        { label: t("address"), value: (x) => x.o.address, cell: (x) => x.o.address },
      ],
      offline: [
        { label: t("outlet"), value: (x) => x.o.name, cell: outletCell },
        { label: t("district"), value: dname2(dname), cell: (x) => dname(x.o) },
        { label: t("device"), value: (x) => x.device, cell: (x) => h("code", {}, x.device) },
        { label: t("offline_for"), value: (x) => -new Date(x.since), desc: true, cell: (x) => t("offline_for_words", { d: duration(x.since, at) }), cls: () => "bad" },
        { label: t("since"), value: (x) => x.since, cell: (x) => dateTime(x.since) },
      ],
      below: [
        { label: t("outlet"), value: (x) => x.o.name, cell: outletCell },
        { label: t("district"), value: dname2(dname), cell: (x) => dname(x.o) },
        { label: t("green_rate_7d"), num: true, value: (x) => x.value, cell: (x) => pct(x.value, tg.green_rate), cls: () => "bad" },
        { label: t("target"), num: true, cell: () => pctTarget(tg.green_rate) },
      ],
    };
    const sortCol = { full: 3, offline: 3, below: 2 }[tab.id];
    list.body.replaceChildren(
      h("p", { class: "note" }, t("alerts_note_" + tab.id, { at: dateTime(tab.id === "full" ? c.at : a.at), h: hours })),
      table({ caption: t("tab_" + tab.id), columns: cols[tab.id], rows: rows[tab.id], sort: sortCol, desc: tab.id === "offline", empty: t("no_alerts_" + tab.id) }),
    );
    printable.replaceChildren(...printList(rows.full, dname, cat, hours));
  });

  return { done: load.then(() => {}), dispose: () => list.panel.stop() };
}

const dname2 = (dname) => (x) => dname(x.o);

/** printList is the collection list on paper: by district, in the list's order. */
function printList(rows, dname, at, hours) {
  const byDistrict = new Map();
  for (const r of rows) {
    const k = dname(r.o);
    if (!byDistrict.has(k)) byDistrict.set(k, []);
    byDistrict.get(k).push(r);
  }
  const out = [h("h1", {}, t("collection_list")), h("p", {}, t("collection_list_at", { at: dateTime(at.toISOString()), h: hours }))];
  for (const [d, rs] of byDistrict) {
    out.push(h("h2", {}, d + " · " + tn("bins_listed", rs.length)));
    out.push(h("table", {}, h("thead", {}, h("tr", {}, [t("outlet"), t("address"), t("bin"), t("when"), t("fill"), t("done")].map((x) => h("th", {}, x)))),
      h("tbody", {}, rs.map((r) => h("tr", {}, h("td", {}, r.o.name), h("td", {}, r.o.address), h("td", {}, r.device), h("td", {}, when(r, at)),
        h("td", {}, num(r.fill_pct) + "%"), h("td", {}, "☐"))))));
  }
  if (!rows.length) out.push(h("p", {}, t("no_alerts_full")));
  return out;
}
