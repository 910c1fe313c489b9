// Works the checklist of an empty managed scope down to all green through the
// page's own forms (set the base URLs and keys, watch the badges change as the
// host's probes finish), then rotates a key to a bad value, labels and
// disables it. Prints what it saw as one JSON line; tests/browser.rs checks it.
//
// Environment: PAGE_URL, PAGE_TOKEN, PAGE_SCOPE, UPSTREAM (the mock's base
// URL), GOOD_OPENAI, BAD_OPENAI, GOOD_VOYAGE (canary values), and cdp.mjs's.
import { cleanup, fail, openPage } from "./cdp.mjs";

const { PAGE_URL, PAGE_TOKEN, PAGE_SCOPE, UPSTREAM, GOOD_OPENAI, BAD_OPENAI, GOOD_VOYAGE } = process.env;

async function main() {
  const { page, evaluate, until, screenshot, problems, close } = await openPage();
  const checklist = `Object.fromEntries([...document.querySelectorAll('#steps .step')].map((step) => [step.dataset.step, step.dataset.state]))`;
  const loads = async () => Number(await evaluate("document.body.dataset.loads || 0"));
  const badgeOf = (provider, key) => `document.querySelector('article.provider[data-provider="${provider}"] tr[data-key="${key}"] .key-badge')?.dataset.badge`;
  const rowErrors = `[...document.querySelectorAll('.row-error')].filter((node) => !node.hidden).map((node) => node.textContent)`;

  // Types into one provider's set-variable form and submits it, as a person does.
  async function setVariable(provider, name, value) {
    const before = await loads();
    await evaluate(`(() => {
      const form = document.querySelector('form.set-var[data-provider="${provider}"]');
      form.querySelector('select').value = ${JSON.stringify(name)};
      form.querySelector('input[type=password]').value = ${JSON.stringify(value)};
      form.querySelector('button[type=submit]').click();
      return true;
    })()`);
    await until(name + " to be set", `Number(document.body.dataset.loads || 0) > ${before}`);
    const errors = await evaluate(rowErrors);
    if (errors.length) throw new Error("setting " + name + " failed: " + errors.join("; "));
  }

  const observed = {};
  await page("Page.navigate", { url: PAGE_URL });
  await until("the page to load", "document.readyState === 'complete' && !!document.getElementById('connect')");
  await evaluate(`document.getElementById('token').value = ${JSON.stringify(PAGE_TOKEN)};
    document.getElementById('scope').value = ${JSON.stringify(PAGE_SCOPE)};
    document.getElementById('load').click(); true`);
  await until("the checklist", "document.body.dataset.loaded === 'true' && !document.getElementById('checklist').hidden");
  observed.empty = await evaluate(checklist);
  observed.scopeOptions = await evaluate("[...document.querySelectorAll('#scopes option')].map((o) => o.value)");
  await screenshot("checklist-empty");

  await setVariable("openai", "OPENAI_API_BASE", UPSTREAM);
  await setVariable("openai", "OPENAI_API_KEY", GOOD_OPENAI);
  await until("the OpenAI key to turn green by itself", `${badgeOf("openai", "OPENAI_API_KEY")} === 'green'`);
  observed.afterOpenai = await evaluate(checklist);

  await setVariable("voyage", "VOYAGE_API_BASE", UPSTREAM);
  await setVariable("voyage", "VOYAGE_API_KEY", GOOD_VOYAGE);
  await until("the Voyage key to turn green by itself", `${badgeOf("voyage", "VOYAGE_API_KEY")} === 'green'`);
  await until("every step done", `Object.values(${checklist}).every((state) => state === 'done')`);
  observed.allGreen = await evaluate(checklist);
  await screenshot("checklist-done");

  // Rotate to a value the upstream refuses: red, and the LLM step no longer done.
  await setVariable("openai", "OPENAI_API_KEY", BAD_OPENAI);
  await until("the rotated key to turn red", `${badgeOf("openai", "OPENAI_API_KEY")} === 'red'`);
  observed.afterBadRotation = await evaluate(checklist);

  // Label it, then disable it.
  let before = await loads();
  await evaluate(`(() => {
    const row = document.querySelector('article.provider[data-provider="openai"] tr[data-key="OPENAI_API_KEY"]');
    row.querySelector('.label-input').value = 'primary';
    row.querySelector('.save-label').click();
    return true;
  })()`);
  await until("the label to be saved", `Number(document.body.dataset.loads || 0) > ${before} && document.querySelector('article.provider[data-provider="openai"] tr[data-key="OPENAI_API_KEY"] td strong')?.textContent === 'primary'`);
  before = await loads();
  await evaluate(`document.querySelector('article.provider[data-provider="openai"] tr[data-key="OPENAI_API_KEY"] .toggle-key').click(); true`);
  await until("the key to be disabled", `document.querySelector('article.provider[data-provider="openai"] tr[data-key="OPENAI_API_KEY"] .status')?.textContent === 'disabled'`);
  observed.afterDisable = await evaluate(checklist);
  observed.rowErrors = await evaluate(rowErrors);

  // Two active keys: make the second the scope default from its row.
  await setVariable("openai", "OPENAI_API_KEY_2", GOOD_OPENAI);
  await setVariable("openai", "OPENAI_API_KEY_3", GOOD_OPENAI);
  const marker = (key) => `document.querySelector('article.provider[data-provider="openai"] tr[data-key="${key}"] .default-marker')?.textContent || ''`;
  observed.defaultBefore = { two: await evaluate(marker("OPENAI_API_KEY_2")), three: await evaluate(marker("OPENAI_API_KEY_3")) };
  await evaluate(`document.querySelector('article.provider[data-provider="openai"] tr[data-key="OPENAI_API_KEY_3"] .make-default').click(); true`);
  await until("the chosen default to show", `${marker("OPENAI_API_KEY_3")} === 'scope default (chosen)'`);
  observed.defaultAfter = { two: await evaluate(marker("OPENAI_API_KEY_2")), three: await evaluate(marker("OPENAI_API_KEY_3")) };
  observed.rowErrorsAfterDefault = await evaluate(rowErrors);

  // Where a value could leak: the DOM (including form fields), the URL, storage.
  observed.surfaces = await evaluate(`(() => {
    const fields = [...document.querySelectorAll('input')].map((input) => input.value);
    const storage = [sessionStorage, localStorage].flatMap((store) => Object.keys(store).map((key) => key + '=' + store.getItem(key)));
    return { html: document.documentElement.outerHTML, fields, url: location.href, storage };
  })()`);
  observed.problems = problems();
  await close();
  process.stdout.write(JSON.stringify(observed) + "\n");
  cleanup();
  process.exit(0);
}

main().catch((error) => fail(error.stack || String(error)));
