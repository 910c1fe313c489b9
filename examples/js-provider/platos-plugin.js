// Helpers for Platos provider plugins in JavaScript (componentize-js / jco).
//
// Copy this file beside your module and import it:
//
//   import { manifestFromToml, requireCredential, standardVerdict } from './platos-plugin.js';
//   import MANIFEST_TOML from './manifest-toml.js'; // build.sh writes it from manifest.toml
//   const MANIFEST = manifestFromToml(MANIFEST_TOML);
//
// - `manifestFromToml(text)`: the WIT manifest record, in jco's shape, from
//   the manifest TOML format the Rust build helper reads (docs/plugin-authors.md,
//   "The manifest"). Call it at module level: componentize-js runs module code
//   once at build time, so a malformed manifest fails the build. The 0.2.0
//   fields (aliases, clients, prices, token exchange) are filled in; a 0.1.0
//   world ignores them.
// - `credential`, `requireCredential`: a variable's value in the env bag; a
//   `missing-credential` error naming it.
// - `standardVerdict(response)`: the Rust SDK's `standard_verdict` (2xx model
//   list healthy, 401/403 invalid, 402/429 quota, 0 unreachable, 404 with a
//   base-URL hint, the rest degraded).
// - `redactedSnippet(body)`: 200 characters of a body on one line, anything
//   that looks like a key masked, for verdict messages.
//
// jco's mapping of the WIT types: records are objects with camelCase fields,
// enums are kebab-case strings, variants are `{ tag, val }`, `list<u8>` is a
// Uint8Array, `u64` a BigInt, `option` is the value or `undefined`, and an
// `err` result is thrown as an error whose `payload` is the WIT error.

export const MAX_MODEL_IDS = 4096;
export const NOT_FOUND_HINT =
  'not found; check the base URL: OpenAI-style SDKs use it as is, so it must end ' +
  'in the API version segment (e.g. /v1) exactly once';

/** A `plugin-error` result: throw it. Its message names variables, never values. */
export class PluginError extends Error {
  constructor(code, message) {
    super(message);
    this.payload = { code, message };
  }
}

/** The value of `name` in the env bag, if present and not empty. */
export function credential(credentials, name) {
  const found = credentials.find(([key, value]) => key === name && value !== '');
  return found ? found[1] : undefined;
}

/** The value of `name`; throws a `missing-credential` error naming it. */
export function requireCredential(credentials, name) {
  const value = credential(credentials, name);
  if (value === undefined) {
    throw new PluginError('missing-credential', `${name} is not set`);
  }
  return value;
}

/**
 * The first 200 characters of `body` (bytes) on one line, runs of 20 or more
 * key-like characters with both letters and digits as `[redacted]`.
 */
export function redactedSnippet(body) {
  const oneLine = new TextDecoder().decode(body).split(/\s+/).filter(Boolean).join(' ');
  const masked = oneLine.replace(/[A-Za-z0-9\-_+/=]{20,}/g, (run) =>
    /[0-9]/.test(run) && /[A-Za-z]/.test(run) ? '[redacted]' : run,
  );
  return Array.from(masked).slice(0, 200).join('');
}

/** The ids of `{"data":[{"id"}]}`, `{"models":[{"name"|"id"}]}` or a bare list; undefined when not such JSON. */
export function modelIdsFromJson(body) {
  let value;
  try {
    value = JSON.parse(new TextDecoder().decode(body));
  } catch {
    return undefined;
  }
  const list = Array.isArray(value) ? value : (value?.data ?? value?.models);
  if (!Array.isArray(list)) return undefined;
  return list
    .map((model) => model?.id ?? model?.name)
    .filter((id) => typeof id === 'string' && id.trim() !== '')
    .slice(0, MAX_MODEL_IDS);
}

/** The verdict on a models-list probe's response, as the Rust SDK's `standard_verdict`. */
export function standardVerdict(response) {
  const { status, body } = response;
  if (status === 0) return { tag: 'unreachable', val: `unreachable: ${redactedSnippet(body)}` };
  if (status === 401 || status === 403) {
    return { tag: 'invalid-credential', val: `HTTP ${status}: the provider refused the key` };
  }
  if (status === 402 || status === 429) {
    return { tag: 'quota-limited', val: `HTTP ${status}: out of quota or rate limited` };
  }
  if (status === 404) {
    return { tag: 'degraded', val: `HTTP 404: ${NOT_FOUND_HINT}: ${redactedSnippet(body)}` };
  }
  if (status < 200 || status >= 300) {
    return { tag: 'degraded', val: `HTTP ${status}: ${redactedSnippet(body)}` };
  }
  const models = modelIdsFromJson(body);
  if (models === undefined) {
    return {
      tag: 'degraded',
      val: `HTTP ${status} but the body is not a model list: ${redactedSnippet(body)}`,
    };
  }
  return { tag: 'healthy', val: { message: `listed ${models.length} models`, models } };
}

