// Sign in with an e-mail and a password (an account, server/people/) or with a person's
// token (viewer, operator or admin): POST /api/v1/session sets an HttpOnly cookie. An
// invitation or reset link lands here with its secret in the fragment (#invite=...,
// #reset=...), which the browser never sends to a server; this page posts it once.
// After sign-in, only a path on this site is followed (redirect.js).

import { api, ApiError } from "../api.js";
import { html } from "../format.js";
import { safeNext } from "../redirect.js";
import { setTitle } from "../ui.js";

export const name = "login";
export const isPublic = true;

function nextUrl() {
  return safeNext(new URLSearchParams(location.search).get("next"), location.origin);
}

function why(err, fallback) {
  if (err instanceof ApiError && err.status === 401) return fallback;
  if (err instanceof ApiError && err.status === 429) return `Too many failed sign-ins from this address. ${err.detail}`;
  return err instanceof ApiError ? err.detail : String(err);
}

/** Wire a form: `send(data)` on submit, errors into the form's [role=alert]. */
function wire(form, send, fallback) {
  const error = form.querySelector("[role=alert]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await send(Object.fromEntries(new FormData(form)));
    } catch (err) {
      error.textContent = why(err, fallback);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
}

function setPassword(main, purpose, secret) {
  const invite = purpose === "invite";
  main.innerHTML = html`<section class="login">
    <h1>nps-edge</h1>
    <p>${invite ? "Welcome. Choose a password for your account" : "Choose a new password"} (at least 10 characters).</p>
    <form id="password-form" novalidate>
      <label for="new-password">New password</label>
      <input id="new-password" name="password" type="password" autocomplete="new-password" required minlength="10">
      <p class="error" role="alert" hidden></p>
      <button type="submit">${invite ? "Join" : "Set password"}</button>
    </form></section>`.text;
  history.replaceState(null, "", "/login"); // the secret leaves the address bar
  const form = main.querySelector("#password-form");
  wire(form, async (data) => {
    const out = await api(`/people/${invite ? "accept" : "reset"}`, { method: "POST", body: { token: secret, password: data.password }, redirect: false });
    main.querySelector("p").textContent = `${out.detail}.`;
    form.replaceWith(document.createRange().createContextualFragment(html`<p><a href="/login">Sign in</a></p>`.text));
  }, "That link was not accepted.");
}

export async function render(main) {
  setTitle("Log in");
  const link = location.hash.match(/^#(invite|reset)=([A-Za-z0-9_-]{10,256})$/);
  if (link) {
    setPassword(main, link[1], link[2]);
    return;
  }
  try {
    await api("/session", { redirect: false });
    location.replace(nextUrl());
    return;
  } catch {
    // not logged in: show the form
  }
  main.innerHTML = html`<section class="login">
    <h1>nps-edge</h1>
    <p>Sign in with your e-mail and password, or with a token. A viewer reads, an operator also works the
      alerts, an admin also manages people and the device registry.</p>
    <form id="login-form" novalidate>
      <label for="email">E-mail</label>
      <input id="email" name="email" type="email" autocomplete="username" spellcheck="false">
      <label for="password">Password</label>
      <input id="password" name="password" type="password" autocomplete="current-password">
      <p class="muted">or, instead, a token: an admin creates one on the server with
        <code>nps-edge token create --role operator --name you</code> (<code>--site SITE</code> limits it to one site).</p>
      <label for="token">Your token</label>
      <input id="token" name="token" type="password" autocomplete="off" aria-describedby="login-error" spellcheck="false">
      <p id="login-error" class="error" role="alert" hidden></p>
      <button type="submit">Sign in</button>
    </form>
    <details id="forgot"><summary>Forgot your password?</summary>
      <form id="reset-form" novalidate>
        <label for="reset-email">E-mail</label>
        <input id="reset-email" name="email" type="email" autocomplete="username" required>
        <p class="error" role="alert" hidden></p>
        <button type="submit" class="secondary">E-mail me a reset link</button>
        <p id="reset-sent" role="status" class="muted"></p>
      </form></details>
  </section>`.text;
  main.querySelector("#email").focus();
  wire(main.querySelector("#login-form"), async (d) => {
    const token = d.token.trim();
    if (!token && !(d.email.trim() && d.password)) throw new Error("Enter your e-mail and password, or your token.");
    await api("/session", { method: "POST", body: token ? { token } : { email: d.email.trim(), password: d.password }, redirect: false });
    location.replace(nextUrl());
  }, "That sign-in was not accepted. Check it and try again.");
  wire(main.querySelector("#reset-form"), async (d) => {
    const out = await api("/people/reset-request", { method: "POST", body: { email: d.email.trim() }, redirect: false });
    main.querySelector("#reset-sent").textContent = out.detail;
  }, "Could not ask for a reset link.");
}
