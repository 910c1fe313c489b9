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

// A badge says what the verdict was: grey is "unreachable" when a probe
// could not reach the provider, "unchecked" when no probe ran yet.
function badge(colour, role, verdict) {
  const words = { green: "healthy", red: "invalid", amber: "degraded", grey: "unchecked" };
  const text = colour === "grey" && verdict === "unreachable" ? "unreachable" : words[colour] || colour;
  return el("span", { class: "badge " + role, "data-badge": colour, "data-verdict": verdict || "", title: verdict || colour, text });
}

// The error of one row or form, shown beside it rather than at the top.
function showRowError(node, error) {
  node.textContent = error ? error.message + (error.code ? " (" + error.code + ")" : "") : "";
  node.hidden = !error;
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
    badge(key.badge, "key-badge", health && health.verdict),
    health ? el("span", { class: "message", text: health.verdict + " · " + when(health.checked_at) + " · " + health.message }) :
      el("span", { class: "message", text: "not probed yet" }));
  const error = el("span", { class: "row-error", role: "alert", hidden: true });
  const button = el("button", { type: "button", class: "secondary test-key", "data-provider": provider.slug, "data-key": key.key_id, text: "Test key" });
  button.addEventListener("click", () => testKey(button, provider.slug, key.key_id, error));
  const toggle = el("button", { type: "button", class: "secondary toggle-key", text: key.status === "active" ? "Disable" : "Enable" });
  toggle.addEventListener("click", () => change(error, toggle, () => api("PATCH", keyPath(provider.slug, key.key_id),
    { status: key.status === "active" ? "disabled" : "active" })));
  // The scope default: the operator's choice, else the lowest active variant.
  const makeDefault = el("button", { type: "button", class: "secondary make-default",
    text: key.chosen_default_at ? "Withdraw default" : "Make default", hidden: !key.chosen_default_at && (key.status !== "active" || key.scope_default) });
  makeDefault.addEventListener("click", () => change(error, makeDefault, () => api("PATCH", keyPath(provider.slug, key.key_id),
    { scope_default: !key.chosen_default_at })));
  const label = el("input", { type: "text", class: "label-input", value: key.label, "aria-label": "Label of " + key.key_id, maxlength: 128 });
  const saveLabel = el("button", { type: "button", class: "secondary save-label", text: "Save label" });
  saveLabel.addEventListener("click", () => change(error, saveLabel, () => api("PATCH", keyPath(provider.slug, key.key_id), { label: label.value })));
  const unset = el("button", { type: "button", class: "secondary unset-key", text: "Unset" });
  unset.addEventListener("click", () => {
    if (unset.dataset.armed !== "true") {
      unset.dataset.armed = "true";
      unset.textContent = "Confirm unset";
      return;
    }
    change(error, unset, () => api("DELETE", scopePath() + "/env/" + encodeURIComponent(key.key_id)));
  });
  return el("tr", { "data-key": key.key_id },
    el("td", {}, el("strong", { text: key.label }), key.scope_default ? el("span", { class: "default-marker", text: key.chosen_default_at ? "scope default (chosen)" : "scope default" }) : null,
      el("span", { class: "message", text: key.key_id }), el("span", { class: "label-edit" }, label, saveLabel)),
    el("td", { text: String(key.variant) }),
    el("td", { class: "status", text: key.status }),
    el("td", { class: "last-used", text: when(key.last_used_at) }),
    spendCell(budgets.get(provider.slug + "/" + key.key_id)),
    healthCell,
    el("td", { class: "actions" }, button, toggle, makeDefault, unset, error));
}

// Each linked key's budget and spend (GET .../keys/{key}/budget), by
// "provider/key", as the last load read them.
let budgets = new Map();

async function loadBudgets(providers) {
  const pairs = providers.flatMap((p) => p.keys.map((k) => [p.slug, k.key_id]));
  const answers = await Promise.all(pairs.map(([p, k]) => api("GET", keyPath(p, k) + "/budget").catch(() => null)));
  return new Map(pairs.map(([p, k], index) => [p + "/" + k, answers[index]]));
}

