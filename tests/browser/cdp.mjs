// A headless Chromium page driven over the DevTools protocol with Node's
// built-in WebSocket (no npm packages), shared by the page tests' drivers.
//
// Environment: CHROMIUM (the binary), SCREENSHOT_DIR (optional).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const { CHROMIUM, SCREENSHOT_DIR } = process.env;
const profile = mkdtempSync(join(tmpdir(), "platos-chromium-"));
let browser;
const deadline = setTimeout(() => fail("timed out after 180 s"), 180_000);

/** Ends the driver with `message` on stderr and exit code 1. */
export function fail(message) {
  process.stderr.write("browser driver: " + message + "\n");
  cleanup();
  process.exit(1);
}

/** Stops Chromium and removes its profile. */
export function cleanup() {
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

/** Waits `ms` milliseconds. */
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts Chromium and opens a blank page. Returns `page(method, params)`,
 * `evaluate(expression)`, `until(what, expression)`, `screenshot(name)`,
 * `problems()` (script errors the page logged) and `close()`.
 */
export async function openPage() {
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
    throw new Error("waited " + timeout / 1000 + " s for " + what + "; the page says: " + (await evaluate("document.getElementById('status')?.textContent")));
  }
  async function screenshot(name, dir = SCREENSHOT_DIR) {
    const { data } = await page("Page.captureScreenshot", { format: "png", captureBeyondViewport: true });
    if (dir) writeFileSync(join(dir, name + ".png"), Buffer.from(data, "base64"));
  }
  function problems() {
    return cdp.events
      .filter((event) => event.method === "Runtime.exceptionThrown" ||
        (event.method === "Log.entryAdded" && event.params.entry.level === "error") ||
        (event.method === "Runtime.consoleAPICalled" && event.params.type === "error"))
      .map((event) => JSON.stringify(event.params).slice(0, 500));
  }
  async function close() {
    await cdp.send("Browser.close").catch(() => {});
  }
  return { page, evaluate, until, screenshot, problems, close };
}
