// One outlet (#/outlets/o-0001): who and where it is, its devices now, its
// figures and the waste-free evaluation with reasons, its green rate and
// parcels by class per step, each bin's fill over the last 48 hours with
// the full line, and its alerts.
import { t } from "../i18n.js";
import { get } from "../api.js";
import { pct, pctTarget, num, coord, dateTime, duration, hour, day } from "../format.js";
import { query, href } from "../state.js";
import { h, box, table, csvButton, memo } from "../ui.js";
import { trendChart, stackedClasses, fillChart } from "../charts.js";
import { stepLabel, badge, bar } from "./overview.js";

export default function outletView(main, ctx) {
  const s = ctx.state;
  const w = ctx.win;
  const id = encodeURIComponent(s.id);
  const fillFrom = new Date(Math.floor(w.to.getTime() / 900000) * 900000 - 48 * 3600000);
  const fillQ = "from=" + encodeURIComponent(fillFrom.toISOString()) + "&to=" + encodeURIComponent(w.to.toISOString());
  const outlet = memo(() => get("/v1/outlets/" + id, { retry: false }));
  const rates = memo(() => get("/v1/outlets/" + id + "/rates?" + query(w), { retry: false }));

  const head = box(t("outlet"), { id: "outlet" });
  const figures = box(t("outlet_figures"), { id: "outlet-figures" });
  const devices = box(t("devices"), { id: "devices" });
  const green = box(t("green_rate_per_step"), { id: "outlet-green", tools: [csvButton(() => s.id + "-green-rate", () => "/v1/outlets/" + id + "/series?metric=green_rate&step=" + w.step + "&" + query(w))] });
  const parcels = box(t("parcels_by_class"), { id: "outlet-parcels", tools: [csvButton(() => s.id + "-parcels", () => "/v1/outlets/" + id + "/series?metric=parcels&step=" + w.step + "&" + query(w))] });
  const fill = box(t("fill_48h"), { id: "outlet-fill", tools: [csvButton(() => s.id + "-fill", () => "/v1/outlets/" + id + "/fill?step=15m&" + fillQ)] });
  const alerts = box(t("outlet_alerts"), { id: "outlet-alerts" });
  main.append(head.el, h("div", { class: "grid2" }, figures.el, devices.el), h("div", { class: "grid2" }, green.el, parcels.el), fill.el, alerts.el);

  const loads = [];
  loads.push(head.panel.load(async () => {
    const [o, names] = await Promise.all([outlet(), ctx.districts()]);
    const d = names.get(o.district);
    head.el.querySelector("h2").textContent = o.name;
    head.body.replaceChildren(h("dl", { class: "facts" },
      h("dt", {}, t("address")), h("dd", {}, o.address || t("none")),
      h("dt", {}, t("district")), h("dd", {}, h("a", { href: href({ ...s, view: "overview", id: "", district: o.district }) }, d?.name || o.district)),
      h("dt", {}, t("operator")), h("dd", {}, o.operator),
      h("dt", {}, t("outlet_id")), h("dd", {}, h("code", {}, o.id), o.active ? "" : " · " + t("inactive")),
      h("dt", {}, t("place")), h("dd", {}, coord(o.lat) + ", " + coord(o.lon)),
    ));
  }));

  loads.push(figures.panel.load(async (signal, onWait) => {
    const [o, r] = await Promise.all([outlet(), rates()]);
    const wf = await get("/v1/waste-free?district=" + encodeURIComponent(o.district) + "&" + query(w), { signal, onWait });
    const ev = wf.outlets.find((x) => x.outlet === o.id);
    const tg = wf.targets;
    const reasons = ev ? ev.reasons : [];
    figures.body.replaceChildren(
      h("dl", { class: "facts" },
        h("dt", {}, t("green_rate")), h("dd", { dataset: { figure: "green_rate" } }, h("strong", { class: r.meets.green_rate ? "ok" : "bad" }, pct(r.green_rate, tg.green_rate)), " ", t("a_target", { v: pctTarget(tg.green_rate) })),
        h("dt", {}, t("parcels")), h("dd", { dataset: { figure: "parcels" } }, t("green_of_total", { green: num(r.parcels.green), total: num(r.parcels.total) })),
        h("dt", {}, t("recycling_device")), h("dd", { dataset: { figure: "covered" } }, h("strong", { class: r.covered ? "ok" : "bad" }, r.covered ? t("yes") : t("no")), " ", t("bins_reporting_n", { n: num(r.bins_reporting) })),
        h("dt", {}, t("bin_coverage")), h("dd", { dataset: { figure: "bin_coverage" } }, h("strong", { class: r.bin_coverage >= tg.bin_coverage ? "ok" : "bad" }, pct(r.bin_coverage, tg.bin_coverage)), " ", t("bin_coverage_note", { v: pctTarget(tg.bin_coverage) })),
        h("dt", {}, t("counters_reporting")), h("dd", {}, pct(r.completeness.counter_reporting)),
      ),
      bar(r.green_rate, tg.green_rate, r.meets.green_rate),
      h("h3", {}, t("waste_free_outlet"), " ", badge(r.meets.waste_free)),
      reasons.length
        ? h("ul", { class: "reasons" }, reasons.map((x) => h("li", {}, reasonText(x))))
        : h("p", {}, ev ? t("waste_free_pass") : t("waste_free_inactive")),
    );
  }));

  loads.push(devices.panel.load(async (signal, onWait) => {
    const d = await get("/v1/outlets/" + id + "/devices", { signal, onWait });
    devices.body.replaceChildren(table({
      caption: t("devices"),
      sort: 0,
      rows: d.devices,
      empty: t("no_devices"),
      columns: [
        { label: t("device"), value: (x) => x.device, cell: (x) => h("code", {}, x.device) },
        { label: t("kind"), value: (x) => x.kind, cell: (x) => t("kind_" + x.kind) },
        { label: t("state"), value: (x) => (x.online ? 1 : 0), cell: (x) => t(x.online ? "online" : "offline"), cls: (x) => (x.online ? "ok" : "bad") },
        { label: t("fill"), num: true, value: (x) => x.fill_pct, cell: (x) => (x.fill_pct === null ? t("none") : num(x.fill_pct) + "%" + (x.full ? " · " + t("full") : "")), cls: (x) => (x.full ? "bad" : "") },
        { label: t("battery"), num: true, value: (x) => x.battery_pct, cell: (x) => (x.battery_pct === null ? t("none") : num(x.battery_pct) + "%") },
        { label: t("last_report"), value: (x) => x.last_report, cell: (x) => (x.last_report ? dateTime(x.last_report) + " (" + t("ago", { d: duration(x.last_report, new Date(d.at)) }) + ")" : t("none")) },
      ],
    }));
  }));

  loads.push(green.panel.load(async (signal, onWait) => {
    const [ser, tg] = await Promise.all([get("/v1/outlets/" + id + "/series?metric=green_rate&step=" + w.step + "&" + query(w), { signal, onWait }), ctx.targets()]);
    const el = h("div", { class: "chart", role: "img", "aria-label": t("trend_of", { what: t("green_rate") }) });
    green.body.replaceChildren(el);
    trendChart(el, { points: ser.points, target: tg.green_rate, label: stepLabel(w), name: t("green_rate") });
  }));

  loads.push(parcels.panel.load(async (signal, onWait) => {
    const ser = await get("/v1/outlets/" + id + "/series?metric=parcels&step=" + w.step + "&" + query(w), { signal, onWait });
    const el = h("div", { class: "chart", role: "img", "aria-label": t("parcels_by_class") });
    parcels.body.replaceChildren(el);
    stackedClasses(el, { points: ser.points, label: stepLabel(w) });
  }));

  loads.push(fill.panel.load(async (signal, onWait) => {
    const f = await get("/v1/outlets/" + id + "/fill?step=15m&" + fillQ, { signal, onWait });
    const el = h("div", { class: "chart", role: "img", "aria-label": t("fill_48h") });
    fill.body.replaceChildren(f.bins.length ? el : h("p", {}, t("no_fill")));
    if (f.bins.length) fillChart(el, { bins: f.bins, fullPct: f.full_pct, label: (iso) => day(iso) + " " + hour(iso) });
  }));

  loads.push(alerts.panel.load(async (signal, onWait) => {
    const [a, tg] = await Promise.all([get("/v1/alerts", { signal, onWait }), ctx.targets()]);
    const mine = a.alerts.filter((x) => x.outlet === s.id);
    alerts.body.replaceChildren(mine.length
      ? h("ul", { class: "alerts" }, mine.map((x) => h("li", { class: x.kind === "bin_full" ? "bad" : "" }, alertText(x, a.at, tg))))
      : h("p", {}, t("no_alerts_outlet")));
  }));

  return { done: Promise.allSettled(loads), dispose: () => [head, figures, devices, green, parcels, fill, alerts].forEach((b) => b.panel.stop()) };
}

/** reasonText says why an outlet fails a bar of the waste-free evaluation. */
export function reasonText(r) {
  switch (r.bar) {
    case "green_rate":
      return r.value === null ? t("reason_no_parcels") : t("reason_green", { v: pct(r.value, r.target), target: pctTarget(r.target) });
    case "covered":
      return t("reason_covered");
    case "bin_coverage":
      return t("reason_bins", { v: pct(r.value, r.target), target: pctTarget(r.target) });
  }
  return r.detail;
}

/** alertText is one alert in words ("b-0001-1 已满 35 分钟（96%）"). */
export function alertText(a, at, tg) {
  const d = duration(a.since, new Date(at));
  switch (a.kind) {
    case "bin_full":
      return t("alert_full", { device: a.device, d, v: num(a.value) });
    case "device_offline":
      return t("alert_offline", { device: a.device, d });
    case "below_target":
      return t("alert_below", { v: pct(a.value, tg.green_rate), target: pctTarget(tg.green_rate) });
  }
  return a.kind;
}