// What a key spent today and this month, and its cap with what is left.
function spendCell(budget) {
  const cell = el("td", { class: "spend" });
  if (!budget) return cell;
  const usd = (amount) => "$" + amount.toFixed(amount !== 0 && amount < 1 ? 4 : 2);
  const per = { day: "per day", month: "per month", total: "in total" };
  cell.append(el("span", { class: "spent", text: usd(budget.spend.day_usd) + " today · " + usd(budget.spend.month_usd) + " this month" }), " ");
  if (budget.limit_usd === null) {
    cell.append(el("span", { class: "cap", text: "no cap" }));
  } else {
    const inFlight = budget.reserved_usd ? " (" + usd(budget.reserved_usd) + " in flight)" : "";
    cell.append(el("span", { class: "cap" + (budget.left_usd === 0 ? " at-cap" : ""),
      text: "cap " + usd(budget.limit_usd) + " " + per[budget.period] + ": " + usd(budget.left_usd) + " left" + inFlight }));
  }
  return cell;
}

function keyPath(provider, key) {
  return scopePath() + "/providers/" + encodeURIComponent(provider) + "/keys/" + encodeURIComponent(key);
}

// Runs one change from a row or form: the button waits, an error shows
// beside the row, success reloads the page's data.
async function change(errorNode, button, action) {
  button.disabled = true;
  showRowError(errorNode, null);
  try {
    await action();
    await loadAll();
    refreshSoon();
  } catch (error) {
    showRowError(errorNode, error);
    button.disabled = false;
  }
}

// After a change the host probes the provider's keys in the background:
// reload a few times so the badges change as the probes finish, unless the
// person is typing a value (a reload would empty the field).
let refreshTimers = [];
function refreshSoon() {
  refreshTimers.forEach(clearTimeout);
  refreshTimers = [1500, 4000, 8000].map((delay) => setTimeout(() => {
    const typing = [...document.querySelectorAll("form.set-var input, .label-edit input")]
      .some((input) => input === document.activeElement || (input.type === "password" && input.value));
    if (!typing) loadAll();
  }, delay));
}

// The form that sets (links, rotates) one of the provider's variables. The
// value field is a password field that is emptied as soon as it is sent;
// the value is never kept, shown or put in the URL.
function setVariableForm(provider) {
  const names = provider.expected_vars.map((v) => v.name);
  if (provider.key_var) {
    const used = provider.keys.map((key) => key.variant);
    const next = Math.max(1, ...used) + 1;
    names.push(provider.key_var + "_" + next);
  }
  const select = el("select", { name: "name", "aria-label": "Variable" }, names.map((name) => el("option", { value: name, text: name })));
  const value = el("input", { type: "password", name: "value", autocomplete: "new-password", spellcheck: "false", placeholder: "value (write-only)", "aria-label": "Value" });
  const save = el("button", { type: "submit", text: "Set" });
  const error = el("span", { class: "row-error", role: "alert", hidden: true });
  const form = el("form", { class: "set-var", "data-provider": provider.slug, autocomplete: "off" }, select, value, save, error);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { value: value.value };
    value.value = "";
    change(error, save, () => api("PUT", scopePath() + "/env/" + encodeURIComponent(select.value), body));
  });
  return form;
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
    badge(provider.badge, "provider-badge", provider.keys.some((key) => key.health && key.health.verdict === "unreachable") ? "unreachable" : null),
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
  if (!isSelfHost) card.append(setVariableForm(provider));
  if (provider.keys.length) {
    const table = el("table", {},
      el("thead", {}, el("tr", {}, ["Key", "Variant", "Status", "Last used", "Spend", "Health", ""].map((h) => el("th", { text: h })))),
      el("tbody", {}, provider.keys.map((key) => keyRow(provider, key))));
    card.append(table);
  } else if (provider.key_var) {
    card.append(el("p", { class: "muted" }, "No key in this scope: set ", el("code", { text: provider.key_var }), " to link one",
      isSelfHost ? " (a line in the .env file)." : " (the form above).", " ", el("a", { href: provider.docs_url, target: "_blank", rel: "noopener", text: "Get a key" })));
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

// Whether the loaded scope is the self-host scope (its variables are edited
// in the .env file, not through the page's forms).
let isSelfHost = false;

async function loadAll() {
  const scope = sessionStorage.getItem(SCOPE_KEY);
  if (!sessionStorage.getItem(TOKEN_KEY)) return setStatus("Paste a token to begin.");
  if (!scope) return setStatus("Enter a scope: organization/project/environment.");
  setStatus("Loading " + scope + " …");
  try {
    const [providers, embedding, plugins, selfHost] = await Promise.all([api("GET", scopePath() + "/providers"),
      api("GET", scopePath() + "/embedding"), api("GET", "/v1/plugins"), api("GET", scopePath() + "/self-host")]);
    isSelfHost = Boolean(selfHost.self_host);
    budgets = await loadBudgets(providers.providers);
    renderProviders(providers);
    renderEmbedding(embedding);
    renderSelfHost(selfHost.self_host);
    renderChecklist(providers.providers, embedding, selfHost.self_host);
    renderRefused(plugins.refused || []);
    await loadModels();
    setStatus("Scope " + providers.scope + " · " + providers.providers.filter((p) => p.linked).length + " provider(s) linked");
    document.body.dataset.loaded = "true";
    document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1);
  } catch (error) {
    $("providers").replaceChildren();
    $("picker").hidden = true;
    $("embedding").hidden = true;
    $("checklist").hidden = true;
    setStatus(error.message + (error.code ? " (" + error.code + ")" : ""), true);
  }
}

