// chart.js (served from node_modules by the server) behind three small functions.
// Every chart also has its numbers in a table or text next to it; time charts use a
// real time axis (unix seconds) and draw the markers (markers.js) as dashed lines.

import { nps as fmtNps, time } from "./format.js";

const INK = "#1f2328";
const GRID = "#d0d7de";
const BLUE = "#0b5cad";
const BAND = "rgba(11, 92, 173, 0.16)";

function ready() {
  if (!window.Chart) throw new Error("the chart library did not load (/ui/vendor/chart.js)");
  const { Chart } = window;
  Chart.defaults.color = INK;
  Chart.defaults.borderColor = GRID;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false;
  Chart.defaults.maintainAspectRatio = false;
  return Chart;
}

/** A canvas in a sized box; `label` is its accessible name. */
export function canvasIn(el, label, height = 240) {
  const box = document.createElement("div");
  box.className = "chart";
  box.style.height = `${height}px`;
  const canvas = document.createElement("canvas");
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", label);
  box.append(canvas);
  el.append(box);
  return canvas;
}

const MARKER_COLOURS = { release: "#8250df", event: "#9a6700" };

/** Vertical lines at `options.plugins.markers.list` ({at, kind, title}), x in unix seconds. */
const markerLines = {
  id: "markers",
  afterDatasetsDraw(chart, _args, options) {
    const list = options?.list || [];
    const { ctx, chartArea, scales } = chart;
    if (!list.length || !scales.x) return;
    ctx.save();
    ctx.setLineDash([4, 3]);
    ctx.lineWidth = 1.5;
    ctx.font = `11px ${chartFont()}`;
    for (const m of list) {
      const x = scales.x.getPixelForValue(m.at);
      if (x < chartArea.left || x > chartArea.right) continue;
      ctx.strokeStyle = ctx.fillStyle = MARKER_COLOURS[m.kind] || INK;
      ctx.beginPath();
      ctx.moveTo(x, chartArea.top);
      ctx.lineTo(x, chartArea.bottom);
      ctx.stroke();
      ctx.fillText(m.kind === "release" ? "▲" : "◆", x - 4, chartArea.top + 10);
    }
    ctx.restore();
  },
};

function chartFont() {
  return getComputedStyle(document.body).fontFamily;
}

/** A group key of `GET /api/v1/nps?group_by=hour|day` as unix seconds (UTC); null otherwise. */
export function keyTime(key) {
  const ms = Date.parse(String(key).length === 10 ? `${key}T00:00Z` : String(key));
  return Number.isNaN(ms) ? null : ms / 1000;
}

/** Short tick text for a time: hours for spans up to two days, dates beyond. */
function tickText(span) {
  return (v) => {
    const iso = new Date(v * 1000).toISOString();
    return span <= 2 * 86400 ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(5, 10);
  };
}

/** Ticks on whole UTC hours (up to two days) or whole days, about eight of them. */
function niceStep(span) {
  const unit = span <= 2 * 86400 ? 3600 : 86400;
  return Math.max(1, Math.ceil(span / 8 / unit)) * unit;
}

/** Points on a real time axis, a null point where a period has no row (a gap, not a line). */
function spaced(groups, step, value) {
  const out = [];
  let prev = null;
  for (const g of groups) {
    const x = keyTime(g.key);
    if (x === null) continue;
    if (prev !== null && x - prev > step) out.push({ x: prev + step, y: null });
    out.push({ x, y: value(g) });
    prev = x;
  }
  return out;
}

/**
 * NPS per period as a line on a real time axis (x in unix seconds, so 22:00 -> 08:00
 * is ten hours wide), its 95% interval as a band; periods without answers leave a gap.
 * `step` is the period in seconds; `markers` draw as dashed vertical lines.
 */
