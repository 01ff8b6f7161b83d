// The one place the dashboard talks to the server: same-origin, cookie session.

export class ApiError extends Error {
  constructor(status, path, detail) {
    super(`${path}: ${detail}`);
    this.status = status;
    this.path = path;
    this.detail = detail;
  }

  /** The endpoint is not on this server (yet): the page shows "not available". */
  get unavailable() {
    return this.status === 404 || this.status === 405 || this.status === 501;
  }
}

function toLogin() {
  const next = location.pathname + location.search;
  location.replace(`/login?next=${encodeURIComponent(next)}`);
}

async function detailOf(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return response.statusText || `HTTP ${response.status}`;
  }
}

/** fetch JSON from `/api/v1${path}`; query is a URLSearchParams or plain object. */
export async function api(path, { query, method = "GET", body, redirect = true } = {}) {
  const params = new URLSearchParams(query || {});
  const qs = params.toString();
  const url = `/api/v1${path}${qs ? `?${qs}` : ""}`;
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, init);
  if (response.status === 401 && redirect) {
    toLogin();
    throw new ApiError(401, `/api/v1${path}`, "not logged in");
  }
  if (!response.ok) throw new ApiError(response.status, `/api/v1${path}`, await detailOf(response));
  return response.status === 204 ? null : response.json();
}

let who = null;

/** Who is signed in, `{name, role, site}`: asked once per page load, shared by every page. */
export function whoami() {
  who ??= api("/session").catch((err) => {
    who = null; // ask again next time
    throw err;
  });
  return who;
}
