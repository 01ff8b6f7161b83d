// The dashboard shell: session gate, page routing, the filter bar and the live stream.

import { ApiError, api, whoami } from "./api.js";
import * as filters from "./filters.js";
import { escape, time } from "./format.js";
import * as alertsPage from "./pages/alerts.js";
import * as devicePage from "./pages/device.js";
import * as driversPage from "./pages/drivers.js";
import * as fleetPage from "./pages/fleet.js";
import * as loginPage from "./pages/login.js";
import * as overviewPage from "./pages/overview.js";
import * as peoplePage from "./pages/people.js";
import * as registryPage from "./pages/registry.js";
import * as releasesPage from "./pages/releases.js";
import { describe, mayAdminister } from "./roles.js";

const ROUTES = [
  [/^\/$/, overviewPage],
  [/^\/drivers$/, driversPage],
  [/^\/fleet$/, fleetPage],
  [/^\/fleet\/([^/]+)$/, devicePage],
  [/^\/alerts$/, alertsPage],
  [/^\/registry$/, registryPage],
  [/^\/releases$/, releasesPage],
  [/^\/people$/, peoplePage],
  [/^\/login$/, loginPage],
];

const state = { page: null, params: [], session: null, options: null, stream: null, cleanup: null };

function route(path) {
  for (const [pattern, page] of ROUTES) {
    const match = path.match(pattern);
    if (match) return [page, match.slice(1).map(decodeURIComponent)];
  }
  return [null, []];
}

/** Go to an in-app URL without reloading; keeps the filters unless the URL has its own. */
export function navigate(url, { replace = false } = {}) {
  history[replace ? "replaceState" : "pushState"](null, "", url);
  render();
}

async function loadOptions() {
  if (state.options) return state.options;
  try {
    state.options = await api("/filters");
  } catch {
    state.options = { sites: [], fw: [], triggers: [] };
  }
  return state.options;
}

function fillSelect(select, values, current) {
  const first = select.options[0];
  select.replaceChildren(first);
  const all = [...new Set([...(values || []), ...(current ? [current] : [])])];
  for (const value of all) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = String(value).replace(/_/g, " ");
    select.append(option);
  }
  select.value = current || "";
}

function syncFilterBar(page) {
  const form = document.getElementById("filters");
  form.hidden = !page.usesFilters;
  if (!page.usesFilters) return;
  const current = filters.current();
  form.elements.range.value = current.range;
  const fill = (options) => {
    fillSelect(form.elements.site, options.sites, current.site);
    fillSelect(form.elements.fw, options.fw, current.fw);
    fillSelect(form.elements.trigger, options.triggers, current.trigger);
  };
  fill(state.options || {});
  if (!state.options) loadOptions().then(fill); // the pickers fill in when /filters answers
  const query = filters.apiQuery(current);
  const since = query.from ? `since ${time(Number(query.from))}` : "all time";
  document.getElementById("scope").textContent = `Showing ${since}`;
}

function onFilterChange() {
  const form = document.getElementById("filters");
  const chosen = {};
  for (const key of filters.FILTER_KEYS) chosen[key] = form.elements[key].value;
  const keep = new URLSearchParams(location.search);
  const extra = {};
  for (const [key, value] of keep) if (!filters.FILTER_KEYS.includes(key)) extra[key] = value;
  navigate(location.pathname + filters.search(chosen, extra));
}

function markNav(page) {
  for (const link of document.querySelectorAll("nav a[data-page]")) {
    const here = link.dataset.page === page.name || (page.name === "device" && link.dataset.page === "fleet");
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    // Nav links carry the filters so the view stays the same across pages.
    link.href = link.getAttribute("href").split("?")[0] + filters.search(filters.current());
  }
}

async function refreshAlertBadge() {
  const badge = document.getElementById("alert-badge");
  try {
    const result = await api("/alerts", { query: { status: "open", limit: 1 } });
    const open = result.counts?.open ?? 0;
    badge.hidden = open === 0;
    badge.textContent = String(open);
    badge.setAttribute("aria-label", `${open} open`);
  } catch {
    badge.hidden = true;
  }
}

