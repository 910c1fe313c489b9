// The providers page. Plain DOM, no framework; every text goes through
// textContent (never innerHTML), so names and messages cannot inject markup.
"use strict";

const TOKEN_KEY = "platos.token";
const SCOPE_KEY = "platos.scope";
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function setStatus(text, isError) {
  const status = $("status");
  status.textContent = text || "";
  status.classList.toggle("error", Boolean(isError));
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  const init = { method, headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(response.status, error.code || "http_" + response.status, error.message || response.statusText);
  }
  return data;
}

function scopePath() {
  const scope = sessionStorage.getItem(SCOPE_KEY) || "";
  return "/v1/scopes/" + scope.split("/").map(encodeURIComponent).join("/");
}

function when(millis) {
  if (!millis) return "never";
  const seconds = Math.round((Date.now() - millis) / 1000);
  if (seconds < 5) return "just now";
  if (seconds < 60) return seconds + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
  return new Date(millis).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

function badge(colour, role) {
  const words = { green: "healthy", red: "invalid", amber: "degraded", grey: "unchecked" };
  return el("span", { class: "badge " + role, "data-badge": colour, title: colour, text: words[colour] || colour });
}

function renderEmbedding(status) {
  const box = $("embedding");
  box.hidden = false;
  box.replaceChildren();
  if (status.ready) {
    box.className = "ready";
    box.append("Embedding: ", el("strong", { text: status.provider }), " has a key — memory and RAG writes work.");
  } else {
    box.className = "missing";
    box.append(el("strong", { text: "Embedding key missing. " }), status.missing || "Memory and RAG writes fail in this scope.");
  }
}

function renderRefused(refused) {
  const box = $("refused");
  box.hidden = refused.length === 0;
  box.replaceChildren(el("strong", { text: refused.length + " plugin(s) refused at start — the others are served:" }),
    el("ul", {}, refused.map((plugin) => el("li", { "data-origin": plugin.origin },
      el("code", { text: plugin.code }), " ", el("span", { class: "message", text: plugin.message })))));
}

function keyRow(provider, key) {
  const health = key.health;
  const healthCell = el("td", {},
    badge(key.badge, "key-badge"),
    health ? el("span", { class: "message", text: health.verdict + " · " + when(health.checked_at) + " · " + health.message }) :
      el("span", { class: "message", text: "not probed yet" }));
  const button = el("button", { type: "button", class: "secondary test-key", "data-provider": provider.slug, "data-key": key.key_id, text: "Test key" });
  button.addEventListener("click", () => testKey(button, provider.slug, key.key_id));
  return el("tr", { "data-key": key.key_id },
    el("td", {}, el("strong", { text: key.label }), key.scope_default ? el("span", { class: "default-marker", text: "scope default" }) : null,
      el("span", { class: "message", text: key.key_id })),
    el("td", { text: String(key.variant) }),
    el("td", { class: "status", text: key.status }),
    el("td", { class: "last-used", text: when(key.last_used_at) }),
    healthCell,
    el("td", {}, button));
}

// The names an agent's env bag carries for each client library.
function clientNames(clients) {
  const box = el("details", { class: "clients" }, el("summary", { text: "Env bag by client (resolve with \"client\")" }));
  for (const client of clients) {
    const line = el("p", { class: "client", "data-client": client.id }, el("code", { text: client.id }),
      " " + client.display_name + (client.default ? " (default)" : "") + ": ");
    const carried = client.names.filter((n) => n.form !== "note-only");
    carried.forEach((n, index) => {
      if (index) line.append(", ");
      line.append(el("code", { text: n.name }));
      if (n.form === "append-suffix") line.append(" with " + n.suffix);
      else if (n.form === "strip-suffix") line.append(" without " + n.suffix);
      else if (n.form === "host-label-of-url") line.append(" from " + n.variable + "'s host");
      else if (n.name !== n.variable) line.append(" = " + n.variable);
    });
    box.append(line);
    for (const n of client.names.filter((n) => n.form === "note-only")) {
      box.append(el("p", { class: "client-note" }, el("code", { text: n.variable }), " is not read by " + client.display_name + ": " + (n.note || "")));
    }
  }
  return box;
}

function providerCard(provider) {
  const card = el("article", { class: "provider" + (provider.linked ? "" : " unlinked"), "data-provider": provider.slug });
  card.append(el("div", { class: "provider-head" },
    el("h2", { text: provider.display_name }),
    el("span", { class: "slug", text: provider.slug }),
    badge(provider.badge, "provider-badge"),
    el("span", { class: "linked", text: provider.linked ? provider.keys.length + " key(s) linked" : "not linked" })));

  const expected = provider.expected_vars.map((v) => {
    const bits = [v.role];
    if (v.required) bits.push("required");
    if (v.default) bits.push("default " + v.default);
    return el("span", { class: "expected-var" }, el("code", { text: v.name }), " (" + bits.join(", ") + ")");
  });
  const vars = el("p", { class: "vars" }, "Expected: ");
  expected.forEach((node, index) => { if (index) vars.append(" · "); vars.append(node); });
  if (provider.key_var) vars.append(" · more keys: ", el("code", { text: provider.key_var + "_2" }), ", ", el("code", { text: provider.key_var + "_3" }), " …");
  card.append(vars);
  if (provider.clients && provider.clients.length) card.append(clientNames(provider.clients));

  for (const miss of provider.near_misses) {
    card.append(el("p", { class: "near-miss" }, el("code", { text: miss.found }), " is set in this scope — did you mean ",
      el("code", { text: miss.did_you_mean }), "?"));
  }
  if (provider.keys.length) {
    const table = el("table", {},
      el("thead", {}, el("tr", {}, ["Key", "Variant", "Status", "Last used", "Health", ""].map((h) => el("th", { text: h })))),
      el("tbody", {}, provider.keys.map((key) => keyRow(provider, key))));
    card.append(table);
  } else if (provider.key_var) {
    card.append(el("p", { class: "muted" }, "No key in this scope: set ", el("code", { text: provider.key_var }), " to link one."));
  }
  return card;
}

function renderProviders(data) {
  const list = [...data.providers].sort((a, b) => (b.linked - a.linked) || a.slug.localeCompare(b.slug));
  $("providers").replaceChildren(...list.map(providerCard));
}

async function loadModels() {
  const picker = $("picker");
  picker.hidden = false;
  const cls = $("class").value;
  const data = await api("GET", scopePath() + "/models" + (cls ? "?class=" + encodeURIComponent(cls) : ""));
  $("models").replaceChildren(...data.models.map((m) => el("li", { "data-model": m.id },
    el("span", { text: m.display_name }), el("span", { class: "provider-name", text: m.provider }), el("span", { class: "source", text: m.source }))));
  $("picker-empty").hidden = data.models.length > 0;
}

async function loadAll() {
  const scope = sessionStorage.getItem(SCOPE_KEY);
  if (!sessionStorage.getItem(TOKEN_KEY)) return setStatus("Paste a token to begin.");
  if (!scope) return setStatus("Enter a scope: organization/project/environment.");
  setStatus("Loading " + scope + " …");
  try {
    const [providers, embedding, plugins] = await Promise.all([api("GET", scopePath() + "/providers"),
      api("GET", scopePath() + "/embedding"), api("GET", "/v1/plugins")]);
    renderProviders(providers);
    renderEmbedding(embedding);
    renderRefused(plugins.refused || []);
    await loadModels();
    setStatus("Scope " + providers.scope + " · " + providers.providers.filter((p) => p.linked).length + " provider(s) linked");
    document.body.dataset.loaded = "true";
  } catch (error) {
    $("providers").replaceChildren();
    $("picker").hidden = true;
    $("embedding").hidden = true;
    setStatus(error.message + (error.code ? " (" + error.code + ")" : ""), true);
  }
}

async function testKey(button, provider, key) {
  button.disabled = true;
  button.textContent = "Testing…";
  try {
    const result = await api("POST", scopePath() + "/providers/" + encodeURIComponent(provider) + "/keys/" + encodeURIComponent(key) + "/probe");
    const data = await api("GET", scopePath() + "/providers/" + encodeURIComponent(provider) + "/keys");
    const card = document.querySelector('article.provider[data-provider="' + CSS.escape(provider) + '"]');
    if (card) card.replaceWith(providerCard(data.provider));
    setStatus(key + ": " + result.verdict + " — " + result.message, result.badge === "red");
    await loadModels();
  } catch (error) {
    setStatus(key + ": " + error.message, true);
    button.disabled = false;
    button.textContent = "Test key";
  }
}

async function start() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("scope")) sessionStorage.setItem(SCOPE_KEY, params.get("scope"));
  $("token").value = sessionStorage.getItem(TOKEN_KEY) || "";
  $("scope").value = sessionStorage.getItem(SCOPE_KEY) || "";
  $("connect").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    let scope = $("scope").value.trim();
    if (!scope && token) {
      try {
        const me = await api("GET", "/v1/whoami");
        if (me.scope) scope = me.scope;
      } catch (error) {
        return setStatus(error.message, true);
      }
    }
    $("scope").value = scope;
    if (scope) sessionStorage.setItem(SCOPE_KEY, scope);
    await loadAll();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    setStatus("Token forgotten.");
  });
  $("class").addEventListener("change", () => loadModels().catch((error) => setStatus(error.message, true)));
  if (sessionStorage.getItem(TOKEN_KEY) && sessionStorage.getItem(SCOPE_KEY)) await loadAll();
  else setStatus("Paste a token and a scope, then Load.");
}

document.addEventListener("DOMContentLoaded", start);
