// The map: Wuhan's districts coloured by the chosen indicator, the outlets
// as points (green meets, red misses; size = parcels). A click on a
// district filters to it; a click on an outlet opens it. The same outlets
// are listed below as links, for the keyboard and screen readers.
import { t } from "../i18n.js";
import { get } from "../api.js";
import { pct, pctTarget, num } from "../format.js";
import { query, go, href } from "../state.js";
import { h, box, table, csvButton, memo } from "../ui.js";
import { registerMap, districtMap } from "../charts.js";
import { filterQuery } from "./overview.js";

const INDICATORS = ["green_rate", "outlet_coverage", "bin_coverage"];
// The seven central districts, where most outlets are.
const CENTRE = [114.3, 30.575];
const WHOLE = [114.395, 30.665]; // the outlines' box

export default function mapView(main, ctx) {
  const s = ctx.state;
  const w = ctx.win;
  const indicator = INDICATORS.includes(s.indicator) ? s.indicator : "green_rate";
  const pick = h("select", { id: "indicator", onchange: (ev) => go({ indicator: ev.target.value }) },
    INDICATORS.map((i) => h("option", { value: i, selected: i === indicator }, t(i))));
  let chartRef = null;
  let zoomed = false;
  const zoom = h("button", { type: "button", "aria-pressed": "false", onclick: () => {
    zoomed = !zoomed;
    zoom.setAttribute("aria-pressed", String(zoomed));
    zoom.textContent = t(zoomed ? "map_whole" : "map_centre");
    chartRef?.setOption({ geo: zoomed ? { center: CENTRE, zoom: 4 } : { center: WHOLE, zoom: 1 } });
  } }, t("map_centre"));
  const m = box(t("map_title"), { id: "map", tools: [h("label", { for: "indicator" }, t("indicator")), pick, zoom] });
  let shown = new Set();
  const list = box(t("map_outlets_title"), { id: "map-outlets", tools: [csvButton(() => "outlets", () => "/v1/rates?group_by=outlet&format=csv&" + query(w) + filterQuery(s), (head, row) => shown.has(row[head.indexOf("key")]))] });
  main.append(m.el, list.el);
  const outletRates = memo(() => get("/v1/rates?group_by=outlet&" + query(w) + filterQuery(s), { retry: false }));

  const loads = [];
  loads.push(m.panel.load(async (signal, onWait) => {
    const [geo, ds, names, os, rates] = await Promise.all([
      fetch("map/wuhan.geojson", { signal }).then((r) => (r.ok ? r.json() : Promise.reject(new Error("outlines " + r.status)))),
      get("/v1/rates?group_by=district&" + query(w), { signal, onWait }),
      ctx.districts(), ctx.outlets(), outletRates(),
    ]);
    registerMap(geo);
    const tg = ds.targets;
    const target = tg[indicator];
    const byKey = new Map(ds.groups.map((g) => [g.key, g]));
    const districts = [...names.values()].map((d) => ({
      id: d.id, name: d.name, nameZH: d.nameZH, short: d.short, outlets: d.outlets, value: byKey.get(d.id)?.[indicator] ?? null,
    }));
    const points = rates.groups.map((g) => {
      const o = os.get(g.key);
      return o && {
        id: g.key, name: o.name, lat: o.lat, lon: o.lon, districtName: names.get(o.district)?.name || o.district,
        greenRate: g.green_rate, greenTarget: tg.green_rate, covered: g.covered_outlets > 0, parcels: g.parcels.total,
        meets: g.meets.green_rate && g.meets.outlet_coverage,
      };
    }).filter(Boolean);
    const el = h("div", { class: "map", role: "img", "aria-label": t("map_label", { what: t(indicator) }) });
    const sel = s.district ? names.get(s.district) : null;
    m.body.replaceChildren(...[
      h("p", { class: "note" }, t("map_note", { what: t(indicator), target: pctTarget(target) })),
      el,
      h("p", { class: "legend" }, h("span", { class: "dot ok" }), " ", t("legend_meets"), " ", h("span", { class: "dot bad" }), " ", t("legend_misses"), " · ", t("legend_size"), " · ", h("span", { class: "dot none" }), " ", t("legend_no_data")),
      sel ? h("p", {}, t("map_selected", { name: sel.name }), " ", h("button", { type: "button", class: "link", onclick: () => go({ district: "" }) }, t(ctx.scope ? "show_whole_scope" : "show_whole_city"))) : null,
    ].filter(Boolean));
    chartRef = districtMap(el, {
      districts, outlets: points, target, indicatorName: t(indicator), selected: sel?.nameZH,
      onDistrict: (id) => go({ district: id === s.district ? "" : id }),
      onOutlet: (id) => go({ view: "outlets", id, tab: "", indicator: "" }),
    });
  }));

  loads.push(list.panel.load(async () => {
    const [rates, os, names] = await Promise.all([outletRates(), ctx.outlets(), ctx.districts()]);
    const tg = rates.targets;
    shown = new Set(rates.groups.map((g) => g.key));
    const o = (g) => os.get(g.key) || { name: g.key, district: "", address: "" };
    list.body.replaceChildren(table({
      caption: t("map_outlets_title"),
      sort: 2,
      rows: rates.groups,
      columns: [
        { label: t("outlet"), value: (g) => o(g).name, cell: (g) => h("a", { href: href({ ...s, view: "outlets", id: g.key, tab: "", indicator: "" }) }, o(g).name) },
        { label: t("district"), value: (g) => names.get(o(g).district)?.name || o(g).district, cell: (g) => names.get(o(g).district)?.name || o(g).district },
        { label: t(indicator), num: true, value: (g) => g[indicator], cell: (g) => pct(g[indicator], tg[indicator]),
          cls: (g) => (g[indicator] !== null && g[indicator] >= tg[indicator] ? "ok" : "bad") },
        { label: t("parcels"), num: true, value: (g) => g.parcels.total, cell: (g) => num(g.parcels.total) },
        { label: t("address"), value: (g) => o(g).address, cell: (g) => o(g).address },
      ],
    }));
  }));

  return { done: Promise.allSettled(loads), dispose: () => [m, list].forEach((b) => b.panel.stop()) };
}
