// Alerts, one tab per kind: full bins first (most urgent first: full the
// longest), offline devices, outlets below target. Full bins print as a
// collection list per district. The operations work's collection list
// (/v1/collections) is to take the full-bins tab's place once it exists:
// fullBinRows is the one function that feeds both the table and the print.
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

/** fullBinRows are the full bins of the filter, longest full first. */
export function fullBinRows(alerts, outlets, s) {
  return alerts
    .filter((a) => a.kind === "bin_full")
    .map((a) => ({ ...a, o: outlets.get(a.outlet) || { id: a.outlet, name: a.outlet, district: "", address: "" } }))
    .filter((a) => !s.district || a.o.district === s.district)
    .sort((a, b) => new Date(a.since) - new Date(b.since) || (b.value ?? 0) - (a.value ?? 0));
}

export default function alertsView(main, ctx) {
  const s = ctx.state;
  const tab = TABS.find((x) => x.id === s.tab) || TABS[0];
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": t("alerts_title") });
  let shown = new Set();
  const list = box(t("alerts_title"), {
    id: "alerts",
    tools: [
      tab.id === "full" ? h("button", { type: "button", onclick: () => window.print() }, t("print_list")) : null,
      csvButton(() => "alerts-" + tab.id, () => "/v1/alerts?format=csv&kind=" + tab.kind, (head, row) => shown.has(row[head.indexOf("outlet")])),
    ],
  });
  const printable = h("section", { class: "print-only", id: "collection-list", "aria-hidden": "true" });
  main.append(tabs, list.el, printable);

  const load = list.panel.load(async (signal, onWait) => {
    const [a, os, names, tg] = await Promise.all([get("/v1/alerts", { signal, onWait }), ctx.outlets(), ctx.districts(), ctx.targets()]);
    const at = new Date(a.at);
    const dname = (o) => names.get(o.district)?.name || o.district || t("unregistered");
    const withOutlet = (x) => ({ ...x, o: os.get(x.outlet) || { id: x.outlet, name: x.outlet, district: "", address: "" } });
    const inFilter = (x) => !s.district || x.o.district === s.district;
    const rows = {
      full: fullBinRows(a.alerts, os, s),
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
        { label: t("full_for"), value: (x) => -new Date(x.since), desc: true, cell: (x) => t("full_for_words", { d: duration(x.since, at) }), cls: () => "bad" },
        { label: t("fill"), num: true, value: (x) => x.value, cell: (x) => num(x.value) + "%" },
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
      h("p", { class: "note" }, t("alerts_note_" + tab.id, { at: dateTime(a.at) })),
      table({ caption: t("tab_" + tab.id), columns: cols[tab.id], rows: rows[tab.id], sort: sortCol, desc: tab.id !== "below", empty: t("no_alerts_" + tab.id) }),
    );
    printable.replaceChildren(...printList(rows.full, dname, at));
  });

  return { done: load.then(() => {}), dispose: () => list.panel.stop() };
}

const dname2 = (dname) => (x) => dname(x.o);

/** printList is the collection list on paper: by district, then outlet. */
function printList(rows, dname, at) {
  const byDistrict = new Map();
  for (const r of rows) {
    const k = dname(r.o);
    if (!byDistrict.has(k)) byDistrict.set(k, []);
    byDistrict.get(k).push(r);
  }
  const out = [h("h1", {}, t("collection_list")), h("p", {}, t("collection_list_at", { at: dateTime(at.toISOString()) }))];
  for (const [d, rs] of byDistrict) {
    out.push(h("h2", {}, d + " · " + tn("bins_full", rs.length)));
    out.push(h("table", {}, h("thead", {}, h("tr", {}, [t("outlet"), t("address"), t("bin"), t("full_for"), t("done")].map((x) => h("th", {}, x)))),
      h("tbody", {}, rs.map((r) => h("tr", {}, h("td", {}, r.o.name), h("td", {}, r.o.address), h("td", {}, r.device), h("td", {}, duration(r.since, at)), h("td", {}, "☐"))))));
  }
  if (!rows.length) out.push(h("p", {}, t("no_alerts_full")));
  return out;
}
