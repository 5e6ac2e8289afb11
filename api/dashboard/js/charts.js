// Charts and the map, on the vendored Apache ECharts 5 (vendor/echarts).
// Tooltips are built as DOM nodes with text only: outlet names are data
// from the registry and never become markup (and the page's CSP allows no
// inline styles either).
import * as echarts from "../vendor/echarts/echarts.esm.min.js";
import { t } from "./i18n.js";
import { pct, num } from "./format.js";
import { h } from "./ui.js";

export const GREEN = "#2e7d32";
export const RED = "#c62828";
const INK = "#222";
const GRID = "#ddd";

const live = new Set();

/** chart makes an ECharts instance in el that follows el's size. */
export function chart(el) {
  const c = echarts.init(el, null, { renderer: "canvas" });
  const ro = new ResizeObserver(() => c.resize());
  ro.observe(el);
  c.__ro = ro;
  live.add(c);
  return c;
}

/** disposeAll frees every chart (the view is being replaced). */
export function disposeAll() {
  for (const c of live) {
    c.__ro.disconnect();
    c.dispose();
  }
  live.clear();
}

/** tip builds a tooltip: a title line and label/value lines, as text. */
export function tip(title, lines) {
  return h("div", { class: "tip" }, h("strong", {}, title), lines.map(([k, v]) => h("div", {}, k + ": " + v)));
}

const axisText = { color: INK };

/**
 * trendChart draws one rate per step (a line) against its target (a dashed
 * line), 0..100 %. points: [{t, v, reporting}]; label(t) names a step.
 */
export function trendChart(el, { points, target, label, name }) {
  const c = chart(el);
  const vals = points.map((p) => (p.v === null ? null : p.v * 100));
  const lows = vals.filter((v) => v !== null);
  const min = Math.max(0, Math.floor(Math.min(target * 100, ...lows, 100) / 10) * 10 - 10);
  c.setOption({
    animation: false,
    grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
    tooltip: {
      trigger: "axis",
      formatter: (ps) => {
        const p = points[ps[0].dataIndex];
        return tip(label(p.t), [[name, pct(p.v, target)], [t("target"), pct(target)], [t("counters_reporting"), pct(p.reporting)]]);
      },
    },
    xAxis: { type: "category", data: points.map((p) => label(p.t)), axisLabel: axisText, axisLine: { lineStyle: { color: GRID } } },
    yAxis: { type: "value", min, max: 100, axisLabel: { ...axisText, formatter: "{value}%" }, splitLine: { lineStyle: { color: GRID } } },
    series: [
      {
        name, type: "line", data: vals, connectNulls: false, symbolSize: 7,
        lineStyle: { color: INK, width: 2 },
        itemStyle: { color: (p) => (p.value !== null && p.value / 100 >= target - 1e-12 ? GREEN : RED) },
        markLine: {
          silent: true, symbol: "none", label: { formatter: t("target") + " " + pct(target), color: INK, position: "insideEndBottom" },
          lineStyle: { color: INK, type: "dashed" }, data: [{ yAxis: target * 100 }],
        },
      },
    ],
  });
  return c;
}

/** classColors are the packaging classes: greens for green classes, warm for the rest. */
export const CLASSES = ["reusable", "recyclable", "biodegradable", "original", "plastic", "foam", "other"];
const classColors = ["#1b5e20", "#43a047", "#81c784", "#00838f", "#e65100", "#ad1457", "#757575"];

/** stackedClasses draws parcels by class per step, stacked. */
export function stackedClasses(el, { points, label }) {
  const c = chart(el);
  const narrow = el.clientWidth < 560; // the legend takes three lines
  c.setOption({
    animation: false,
    grid: { left: 8, right: 16, top: narrow ? 84 : 40, bottom: 8, containLabel: true },
    legend: { top: 0, type: "plain", textStyle: axisText, itemGap: 8 },
    tooltip: {
      trigger: "axis",
      formatter: (ps) => {
        const p = points[ps[0].dataIndex];
        return tip(label(p.t), [[t("parcels"), num(p.v)], ...CLASSES.map((k) => [t("class_" + k), num(p.by_class ? p.by_class[k] : null)])]);
      },
    },
    xAxis: { type: "category", data: points.map((p) => label(p.t)), axisLabel: axisText },
    yAxis: { type: "value", axisLabel: axisText, splitLine: { lineStyle: { color: GRID } } },
    series: CLASSES.map((k, i) => ({
      name: t("class_" + k), type: "bar", stack: "all", itemStyle: { color: classColors[i] },
      data: points.map((p) => (p.by_class ? p.by_class[k] : null)),
    })),
  });
  return c;
}

