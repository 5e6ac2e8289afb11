// The city overview: the plan's two targets against their lines with their
// trends, what lags (districts, outlets), the bins to empty now, and the
// districts table that filters everything.
import { t, tn } from "../i18n.js";
import { get } from "../api.js";
import { pct, pctTarget, points, num, day, hour } from "../format.js";
import { query, go, href } from "../state.js";
import { h, box, table, csvButton, memo } from "../ui.js";
import { trendChart } from "../charts.js";

/** filterQuery is the &district= of the state, if any. */
export function filterQuery(s) {
  return s.district ? "&district=" + encodeURIComponent(s.district) : "";
}

/** stepLabel names a step of the window's series. */
export function stepLabel(w) {
  return (iso) => (w.step === "1h" ? hour(iso) : day(iso));
}

/** badge says whether a figure meets its target, in words and colour. */
export function badge(meets) {
  return h("span", { class: "badge " + (meets ? "ok" : "bad") }, meets ? t("meets") : t("misses"));
}

/** bar is a 0..100 % bar with the target marked. */
export function bar(v, target, meets) {
  const fill = h("div", { class: "fill " + (meets ? "ok" : "bad") });
  fill.style.width = Math.max(0, Math.min(100, (v || 0) * 100)) + "%";
  const mark = h("div", { class: "target", title: t("target") + " " + pctTarget(target) });
  mark.style.left = "calc(" + Math.min(100, target * 100) + "% - 1px)";
  return h("div", { class: "bar", "aria-hidden": "true" }, fill, mark);
}

function trendWords(now, before, target) {
  if (now === null || before === null || now === undefined || before === undefined) return t("trend_unknown");
  const d = now - before;
  if (Math.abs(d) < 0.0005) return t("trend_flat");
  return (d > 0 ? t("trend_up") : t("trend_down")) + " " + points(d);
}