// The last self-host import: a refused reload, skipped lines, names the
// shell replaced, names that look misspelt.
function renderSelfHost(status) {
  const box = $("self-host");
  box.replaceChildren();
  box.hidden = !status;
  if (!status) return;
  box.className = status.error ? "problem" : "info";
  box.append(el("strong", { text: "Self-host import" }), " · " + when(status.attempted_at) + " · " + status.variables.length + " variable(s) from the .env file and the process environment.");
  const list = el("ul");
  if (status.error) list.append(el("li", { class: "import-error" }, "The last reload was refused, the previous variables stay: ", el("code", { text: status.error })));
  for (const line of status.skipped_lines) list.append(el("li", { class: "skipped-line" }, ".env line " + line.line + " was not imported: " + line.reason));
  for (const name of status.shadowed_by_process_env) list.append(el("li", { class: "shadowed" }, el("code", { text: name }), " in the .env file is replaced by the process environment's value."));
  for (const miss of status.near_misses) list.append(el("li", { class: "import-hint" }, el("code", { text: miss.found }), " — did you mean ", el("code", { text: miss.did_you_mean }), "?"));
  if (list.children.length) box.append(list);
}

// The checklist a person works down for one scope: each step with its
// state, what to do, and where to get a key.
function renderChecklist(providers, embedding, selfHost) {
  const chat = providers.filter((p) => p.model_classes.includes("chat"));
  const green = (p) => p.keys.some((key) => key.status === "active" && key.badge === "green");
  const action = (name, docs) => el("span", { class: "do" }, selfHost ? "Add the line " : "Set ", el("code", { text: name + (selfHost ? "=…" : "") }),
    selfHost ? " to the .env file." : " with the form of its provider below.", docs ? [" ", el("a", { href: docs, target: "_blank", rel: "noopener", text: "Get a key" })] : []);
  const steps = [];

  const healthyChat = chat.filter(green);
  const linkedChat = chat.filter((p) => p.linked);
  if (healthyChat.length) steps.push(["llm", "done", "An LLM provider is linked and healthy", [healthyChat.map((p) => p.display_name).join(", ")]]);
  else if (linkedChat.length) steps.push(["llm", "warn", "An LLM provider is linked and healthy", ["Linked, not healthy yet: " + linkedChat.map((p) => p.display_name).join(", ") + ". Test its key; a red key needs a new value."]]);
  else {
    const first = chat.find((p) => p.slug === "openai") || chat[0];
    steps.push(["llm", "todo", "Link at least one LLM provider", first ? [action(first.key_var || first.expected_vars[0].name, first.docs_url), " (or another provider's key)"] : ["No LLM provider plugin is loaded."]]);
  }

  const embedder = providers.find((p) => p.slug === embedding.provider);
  if (embedding.ready && embedder && green(embedder)) steps.push(["embedding", "done", "The embedding track works", [embedder.display_name + " has a healthy key: memory and RAG writes work."]]);
  else if (embedding.ready) steps.push(["embedding", "warn", "The embedding track works", [(embedder ? embedder.display_name : embedding.provider) + " has a key that is not proven yet: test it."]]);
  else steps.push(["embedding", "todo", "Give the embedding track a key", [embedding.missing || "", " ", embedder ? action(embedder.key_var, embedder.docs_url) : ""]]);

  const keys = providers.flatMap((p) => p.keys.filter((key) => key.status === "active").map((key) => [p, key]));
  const unproven = keys.filter(([, key]) => key.badge !== "green");
  if (!keys.length) steps.push(["keys", "todo", "Every linked key is probed and green", ["No key is linked yet."]]);
  else if (!unproven.length) steps.push(["keys", "done", "Every linked key is probed and green", [keys.length + " key(s)"]]);
  else steps.push(["keys", "warn", "Every linked key is probed and green", [unproven.map(([p, key]) => key.key_id + ": " + (key.health ? key.health.verdict : "not probed yet")).join(" · ")]]);

  const hints = providers.flatMap((p) => p.near_misses).concat(selfHost ? selfHost.near_misses : []);
  const seen = new Set();
  const unique = hints.filter((miss) => !seen.has(miss.found) && seen.add(miss.found));
  if (!unique.length) steps.push(["names", "done", "No misspelt variable names", []]);
  else steps.push(["names", "warn", "Fix misspelt variable names", unique.map((miss) => el("span", { class: "hint-pair" }, el("code", { text: miss.found }), " → ", el("code", { text: miss.did_you_mean }), " "))]);

  if (selfHost) {
    const problems = (selfHost.error ? 1 : 0) + selfHost.skipped_lines.length + selfHost.shadowed_by_process_env.length;
    steps.push(["self-host", selfHost.error ? "todo" : problems ? "warn" : "done", "The self-host configuration imports cleanly",
      [selfHost.error ? "The last reload was refused: " + selfHost.error : problems ? problems + " note(s) below." : "Imported " + when(selfHost.attempted_at) + "."]]);
  }

  const words = { done: "done", warn: "check", todo: "to do" };
  $("steps").replaceChildren(...steps.map(([id, state, title, detail]) => el("li", { class: "step", "data-step": id, "data-state": state },
    el("span", { class: "state", text: words[state] }), el("strong", { text: title }), el("span", { class: "detail" }, detail))));
  $("checklist").hidden = false;
}

