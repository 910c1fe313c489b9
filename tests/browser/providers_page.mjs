// Drives headless Chromium over the DevTools protocol (Node's built-in
// WebSocket; no npm packages) through the providers page, and prints what it
// saw as one JSON line on stdout. The Rust test (tests/browser.rs) starts the
// host and the mock upstream and checks the observations.
//
// Environment: PAGE_URL, PAGE_TOKEN, and cdp.mjs's CHROMIUM, SCREENSHOT_DIR.
import { cleanup, fail, openPage } from "./cdp.mjs";

const { PAGE_URL, PAGE_TOKEN } = process.env;

async function main() {
  const { page, evaluate, until, screenshot, problems, close } = await openPage();
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
          spend: text(row.querySelector('.spend')),
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

  observed.problems = problems();
  await close();
  process.stdout.write(JSON.stringify(observed) + "\n");
  cleanup();
  process.exit(0);
}

main().catch((error) => fail(error.stack || String(error)));
