"""Helpers for Platos provider plugins in Python (componentize-py).

Copy this file beside your module (`componentize -p <dir> app` finds it) and
pass it the bindings module of your world, `wit_world.exports.plugin` for
wit/since_v0.1.0 or `wit_world.exports.types` for wit/since_v0.2.0:

    from wit_world.exports import plugin as wit
    import platos_plugin

    MANIFEST = platos_plugin.manifest_from_toml(platos_plugin.read_beside(__file__, "manifest.toml"), wit)

- `manifest_from_toml(text, wit)`: the WIT manifest record from the manifest
  TOML format the Rust build helper reads (docs/plugin-authors.md, "The
  manifest"). Call it at module level: componentize-py runs module code once
  at build time, so a malformed file fails the build and the plugin never
  reads a file at run time (it cannot: plugins are sans-IO).
- `credential`, `require_credential`: a variable's value in the env bag; a
  `missing-credential` error naming it.
- `standard_verdict(response, wit)`: the Rust SDK's `standard_verdict`
  (2xx model list healthy, 401/403 invalid, 402/429 quota, 0 unreachable,
  404 with a base-URL hint, the rest degraded).
- `redacted_snippet(body)`: 200 characters of a body on one line, anything
  that looks like a key masked, for verdict messages.
"""

import json
import os
import re
import tomllib

from componentize_py_types import Err

MAX_MODEL_IDS = 4096
NOT_FOUND_HINT = (
    "not found; check the base URL: OpenAI-style SDKs use it as is, so it must end "
    "in the API version segment (e.g. /v1) exactly once"
)
_KEY_LIKE = re.compile(r"[A-Za-z0-9\-_+/=]{20,}")


def read_beside(module_file, name):
    """The text of `name` in the directory of `module_file` (`__file__`), at build time."""
    with open(os.path.join(os.path.dirname(module_file), name), encoding="utf-8") as file:
        return file.read()


def _record(cls, **fields):
    """`cls(**fields)` with only the fields this world's record has (0.1.0
    records lack the 0.2.0 additions); a 0.2.0 value given to a 0.1.0 world
    is an error rather than silently dropped."""
    known = set(getattr(cls, "__dataclass_fields__", fields))
    for name, value in fields.items():
        if name not in known and value not in (None, [], False):
            raise ValueError(f"{cls.__name__}.{name} needs contract 0.2.0 (wit/since_v0.2.0)")
    return cls(**{name: value for name, value in fields.items() if name in known})


def _enum(enum, text, what):
    try:
        return enum[text.upper().replace("-", "_")]
    except KeyError:
        names = ", ".join(member.name.lower().replace("_", "-") for member in enum)
        raise ValueError(f"{what} {text!r} is not one of {names}") from None


def _micro_usd(usd, what):
    micros = round(usd * 1_000_000)
    if usd < 0 or abs(micros / 1_000_000 - usd) > 1e-12 * max(usd, 1):
        raise ValueError(f"{what} = {usd} must be a dollar amount with at most six decimals")
    return micros


def _auth(auth, wit):
    kind = auth.get("type")
    if kind == "bearer":
        return wit.AuthShape_Bearer(auth["env_var"])
    if kind == "header":
        return wit.AuthShape_Header(wit.HeaderAuth(header=auth["header"], env_var=auth["env_var"]))
    if kind == "query":
        return wit.AuthShape_Query(wit.QueryAuth(param=auth["param"], env_var=auth["env_var"]))
    if kind == "custom":
        return wit.AuthShape_Custom(auth["description"])
    raise ValueError(f"auth type {kind!r} is not one of bearer, header, query, custom")


def _needs_0_2_0(wit, record, what):
    if not hasattr(wit, record):
        raise ValueError(f"{what} needs contract 0.2.0 (wit/since_v0.2.0)")


def _alias(alias, var, wit):
    at = f"alias {alias.get('name')} of {var}"
    _needs_0_2_0(wit, "EnvAlias", at)
    client = alias["client"]
    selector = wit.ClientSelector_All() if client == "all" else wit.ClientSelector_Only(client)
    form = alias["form"]
    if (form in ("append-suffix", "strip-suffix")) != ("suffix" in alias):
        raise ValueError(f"{at}: `suffix` goes with form append-suffix or strip-suffix, and only with them")
    if (form == "host-label-of-url") != ("domain" in alias):
        raise ValueError(f"{at}: `domain` goes with form host-label-of-url, and only with it")
    forms = {
        "verbatim": lambda: wit.ValueForm_Verbatim(),
        "append-suffix": lambda: wit.ValueForm_AppendSuffix(alias["suffix"]),
        "strip-suffix": lambda: wit.ValueForm_StripSuffix(alias["suffix"]),
        "host-label-of-url": lambda: wit.ValueForm_HostLabelOfUrl(alias["domain"]),
        "note-only": lambda: wit.ValueForm_NoteOnly(),
    }
    if form not in forms:
        raise ValueError(f"{at}: form {form!r} is not one of {', '.join(forms)}")
    return wit.EnvAlias(name=alias["name"], client=selector, form=forms[form](), note=alias.get("note"))