/** Dollars per million tokens in micro-dollars (a BigInt, WIT `u64`): at most six decimals. */
function microUsd(usd, what) {
  const micros = Math.round(usd * 1e6);
  if (typeof usd !== 'number' || usd < 0 || Math.abs(micros / 1e6 - usd) > 1e-12 * Math.max(usd, 1)) {
    throw new Error(`${what} = ${usd} must be a dollar amount with at most six decimals`);
  }
  return BigInt(micros);
}

function authShape(auth) {
  switch (auth?.type) {
    case 'bearer':
      return { tag: 'bearer', val: auth.env_var };
    case 'header':
      return { tag: 'header', val: { header: auth.header, envVar: auth.env_var } };
    case 'query':
      return { tag: 'query', val: { param: auth.param, envVar: auth.env_var } };
    case 'custom':
      return { tag: 'custom', val: auth.description };
    default:
      throw new Error(`auth type ${JSON.stringify(auth?.type)} is not one of bearer, header, query, custom`);
  }
}

function envAlias(alias, variable) {
  const at = `alias ${alias.name} of ${variable}`;
  const suffixForm = alias.form === 'append-suffix' || alias.form === 'strip-suffix';
  if (suffixForm !== ('suffix' in alias)) {
    throw new Error(`${at}: \`suffix\` goes with form append-suffix or strip-suffix, and only with them`);
  }
  if ((alias.form === 'host-label-of-url') !== ('domain' in alias)) {
    throw new Error(`${at}: \`domain\` goes with form host-label-of-url, and only with it`);
  }
  const forms = {
    verbatim: { tag: 'verbatim' },
    'append-suffix': { tag: 'append-suffix', val: alias.suffix },
    'strip-suffix': { tag: 'strip-suffix', val: alias.suffix },
    'host-label-of-url': { tag: 'host-label-of-url', val: alias.domain },
    'note-only': { tag: 'note-only' },
  };
  if (!(alias.form in forms)) {
    throw new Error(`${at}: form ${JSON.stringify(alias.form)} is not one of ${Object.keys(forms).join(', ')}`);
  }
  return {
    name: alias.name,
    client: alias.client === 'all' ? { tag: 'all' } : { tag: 'only', val: alias.client },
    form: forms[alias.form],
    note: alias.note,
  };
}

/** The `provider-manifest` record described by the manifest TOML `text`. */
export function manifestFromToml(text) {
  const file = parseToml(text);
  return {
    slug: file.slug,
    displayName: file.display_name,
    pluginVersion: file.plugin_version,
    envVars: (file.env_vars ?? []).map((variable) => ({
      name: variable.name,
      role: variable.role,
      required: variable.required,
      description: variable.description,
      defaultValue: variable.default,
      aliases: (variable.aliases ?? []).map((alias) => envAlias(alias, variable.name)),
    })),
    auth: authShape(file.auth),
    modelClasses: file.model_classes,
    defaultModels: (file.default_models ?? []).map((model) => {
      const at = `price of ${model.id}:`;
      const price = model.price && {
        input: microUsd(model.price.input, `${at} input`),
        output: microUsd(model.price.output, `${at} output`),
        cachedInput:
          model.price.cached_input === undefined
            ? undefined
            : microUsd(model.price.cached_input, `${at} cached_input`),
      };
      return {
        id: model.id,
        class: model.class,
        displayName: model.display_name,
        contextWindow: model.context_window,
        price,
      };
    }),
    allowedHosts: file.allowed_hosts,
    docsUrl: file.docs_url,
    probeCost: file.probe_cost,
    clients: (file.clients ?? []).map((client) => ({ id: client.id, displayName: client.display_name })),
    defaultClient: file.default_client,
    tokenExchange: file.token_exchange ?? false,
  };
}

