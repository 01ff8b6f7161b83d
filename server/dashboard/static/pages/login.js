// Login with a person's token (viewer, operator or admin): POST /api/v1/session sets
// an HttpOnly cookie. After it, only a path on this site is followed (redirect.js).

import { api, ApiError } from "../api.js";
import { html } from "../format.js";
import { safeNext } from "../redirect.js";
import { setTitle } from "../ui.js";

export const name = "login";
export const isPublic = true;

function nextUrl() {
  return safeNext(new URLSearchParams(location.search).get("next"), location.origin);
}

export async function render(main) {
  setTitle("Log in");
  try {
    await api("/session", { redirect: false });
    location.replace(nextUrl());
    return;
  } catch {
    // not logged in: show the form
  }
  main.innerHTML = html`<section class="login">
    <h1>nps-edge</h1>
    <p>Sign in with your token: a viewer reads, an operator also works the alerts, an admin
      also manages the device registry. An admin creates one on the server with
      <code>nps-edge token create --role operator --name you</code>
      (<code>--site SITE</code> limits it to one site).</p>
    <form id="login-form" novalidate>
      <label for="token">Your token</label>
      <input id="token" name="token" type="password" autocomplete="current-password" required
        aria-describedby="login-error" spellcheck="false">
      <p id="login-error" class="error" role="alert" hidden></p>
      <button type="submit">Sign in</button>
    </form>
  </section>`.text;
  const form = main.querySelector("#login-form");
  const error = main.querySelector("#login-error");
  form.token.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const token = form.token.value.trim();
    if (!token) {
      error.textContent = "Enter your token.";
      error.hidden = false;
      return;
    }
    form.querySelector("button").disabled = true;
    try {
      await api("/session", { method: "POST", body: { token }, redirect: false });
      location.replace(nextUrl());
    } catch (err) {
      error.textContent =
        err instanceof ApiError && err.status === 401
          ? "That token was not accepted. Check it and try again."
          : err instanceof ApiError && err.status === 429
            ? `Too many failed sign-ins from this address. ${err.detail}`
            : `Could not sign in: ${err instanceof ApiError ? err.detail : err}`;
      error.hidden = false;
      form.token.select();
    } finally {
      form.querySelector("button").disabled = false;
    }
  });
}
