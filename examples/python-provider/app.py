"""A Platos provider plugin in Python: header auth, probe `GET {base}/models`.

componentize-py turns this module into a WebAssembly component for the world
`provider` of wit/since_v0.1.0/provider.wit. Like every plugin it is sans-IO:
it describes requests and reads responses; the host sends the requests, only
to the allowed hosts, under the runtime's limits. `platos_plugin` (beside this
file) reads the manifest from manifest.toml and gives the standard verdicts.
"""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import plugin as wit

import platos_plugin

# Module code runs once, when componentize-py builds the component: the
# manifest is parsed then (a malformed file fails the build), never at run time.
MANIFEST = platos_plugin.manifest_from_toml(platos_plugin.read_beside(__file__, "manifest.toml"), wit)
KEY_VAR = MANIFEST.auth.value.env_var
BASE_VAR = "EXAMPLE_PY_API_BASE"
DEFAULT_BASE = next(var.default_value for var in MANIFEST.env_vars if var.name == BASE_VAR)


class Plugin(exports.Plugin):
    def manifest(self) -> wit.ProviderManifest:
        return MANIFEST

    def authorize(self, credentials, request, now):
        key = platos_plugin.require_credential(credentials, KEY_VAR, wit)
        headers = [(n, v) for (n, v) in request.headers if n.lower() != "x-api-key"]
        headers.append(("x-api-key", key))
        return wit.HttpRequest(request.method, request.url, headers, request.body)

    def health_probe(self, credentials):
        base = platos_plugin.credential(credentials, BASE_VAR) or DEFAULT_BASE
        if not base.startswith(("https://", "http://")):
            # Messages name variables, never values.
            raise Err(wit.PluginError(wit.ErrorCode.INVALID_CREDENTIAL, f"{BASE_VAR} must be an http(s) URL"))
        url = base.rstrip("/") + "/models"
        return wit.HttpRequest(wit.Method.GET, url, [("accept", "application/json")], None)

    def interpret_health(self, response):
        return platos_plugin.standard_verdict(response, wit)