/**
 * The TOML a manifest uses: `key = value` lines, `[table]` and `[[array]]`
 * headers, comments, basic and literal strings, integers, floats, booleans,
 * arrays (across lines) and inline tables. Anything else is an error naming
 * the line.
 */
export function parseToml(text) {
  const root = {};
  let table = root;
  let at = 0;
  const line = () => text.slice(0, at).split('\n').length;
  const fail = (what) => {
    throw new Error(`manifest TOML line ${line()}: ${what}`);
  };
  const skip = (newlines) => {
    for (;;) {
      const c = text[at];
      if (c === ' ' || c === '\t' || c === '\r' || (newlines && c === '\n')) at += 1;
      else if (c === '#') while (at < text.length && text[at] !== '\n') at += 1;
      else return;
    }
  };
  const key = () => {
    skip(false);
    if (text[at] === '"' || text[at] === "'") return string();
    const match = /^[A-Za-z0-9_-]+/.exec(text.slice(at));
    if (!match) fail('expected a key');
    at += match[0].length;
    return match[0];
  };
  const string = () => {
    const quote = text[at];
    at += 1;
    let out = '';
    while (text[at] !== quote) {
      if (at >= text.length || text[at] === '\n') fail('unterminated string');
      if (quote === '"' && text[at] === '\\') {
        const escape = text[at + 1];
        const simple = { '"': '"', '\\': '\\', n: '\n', t: '\t', r: '\r', b: '\b', f: '\f' };
        if (escape in simple) {
          out += simple[escape];
          at += 2;
        } else if (escape === 'u' || escape === 'U') {
          const digits = escape === 'u' ? 4 : 8;
          const hex = text.slice(at + 2, at + 2 + digits);
          if (!/^[0-9A-Fa-f]+$/.test(hex) || hex.length !== digits) fail('bad unicode escape');
          out += String.fromCodePoint(parseInt(hex, 16));
          at += 2 + digits;
        } else fail(`unknown escape \\${escape}`);
      } else {
        out += text[at];
        at += 1;
      }
    }
    at += 1;
    return out;
  };
  const value = () => {
    skip(false);
    const c = text[at];
    if (c === '"' || c === "'") return string();
    if (c === '[') {
      at += 1;
      const list = [];
      for (;;) {
        skip(true);
        if (text[at] === ']') break;
        list.push(value());
        skip(true);
        if (text[at] === ',') at += 1;
        else if (text[at] !== ']') fail('expected `,` or `]` in an array');
      }
      at += 1;
      return list;
    }
    if (c === '{') {
      at += 1;
      const inline = {};
      skip(false);
      while (text[at] !== '}') {
        const name = key();
        skip(false);
        if (text[at] !== '=') fail(`expected \`=\` after ${name}`);
        at += 1;
        if (name in inline) fail(`${name} is set twice`);
        inline[name] = value();
        skip(false);
        if (text[at] === ',') {
          at += 1;
          skip(false);
        } else if (text[at] !== '}') fail('expected `,` or `}` in an inline table');
      }
      at += 1;
      return inline;
    }
    const match = /^(true|false|[+-]?[0-9_]+(\.[0-9_]+)?([eE][+-]?[0-9]+)?)/.exec(text.slice(at));
    if (!match) fail('expected a value (a string, number, boolean, array or inline table)');
    at += match[0].length;
    if (match[0] === 'true' || match[0] === 'false') return match[0] === 'true';
    return Number(match[0].replaceAll('_', ''));
  };
  for (;;) {
    skip(true);
    if (at >= text.length) return root;
    if (text[at] === '[') {
      const array = text[at + 1] === '[';
      at += array ? 2 : 1;
      const name = key();
      skip(false);
      if (text.slice(at, at + (array ? 2 : 1)) !== (array ? ']]' : ']')) fail('expected the header to close');
      at += array ? 2 : 1;
      if (array) {
        if (!Array.isArray(root[name] ??= [])) fail(`${name} is not an array of tables`);
        table = {};
        root[name].push(table);
      } else {
        if (name in root) fail(`${name} is set twice`);
        table = root[name] = {};
      }
    } else {
      const name = key();
      skip(false);
      if (text[at] !== '=') fail(`expected \`=\` after ${name}`);
      at += 1;
      if (name in table) fail(`${name} is set twice`);
      table[name] = value();
    }
    skip(false);
    if (at < text.length && text[at] !== '\n') fail('expected the end of the line');
  }
}