def manifest_from_toml(text, wit):
    """The `provider-manifest` record described by the manifest TOML `text`."""
    file = tomllib.loads(text)
    env_vars = []
    for var in file["env_vars"]:
        aliases = [_alias(alias, var["name"], wit) for alias in var.get("aliases", [])]
        env_vars.append(
            _record(
                wit.EnvVar,
                name=var["name"],
                role=_enum(wit.EnvVarRole, var["role"], "role"),
                required=var["required"],
                description=var["description"],
                default_value=var.get("default"),
                aliases=aliases,
            )
        )
    models = []
    for model in file["default_models"]:
        price = model.get("price")
        if price is not None:
            at = f"price of {model['id']}:"
            _needs_0_2_0(wit, "TokenPrice", at)
            cached = price.get("cached_input")
            price = wit.TokenPrice(
                input=_micro_usd(price["input"], f"{at} input"),
                output=_micro_usd(price["output"], f"{at} output"),
                cached_input=None if cached is None else _micro_usd(cached, f"{at} cached_input"),
            )
        models.append(
            _record(
                wit.ModelInfo,
                id=model["id"],
                class_=_enum(wit.ModelClass, model["class"], "model class"),
                display_name=model["display_name"],
                context_window=model.get("context_window"),
                price=price,
            )
        )
    if file.get("clients"):
        _needs_0_2_0(wit, "ClientInfo", "clients")
    clients = [
        wit.ClientInfo(id=client["id"], display_name=client["display_name"])
        for client in file.get("clients", [])
    ]
    return _record(
        wit.ProviderManifest,
        slug=file["slug"],
        display_name=file["display_name"],
        plugin_version=file["plugin_version"],
        env_vars=env_vars,
        auth=_auth(file["auth"], wit),
        model_classes=[_enum(wit.ModelClass, c, "model class") for c in file["model_classes"]],
        default_models=models,
        allowed_hosts=file["allowed_hosts"],
        docs_url=file["docs_url"],
        probe_cost=file.get("probe_cost"),
        clients=clients,
        default_client=file.get("default_client"),
        token_exchange=file.get("token_exchange", False),
    )


def credential(credentials, name):
    """The value of `name` in the env bag, if present and not empty."""
    for key, value in credentials:
        if key == name and value:
            return value
    return None


def require_credential(credentials, name, wit):
    """The value of `name`; raises a `missing-credential` error naming it (never a value)."""
    value = credential(credentials, name)
    if value is None:
        raise Err(wit.PluginError(wit.ErrorCode.MISSING_CREDENTIAL, f"{name} is not set"))
    return value


def redacted_snippet(body):
    """The first 200 characters of `body` on one line, runs of 20 or more
    key-like characters with both letters and digits as `[redacted]`."""
    one_line = " ".join(bytes(body).decode("utf-8", "replace").split())

    def mask(match):
        run = match.group(0)
        looks_like_key = any(c.isdigit() for c in run) and any(c.isalpha() for c in run)
        return "[redacted]" if looks_like_key else run

    return _KEY_LIKE.sub(mask, one_line)[:200]


def model_ids_from_json(body):
    """The ids of `{"data":[{"id"}]}`, `{"models":[{"name"|"id"}]}` or a bare
    list of such objects; None when the body is not such JSON."""
    try:
        value = json.loads(bytes(body))
        listing = value if isinstance(value, list) else (value.get("data") or value.get("models"))
        ids = [m.get("id") or m.get("name") for m in listing if isinstance(m, dict)]
    except (ValueError, AttributeError, TypeError):
        return None
    return [i for i in ids if isinstance(i, str) and i.strip()][:MAX_MODEL_IDS]


def standard_verdict(response, wit):
    """The verdict on a models-list probe's response, as the Rust SDK's `standard_verdict`."""
    status = response.status
    if status == 0:
        return wit.Verdict_Unreachable(f"unreachable: {redacted_snippet(response.body)}")
    if status in (401, 403):
        return wit.Verdict_InvalidCredential(f"HTTP {status}: the provider refused the key")
    if status in (402, 429):
        return wit.Verdict_QuotaLimited(f"HTTP {status}: out of quota or rate limited")
    if status == 404:
        return wit.Verdict_Degraded(f"HTTP 404: {NOT_FOUND_HINT}: {redacted_snippet(response.body)}")
    if not 200 <= status < 300:
        return wit.Verdict_Degraded(f"HTTP {status}: {redacted_snippet(response.body)}")
    models = model_ids_from_json(response.body)
    if models is None:
        return wit.Verdict_Degraded(
            f"HTTP {status} but the body is not a model list: {redacted_snippet(response.body)}"
        )
    return wit.Verdict_Healthy(wit.HealthyInfo(message=f"listed {len(models)} models", models=models))
