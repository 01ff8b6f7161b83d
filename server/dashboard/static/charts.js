// chart.js (served from node_modules by the server) behind three small functions.
// Every chart also has its numbers in a table or text next to it.

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

/** NPS per period as a line, its 95% interval as a band; null NPS leaves a gap. */
export function trendChart(canvas, groups, { labels } = {}) {
  const Chart = ready();
  const keys = labels || groups.map((g) => g.key);
  return new Chart(canvas, {
    type: "line",
    data: {
      labels: keys,
      datasets: [
        { label: "95% interval (low)", data: groups.map((g) => (g.n ? g.ci95[0] : null)), borderWidth: 0, pointRadius: 0, fill: false },
        { label: "95% interval", data: groups.map((g) => (g.n ? g.ci95[1] : null)), borderWidth: 0, pointRadius: 0, backgroundColor: BAND, fill: "-1" },
        { label: "NPS", data: groups.map((g) => g.nps), borderColor: BLUE, backgroundColor: BLUE, borderWidth: 2, pointRadius: 2, spanGaps: false },
      ],
    },
    options: {
      scales: {
        y: { min: -100, max: 100, title: { display: true, text: "NPS" }, ticks: { stepSize: 50 } },
        x: { ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 10 } },
      },
      plugins: {
        legend: { labels: { filter: (item) => item.text !== "95% interval (low)" } },
        tooltip: {
          filter: (item) => item.datasetIndex === 2,
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
        legend: { display: false },
        tooltip: { callbacks: { title: (items) => time(items[0].parsed.x), label: (ctx) => `${label}: ${ctx.parsed.y}${unit ? ` ${unit}` : ""}` } },
      },
    },
  });
}
