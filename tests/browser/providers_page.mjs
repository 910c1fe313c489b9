// Drives headless Chromium over the DevTools protocol (Node's built-in
// WebSocket; no npm packages) through the providers page, and prints what it
// saw as one JSON line on stdout. The Rust test (tests/browser.rs) starts the
// host and the mock upstream and checks the observations.
//
// Environment: PAGE_URL, PAGE_TOKEN, CHROMIUM (the binary), SCREENSHOT_DIR.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { PAGE_URL, PAGE_TOKEN, CHROMIUM, SCREENSHOT_DIR } = process.env;
const deadline = setTimeout(() => fail("timed out after 90 s"), 90_000);
const profile = mkdtempSync(join(tmpdir(), "platos-chromium-"));
let browser;

function fail(message) {
  process.stderr.write("browser driver: " + message + "\n");
  cleanup();
  process.exit(1);
}

function cleanup() {
  clearTimeout(deadline);
  if (browser && browser.exitCode === null) browser.kill("SIGKILL");
  try { rmSync(profile, { recursive: true, force: true }); } catch (_) {}
}

function launch() {
  return new Promise((resolve, reject) => {
    browser = spawn(CHROMIUM, [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
      "--disable-dev-shm-usage", "--window-size=1280,1600",
      "--user-data-dir=" + profile, "--remote-debugging-port=0", "about:blank",
    ], { stdio: ["ignore", "ignore", "pipe"] });
    let seen = "";
    browser.stderr.on("data", (chunk) => {
      seen += chunk.toString();
      const match = seen.match(/DevTools listening on (ws:\/\/\S+)/);
      if (match) resolve(match[1]);
    });
    browser.on("exit", (code) => reject(new Error("chromium exited with " + code + ": " + seen.slice(-2000))));
    browser.on("error", reject);
  });
}

class Cdp {
  constructor(url) {
    this.ws = new WebSocket(url);
    this.next = 1;
    this.pending = new Map();
    this.events = [];
    this.ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.id && this.pending.has(message.id)) {
        const { resolve, reject } = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.error) reject(new Error(JSON.stringify(message.error)));
        else resolve(message.result);
      } else if (message.method) {
        this.events.push(message);
      }
    };
  }
  open() {
    return new Promise((resolve, reject) => {
      this.ws.onopen = resolve;
      this.ws.onerror = () => reject(new Error("cannot connect to the DevTools endpoint"));
    });
  }
  send(method, params = {}, sessionId) {
    const id = this.next++;
    const message = { id, method, params };
    if (sessionId) message.sessionId = sessionId;
    this.ws.send(JSON.stringify(message));
    return new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }));
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const endpoint = await launch();
  const cdp = new Cdp(endpoint);
  await cdp.open();
  const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: true });
  const page = (method, params) => cdp.send(method, params, sessionId);
  await page("Page.enable");
  await page("Runtime.enable");
  await page("Log.enable");

  async function evaluate(expression) {
    const result = await page("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true });
    if (result.exceptionDetails) throw new Error("page script failed: " + JSON.stringify(result.exceptionDetails));
    return result.result.value;
  }
  async function until(what, expression, timeout = 20_000) {
    const end = Date.now() + timeout;
    while (Date.now() < end) {
      if (await evaluate(expression).catch(() => false)) return;
      await sleep(100);
    }
    throw new Error("waited 20 s for " + what + "; the page says: " + (await evaluate("document.getElementById('status')?.textContent")));
  }
  async function screenshot(name) {
    const { data } = await page("Page.captureScreenshot", { format: "png", captureBeyondViewport: true });
    if (SCREENSHOT_DIR) writeFileSync(join(SCREENSHOT_DIR, name + ".png"), Buffer.from(data, "base64"));
  }
  // What the page shows, read from the DOM.
  const snapshot = `(() => {
    const text = (node) => node ? node.textContent.trim() : null;
    return {
      scope: document.getElementById('scope').value,
      status: text(document.getElementById('status')),
      embedding: text(document.getElementById('embedding')),
      providers: [...document.querySelectorAll('article.provider')].map((card) => ({
        slug: card.dataset.provider,
        badge: card.querySelector('.provider-badge').dataset.badge,
        linked: text(card.querySelector('.linked')),
        expected: [...card.querySelectorAll('.expected-var code')].map(text),
        nearMisses: [...card.querySelectorAll('.near-miss')].map(text),
        clients: Object.fromEntries([...card.querySelectorAll(".clients .client")].map((line) => [line.dataset.client, text(line)])),
        keys: [...card.querySelectorAll('tbody tr')].map((row) => ({
          key: row.dataset.key,
          badge: row.querySelector('.key-badge').dataset.badge,
          status: text(row.querySelector('.status')),
          lastUsed: text(row.querySelector('.last-used')),
          label: text(row.querySelector('td strong')),
          button: text(row.querySelector('button.test-key')),
        })),
      })),
      models: [...document.querySelectorAll('#models li')].map((li) => li.dataset.model),
      tokenStored: sessionStorage.getItem('platos.token') !== null,
    };
  })()`;
  const keyBadge = (key) => `document.querySelector('article.provider[data-provider="openai"] tr[data-key="${key}"] .key-badge')?.dataset.badge`;

  const observed = {};
  await page("Page.navigate", { url: PAGE_URL });
  await until("the page to load", "document.readyState === 'complete' && !!document.getElementById('connect')");
  // Paste the token, leave the scope empty: the page asks whoami for it.
  await evaluate(`document.getElementById('token').value = ${JSON.stringify(PAGE_TOKEN)};
    document.getElementById('scope').value = '';
    document.getElementById('load').click(); true`);
  await until("the providers to load", "document.body.dataset.loaded === 'true'");
  observed.before = await evaluate(snapshot);
  await screenshot("providers-before");

  await evaluate(`document.querySelector('button.test-key[data-key="OPENAI_API_KEY"]').click(); true`);
  await until("OPENAI_API_KEY's badge to turn green", `${keyBadge("OPENAI_API_KEY")} === 'green'`);
  await until("the picker to show a discovered model", `!!document.querySelector('#models li[data-model="mock-chat-1"]')`);
  observed.afterGood = await evaluate(snapshot);

  await evaluate(`document.querySelector('button.test-key[data-key="OPENAI_API_KEY_2"]').click(); true`);
  await until("OPENAI_API_KEY_2's badge to turn red", `${keyBadge("OPENAI_API_KEY_2")} === 'red'`);
  observed.afterBad = await evaluate(snapshot);
  await screenshot("providers-after-tests");

  // A reload keeps the token (session storage) and shows the recorded verdicts.
  await page("Page.reload");
  await until("the reloaded page to load", "document.body && document.body.dataset.loaded === 'true'");
  observed.afterReload = await evaluate(snapshot);

  observed.problems = cdp.events
    .filter((event) => event.method === "Runtime.exceptionThrown" ||
      (event.method === "Log.entryAdded" && event.params.entry.level === "error") ||
      (event.method === "Runtime.consoleAPICalled" && event.params.type === "error"))
    .map((event) => JSON.stringify(event.params).slice(0, 500));
  await cdp.send("Browser.close").catch(() => {});
  process.stdout.write(JSON.stringify(observed) + "\n");
  cleanup();
  process.exit(0);
}

main().catch((error) => fail(error.stack || String(error)));