export function trendChart(canvas, groups, { step = 86400, markers = [] } = {}) {
  const Chart = ready();
  const xs = groups.map((g) => keyTime(g.key)).filter((x) => x !== null);
  const span = xs.length ? xs.at(-1) - xs[0] : 0;
  const byTime = new Map(groups.map((g) => [keyTime(g.key), g]));
  const withAnswers = (f) => (g) => (g.n ? f(g) : null);
  return new Chart(canvas, {
    type: "line",
    data: {
      datasets: [
        { label: "95% interval (low)", data: spaced(groups, step, withAnswers((g) => g.ci95[0])), borderWidth: 0, pointRadius: 0, fill: false },
        { label: "95% interval", data: spaced(groups, step, withAnswers((g) => g.ci95[1])), borderWidth: 0, pointRadius: 0, backgroundColor: BAND, fill: "-1" },
        { label: "NPS", data: spaced(groups, step, (g) => g.nps), borderColor: BLUE, backgroundColor: BLUE, borderWidth: 2, pointRadius: 2, spanGaps: false },
      ],
    },
    plugins: [markerLines],
    options: {
      parsing: false,
      scales: {
        y: { min: -100, max: 100, title: { display: true, text: "NPS" }, ticks: { stepSize: 50 } },
        x: {
          type: "linear",
          min: xs[0],
          max: xs.length ? xs.at(-1) + (span ? 0 : step) : undefined,
          title: { display: true, text: "time (UTC)" },
          ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 9, stepSize: niceStep(span), callback: tickText(span) },
        },
      },
      plugins: {
        markers: { list: markers },
        legend: { labels: { filter: (item) => item.text !== "95% interval (low)" } },
        tooltip: {
          filter: (item) => item.datasetIndex === 2 && item.parsed.y !== null,
          callbacks: {
            title: (items) => time(items[0].parsed.x),
            label: (ctx) => {
              const g = byTime.get(ctx.parsed.x);
              return g ? `NPS ${fmtNps(g.nps)} (${fmtNps(g.ci95[0])} to ${fmtNps(g.ci95[1])}), n=${g.n}` : "";
            },
          },
        },
      },
    },
  });
}

/** Show `markers` on a chart made here (replacing any it had). */
export function setMarkers(chart, markers) {
  chart.options.plugins.markers = { list: markers };
  chart.update();
}

/** A forest plot: one row per group, the interval as a bar and NPS as a dot. */
export function forestChart(canvas, groups, { highlight = () => false } = {}) {
  const Chart = ready();
  const labels = groups.map((g) => g.label ?? g.key);
  return new Chart(canvas, {
    type: "bar",
    data: {
      labels,
      datasets: [
        {
          type: "bar",
          label: "95% interval",
          data: groups.map((g) => (g.n ? [g.ci95[0], g.ci95[1]] : null)),
          backgroundColor: groups.map((g) => (highlight(g) ? "rgba(207, 34, 46, 0.35)" : BAND)),
          borderColor: groups.map((g) => (highlight(g) ? "#cf222e" : BLUE)),
          borderWidth: 1,
          barPercentage: 0.5,
        },
        {
          type: "scatter",
          label: "NPS",
          data: groups.map((g, i) => ({ x: g.nps, y: labels[i] })),
          backgroundColor: INK,
          pointRadius: 5,
          pointStyle: "rectRot",
        },
      ],
    },
    options: {
      indexAxis: "y",
      scales: {
        x: { min: -100, max: 100, title: { display: true, text: "NPS with 95% interval" } },
        y: { type: "category", labels },
      },
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            label: (ctx) => {
              const g = groups[ctx.dataIndex];
              return `NPS ${fmtNps(g.nps)} (${fmtNps(g.ci95[0])} to ${fmtNps(g.ci95[1])}), n=${g.n}`;
            },
          },
        },
      },
    },
  });
}

/** One numeric field over time (telemetry), x in unix seconds. */
export function seriesChart(canvas, points, field, { label, unit = "", color = BLUE, step = false } = {}) {
  const Chart = ready();
  const data = points.filter((p) => p[field] !== null && p[field] !== undefined).map((p) => ({ x: p.ts, y: p[field] }));
  return new Chart(canvas, {
    type: "line",
    data: { datasets: [{ label, data, borderColor: color, backgroundColor: color, borderWidth: 1.5, pointRadius: 0, stepped: step }] },
    plugins: [markerLines],
    options: {
      parsing: false,
      scales: {
        x: {
          type: "linear",
          min: data[0]?.x,
          max: data.at(-1)?.x,
          ticks: { maxTicksLimit: 5, callback: (v) => time(v).slice(5, 16) },
        },
        y: { title: { display: Boolean(unit), text: unit } },
      },
      plugins: {
        markers: { list: [] },
        legend: { display: false },
        tooltip: { callbacks: { title: (items) => time(items[0].parsed.x), label: (ctx) => `${label}: ${ctx.parsed.y}${unit ? ` ${unit}` : ""}` } },
      },
    },
  });
}
