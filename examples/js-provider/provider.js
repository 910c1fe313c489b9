// A Platos provider plugin in JavaScript: bearer auth, probe `GET {base}/models`.
//
// componentize-js turns this module into a WebAssembly component for the
// world `provider` of wit/since_v0.1.0/provider.wit, with every WASI feature
// but stdio disabled (no fetch, no clocks, no random). Like every plugin it is
// sans-IO: it describes requests and reads responses; the host sends the
// requests, only to the allowed hosts, under the runtime's limits.
// `platos-plugin.js` (beside this file) reads the manifest from manifest.toml
// and gives the standard verdicts; see it for jco's mapping of the WIT types.

import MANIFEST_TOML from './manifest-toml.js';
import {
  PluginError,
  credential,
  manifestFromToml,
  requireCredential,
  standardVerdict,
} from './platos-plugin.js';

// Module code runs once, when componentize-js builds the component: the
// manifest is parsed then (a malformed file fails the build).
const MANIFEST = manifestFromToml(MANIFEST_TOML);
const KEY_VAR = MANIFEST.auth.val;
const BASE_VAR = 'EXAMPLE_JS_API_BASE';
const DEFAULT_BASE = MANIFEST.envVars.find((variable) => variable.name === BASE_VAR).defaultValue;

export const plugin = {
  manifest() {
    return MANIFEST;
  },

  authorize(credentials, request, _now) {
    const key = requireCredential(credentials, KEY_VAR);
    const headers = request.headers.filter(([name]) => name.toLowerCase() !== 'authorization');
    headers.push(['authorization', `Bearer ${key}`]);
    return { method: request.method, url: request.url, headers, body: request.body };
  },

  healthProbe(credentials) {
    const base = credential(credentials, BASE_VAR) ?? DEFAULT_BASE;
    if (!base.startsWith('https://') && !base.startsWith('http://')) {
      // Messages name variables, never values.
      throw new PluginError('invalid-credential', `${BASE_VAR} must be an http(s) URL`);
    }
    const url = `${base.replace(/\/+$/, '')}/models`;
    return { method: 'get', url, headers: [['accept', 'application/json']], body: undefined };
  },

  interpretHealth(response) {
    return standardVerdict(response);
  },
};