export default function overview(main, ctx) {
  const s = ctx.state;
  const w = ctx.win;
  const q = query(w) + filterQuery(s);
  const shared = { retry: false };
  const city = memo(() => get("/v1/rates?group_by=city&" + q, shared));
  const prev = memo(() => get("/v1/rates?group_by=city&from=" + encodeURIComponent(w.prevFrom.toISOString()) + "&to=" + encodeURIComponent(w.prevTo.toISOString()) + filterQuery(s), shared));
  const byDistrict = memo(() => get("/v1/rates?group_by=district&" + query(w), shared));
  const place = async () => (s.district ? (await ctx.districts()).get(s.district)?.name || s.district : t(ctx.scope ? "scope_where" : "city_where"));

  const answer = box(t("answers_title"), { id: "answers" });
  const bins = box(t("bins_now_title"), { id: "bins-now" });
  const green = box(t("green_rate_title"), { id: "green", tools: [csvButton(() => "green-rate-" + w.step, () => "/v1/series?group_by=city&metric=green_rate&step=" + w.step + "&" + q)] });
  const cover = box(t("outlet_coverage_title"), { id: "coverage", tools: [csvButton(() => "outlet-coverage-" + w.step, () => "/v1/series?group_by=city&metric=outlet_coverage&step=" + w.step + "&" + q)] });
  const others = box(t("other_title"), { id: "others" });
  const districts = box(t("districts_title"), { id: "districts", tools: [csvButton(() => "districts", () => "/v1/rates?group_by=district&format=csv&" + query(w))] });
  let shownOutlets = new Set();
  const lagging = box(t("lagging_title"), { id: "lagging", tools: [csvButton(() => "outlets", () => "/v1/rates?group_by=outlet&format=csv&" + q, (head, row) => shownOutlets.has(row[head.indexOf("key")]))] });
  main.append(answer.el, h("div", { class: "grid2" }, green.el, cover.el), h("div", { class: "grid2" }, bins.el, others.el), districts.el, lagging.el);

  const loads = [];

  loads.push(answer.panel.load(async (signal, onWait) => {
    const [c, p, ds, names, where] = await Promise.all([city(), prev(), byDistrict(), ctx.districts(), place()]);
    const g = c.groups[0];
    const pg = p.groups[0];
    const tg = c.targets;
    const lag = ds.groups.filter((d) => !d.meets.green_rate || !d.meets.outlet_coverage);
    const comp = g.completeness;
    answer.body.replaceChildren(
      h("ul", { class: "answers" },
        h("li", { dataset: { answer: "green" } }, h("span", { class: "q" }, t("a_green", { where })), " ",
          h("strong", { class: g.meets.green_rate ? "ok" : "bad" }, pct(g.green_rate, tg.green_rate)), " ",
          t("a_target", { v: pctTarget(tg.green_rate) }), " ", badge(g.meets.green_rate), " ",
          h("span", { class: "trend" }, trendWords(g.green_rate, pg.green_rate) + " " + t("vs_prev"))),
        h("li", { dataset: { answer: "coverage" } }, h("span", { class: "q" }, t("a_coverage", { where })), " ",
          h("strong", { class: g.meets.outlet_coverage ? "ok" : "bad" }, pct(g.outlet_coverage, tg.outlet_coverage)), " ",
          t("a_target", { v: pctTarget(tg.outlet_coverage) }), " ", badge(g.meets.outlet_coverage), " ",
          h("span", { class: "trend" }, trendWords(g.outlet_coverage, pg.outlet_coverage) + " " + t("vs_prev"))),
        h("li", { dataset: { answer: "lagging" } }, h("span", { class: "q" }, t("a_lagging")), " ",
          lag.length
            ? lag.map((d, i) => [i ? t("list_sep") : "", h("a", { href: href({ ...s, district: d.key }) }, names.get(d.key)?.name || d.key)])
            : t("a_none_lag")),
      ),
      h("p", { class: "note" }, t("completeness_city", {
        share: pct(comp.counter_reporting), reporting: num(comp.outlets_reporting_parcels), outlets: num(g.outlets), silent: num(comp.silent_outlets),
      })),
    );
  }));

  loads.push(bins.panel.load(async (signal, onWait) => {
    const [a, os] = await Promise.all([get("/v1/alerts?kind=bin_full", { signal, onWait }), ctx.outlets()]);
    const full = a.alerts.filter((x) => !s.district || os.get(x.outlet)?.district === s.district);
    const outlets = new Set(full.map((x) => x.outlet));
    bins.body.replaceChildren(
      h("p", { class: "big " + (full.length ? "bad" : "ok") }, tn("bins_full", full.length)),
      h("p", {}, full.length ? tn("at_outlets", outlets.size) : t("no_full_bins")),
      h("p", {}, h("a", { href: href({ ...s, view: "alerts", tab: "full" }) }, t("to_collection_list"))),
    );
  }));

  const card = (b, metric, field, meetsField, targetField, extra) => b.panel.load(async (signal, onWait) => {
    const [c, ser] = await Promise.all([city(), get("/v1/series?group_by=city&metric=" + metric + "&step=" + w.step + "&" + q, { signal, onWait })]);
    const g = c.groups[0];
    const target = c.targets[targetField];
    const chartEl = h("div", { class: "chart", role: "img", "aria-label": t("trend_of", { what: t(metric) }) });
    b.body.replaceChildren(
      h("div", { class: "figure" },
        h("p", { class: "big " + (g.meets[meetsField] ? "ok" : "bad"), dataset: { figure: metric } }, pct(g[field], target)),
        h("p", {}, t("target") + " " + pctTarget(target) + " ", badge(g.meets[meetsField]))),
      bar(g[field], target, g.meets[meetsField]),
      h("p", { class: "note" }, extra(g)),
      chartEl,
    );
    trendChart(chartEl, { points: ser.series[0].points, target, label: stepLabel(w), name: t(metric) });
  });
  loads.push(card(green, "green_rate", "green_rate", "green_rate", "green_rate", (g) => t("green_note", {
    green: num(g.parcels.green), total: num(g.parcels.total), share: pct(g.completeness.counter_reporting),
  })));
  loads.push(card(cover, "outlet_coverage", "outlet_coverage", "outlet_coverage", "outlet_coverage", (g) => t("coverage_note", {
    covered: num(g.covered_outlets), outlets: num(g.outlets), silent: num(g.completeness.silent_outlets),
  })));

  loads.push(others.panel.load(async () => {
    const c = await city();
    const g = c.groups[0];
    const binMeets = g.bin_coverage !== null && g.bin_coverage >= c.targets.bin_coverage;
    others.body.replaceChildren(h("dl", { class: "facts" },
      h("dt", {}, t("bin_coverage")), h("dd", { dataset: { figure: "bin_coverage" } }, h("strong", { class: binMeets ? "ok" : "bad" }, pct(g.bin_coverage, c.targets.bin_coverage)),
        " ", t("bin_coverage_note", { v: pctTarget(c.targets.bin_coverage) })),
      h("dt", {}, t("waste_free")), h("dd", { dataset: { figure: "waste_free" } }, h("strong", {}, t("n_of_m", { n: num(g.waste_free_outlets), m: num(g.outlets) })), " ", t("waste_free_note")),
      h("dt", {}, t("parcels")), h("dd", {}, num(g.parcels.total), " · ", t("no_secondary"), " ", pct(g.no_secondary_rate), " · ", t("reusable"), " ", pct(g.reusable_rate)),
    ));
  }));

  loads.push(districts.panel.load(async () => {
    const [ds, names, c] = await Promise.all([byDistrict(), ctx.districts(), city()]);
    const tg = c.targets;
    const name = (g) => names.get(g.key)?.name || g.key;
    districts.body.replaceChildren(table({
      caption: t("districts_title"),
      sort: 3,
      rows: ds.groups,
      rowAttrs: (g) => ({ class: g.key === s.district ? "selected" : null, dataset: { key: g.key } }),
      columns: [
        { label: t("district"), value: name, cell: (g) => h("button", { type: "button", class: "link", "aria-pressed": g.key === s.district ? "true" : "false", onclick: () => go({ district: g.key === s.district ? "" : g.key }) }, name(g)) },
        { label: t("outlets"), num: true, value: (g) => g.outlets, cell: (g) => num(g.outlets) },
        { label: t("parcels"), num: true, value: (g) => g.parcels.total, cell: (g) => num(g.parcels.total) },
        { label: t("col_green_rate"), num: true, value: (g) => g.green_rate, cell: (g) => pct(g.green_rate, tg.green_rate), cls: (g) => (g.meets.green_rate ? "ok" : "bad") },
        { label: t("col_outlet_coverage"), num: true, value: (g) => g.outlet_coverage, cell: (g) => pct(g.outlet_coverage, tg.outlet_coverage), cls: (g) => (g.meets.outlet_coverage ? "ok" : "bad") },
        { label: t("bin_coverage"), num: true, value: (g) => g.bin_coverage, cell: (g) => pct(g.bin_coverage, tg.bin_coverage) },
        { label: t("waste_free"), num: true, value: (g) => g.waste_free_outlets, cell: (g) => num(g.waste_free_outlets) },
        { label: t("col_completeness"), num: true, value: (g) => g.completeness.counter_reporting, cell: (g) => pct(g.completeness.counter_reporting) },
      ],
    }), h("p", { class: "note" }, t("districts_note")));
  }));

  loads.push(lagging.panel.load(async (signal, onWait) => {
    const [r, os, names] = await Promise.all([get("/v1/rates?group_by=outlet&" + q, { signal, onWait }), ctx.outlets(), ctx.districts()]);
    const tg = r.targets;
    const rows = r.groups.filter((g) => !g.meets.green_rate || !g.meets.outlet_coverage);
    shownOutlets = new Set(rows.map((g) => g.key));
    const o = (g) => os.get(g.key) || { name: g.key, district: "" };
    lagging.body.replaceChildren(
      h("p", { class: "note" }, t("lagging_note", { n: num(rows.length), m: num(r.groups.length) })),
      table({
        caption: t("lagging_title"),
        sort: 2,
        rows,
        empty: t("no_lagging"),
        columns: [
          { label: t("outlet"), value: (g) => o(g).name, cell: (g) => h("a", { href: href({ ...s, view: "outlets", id: g.key, tab: "" }) }, o(g).name) },
          { label: t("district"), value: (g) => names.get(o(g).district)?.name || o(g).district, cell: (g) => names.get(o(g).district)?.name || o(g).district },
          { label: t("col_green_rate"), num: true, value: (g) => g.green_rate, cell: (g) => pct(g.green_rate, tg.green_rate), cls: (g) => (g.meets.green_rate ? "ok" : "bad") },
          { label: t("recycling_device"), value: (g) => g.covered_outlets, cell: (g) => (g.covered_outlets ? t("yes") : t("no")), cls: (g) => (g.meets.outlet_coverage ? "ok" : "bad") },
          { label: t("bin_coverage"), num: true, value: (g) => g.bin_coverage, cell: (g) => pct(g.bin_coverage, tg.bin_coverage) },
          { label: t("parcels"), num: true, value: (g) => g.parcels.total, cell: (g) => num(g.parcels.total) },
        ],
      }),
    );
  }));

  return { done: Promise.allSettled(loads), dispose: () => [answer, bins, green, cover, others, districts, lagging].forEach((b) => b.panel.stop()) };
}