function setLive(text, ok) {
  const el = document.getElementById("live-status");
  el.textContent = text;
  el.classList.toggle("on", ok);
}

function openStream() {
  if (state.stream || !window.EventSource) return;
  const stream = new EventSource("/api/v1/stream");
  state.stream = stream;
  stream.onopen = () => setLive("Live", true);
  stream.onerror = () => {
    if (stream.readyState === EventSource.CLOSED) {
      setLive("Live updates not available", false);
      state.stream = null;
      setTimeout(openStream, 30000);
    } else {
      setLive("Live: reconnecting", false);
    }
  };
  stream.addEventListener("feedback", (event) => {
    const item = JSON.parse(event.data);
    state.page?.onFeedback?.(item);
  });
  stream.addEventListener("alert", (event) => {
    const alert = JSON.parse(event.data);
    refreshAlertBadge();
    state.page?.onAlert?.(alert);
  });
}

async function ensureSession() {
  if (state.session) return state.session;
  state.session = await whoami(); // 401 goes to /login
  document.getElementById("who").textContent = state.session.name ? `Signed in as ${describe(state.session)}` : "";
  // Links to what this role cannot do are not shown (the server refuses them anyway).
  for (const item of document.querySelectorAll("[data-role=admin]")) item.hidden = !mayAdminister(state.session.role);
  return state.session;
}

function sessionProblem(main, err) {
  if (err instanceof ApiError && err.status === 401) return; // on the way to /login
  main.innerHTML = `<h1>Cannot check your session</h1><p class="error" role="alert">${escape(
    err instanceof ApiError && err.unavailable
      ? `This server does not offer ${err.path} (HTTP ${err.status}), so the dashboard cannot log you in.`
      : String(err.detail || err),
  )}</p>`;
}

let renders = 0; // a newer navigation makes an older, still loading render give up

async function render() {
  const mine = ++renders;
  const [page, params] = route(location.pathname);
  const main = document.getElementById("main");
  state.cleanup?.();
  state.cleanup = null;
  state.page = null;
  document.body.classList.remove("pending");
  if (!page) {
    main.innerHTML = `<h1>Not found</h1><p>No page at <code>${escape(location.pathname)}</code>. <a href="/" data-nav>Overview</a></p>`;
    return;
  }
  const top = document.getElementById("top");
  // The server only serves these pages with a valid session; checking it again here
  // (for the name in the header) runs alongside the page's own calls, not before them.
  const session = page.isPublic ? null : ensureSession().catch((err) => err);
  top.hidden = Boolean(page.isPublic);
  if (page.isPublic) {
    document.getElementById("filters").hidden = true;
  } else {
    openStream();
    refreshAlertBadge();
    markNav(page);
    syncFilterBar(page);
  }
  document.body.dataset.page = page.name;
  main.replaceChildren();
  state.page = page;
  const cleanup = await page.render(main, { params, filters: filters.current(), navigate });
  if (mine !== renders) {
    cleanup?.();
    return;
  }
  state.cleanup = cleanup || null;
  const checked = await session;
  if (checked instanceof Error && mine === renders) sessionProblem(main, checked);
}

function onClick(event) {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/") || !route(url.pathname)[0]) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
  document.getElementById("main").focus({ preventScroll: true });
}

async function logout() {
  try {
    await api("/session", { method: "DELETE", redirect: false });
  } finally {
    state.session = null;
    state.stream?.close();
    state.stream = null;
    location.replace("/login");
  }
}

document.addEventListener("click", onClick);
document.getElementById("filters").addEventListener("change", onFilterChange);
document.getElementById("filters").addEventListener("submit", (e) => e.preventDefault());
document.getElementById("logout").addEventListener("click", logout);
window.addEventListener("popstate", render);
render();
