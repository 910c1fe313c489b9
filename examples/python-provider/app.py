"""A Platos provider plugin in Python: header auth, probe `GET {base}/models`.

componentize-py turns this module into a WebAssembly component for the world
`provider` of wit/since_v0.1.0/provider.wit. Like every plugin it is sans-IO:
it describes requests and reads responses; the host sends the requests, only
to the allowed hosts, under the runtime's limits.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import plugin as wit

KEY_VAR = "EXAMPLE_PY_API_KEY"
BASE_VAR = "EXAMPLE_PY_API_BASE"
DEFAULT_BASE = "https://api.example.com/v1"


def _manifest() -> wit.ProviderManifest:
    return wit.ProviderManifest(
        slug="example-python",
        display_name="Example provider (Python)",
        plugin_version="0.1.0",
        env_vars=[
            wit.EnvVar(KEY_VAR, wit.EnvVarRole.SECRET, True, "Example API key", None),
            wit.EnvVar(
                BASE_VAR,
                wit.EnvVarRole.BASE_URL,
                False,
                "Base URL of the example API; set it for a proxy",
                DEFAULT_BASE,
            ),
        ],
        auth=wit.AuthShape_Header(wit.HeaderAuth(header="x-api-key", env_var=KEY_VAR)),
        model_classes=[wit.ModelClass.CHAT],
        default_models=[
            wit.ModelInfo("example-chat", wit.ModelClass.CHAT, "Example Chat", 128000)
        ],
        allowed_hosts=["api.example.com"],
        docs_url="https://example.com/docs/api-keys",
        probe_cost=None,
    )


def _credential(credentials, name):
    """The value of `name` in the env bag, if present and not empty."""
    for key, value in credentials:
        if key == name and value:
            return value
    return None


def _error(code, message):
    # Messages never contain a secret: they name variables, never values.
    return Err(wit.PluginError(code, message))


def _snippet(body: bytes) -> str:
    return " ".join(body.decode("utf-8", "replace").split())[:200]


class Plugin(exports.Plugin):
    def manifest(self) -> wit.ProviderManifest:
        return _manifest()

    def authorize(self, credentials, request, now):
        key = _credential(credentials, KEY_VAR)
        if key is None:
            raise _error(wit.ErrorCode.MISSING_CREDENTIAL, f"{KEY_VAR} is not set")
        headers = [(n, v) for (n, v) in request.headers if n.lower() != "x-api-key"]
        headers.append(("x-api-key", key))
        return wit.HttpRequest(request.method, request.url, headers, request.body)

    def health_probe(self, credentials):
        base = _credential(credentials, BASE_VAR) or DEFAULT_BASE
        if not base.startswith(("https://", "http://")):
            raise _error(wit.ErrorCode.INVALID_CREDENTIAL, f"{BASE_VAR} must be an http(s) URL")
        url = base.rstrip("/") + "/models"
        return wit.HttpRequest(wit.Method.GET, url, [("accept", "application/json")], None)

    def interpret_health(self, response):
        status = response.status
        if status == 0:
            return wit.Verdict_Unreachable(f"unreachable: {_snippet(response.body)}")
        if status in (401, 403):
            return wit.Verdict_InvalidCredential(f"HTTP {status}: the provider refused the key")
        if status in (402, 429):
            return wit.Verdict_QuotaLimited(f"HTTP {status}: out of quota or rate limited")
        if not 200 <= status < 300:
            return wit.Verdict_Degraded(f"HTTP {status}: {_snippet(response.body)}")
        try:
            listing = json.loads(response.body)
            models = [m["id"] for m in listing["data"] if isinstance(m.get("id"), str)]
        except (ValueError, KeyError, TypeError, AttributeError):
            return wit.Verdict_Degraded(f"HTTP {status} but the body is not a model list")
        return wit.Verdict_Healthy(
            wit.HealthyInfo(message=f"listed {len(models)} models", models=models)
        )
