// Where to go after logging in: only a path on this site, never another origin.

const FALLBACK = "/";
// C0 controls, DEL and C1 controls: the URL parser drops tab and newline
// (WHATWG URL, "remove all ASCII tab or newline"), so "/\t/evil" would become "//evil".
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * `next` if it is a path on `origin`, else "/". A path starts with one "/" and
 * has no "\" (browsers read "/\evil" as "//evil", a network-path reference to
 * another host), no control characters, and parses to the same origin; the login
 * page itself is never a target (it would loop).
 */
export function safeNext(next, origin) {
  if (typeof next !== "string" || !next.startsWith("/") || next.startsWith("//")) return FALLBACK;
  if (next.includes("\\") || CONTROL.test(next)) return FALLBACK;
  let url;
  try {
    url = new URL(next, origin);
  } catch {
    return FALLBACK;
  }
  if (url.origin !== origin || url.pathname === "/login") return FALLBACK;
  return url.pathname + url.search + url.hash;
}