// The scopes this token may see, offered in the scope field.
async function loadScopes() {
  try {
    const data = await api("GET", "/v1/scopes");
    $("scopes").replaceChildren(...data.scopes.map((entry) => el("option", { value: entry.scope, text: entry.self_host ? "self-host" : "" })));
    return data.scopes.map((entry) => entry.scope);
  } catch (_) {
    return [];
  }
}

async function testKey(button, provider, key, errorNode) {
  button.disabled = true;
  button.textContent = "Testing…";
  showRowError(errorNode, null);
  try {
    const result = await api("POST", scopePath() + "/providers/" + encodeURIComponent(provider) + "/keys/" + encodeURIComponent(key) + "/probe");
    const data = await api("GET", scopePath() + "/providers/" + encodeURIComponent(provider) + "/keys");
    const card = document.querySelector('article.provider[data-provider="' + CSS.escape(provider) + '"]');
    if (card) card.replaceWith(providerCard(data.provider));
    setStatus(key + ": " + result.verdict + " — " + result.message, result.badge === "red");
    await loadModels();
  } catch (error) {
    showRowError(errorNode, error);
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
    const known = await loadScopes();
    $("scope").value = scope;
    if (scope) sessionStorage.setItem(SCOPE_KEY, scope);
    await loadAll();
    if (scope && known.length && !known.includes(scope)) {
      setStatus("Scope " + scope + " has no key yet (known scopes: " + known.join(", ") + "). Check the spelling, or link a key below to start it.", true);
    }
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $("token").value = "";
    setStatus("Token forgotten.");
  });
  $("class").addEventListener("change", () => loadModels().catch((error) => setStatus(error.message, true)));
  if (sessionStorage.getItem(TOKEN_KEY)) await loadScopes();
  if (sessionStorage.getItem(TOKEN_KEY) && sessionStorage.getItem(SCOPE_KEY)) await loadAll();
  else setStatus("Paste a token and a scope, then Load.");
}

document.addEventListener("DOMContentLoaded", start);
