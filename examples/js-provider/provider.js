// A Platos provider plugin in JavaScript: bearer auth, probe `GET {base}/models`.
//
// jco (componentize-js) turns this module into a WebAssembly component for the
// world `provider` of wit/since_v0.1.0/provider.wit, with every WASI feature
// but stdio disabled (no fetch, no clocks, no random). Like every plugin it is
// sans-IO: it describes requests and reads responses; the host sends the
// requests, only to the allowed hosts, under the runtime's limits.
//
// jco's mapping of the WIT types: records are objects with camelCase fields,
// enums are kebab-case strings, variants are `{ tag, val }`, `list<u8>` is a
// Uint8Array, `u64` a BigInt, `option` is the value or `undefined`, and an
// `err` result is thrown as an error whose `payload` is the WIT error.

const KEY_VAR = 'EXAMPLE_JS_API_KEY';
const BASE_VAR = 'EXAMPLE_JS_API_BASE';
const DEFAULT_BASE = 'https://api.example.com/v1';

/** A `plugin-error` result; its message names variables, never values. */
class PluginError extends Error {
  constructor(code, message) {
    super(message);
    this.payload = { code, message };
  }
}

/** The value of `name` in the env bag, if present and not empty. */
function credential(credentials, name) {
  const found = credentials.find(([key, value]) => key === name && value !== '');
  return found ? found[1] : undefined;
}

function snippet(body) {
  return new TextDecoder().decode(body).split(/\s+/).join(' ').trim().slice(0, 200);
}

export const plugin = {
  manifest() {
    return {
      slug: 'example-js',
      displayName: 'Example provider (JavaScript)',
      pluginVersion: '0.1.0',
      envVars: [
        {
          name: KEY_VAR,
          role: 'secret',
          required: true,
          description: 'Example API key',
          defaultValue: undefined,
        },
        {
          name: BASE_VAR,
          role: 'base-url',
          required: false,
          description: 'Base URL of the example API; set it for a proxy',
          defaultValue: DEFAULT_BASE,
        },
      ],
      auth: { tag: 'bearer', val: KEY_VAR },
      modelClasses: ['chat'],
      defaultModels: [
        { id: 'example-chat', class: 'chat', displayName: 'Example Chat', contextWindow: 128000 },
      ],
      allowedHosts: ['api.example.com'],
      docsUrl: 'https://example.com/docs/api-keys',
      probeCost: undefined,
    };
  },

  authorize(credentials, request, _now) {
    const key = credential(credentials, KEY_VAR);
    if (key === undefined) {
      throw new PluginError('missing-credential', `${KEY_VAR} is not set`);
    }
    const headers = request.headers.filter(([name]) => name.toLowerCase() !== 'authorization');
    headers.push(['authorization', `Bearer ${key}`]);
    return { method: request.method, url: request.url, headers, body: request.body };
  },

  healthProbe(credentials) {
    const base = credential(credentials, BASE_VAR) ?? DEFAULT_BASE;
    if (!base.startsWith('https://') && !base.startsWith('http://')) {
      throw new PluginError('invalid-credential', `${BASE_VAR} must be an http(s) URL`);
    }
    const url = `${base.replace(/\/+$/, '')}/models`;
    return { method: 'get', url, headers: [['accept', 'application/json']], body: undefined };
  },

  interpretHealth(response) {
    const status = response.status;
    if (status === 0) {
      return { tag: 'unreachable', val: `unreachable: ${snippet(response.body)}` };
    }
    if (status === 401 || status === 403) {
      return { tag: 'invalid-credential', val: `HTTP ${status}: the provider refused the key` };
    }
    if (status === 402 || status === 429) {
      return { tag: 'quota-limited', val: `HTTP ${status}: out of quota or rate limited` };
    }
    if (status < 200 || status >= 300) {
      return { tag: 'degraded', val: `HTTP ${status}: ${snippet(response.body)}` };
    }
    let models;
    try {
      const listing = JSON.parse(new TextDecoder().decode(response.body));
      models = listing.data.filter((m) => typeof m.id === 'string').map((m) => m.id);
    } catch {
      return { tag: 'degraded', val: `HTTP ${status} but the body is not a model list` };
    }
    return { tag: 'healthy', val: { message: `listed ${models.length} models`, models } };
  },
};