/** fillChart draws each bin's fill level over time with the full line. */
export function fillChart(el, { bins, fullPct, label }) {
  const c = chart(el);
  const times = bins.length ? bins[0].points.map((p) => p.t) : [];
  c.setOption({
    animation: false,
    grid: { left: 8, right: 24, top: 40, bottom: 8, containLabel: true },
    legend: { top: 0, textStyle: axisText },
    tooltip: {
      trigger: "axis",
      formatter: (ps) => tip(label(times[ps[0].dataIndex]), ps.map((p) => [p.seriesName, p.value === null || p.value === undefined ? t("none") : num(p.value) + "%"])),
    },
    xAxis: { type: "category", data: times.map(label), axisLabel: { ...axisText, hideOverlap: true, showMaxLabel: false } },
    yAxis: { type: "value", min: 0, max: 100, axisLabel: { ...axisText, formatter: "{value}%" }, splitLine: { lineStyle: { color: GRID } } },
    series: bins.map((b, i) => ({
      name: b.device, type: "line", step: "end", showSymbol: false, connectNulls: true, data: b.points.map((p) => p.v),
      lineStyle: { width: 2 },
      markLine: i ? undefined : {
        silent: true, symbol: "none", label: { formatter: t("full_line", { v: num(fullPct) }), color: RED, position: "insideEndTop" },
        lineStyle: { color: RED, type: "dashed" }, data: [{ yAxis: fullPct }],
      },
    })),
  });
  return c;
}

let mapRegistered = false;

/** registerMap registers the district outlines once. */
export function registerMap(geo) {
  if (!mapRegistered) {
    echarts.registerMap("wuhan", geo);
    mapRegistered = true;
  }
}

/**
 * districtMap draws the districts coloured by an indicator (0..1, null: no
 * data) and the outlets as points (green meets, red misses; size by
 * parcels). onDistrict(id), onOutlet(id) are called on a click.
 */
export function districtMap(el, { districts, outlets, target, indicatorName, onDistrict, onOutlet, selected }) {
  const c = chart(el);
  const low = Math.max(0, Math.min(target - 0.2, ...districts.filter((d) => d.value !== null).map((d) => d.value)));
  const maxParcels = Math.max(1, ...outlets.map((o) => o.parcels || 0));
  c.setOption({
    animation: false,
    tooltip: {
      trigger: "item",
      formatter: (p) => {
        if (p.seriesType === "scatter") {
          const o = outlets[p.dataIndex];
          return tip(o.name, [[t("district"), o.districtName], [t("green_rate"), pct(o.greenRate, o.greenTarget)],
            [t("bins_reporting"), o.covered ? t("yes") : t("no")], [t("parcels"), num(o.parcels)]]);
        }
        const d = districts.find((x) => x.nameZH === p.name);
        return d ? tip(d.name, [[indicatorName, pct(d.value, target)], [t("outlets"), num(d.outlets)]]) : p.name;
      },
    },
    visualMap: {
      seriesIndex: 0, min: low, max: 1, text: [pct(1), pct(low)],
      calculable: false, orient: "horizontal", left: 8, bottom: 4, itemWidth: 12, itemHeight: 120,
      textStyle: axisText,
      inRange: { color: ["#b71c1c", "#ef9a9a", "#fff59d", "#a5d6a7", "#1b5e20"] },
      outOfRange: { color: "#e0e0e0" },
      formatter: (v) => pct(v),
    },
    geo: {
      map: "wuhan", roam: true, layoutCenter: ["50%", "50%"], layoutSize: "100%", aspectScale: 0.86,
      label: { show: true, color: INK, fontSize: 11, textBorderColor: "#fff", textBorderWidth: 3, formatter: (p) => (districts.find((x) => x.nameZH === p.name) || {}).short || p.name },
      itemStyle: { borderColor: "#555", borderWidth: 1 },
      emphasis: { label: { color: INK }, itemStyle: { areaColor: null, borderWidth: 2 } },
      select: { disabled: true },
      regions: selected ? [{ name: selected, itemStyle: { borderColor: "#000", borderWidth: 3 } }] : [],
    },
    series: [
      {
        type: "map", geoIndex: 0, name: indicatorName,
        data: districts.map((d) => ({ name: d.nameZH, value: d.value === null ? "-" : d.value })),
      },
      {
        type: "scatter", coordinateSystem: "geo", name: t("outlets"), zlevel: 1,
        data: outlets.map((o) => ({ value: [o.lon, o.lat], itemStyle: { color: o.meets ? GREEN : RED, borderColor: "#fff", borderWidth: 1 } })),
        symbolSize: (v, p) => 6 + 14 * Math.sqrt((outlets[p.dataIndex].parcels || 0) / maxParcels),
      },
    ],
  });
  c.on("click", (p) => {
    if (p.seriesType === "scatter") onOutlet(outlets[p.dataIndex].id);
    else {
      const d = districts.find((x) => x.nameZH === p.name);
      if (d) onDistrict(d.id);
    }
  });
  return c;
}
