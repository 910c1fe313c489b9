//! The HTTP API end to end: the real server on a loopback port (in-process
//! through `api::server`, and the real binary), a mock OpenAI-compatible
//! upstream for probes. Keys set through the API, resolve with an agent
//! token, rotation under a held lease, probes, the picker, scope isolation
//! for every route, the OpenAPI document, metrics, self-host reloads, and a
//! property test that no input gets a 5xx or a non-JSON error.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use platos_host::api::server::{Server, ServerConfig};
use platos_host::api::{Access, routes};
use platos_host::selfhost::SelfHostConfig;
use serde_json::{Value, json};
use support::binary::Binary;
use support::{Client, Running, code, mock_upstream};

fn config(data_dir: &Path) -> ServerConfig {
    support::loopback_server_config(data_dir, "api-test-plugin-cache")
}

async fn start() -> Running {
    start_with(|_| ()).await
}

async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> Running {
    Running::start("api-test-plugin-cache", adjust).await
}

impl Running {
    async fn agent_token(&self, scope: &str) -> String {
        self.scope_token(scope, "agent").await
    }

    async fn admin_token(&self, scope: &str) -> String {
        self.scope_token(scope, "admin").await
    }

    async fn scope_token(&self, scope: &str, role: &str) -> String {
        let (status, body) = self
            .client
            .call(
                "POST",
                "/v1/tokens",
                Some(&self.operator),
                Some(&json!({ "scope": scope, "role": role, "label": format!("test {role}") })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["info"]["kind"], role, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn set(&self, token: &str, scope: &str, name: &str, value: &str) -> Value {
        let (status, body) = self
            .client
            .call(
                "PUT",
                &format!("/v1/scopes/{scope}/env/{name}"),
                Some(token),
                Some(&json!({ "value": value })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn auth_header_of(request: &Value) -> String {
    request["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case("authorization"))
        .map(|pair| pair[1].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn set_resolve_rotate_under_a_lease_probe_and_pick() {
    let (upstream, mock) = mock_upstream().await;
    let host = start().await;
    let client = &host.client;
    let scope = "acme/shop/prod";
    let agent = host.agent_token(scope).await;
    let admin = host.admin_token(scope).await;

    // Set a key and its base URL through the API (the value in the body).
    let set = host.set(&host.operator, scope, "OPENAI_API_KEY", "sk-good-one").await;
    assert_eq!(set["variable"]["version"], 1);
    assert_eq!(set["linked_key"]["provider"], "openai");
    host.set(&admin, scope, "OPENAI_API_BASE", &upstream).await;

    // Listing never shows values.
    let (status, listing) =
        client.raw("GET", &format!("/v1/scopes/{scope}/env"), Some(&agent), None).await;
    assert_eq!(status, 200);
    assert!(listing.contains("OPENAI_API_KEY") && !listing.contains("sk-good-one"), "{listing}");

    // Resolve with the agent token: the key, why, a lease, the env bag with values.
    let resolve = json!({ "provider": "openai" });
    let (status, first) = client
        .call("POST", &format!("/v1/scopes/{scope}/resolve"), Some(&agent), Some(&resolve))
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["key"]["key_id"], "OPENAI_API_KEY");
    assert_eq!(first["chosen_by"], "scope-default");
    assert_eq!(first["env"]["OPENAI_API_KEY"], "sk-good-one");
    assert_eq!(first["env"]["OPENAI_API_BASE"], upstream.as_str());
    let old_lease = first["lease"]["id"].as_str().unwrap().to_owned();
    assert!(first["lease"]["expires_at"].as_u64().unwrap() > 0);

    // Rotate with the lease held.
    let rotated = host.set(&admin, scope, "OPENAI_API_KEY", "sk-good-two").await;
    assert_eq!(rotated["variable"]["version"], 2);
    let request = json!({ "request": {
        "method": "POST",
        "url": format!("{upstream}/chat/completions"),
        "headers": [["content-type", "application/json"]],
        "body": "{\"model\":\"gpt-5\"}",
    }});
    let authorize = |lease: String| {
        let request = request.clone();
        let agent = agent.clone();
        async move {
            client
                .call(
                    "POST",
                    &format!("/v1/scopes/{scope}/leases/{lease}/authorize"),
                    Some(&agent),
                    Some(&request),
                )
                .await
        }
    };
    let (status, old) = authorize(old_lease.clone()).await;
    assert_eq!(status, 200, "{old}");
    assert_eq!(
        auth_header_of(&old["request"]),
        "Bearer sk-good-one",
        "the turn in flight keeps the old value"
    );
    assert_eq!(old["request"]["body"], "{\"model\":\"gpt-5\"}");

    let (_, second) = client
        .call("POST", &format!("/v1/scopes/{scope}/resolve"), Some(&agent), Some(&resolve))
        .await;
    assert_eq!(second["env"]["OPENAI_API_KEY"], "sk-good-two", "a new resolve gets the new value");
    let (status, new) = authorize(second["lease"]["id"].as_str().unwrap().to_owned()).await;
    assert_eq!(status, 200);
    assert_eq!(auth_header_of(&new["request"]), "Bearer sk-good-two");

    // A request to a host the provider may not reach is refused, not signed.
    let (status, refused) = client
        .call(
            "POST",
            &format!("/v1/scopes/{scope}/leases/{old_lease}/authorize"),
            Some(&agent),
            Some(&json!({ "request": { "method": "GET", "url": "https://evil.example/steal" } })),
        )
        .await;
    assert_eq!((status, code(&refused)), (422, "refused_request"), "{refused}");
    assert!(!refused.to_string().contains("sk-good"), "{refused}");

    // Release: the old lease is gone.
    let lease_path = format!("/v1/scopes/{scope}/leases/{old_lease}");
    assert_eq!(client.call("DELETE", &lease_path, Some(&agent), None).await.0, 200);
    let (status, gone) = client.call("DELETE", &lease_path, Some(&agent), None).await;
    assert_eq!((status, code(&gone)), (404, "lease_not_found"));
    let (status, gone) = authorize(old_lease.clone()).await;
    assert_eq!((status, code(&gone)), (404, "lease_not_found"));

    // A pin that no longer exists: a fallback with a warning, or 404 when strict.
    let (_, fallback) = client
        .call(
            "POST",
            &format!("/v1/scopes/{scope}/resolve"),
            Some(&agent),
            Some(&json!({ "provider": "openai", "pinned_key": "OPENAI_API_KEY_9" })),
        )
        .await;
    assert_eq!(fallback["chosen_by"], "fallback-pin-missing");
    assert!(fallback["warning"].as_str().unwrap().contains("OPENAI_API_KEY_9"));
    let (status, strict) = client
        .call(
            "POST",
            &format!("/v1/scopes/{scope}/resolve"),
            Some(&agent),
            Some(
                &json!({ "provider": "openai", "pinned_key": "OPENAI_API_KEY_9", "strict": true }),
            ),
        )
        .await;
    assert_eq!((status, code(&strict)), (404, "pinned_key_missing"));

    // Probe through the mock: one key healthy, one invalid.
    host.set(&admin, scope, "OPENAI_API_KEY_2", "sk-bad-key").await;
    let probe = |key: &'static str| {
        let admin = admin.clone();
        async move {
            client
                .call(
                    "POST",
                    &format!("/v1/scopes/{scope}/providers/openai/keys/{key}/probe"),
                    Some(&admin),
                    None,
                )
                .await
        }
    };
    let (status, good) = probe("OPENAI_API_KEY").await;
    assert_eq!(status, 200, "{good}");
    assert_eq!(
        (good["verdict"].as_str(), good["badge"].as_str()),
        (Some("healthy"), Some("green"))
    );
    let (status, bad) = probe("OPENAI_API_KEY_2").await;
    assert_eq!(status, 200, "{bad}");
    assert_eq!(
        (bad["verdict"].as_str(), bad["badge"].as_str()),
        (Some("invalid-credential"), Some("red"))
    );
    assert_eq!(bad["provider_badge"], "red", "a provider shows its worst key");
    assert!(!bad.to_string().contains("sk-bad-key"), "{bad}");
    assert!(mock.authorizations.lock().unwrap().contains(&"Bearer sk-good-two".to_owned()));
    let (status, missing) = probe("OPENAI_API_KEY_5").await;
    assert_eq!((status, code(&missing)), (404, "key_not_found"));

    // The providers list: every provider, badges, keys, expected names.
    host.server.state().resolver().flush_usage().await.unwrap();
    let (status, providers) =
        client.call("GET", &format!("/v1/scopes/{scope}/providers"), Some(&agent), None).await;
    assert_eq!(status, 200);
    let list = providers["providers"].as_array().unwrap();
    assert_eq!(list.len(), host.server.state().resolver().registry().len(), "linked or not");
    let openai = list.iter().find(|provider| provider["slug"] == "openai").unwrap();
    assert_eq!((openai["linked"].as_bool(), openai["badge"].as_str()), (Some(true), Some("red")));
    let keys = openai["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0]["badge"].as_str(), keys[0]["scope_default"].as_bool()),
        (Some("green"), Some(true))
    );
    assert!(keys[0]["last_used_at"].as_u64().is_some(), "resolves mark the key used: {openai}");
    assert_eq!(keys[1]["badge"], "red");
    let anthropic = list.iter().find(|provider| provider["slug"] == "anthropic").unwrap();
    assert_eq!(
        (anthropic["linked"].as_bool(), anthropic["badge"].as_str()),
        (Some(false), Some("grey"))
    );
    assert_eq!(anthropic["expected_vars"][0]["name"], "ANTHROPIC_API_KEY");
    assert!(!providers.to_string().contains("sk-good"), "no values in the providers list");

    // The picker: defaults plus what the healthy probe discovered, by class.
    let (status, chat) = client
        .call("GET", &format!("/v1/scopes/{scope}/models?class=chat"), Some(&agent), None)
        .await;
    assert_eq!(status, 200, "{chat}");
    let ids: Vec<&str> = chat["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|model| model["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"mock-chat-1"), "discovered: {ids:?}");
    assert!(!ids.contains(&"text-embedding-3-small"), "chat only: {ids:?}");
    assert_eq!(chat["providers"], json!(["openai"]));
    let (status, bad_class) = client
        .call("GET", &format!("/v1/scopes/{scope}/models?class=poetry"), Some(&agent), None)
        .await;
    assert_eq!((status, code(&bad_class)), (400, "invalid_class"));
    let (_, empty) =
        client.call("GET", "/v1/scopes/acme/shop/dev/models", Some(&host.operator), None).await;
    assert_eq!(empty["models"], json!([]), "a scope without keys picks nothing");

    // Explain and the embedding track.
    let (status, explain) = client
        .call(
            "GET",
            &format!("/v1/scopes/{scope}/providers/openai/explain?pinned_key=OPENAI_API_KEY_2"),
            Some(&agent),
            None,
        )
        .await;
    assert_eq!(status, 200, "{explain}");
    let chosen: Vec<&str> = explain["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["chosen"] == true)
        .map(|c| c["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(chosen, ["OPENAI_API_KEY_2"]);
    let (_, embedding) =
        client.call("GET", &format!("/v1/scopes/{scope}/embedding"), Some(&agent), None).await;
    assert_eq!(
        (embedding["provider"].as_str(), embedding["ready"].as_bool()),
        (Some("voyage"), Some(false))
    );
    host.set(&admin, scope, "PLATOS_EMBEDDING_PROVIDER", "openai").await;
    let (_, embedding) =
        client.call("GET", &format!("/v1/scopes/{scope}/embedding"), Some(&agent), None).await;
    assert_eq!(
        (embedding["provider"].as_str(), embedding["ready"].as_bool()),
        (Some("openai"), Some(true))
    );

    // Disable the default: the next variant becomes the default.
    let (status, patched) = client
        .call(
            "PATCH",
            &format!("/v1/scopes/{scope}/providers/openai/keys/OPENAI_API_KEY"),
            Some(&admin),
            Some(&json!({ "status": "disabled", "label": "prod-us" })),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(
        (patched["key"]["label"].as_str(), patched["key"]["scope_default"].as_bool()),
        (Some("prod-us"), Some(false))
    );
    let (_, third) = client
        .call("POST", &format!("/v1/scopes/{scope}/resolve"), Some(&agent), Some(&resolve))
        .await;
    assert_eq!(third["key"]["key_id"], "OPENAI_API_KEY_2");

    // Unset.
    let var = format!("/v1/scopes/{scope}/env/OPENAI_API_KEY_2");
    assert_eq!(client.call("DELETE", &var, Some(&admin), None).await.0, 200);
    let (status, unset) = client.call("DELETE", &var, Some(&admin), None).await;
    assert_eq!((status, code(&unset)), (404, "variable_not_set"));

    // Metrics: resolves by outcome, fallbacks, verdicts, plugin calls, leases.
    let (status, metrics) = client.raw("GET", "/metrics", Some(&host.operator), None).await;
    assert_eq!(status, 200);
    for line in [
        "platos_resolves_total{outcome=\"scope-default\"} 3",
        "platos_resolves_total{outcome=\"fallback-pin-missing\"} 1",
        "platos_resolves_total{outcome=\"error\"} 1",
        "platos_probe_verdicts_total{class=\"healthy\"} 1",
        "platos_probe_verdicts_total{class=\"invalid-credential\"} 1",
        "platos_plugin_call_duration_seconds_count{plugin=\"openai@",
        "platos_probe_duration_seconds_count{provider=\"openai\"} 2",
        "platos_leases_issued_total 4",
        "platos_leases_released_total 1",
        "platos_http_requests_total{route=\"/v1/scopes/{organization}/{project}/{environment}/resolve\",method=\"POST\",status=\"200\"} 4",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    assert!(!metrics.contains("sk-good"));
    let (status, forbidden) = client.call("GET", "/metrics", Some(&agent), None).await;
    assert_eq!((status, code(&forbidden)), (403, "operator_only"));

    // An operator chooses the scope default among two active keys; the
    // choice is dropped again with `false`.
    host.set(&admin, scope, "OPENAI_API_KEY_3", "sk-three").await;
    host.set(&admin, scope, "OPENAI_API_KEY_4", "sk-four").await;
    let key_path = |key: &str| format!("/v1/scopes/{scope}/providers/openai/keys/{key}");
    let resolved = async || {
        let path = format!("/v1/scopes/{scope}/resolve");
        let (_, answer) = client.call("POST", &path, Some(&agent), Some(&resolve)).await;
        answer["key"]["key_id"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(resolved().await, "OPENAI_API_KEY_3");
    let choose = json!({ "scope_default": true });
    let (status, denied) =
        client.call("PATCH", &key_path("OPENAI_API_KEY_4"), Some(&agent), Some(&choose)).await;
    assert_eq!((status, code(&denied)), (403, "admin_only"));
    let (status, patched) =
        client.call("PATCH", &key_path("OPENAI_API_KEY_4"), Some(&admin), Some(&choose)).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["key"]["scope_default"], true);
    assert!(patched["key"]["chosen_default_at"].as_u64().is_some(), "{patched}");
    assert_eq!(resolved().await, "OPENAI_API_KEY_4");
    let explain_path = format!("/v1/scopes/{scope}/providers/openai/explain");
    let (_, explain) = client.call("GET", &explain_path, Some(&agent), None).await;
    let reasons: Vec<(&str, &str)> = explain["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key_id"].as_str().unwrap(), c["reason"].as_str().unwrap()))
        .collect();
    assert!(
        reasons.contains(&("OPENAI_API_KEY_4", "scope default: chosen by an operator")),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(&(
            "OPENAI_API_KEY_3",
            "not the scope default: an operator chose OPENAI_API_KEY_4"
        )),
        "{reasons:?}"
    );
    // Disabling the chosen key falls back to the lowest active variant.
    let disable = json!({ "status": "disabled" });
    client.call("PATCH", &key_path("OPENAI_API_KEY_4"), Some(&admin), Some(&disable)).await;
    assert_eq!(resolved().await, "OPENAI_API_KEY_3");
    let enable = json!({ "status": "active" });
    client.call("PATCH", &key_path("OPENAI_API_KEY_4"), Some(&admin), Some(&enable)).await;
    assert_eq!(resolved().await, "OPENAI_API_KEY_4");
    let withdraw = json!({ "scope_default": false });
    let (_, patched) =
        client.call("PATCH", &key_path("OPENAI_API_KEY_4"), Some(&admin), Some(&withdraw)).await;
    assert_eq!(patched["key"]["chosen_default_at"], Value::Null, "{patched}");
    assert_eq!(resolved().await, "OPENAI_API_KEY_3");
    let wrong = json!({ "scope_default": "yes" });
    let (status, refused) =
        client.call("PATCH", &key_path("OPENAI_API_KEY_4"), Some(&admin), Some(&wrong)).await;
    assert_eq!(status, 400, "{refused}");

    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// Fills a route template's parameters.
fn fill(path: &str, scope: &str) -> String {
    path.replace("{organization}/{project}/{environment}", scope)
        .replace("{provider}", "openai")
        .replace("{key}", "OPENAI_API_KEY")
        .replace("{name}", "OPENAI_API_KEY")
        .replace("{lease}", "00000000000000000000000000000000")
        .replace("{id}", "000000000000")
}

/// A plausible body for a route.
fn body_for(method: &str, path: &str) -> Option<Value> {
    match method {
        "PUT" => Some(json!({ "value": "sk-isolation-probe" })),
        "PATCH" => Some(json!({ "label": "x" })),
        "POST" if path.ends_with("/resolve") => Some(json!({ "provider": "openai" })),
        "POST" if path.ends_with("/authorize") || path.ends_with("/forward") => Some(
            json!({ "request": { "method": "GET", "url": "https://api.openai.com/v1/models" } }),
        ),
        "POST" if path == "/v1/tokens" => Some(json!({ "scope": "acme/shop/prod" })),
        _ => None,
    }
}

#[tokio::test]
async fn a_token_of_one_scope_gets_nothing_from_another() {
    let host = start().await;
    let client = &host.client;
    let (mine, theirs, nowhere) = ("acme/shop/dev", "acme/shop/prod", "ghost/none/never");
    let agent = host.agent_token(mine).await;
    // Their scope has a key and a live lease.
    host.set(&host.operator, theirs, "OPENAI_API_KEY", "sk-theirs-secret").await;
    let (_, resolved) = client
        .call(
            "POST",
            &format!("/v1/scopes/{theirs}/resolve"),
            Some(&host.operator),
            Some(&json!({ "provider": "openai" })),
        )
        .await;
    let their_lease = resolved["lease"]["id"].as_str().unwrap().to_owned();

    let admin = host.admin_token(mine).await;
    let scoped: Vec<_> = routes().into_iter().filter(|route| route.access.is_scoped()).collect();
    assert!(scoped.len() >= 12, "{scoped:?}");
    for (route, token) in scoped.iter().flat_map(|route| [(route, &agent), (route, &admin)]) {
        let body = body_for(route.method, route.path.as_str());
        let mut answers = Vec::new();
        for scope in [theirs, nowhere] {
            let mut path = fill(route.path.as_str(), scope);
            if scope == theirs {
                path = path.replace("00000000000000000000000000000000", &their_lease);
            }
            answers.push(
                client
                    .raw(route.method, &path, Some(token), body.as_ref().map(Value::to_string))
                    .await,
            );
        }
        assert_eq!(
            answers[0],
            answers[1],
            "{} {}: another scope must look like no scope",
            route.method,
            route.path.as_str()
        );
        let body: Value = serde_json::from_str(&answers[0].1).unwrap();
        assert_eq!(
            (answers[0].0, code(&body)),
            (404, "scope_not_found"),
            "{} {}",
            route.method,
            route.path.as_str()
        );
        assert!(
            !answers[0].1.contains(theirs) && !answers[0].1.contains("sk-theirs"),
            "{}",
            answers[0].1
        );
    }
    // The lease of their scope cannot be used or released through mine either.
    for (method, path, body) in [
        (
            "POST",
            format!("/v1/scopes/{mine}/leases/{their_lease}/authorize"),
            body_for("POST", "/authorize"),
        ),
        (
            "POST",
            format!("/v1/scopes/{mine}/leases/{their_lease}/forward"),
            body_for("POST", "/forward"),
        ),
        ("DELETE", format!("/v1/scopes/{mine}/leases/{their_lease}"), None),
    ] {
        let (status, answer) = client.call(method, &path, Some(&agent), body.as_ref()).await;
        assert_eq!((status, code(&answer)), (404, "lease_not_found"), "{method} {path}");
    }
    let (_, still) = client
        .call(
            "POST",
            &format!("/v1/scopes/{theirs}/leases/{their_lease}/authorize"),
            Some(&host.operator),
            body_for("POST", "/authorize").as_ref(),
        )
        .await;
    assert!(still["request"].is_object(), "their lease survived: {still}");

    // Operator routes: 403 for an agent; every non-public route: 401 without a token.
    for route in routes() {
        let path = fill(route.path.as_str(), mine);
        let body = body_for(route.method, route.path.as_str());
        let (status, answer) = client.call(route.method, &path, None, body.as_ref()).await;
        if route.access == Access::Public {
            assert_eq!(status, 200, "{} {}", route.method, route.path.as_str());
            continue;
        }
        assert_eq!(
            (status, code(&answer)),
            (401, "missing_token"),
            "{} {}",
            route.method,
            route.path.as_str()
        );
        let (status, answer) =
            client.call(route.method, &path, Some("platos_000000000000_nope"), body.as_ref()).await;
        assert_eq!(
            (status, code(&answer)),
            (401, "invalid_token"),
            "{} {}",
            route.method,
            route.path.as_str()
        );
        if route.access == Access::Operator {
            for token in [&agent, &admin] {
                let (status, answer) =
                    client.call(route.method, &path, Some(token), body.as_ref()).await;
                assert_eq!(
                    (status, code(&answer)),
                    (403, "operator_only"),
                    "{} {}",
                    route.method,
                    route.path.as_str()
                );
            }
        }
    }
    // Their value is untouched and mine is reachable.
    let (_, vars) =
        client.call("GET", &format!("/v1/scopes/{theirs}/env"), Some(&host.operator), None).await;
    assert_eq!(vars["variables"][0]["version"], 1);
    assert_eq!(
        client.call("GET", &format!("/v1/scopes/{mine}/providers"), Some(&agent), None).await.0,
        200
    );
}

#[tokio::test]
async fn agents_read_and_resolve_admins_change_their_scope_and_operators_manage_tokens() {
    let (upstream, _) = mock_upstream().await;
    let host = start().await;
    let client = &host.client;
    let (mine, theirs) = ("acme/shop/dev", "acme/shop/prod");
    let canary = "sk-good-roles-canary-5f1c";
    host.set(&host.operator, mine, "OPENAI_API_KEY", canary).await;
    host.set(&host.operator, mine, "OPENAI_API_BASE", &upstream).await;
    let agent = host.agent_token(mine).await;
    let admin = host.admin_token(mine).await;
    let mut answers: Vec<String> = Vec::new();

    // An agent token reaches no changing route of its own scope: 403 admin_only, nothing changed.
    let changing: Vec<_> =
        routes().into_iter().filter(|route| route.access == Access::ScopeAdmin).collect();
    let names: Vec<(&str, &str)> =
        changing.iter().map(|route| (route.method, route.path.as_str())).collect();
    for expected in [
        ("PUT", "/env/{name}"),
        ("DELETE", "/env/{name}"),
        ("PATCH", "/keys/{key}"),
        ("POST", "/keys/{key}/probe"),
    ] {
        assert!(
            names.iter().any(|(method, path)| *method == expected.0 && path.ends_with(expected.1)),
            "{expected:?} must need an admin token: {names:?}"
        );
    }
    for route in &changing {
        let path = fill(route.path.as_str(), mine);
        let (status, answer) = client
            .raw(
                route.method,
                &path,
                Some(&agent),
                body_for(route.method, route.path.as_str()).map(|b| b.to_string()),
            )
            .await;
        let json: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(
            (status, code(&json)),
            (403, "admin_only"),
            "{} {}",
            route.method,
            route.path.as_str()
        );
        assert!(json["error"]["message"].as_str().unwrap().contains("admin token"), "{answer}");
        answers.push(answer);
    }
    let (_, vars) = client.call("GET", &format!("/v1/scopes/{mine}/env"), Some(&agent), None).await;
    let key = vars["variables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "OPENAI_API_KEY")
        .unwrap();
    assert_eq!(key["version"], 1, "the agent's PUT changed nothing: {vars}");
    let (_, keys) = client
        .call("GET", &format!("/v1/scopes/{mine}/providers/openai/keys"), Some(&agent), None)
        .await;
    let row = &keys["provider"]["keys"][0];
    assert_eq!(
        (row["label"].as_str(), row["status"].as_str(), row["health"].is_null()),
        (Some("OPENAI_API_KEY"), Some("active"), true),
        "{keys}"
    );
    answers.extend([vars.to_string(), keys.to_string()]);

    // It still reads and resolves.
    for path in ["/providers", "/env", "/models", "/embedding", "/providers/openai/explain"] {
        let (status, answer) =
            client.raw("GET", &format!("/v1/scopes/{mine}{path}"), Some(&agent), None).await;
        assert_eq!(status, 200, "{path}: {answer}");
        answers.push(answer);
    }
    let (status, resolved) = client
        .call(
            "POST",
            &format!("/v1/scopes/{mine}/resolve"),
            Some(&agent),
            Some(&json!({ "provider": "openai" })),
        )
        .await;
    assert_eq!(
        (status, resolved["env"]["OPENAI_API_KEY"].as_str()),
        (200, Some(canary)),
        "{resolved}"
    );

    // An admin token of the scope changes it.
    let env = format!("/v1/scopes/{mine}/env/OPENAI_API_KEY_2");
    let (status, answer) = client
        .call("PUT", &env, Some(&admin), Some(&json!({ "value": format!("{canary}-two") })))
        .await;
    assert_eq!(status, 200, "{answer}");
    answers.push(answer.to_string());
    let (status, answer) = client
        .call(
            "PATCH",
            &format!("/v1/scopes/{mine}/providers/openai/keys/OPENAI_API_KEY_2"),
            Some(&admin),
            Some(&json!({ "label": "second", "status": "disabled" })),
        )
        .await;
    assert_eq!((status, answer["key"]["label"].as_str()), (200, Some("second")), "{answer}");
    answers.push(answer.to_string());
    let (status, answer) = client
        .call(
            "POST",
            &format!("/v1/scopes/{mine}/providers/openai/keys/OPENAI_API_KEY/probe"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((status, answer["verdict"].as_str()), (200, Some("healthy")), "{answer}");
    answers.push(answer.to_string());
    let (status, answer) = client.call("DELETE", &env, Some(&admin), None).await;
    assert_eq!(status, 200, "{answer}");
    answers.push(answer.to_string());
    let (status, me) = client.call("GET", "/v1/whoami", Some(&admin), None).await;
    assert_eq!(
        (status, me["kind"].as_str(), me["scope"].as_str()),
        (200, Some("admin"), Some(mine))
    );

    // ... but not another scope (the answer of a scope that does not exist),
    // and manages no tokens.
    let (status, answer) = client
        .call(
            "PUT",
            &format!("/v1/scopes/{theirs}/env/OPENAI_API_KEY"),
            Some(&admin),
            Some(&json!({ "value": "x" })),
        )
        .await;
    assert_eq!((status, code(&answer)), (404, "scope_not_found"));
    for (method, path, body) in [
        ("GET", "/v1/tokens", None),
        ("POST", "/v1/tokens", Some(json!({ "scope": mine, "role": "admin" }))),
        ("POST", "/v1/tokens", Some(json!({ "operator": true }))),
    ] {
        let (status, answer) = client.call(method, path, Some(&admin), body.as_ref()).await;
        assert_eq!((status, code(&answer)), (403, "operator_only"), "{method} {path}");
    }

    // Token requests: the role field, and combinations that do not fit.
    let op = Some(host.operator.as_str());
    for (body, kind) in [
        (json!({ "role": "operator" }), "operator"),
        (json!({ "operator": true, "role": "operator" }), "operator"),
        (json!({ "scope": theirs }), "agent"),
        (json!({ "scope": theirs, "role": "agent" }), "agent"),
        (json!({ "scope": theirs, "role": "admin", "label": "deployer" }), "admin"),
    ] {
        let (status, created) = client.call("POST", "/v1/tokens", op, Some(&body)).await;
        assert_eq!(
            (status, created["info"]["kind"].as_str()),
            (201, Some(kind)),
            "{body}: {created}"
        );
    }
    for (body, expected) in [
        (json!({ "operator": true, "role": "agent" }), "invalid_token_request"),
        (json!({ "role": "admin" }), "invalid_token_request"),
        (json!({ "role": "operator", "scope": theirs }), "invalid_token_request"),
        (json!({ "operator": true, "scope": theirs }), "invalid_token_request"),
        (json!({}), "invalid_token_request"),
        (json!({ "scope": theirs, "role": "root" }), "invalid_json"),
    ] {
        let (status, answer) = client.call("POST", "/v1/tokens", op, Some(&body)).await;
        assert_eq!((status, code(&answer)), (400, expected), "{body}: {answer}");
        answers.push(answer.to_string());
    }
    let (_, list) = client.call("GET", "/v1/tokens", op, None).await;
    let kinds: Vec<&str> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|token| token["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|kind| **kind == "admin").count(), 2, "{list}");
    let (_, metrics) = client.raw("GET", "/metrics", op, None).await;
    assert!(metrics.contains("platos_tokens{kind=\"admin\"} 2"), "{metrics}");
    assert!(metrics.contains("platos_tokens{kind=\"agent\"} 3"), "{metrics}");
    answers.extend([list.to_string(), metrics]);

    for answer in &answers {
        assert!(
            !answer.contains(canary),
            "an answer not meant for an agent carries the key: {answer}"
        );
    }
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_disabled_key_is_never_spent_and_explain_says_why() {
    let host = start().await;
    let client = &host.client;
    let scope = "acme/shop/prod";
    let (one, two) = ("sk-canary-enabled-0b7e", "sk-canary-disabled-93ad");
    host.set(&host.operator, scope, "OPENAI_API_KEY", one).await;
    host.set(&host.operator, scope, "OPENAI_API_KEY_2", two).await;
    let agent = host.agent_token(scope).await;
    let key_path = |key: &str| format!("/v1/scopes/{scope}/providers/openai/keys/{key}");
    let set_status = |key: &'static str, status: &'static str| {
        let path = key_path(key);
        let operator = host.operator.clone();
        async move {
            let (code, answer) = client
                .call("PATCH", &path, Some(&operator), Some(&json!({ "status": status })))
                .await;
            assert_eq!(code, 200, "{answer}");
            answer.to_string()
        }
    };
    let resolve = |pin: Option<&str>, strict: bool| {
        let mut body = json!({ "provider": "openai", "strict": strict });
        if let Some(pin) = pin {
            body["pinned_key"] = json!(pin);
        }
        let agent = agent.clone();
        async move {
            client
                .call("POST", &format!("/v1/scopes/{scope}/resolve"), Some(&agent), Some(&body))
                .await
        }
    };
    let explain = |pin: &str| {
        let agent = agent.clone();
        let path = format!("/v1/scopes/{scope}/providers/openai/explain?pinned_key={pin}");
        async move { client.call("GET", &path, Some(&agent), None).await }
    };
    let mut answers = vec![set_status("OPENAI_API_KEY_2", "disabled").await];

    // A pin to the disabled key: the default, with a warning saying it is disabled.
    let (status, fallback) = resolve(Some("OPENAI_API_KEY_2"), false).await;
    assert_eq!(status, 200, "{fallback}");
    assert_eq!(
        (fallback["chosen_by"].as_str(), fallback["key"]["key_id"].as_str()),
        (Some("fallback-pin-disabled"), Some("OPENAI_API_KEY"))
    );
    assert_eq!(fallback["env"]["OPENAI_API_KEY"], one);
    assert!(!fallback.to_string().contains(two), "the disabled key was handed out: {fallback}");
    let warning = fallback["warning"].as_str().unwrap().to_owned();
    assert!(warning.contains("OPENAI_API_KEY_2 is disabled"), "{warning}");
    // Strict: its own code.
    let (status, strict) = resolve(Some("OPENAI_API_KEY_2"), true).await;
    assert_eq!((status, code(&strict)), (409, "pinned_key_disabled"), "{strict}");
    answers.push(strict.to_string());
    // Explain says the same, word for word.
    let (status, explained) = explain("OPENAI_API_KEY_2").await;
    assert_eq!(status, 200, "{explained}");
    assert_eq!(explained["chosen_by"], "fallback-pin-disabled");
    assert_eq!(explained["warning"], warning.as_str());
    assert_eq!(explained["strict_error"], strict["error"], "{explained}");
    let chosen: Vec<&str> = explained["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["chosen"] == true)
        .map(|c| c["key_id"].as_str().unwrap())
        .collect();
    assert_eq!(chosen, ["OPENAI_API_KEY"]);
    answers.push(explained.to_string());

    // Every key disabled: the error says they are disabled.
    answers.push(set_status("OPENAI_API_KEY", "disabled").await);
    let (status, none) = resolve(None, false).await;
    assert_eq!((status, code(&none)), (409, "all_keys_disabled"), "{none}");
    let message = none["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("is disabled") && !message.contains("set OPENAI_API_KEY"),
        "{message}"
    );
    let (_, explained) = explain("OPENAI_API_KEY").await;
    assert_eq!(explained["error"], none["error"], "{explained}");
    assert_eq!(explained["chosen_by"], Value::Null);
    answers.extend([none.to_string(), explained.to_string()]);

    // Enabled again: the pin is honoured.
    answers.push(set_status("OPENAI_API_KEY_2", "active").await);
    let (status, pinned) = resolve(Some("OPENAI_API_KEY_2"), true).await;
    assert_eq!((status, pinned["chosen_by"].as_str()), (200, Some("pinned")), "{pinned}");
    assert_eq!(pinned["env"]["OPENAI_API_KEY"], two);

    let (_, metrics) = client.raw("GET", "/metrics", Some(&host.operator), None).await;
    assert!(
        metrics.contains("platos_resolves_total{outcome=\"fallback-pin-disabled\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("platos_resolve_fallbacks_total"), "one series per fact: {metrics}");
    answers.push(metrics);
    for answer in &answers {
        assert!(!answer.contains(one) && !answer.contains(two), "{answer}");
    }
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn openapi_describes_every_route_and_every_route_is_routed() {
    let host = start().await;
    let client = &host.client;
    let (status, document) = client.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    let codes: Vec<&str> = document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap())
        .collect();
    let routes = routes();
    for route in &routes {
        let operation = &paths
            .get(route.path.as_str())
            .unwrap_or_else(|| panic!("{} is not in /openapi.json", route.path.as_str()))
            [route.method.to_ascii_lowercase()];
        assert!(
            operation.is_object(),
            "{} {} is not in /openapi.json",
            route.method,
            route.path.as_str()
        );
        assert_ne!(operation["operationId"], "unknown", "{} {}", route.method, route.path.as_str());
        assert!(
            operation["responses"].as_object().unwrap().len() >= 2,
            "{} {}",
            route.method,
            route.path.as_str()
        );
        for name in
            route.path.as_str().split('{').skip(1).map(|rest| rest.split('}').next().unwrap())
        {
            assert!(
                operation["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|param| param["name"] == name),
                "{} {}: parameter {name} undocumented",
                route.method,
                route.path.as_str()
            );
        }
        if matches!(route.method, "POST" | "PUT" | "PATCH")
            && body_for(route.method, route.path.as_str()).is_some()
        {
            assert!(
                operation["requestBody"].is_object(),
                "{} {}: body undocumented",
                route.method,
                route.path.as_str()
            );
        }
        // Routed: the path and method reach a handler (not the 404/405 fallbacks).
        let (_, answer) = client
            .call(
                route.method,
                &fill(route.path.as_str(), "acme/shop/dev"),
                Some(&host.operator),
                body_for(route.method, route.path.as_str()).as_ref(),
            )
            .await;
        assert!(
            !matches!(code(&answer), "route_not_found" | "method_not_allowed"),
            "{} {} is not routed: {answer}",
            route.method,
            route.path.as_str()
        );
    }
    // No documented path that is not routed.
    let documented: usize = paths.values().map(|item| item.as_object().unwrap().len()).sum();
    assert_eq!(documented, routes.len());
    for (code, _, _) in platos_host::api::error::ERROR_CODES {
        assert!(codes.contains(code), "{code} missing from the Error schema");
    }
}

#[tokio::test]
async fn errors_name_what_is_expected_and_limits_hold() {
    let host = start().await;
    let client = &host.client;
    let op = Some(host.operator.as_str());
    for (method, path, body, status, expected) in [
        ("GET", "/v1/nothing", None, 404, "route_not_found"),
        ("DELETE", "/v1/ping", None, 405, "method_not_allowed"),
        ("GET", "/v1/scopes/acme/sh%20op/dev/env", None, 400, "invalid_scope"),
        (
            "PUT",
            "/v1/scopes/acme/shop/dev/env/lower_case",
            Some(r#"{"value":"x"}"#),
            400,
            "invalid_name",
        ),
        (
            "PUT",
            "/v1/scopes/acme/shop/dev/env/ENCRYPTION_KEY",
            Some(r#"{"value":"x"}"#),
            400,
            "reserved_name",
        ),
        (
            "PUT",
            "/v1/scopes/acme/shop/dev/env/OPENAI_API_KEY",
            Some(r#"{"value":""}"#),
            400,
            "empty_value",
        ),
        (
            "PUT",
            "/v1/scopes/acme/shop/dev/env/OPENAI_API_KEY",
            Some(r#"{"value":true}"#),
            400,
            "invalid_json",
        ),
        (
            "PUT",
            "/v1/scopes/acme/shop/dev/env/OPENAI_API_KEY",
            Some(r#"{"valu":"sk-typo-secret"}"#),
            400,
            "invalid_json",
        ),
        ("PUT", "/v1/scopes/acme/shop/dev/env/OPENAI_API_KEY", None, 400, "invalid_json"),
        (
            "POST",
            "/v1/scopes/acme/shop/dev/resolve",
            Some(r#"{"provider":"nope"}"#),
            404,
            "unknown_provider",
        ),
        (
            "POST",
            "/v1/scopes/acme/shop/dev/resolve",
            Some(r#"{"provider":"openai"}"#),
            404,
            "no_key_linked",
        ),
        (
            "POST",
            "/v1/tokens",
            Some(r#"{"operator":true,"scope":"a/b/c"}"#),
            400,
            "invalid_token_request",
        ),
        ("POST", "/v1/tokens", Some(r#"{"scope":"a/b"}"#), 400, "invalid_scope"),
        ("DELETE", "/v1/tokens/nope", None, 404, "token_not_found"),
    ] {
        let (got, answer) = client.raw(method, path, op, body.map(str::to_owned)).await;
        let json: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
        assert_eq!((got, code(&json)), (status, expected), "{method} {path}: {answer}");
        assert!(json["error"]["message"].as_str().unwrap().len() > 20, "{answer}");
        assert!(!answer.contains("sk-typo-secret"), "a body's value is never echoed: {answer}");
    }
    // The type error names what is expected without echoing the value.
    let (_, answer) = client
        .raw(
            "PUT",
            "/v1/scopes/acme/shop/dev/env/OPENAI_API_KEY",
            op,
            Some(r#"{"value": 12345678}"#.to_owned()),
        )
        .await;
    assert!(answer.contains("expected") && !answer.contains("12345678"), "{answer}");
    // Near misses in the no-key error.
    host.set(&host.operator, "acme/shop/dev", "OPENAI_KEY", "sk-typo").await;
    let (_, answer) = client
        .call(
            "POST",
            "/v1/scopes/acme/shop/dev/resolve",
            op,
            Some(&json!({ "provider": "openai" })),
        )
        .await;
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("did you mean OPENAI_API_KEY"),
        "{answer}"
    );
    // The body limit: 413 as JSON.
    let big = format!("{{\"value\":\"{}\"}}", "x".repeat(300 << 10));
    let (status, answer) =
        client.raw("PUT", "/v1/scopes/acme/shop/dev/env/BIG", op, Some(big)).await;
    let json: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!((status, code(&json)), (413, "body_too_large"));
    // A value over the store's limit but within the body limit.
    let large = json!({ "value": "y".repeat(100 << 10) });
    let (status, answer) =
        client.call("PUT", "/v1/scopes/acme/shop/dev/env/LARGE", op, Some(&large)).await;
    assert_eq!((status, code(&answer)), (413, "value_too_large"));
    // The last operator token cannot be revoked; tokens are listed without secrets.
    let (_, list) = client.call("GET", "/v1/tokens", op, None).await;
    let id = list["tokens"][0]["id"].as_str().unwrap().to_owned();
    assert!(!list.to_string().contains(&host.operator), "{list}");
    let (status, answer) = client.call("DELETE", &format!("/v1/tokens/{id}"), op, None).await;
    assert_eq!((status, code(&answer)), (409, "last_operator_token"));
    // An agent token revoked stops working at once.
    let agent = host.agent_token("acme/shop/dev").await;
    let (_, me) = client.call("GET", "/v1/whoami", Some(&agent), None).await;
    assert_eq!((me["kind"].as_str(), me["scope"].as_str()), (Some("agent"), Some("acme/shop/dev")));
    let agent_id = me["token_id"].as_str().unwrap().to_owned();
    assert_eq!(client.call("DELETE", &format!("/v1/tokens/{agent_id}"), op, None).await.0, 200);
    let (status, answer) = client.call("GET", "/v1/ping", Some(&agent), None).await;
    assert_eq!((status, code(&answer)), (401, "invalid_token"));
}

#[tokio::test]
async fn the_self_host_scope_is_imported_reloaded_and_read_only_through_the_api() {
    let (upstream, _) = mock_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    std::fs::write(
        &env_file,
        format!("OPENAI_API_KEY=sk-good-selfhost\nOPENAI_API_BASE={upstream}\n"),
    )
    .unwrap();
    let mut config = config(&dir.path().join("data"));
    config.self_host = Some(SelfHostConfig {
        scope: "self/host/default".parse().unwrap(),
        env_file: Some(env_file.clone()),
        process_env: false,
    });
    config.env_file_poll = Duration::from_millis(100);
    let server = Server::start(config).await.unwrap();
    assert!(server.report().embedding_warning.as_deref().unwrap().contains("VOYAGE_API_KEY"));
    let operator = std::fs::read_to_string(dir.path().join("data/operator.token")).unwrap();
    let operator = operator.trim();
    let client = Client::new(server.address());
    let env = "/v1/scopes/self/host/default/env";
    let (_, vars) = client.call("GET", env, Some(operator), None).await;
    assert_eq!(vars["variables"][1]["source"], "self-host", "{vars}");
    let (status, refused) = client
        .call(
            "PUT",
            &format!("{env}/OPENAI_API_KEY"),
            Some(operator),
            Some(&json!({ "value": "sk-api" })),
        )
        .await;
    assert_eq!((status, code(&refused)), (409, "managed_by_self_host"));
    assert!(refused["error"]["message"].as_str().unwrap().contains(".env"));

    // Change the file: the host notices and re-imports.
    std::fs::write(
        &env_file,
        format!(
            "OPENAI_API_KEY=sk-good-rotated\nOPENAI_API_BASE={upstream}\nVOYAGE_API_KEY=pa-x\n"
        ),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, vars) = client.call("GET", env, Some(operator), None).await;
        let names: Vec<&str> = vars["variables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|var| var["name"].as_str().unwrap())
            .collect();
        if names.contains(&"VOYAGE_API_KEY") {
            break;
        }
        assert!(Instant::now() < deadline, "the file change was not imported: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, resolved) = client
        .call(
            "POST",
            "/v1/scopes/self/host/default/resolve",
            Some(operator),
            Some(&json!({ "provider": "openai" })),
        )
        .await;
    assert_eq!(resolved["env"]["OPENAI_API_KEY"], "sk-good-rotated");
    let (_, embedding) =
        client.call("GET", "/v1/scopes/self/host/default/embedding", Some(operator), None).await;
    assert_eq!(embedding["ready"], true);

    // A misspelt name is imported and hinted; a malformed file is refused,
    // the previous variables stay, and the page can say why.
    std::fs::write(
        &env_file,
        format!("OPENAI_API_KEY=sk-good-rotated\nOPENAI_API_BASE={upstream}\nVOYAGE_KEY=pa-typo\n"),
    )
    .unwrap();
    let status = wait_for_import(&client, operator, |status| {
        status["variables"].as_array().unwrap().contains(&json!("VOYAGE_KEY"))
    })
    .await;
    assert_eq!(
        status["near_misses"],
        json!([{ "found": "VOYAGE_KEY", "did_you_mean": "VOYAGE_API_KEY" }])
    );
    assert_eq!(status["error"], Value::Null);
    std::fs::write(&env_file, "OPENAI_API_KEY=sk-good-rotated\nthis line has no equals sign\n")
        .unwrap();
    let status = wait_for_import(&client, operator, |status| !status["error"].is_null()).await;
    let error = status["error"].as_str().unwrap();
    assert!(error.contains(":2: expected NAME=VALUE"), "{error}");
    assert!(status["variables"].as_array().unwrap().contains(&json!("VOYAGE_KEY")), "{status}");
    assert!(!status.to_string().contains("sk-good"), "the status never holds a value: {status}");
    // Any other scope has no self-host import.
    let (_, other) =
        client.call("GET", "/v1/scopes/acme/shop/dev/self-host", Some(operator), None).await;
    assert_eq!(other["self_host"], Value::Null);
    let (_, scopes) = client.call("GET", "/v1/scopes", Some(operator), None).await;
    assert!(
        scopes["scopes"]
            .as_array()
            .unwrap()
            .contains(&json!({ "scope": "self/host/default", "self_host": true })),
        "{scopes}"
    );
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// The self-host import status, once `done` holds for it (10 s at most).
async fn wait_for_import(client: &Client, operator: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, answer) = client
            .call("GET", "/v1/scopes/self/host/default/self-host", Some(operator), None)
            .await;
        if done(&answer["self_host"]) {
            return answer["self_host"].clone();
        }
        assert!(Instant::now() < deadline, "the import did not get there: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------
// No input gets a 5xx, and every error is JSON.

mod fuzz {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestCaseError, TestRunner};

    use super::*;

    /// A raw HTTP/1.1 exchange: legal syntax, arbitrary content.
    fn exchange(
        address: SocketAddr,
        method: &str,
        target: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> (u16, String, Vec<u8>) {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let _ = stream.write_all(body);
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let split = response
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .expect("a complete response");
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let status =
            head.split(' ').nth(1).and_then(|status| status.parse().ok()).expect("a status line");
        (status, head, response[split + 4..].to_vec())
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9_.~-]{0,12}",
            "[A-Z][A-Z0-9_]{0,10}",
            Just("%FF%FE".to_owned()),
            Just("%00".to_owned()),
            Just("..".to_owned()),
            Just("%2F".to_owned()),
            Just("%C3%BC%E2%82%AC".to_owned()),
            Just("a".repeat(300)),
            "(%[0-9A-F]{2}){1,6}",
            "[!$&'()*+,;=:@]{1,4}",
        ]
    }

    /// A method and a target: mostly a route's own method with its template
    /// filled with arbitrary segments, sometimes any method or any path.
    fn request(routes: Vec<(&'static str, String)>) -> impl Strategy<Value = (String, String)> {
        let templated =
            (prop::sample::select(routes), prop::collection::vec(segment(), 8), 0..3usize)
                .prop_map(|((method, template), segments, valid)| {
                    let mut out = String::new();
                    let mut rest = template.as_str();
                    let mut index = 0;
                    while let Some(start) = rest.find('{') {
                        out.push_str(&rest[..start]);
                        let end = rest[start..].find('}').unwrap() + start;
                        // Keep the scope and provider valid in most cases so deeper code runs.
                        let value = match (&rest[start + 1..end], valid) {
                            ("organization", 0 | 1) => "acme".to_owned(),
                            ("project", 0 | 1) => "shop".to_owned(),
                            ("environment", 0 | 1) => "dev".to_owned(),
                            ("provider", 0) => "openai".to_owned(),
                            ("name" | "key", 0) => "OPENAI_API_KEY".to_owned(),
                            _ => segments[index % segments.len()].clone(),
                        };
                        out.push_str(&value);
                        index += 1;
                        rest = &rest[end + 1..];
                    }
                    out.push_str(rest);
                    (method.to_owned(), out)
                })
                .boxed();
        let any_method = prop::sample::select(vec![
            "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "BREW",
        ]);
        let random_path = prop::collection::vec(segment(), 0..6)
            .prop_map(|segments| format!("/{}", segments.join("/")));
        let other =
            (any_method.clone(), random_path).prop_map(|(method, path)| (method.to_owned(), path));
        let wrong_method = (any_method, templated.clone())
            .prop_map(|(method, (_, path))| (method.to_owned(), path));
        let query = prop_oneof![
            3 => Just(String::new()),
            1 => "\\?[a-z_]{1,8}=[A-Za-z0-9%]{0,12}(&[a-z_]{1,6}=[a-z%0-9]{0,6}){0,2}",
            1 => prop::sample::select(vec!["?class=chat", "?class=%FF", "?class=", "?pinned_key=OPENAI_API_KEY_2", "?pinned_key=lower", "?pinned_key=%00"]).prop_map(str::to_owned),
        ];
        (prop_oneof![6 => templated, 1 => wrong_method, 1 => other], query)
            .prop_map(|((method, path), query)| (method, format!("{path}{query}")))
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let json_value = prop_oneof![
            Just(json!(null)),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            ".{0,20}".prop_map(Value::from),
            Just(json!({ "method": "GET", "url": "https://api.openai.com/v1/models" })),
            Just(json!([["a", "b"]])),
        ];
        let fields = prop::collection::btree_map(
            prop::sample::select(vec![
                "value",
                "provider",
                "pinned_key",
                "strict",
                "request",
                "label",
                "status",
                "operator",
                "scope",
                "extra",
            ]),
            json_value,
            0..4,
        )
        .prop_map(|map| serde_json::to_vec(&map).unwrap());
        prop_oneof![
            3 => fields,
            1 => prop::collection::vec(any::<u8>(), 0..200),
            1 => Just(Vec::new()),
            1 => Just(b"{\"value\":".to_vec()),
            1 => Just(b"{\"provider\":\"openai\",\"pinned_key\":\"\\ud800\"}".to_vec()),
        ]
    }

    #[test]
    fn no_input_gets_a_5xx_or_a_non_json_error() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let host = runtime.block_on(async {
            let host = start().await;
            host.set(&host.operator, "acme/shop/dev", "OPENAI_API_KEY", "sk-fuzz-secret-value")
                .await;
            host
        });
        let agent = runtime.block_on(host.agent_token("acme/shop/dev"));
        let address = host.server.address();
        let table: Vec<(&'static str, String)> =
            routes().into_iter().map(|route| (route.method, route.path)).collect();
        let tokens = vec![
            String::new(),
            format!("Bearer {}", host.operator),
            format!("Bearer {agent}"),
            "Bearer platos_000000000000_x".to_owned(),
            "Basic Zm9vOmJhcg==".to_owned(),
            "Bearer".to_owned(),
        ];
        let strategy = (
            request(table),
            prop::sample::select(tokens),
            prop::sample::select(vec![
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
                "",
            ]),
            "[ -~]{0,40}",
            body(),
        );
        let mut runner =
            TestRunner::new(Config { cases: 1500, failure_persistence: None, ..Config::default() });
        let seen = std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new());
        runner
            .run(&strategy, |((method, target), token, content_type, junk, body)| {
                let method = method.as_str();
                let mut headers = vec![("X-Junk".to_owned(), junk)];
                if !token.is_empty() {
                    headers.push(("Authorization".to_owned(), token));
                }
                if !content_type.is_empty() {
                    headers.push(("Content-Type".to_owned(), content_type.to_owned()));
                }
                let (status, head, response) = exchange(address, method, &target, &headers, &body);
                let error_code = serde_json::from_slice::<Value>(&response)
                    .ok()
                    .and_then(|json| json["error"]["code"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                *seen.lock().unwrap().entry(format!("{status} {error_code}")).or_default() += 1;
                prop_assert!(
                    status < 500,
                    "{method} {target} -> {status}\n{head}\n{}",
                    String::from_utf8_lossy(&response)
                );
                if status >= 400 && method != "HEAD" {
                    let json: Value = serde_json::from_slice(&response).map_err(|error| {
                        TestCaseError::fail(format!(
                            "{method} {target} -> {status}: not JSON ({error}): {}",
                            String::from_utf8_lossy(&response)
                        ))
                    })?;
                    prop_assert!(
                        json["error"]["code"].is_string() && json["error"]["message"].is_string(),
                        "{json}"
                    );
                    prop_assert!(
                        !String::from_utf8_lossy(&response).contains("sk-fuzz-secret"),
                        "{json}"
                    );
                }
                Ok(())
            })
            .unwrap();
        // The inputs reached past authentication and routing, into handlers.
        let seen = seen.into_inner().unwrap();
        eprintln!("answers seen: {seen:?}");
        for expected in [
            "200 ",
            "401 invalid_token",
            "401 missing_token",
            "404 route_not_found",
            "400 invalid_json",
        ] {
            assert!(seen.contains_key(expected), "no `{expected}` among {seen:?}");
        }
        assert!(seen.len() >= 12, "too little variety: {seen:?}");
        runtime.block_on(host.server.shutdown(Duration::from_secs(5))).unwrap();
    }
}

// ---------------------------------------------------------------------------
// The real binary.

fn spawn_binary(data: &Path, env_file: &Path, extra_env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_platos-host"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--allow-loopback-upstreams",
            "--import-process-env",
            "false",
        ])
        .arg("--env-file")
        .arg(env_file)
        .env("PLATOS_DATA_DIR", data)
        .env("PLATOS_LOG", "info,cranelift=warn,wasmtime=warn")
        .env("NO_COLOR", "1")
        .env_remove("ENCRYPTION_KEY")
        .env_remove("ENCRYPTION_KEY_PREVIOUS")
        .env_remove("PLATOS_LISTEN")
        .env_remove("PLATOS_PLUGIN_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in extra_env {
        command.env(name, value);
    }
    command
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_first_start_tokens_reload_and_restart() {
    let (upstream, _) = mock_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env_file = dir.path().join("self.env");
    std::fs::write(
        &env_file,
        format!("OPENAI_API_KEY=sk-good-binary\nOPENAI_API_BASE={upstream}\n"),
    )
    .unwrap();

    // A malformed ENCRYPTION_KEY is refused, naming the rule, not the value.
    let output =
        spawn_binary(&data, &env_file, &[("ENCRYPTION_KEY", "CANARY-too-short")]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("ENCRYPTION_KEY must be exactly 32 ASCII bytes")
            && !stderr.contains("CANARY"),
        "{stderr}"
    );

    // First start: a generated key and an operator token, both 0600, neither logged.
    let mut binary = Binary::start(spawn_binary(&data, &env_file, &[]));
    let key_file = data.join("encryption.key");
    let token_file = data.join("operator.token");
    assert_eq!((mode(&key_file), mode(&token_file)), (0o600, 0o600));
    let key = std::fs::read_to_string(&key_file).unwrap().trim().to_owned();
    let operator = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
    assert_eq!(key.len(), 32);
    let client = Client::new(binary.address);
    assert_eq!(client.call("GET", "/healthz", None, None).await.0, 200);
    let (status, page) = client.raw("GET", "/", None, None).await;
    assert!(status == 200 && page.contains("<title>Providers"), "{page}");
    let (status, resolved) = client
        .call(
            "POST",
            "/v1/scopes/self/host/default/resolve",
            Some(&operator),
            Some(&json!({ "provider": "openai" })),
        )
        .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["env"]["OPENAI_API_KEY"], "sk-good-binary");
    let (_, probed) = client
        .call(
            "POST",
            "/v1/scopes/self/host/default/providers/openai/keys/OPENAI_API_KEY/probe",
            Some(&operator),
            None,
        )
        .await;
    assert_eq!(
        probed["verdict"], "healthy",
        "--allow-loopback-upstreams reaches the mock: {probed}"
    );

    // SIGHUP re-imports the file.
    std::fs::write(&env_file, format!("OPENAI_API_KEY=sk-good-binary\nOPENAI_API_BASE={upstream}\nANTHROPIC_API_KEY=sk-ant-hup\n")).unwrap();
    binary.signal("HUP");
    binary.wait_for("self-host variables imported", Duration::from_secs(10));
    let (_, vars) =
        client.call("GET", "/v1/scopes/self/host/default/env", Some(&operator), None).await;
    assert!(vars.to_string().contains("ANTHROPIC_API_KEY"), "{vars}");

    let (status, log) = binary.stop();
    assert!(status.success(), "{log}");
    assert!(
        log.contains("generated a master key in")
            && log.contains("Production sets its own ENCRYPTION_KEY"),
        "{log}"
    );
    assert!(
        log.contains("created the first operator token in") && log.contains("operator.token"),
        "{log}"
    );
    assert!(log.contains("EMBEDDING KEY MISSING"), "{log}");
    assert!(log.contains("plugins loaded: ") && log.contains("openai@"), "{log}");
    assert!(log.contains("usage written and the store flushed"), "graceful shutdown: {log}");
    for secret in [key.as_str(), operator.as_str(), "sk-good-binary", "sk-ant-hup"] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }

    // Tokens from the command line while the server is stopped: printed once, on stdout.
    let token_cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_platos-host"))
            .args(args)
            .env("PLATOS_DATA_DIR", &data)
            .output()
            .unwrap()
    };
    let created = token_cli(&["token", "create", "--scope", "self/host/default", "--label", "ci"]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let agent = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(
        agent.starts_with("platos_") && !String::from_utf8_lossy(&created.stderr).contains(&agent)
    );
    let listed = String::from_utf8(token_cli(&["token", "list"]).stdout).unwrap();
    assert!(
        listed.contains("self/host/default") && listed.contains("ci") && !listed.contains(&agent),
        "{listed}"
    );
    let created = token_cli(&[
        "token",
        "create",
        "--scope",
        "acme/shop/prod",
        "--admin",
        "--label",
        "deployer",
    ]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    assert!(String::from_utf8_lossy(&created.stderr).contains("an admin token for acme/shop/prod"));
    let admin = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    let listed = String::from_utf8(token_cli(&["token", "list"]).stdout).unwrap();
    let admin_row = listed.lines().find(|line| line.contains("deployer")).unwrap();
    assert!(
        admin_row.contains(" admin ")
            && admin_row.contains("read, resolve, change")
            && admin_row.contains("acme/shop/prod"),
        "{listed}"
    );
    assert!(listed.lines().any(|line| line.contains(" agent ") && line.contains("read, resolve ")));
    assert!(!listed.contains(&admin), "{listed}");
    let refused = token_cli(&["token", "create", "--admin"]);
    assert!(!refused.status.success() && refused.stdout.is_empty());
    let extra = token_cli(&["token", "create", "--scope", "other/scope/x"]);
    let extra = String::from_utf8(extra.stdout).unwrap();
    let extra_id =
        extra.trim().strip_prefix("platos_").unwrap().split('_').next().unwrap().to_owned();
    assert!(token_cli(&["token", "revoke", &extra_id]).status.success());
    assert!(!token_cli(&["token", "revoke", &extra_id]).status.success());

    // Restart: the same key file and operator token; values still decrypt.
    let binary = Binary::start(spawn_binary(&data, &env_file, &[]));
    let client = Client::new(binary.address);
    let (status, me) = client.call("GET", "/v1/whoami", Some(&agent), None).await;
    assert_eq!((status, me["scope"].as_str()), (200, Some("self/host/default")), "{me}");
    let (status, resolved) = client
        .call(
            "POST",
            "/v1/scopes/self/host/default/resolve",
            Some(&agent),
            Some(&json!({ "provider": "anthropic" })),
        )
        .await;
    assert_eq!(
        (status, resolved["env"]["ANTHROPIC_API_KEY"].as_str()),
        (200, Some("sk-ant-hup")),
        "{resolved}"
    );
    let (status, _) = client.call("GET", "/v1/scopes/acme/shop/prod/env", Some(&agent), None).await;
    assert_eq!(status, 404);
    // The admin token made on the command line changes its scope; the agent token does not.
    let (status, me) = client.call("GET", "/v1/whoami", Some(&admin), None).await;
    assert_eq!((status, me["kind"].as_str()), (200, Some("admin")), "{me}");
    let put = json!({ "value": "sk-ant-cli-admin" });
    let (status, answer) = client
        .call("PUT", "/v1/scopes/acme/shop/prod/env/ANTHROPIC_API_KEY", Some(&admin), Some(&put))
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = client
        .call("PUT", "/v1/scopes/self/host/default/env/MY_SETTING", Some(&agent), Some(&put))
        .await;
    assert_eq!((status, code(&answer)), (403, "admin_only"), "{answer}");
    let (status, log) = binary.stop();
    assert!(status.success());
    assert!(log.contains("read from") && log.contains("encryption.key"), "{log}");
    assert!(log.contains("the operator token is in"), "{log}");
}

/// Every entry under `root` (itself included) open to group or others.
#[cfg(unix)]
fn open_to_others(root: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let metadata = std::fs::symlink_metadata(root).unwrap();
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        found.push(format!("{} {mode:03o}", root.display()));
    }
    if metadata.is_dir() {
        for entry in std::fs::read_dir(root).unwrap() {
            found.extend(open_to_others(&entry.unwrap().path()));
        }
    }
    found
}

#[tokio::test]
async fn serve_refuses_to_start_with_a_wrong_master_key() {
    let host = start().await;
    host.set(&host.operator, "acme/shop/prod", "OPENAI_API_KEY", "sk-wrong-key-canary").await;
    let data = host.dir.path().to_owned();
    let Running { dir: _dir, server, .. } = host;
    server.shutdown(Duration::from_secs(5)).await.unwrap();
    // The library creates owner-only files whatever this process's umask.
    #[cfg(unix)]
    assert_eq!(open_to_others(&data), Vec::<String>::new());

    // Another key in the generated key file: the start is refused.
    let key_file = data.join("encryption.key");
    let right = std::fs::read_to_string(&key_file).unwrap();
    let wrong = "0123456789abcdef0123456789abcdef";
    assert_ne!(right.trim(), wrong);
    std::fs::remove_file(&key_file).unwrap();
    std::fs::write(&key_file, format!("{wrong}\n")).unwrap();
    let error = match Server::start(config(&data)).await {
        Ok(_) => panic!("a server started with a wrong master key"),
        Err(error) => error,
    };
    let store_error =
        error.downcast_ref::<platos_host::store::StoreError>().expect("a store error");
    assert_eq!(store_error.code(), "key_mismatch");
    let message = format!("{error:#} {error:?}");
    assert!(message.contains("does not match the store"), "{message}");
    assert!(!message.contains("another `platos-host serve`"), "{message}");
    for secret in [right.trim(), wrong, "sk-wrong-key-canary"] {
        assert!(!message.contains(secret), "{message}");
    }
    // Nothing listens, nothing was written: the right key starts it again.
    std::fs::remove_file(&key_file).unwrap();
    std::fs::write(&key_file, &right).unwrap();
    let server = Server::start(config(&data)).await.expect("the right key starts");
    let scope: platos_host::scope::Scope = "acme/shop/prod".parse().unwrap();
    let store = server.store().clone();
    let value = store.get_var(&scope, "OPENAI_API_KEY").await.unwrap().unwrap();
    use secrecy::ExposeSecret;
    assert_eq!(value.value.expose_secret(), "sk-wrong-key-canary");
    assert_eq!(value.version, 1);
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}

/// A canary for the leak tests: upper-case letters (a host name is
/// lower-cased), nothing that needs encoding.
const H1_CANARY: &str = "sk-H1Api-Canary-4b7Qz9d2e8";
/// The OpenAI key of the same test: an upstream echoes it.
const H1_OPENAI_CANARY: &str = "sk-h1Openai-Echo-3c5Wx1";

#[tokio::test]
async fn a_key_echoed_by_a_plugin_or_an_upstream_is_in_no_answer_log_or_file() {
    let (_guard, logs) = support::capture_logs();
    let upstream = support::echoing_upstream().await;
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(platos_host::bundled::BUILT_PLUGIN_DIR)
            .join("platos_fixture_h1_secret_echo.wasm"),
        plugins.path().join("h1-secret-echo.wasm"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.plugins.plugin_dir = Some(plugins.path().to_owned());
    // Its names are outside its prefix (H1_SECRET_ECHO_*): the operator grants them.
    config.plugins.policy = platos_host::policy::plugin_policy::parse(
        "[plugins.h1-secret-echo]\ngrant = [\"H1_KEY\", \"H1_BASE\", \"H1_MODE\"]\n",
    )
    .unwrap();
    let server = Server::start(config).await.expect("the server starts");
    assert_eq!(
        server.report().refused_plugins,
        0,
        "{:?}",
        server.state().resolver().registry().refused()
    );
    let operator =
        std::fs::read_to_string(dir.path().join("operator.token")).unwrap().trim().to_owned();
    let client = Client::new(server.address());
    let host = Running { dir, server, client, operator };
    let client = &host.client;
    let op = host.operator.clone();
    let scope = "acme/h1/prod";
    let mut answers = String::new();

    host.set(&op, scope, "H1_KEY", H1_CANARY).await;
    host.set(&op, scope, "H1_BASE", &upstream).await;
    host.set(&op, scope, "OPENAI_API_KEY", H1_OPENAI_CANARY).await;
    host.set(&op, scope, "OPENAI_API_BASE", &upstream).await;
    let probe = |provider: &'static str, key: &'static str| {
        let op = op.clone();
        async move {
            client
                .call(
                    "POST",
                    &format!("/v1/scopes/{scope}/providers/{provider}/keys/{key}/probe"),
                    Some(&op),
                    None,
                )
                .await
        }
    };

    // The upstream echoes the key; the plugins quote it, plain and encoded.
    for (mode, verdict) in [
        ("echo-message", "degraded"),
        ("empty-models", "degraded"),
        ("many-models", "degraded"),
        ("echo-models", "healthy"),
    ] {
        host.set(&op, scope, "H1_MODE", mode).await;
        let (status, answer) = probe("h1-secret-echo", "H1_KEY").await;
        assert_eq!((status, answer["verdict"].as_str()), (200, Some(verdict)), "{mode}: {answer}");
        answers.push_str(&answer.to_string());
    }
    let (_, last) = probe("h1-secret-echo", "H1_KEY").await;
    assert!(last["message"].as_str().unwrap().contains("[redacted]"), "{last}");
    let (status, openai) = probe("openai", "OPENAI_API_KEY").await;
    assert_eq!((status, openai["verdict"].as_str()), (200, Some("degraded")), "{openai}");
    assert!(openai["message"].as_str().unwrap().contains("HTTP 502"), "{openai}");
    answers.push_str(&openai.to_string());

    // The stored records, through every answer that shows them.
    for path in [
        format!("/v1/scopes/{scope}/providers"),
        format!("/v1/scopes/{scope}/providers/h1-secret-echo/keys"),
        format!("/v1/scopes/{scope}/providers/openai/keys"),
        format!("/v1/scopes/{scope}/providers/h1-secret-echo/explain"),
        format!("/v1/scopes/{scope}/providers/openai/explain"),
        format!("/v1/scopes/{scope}/models"),
    ] {
        let (status, text) = client.raw("GET", &path, Some(&op), None).await;
        assert_eq!(status, 200, "{path}: {text}");
        answers.push_str(&text);
    }
    assert!(answers.contains("h1-model-ok"), "the echo-models verdict was recorded");

    // Authorize by lease: each attack is refused, and the error holds no key.
    for (mode, expected) in [
        ("host", "refused_request"),
        ("bad-header-name", "refused_request"),
        ("header-name", "secret_out_of_place"),
        ("query", "secret_out_of_place"),
        ("other-header", "secret_out_of_place"),
        ("body", "secret_out_of_place"),
        ("percent-url", "secret_out_of_place"),
        ("base64-url", "secret_out_of_place"),
        ("error", "plugin_error"),
        ("panic", "plugin_failed"),
        ("trap-stderr", "plugin_failed"),
    ] {
        host.set(&op, scope, "H1_MODE", mode).await;
        let (_, resolved) = client
            .call(
                "POST",
                &format!("/v1/scopes/{scope}/resolve"),
                Some(&op),
                Some(&json!({ "provider": "h1-secret-echo" })),
            )
            .await;
        let lease = resolved["lease"]["id"].as_str().unwrap();
        let (status, refused) = client
            .raw(
                "POST",
                &format!("/v1/scopes/{scope}/leases/{lease}/authorize"),
                Some(&op),
                Some(
                    json!({ "request": { "method": "GET", "url": format!("{upstream}/models") } })
                        .to_string(),
                ),
            )
            .await;
        let body: Value = serde_json::from_str(&refused).unwrap();
        assert_eq!(code(&body), expected, "{mode}: {status} {refused}");
        assert!(refused.contains("h1-secret-echo@0.0.1"), "{mode}: {refused}");
        answers.push_str(&refused);
    }
    support::assert_no_secret(&answers, H1_CANARY, "the answers");
    support::assert_no_secret(&answers, H1_OPENAI_CANARY, "the answers");

    // Nothing on disk holds either key in any form but the encrypted values.
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
    let files = support::files_under(host.dir.path());
    assert!(files.len() > 3, "{files:?}");
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for canary in [H1_CANARY, H1_OPENAI_CANARY] {
            support::assert_no_secret(&bytes, canary, &file.display().to_string());
        }
    }
    // Nor the log.
    let logs = logs.lock().unwrap().clone();
    assert!(!logs.is_empty());
    for canary in [H1_CANARY, H1_OPENAI_CANARY] {
        support::assert_no_secret(&logs, canary, "the log");
    }
}

#[tokio::test]
async fn a_resolve_names_its_client_and_gets_the_bag_in_that_clients_form() {
    let host = start().await;
    let client = &host.client;
    let scope = "acme/shop/dev";
    let agent = host.agent_token(scope).await;
    host.set(&host.operator, scope, "ANTHROPIC_API_KEY", "sk-ant-canary-7f3e").await;
    host.set(&host.operator, scope, "ANTHROPIC_BASE_URL", "https://llm-gw.internal.example/").await;
    let resolve = |body: Value| {
        let agent = agent.clone();
        async move {
            client
                .call("POST", &format!("/v1/scopes/{scope}/resolve"), Some(&agent), Some(&body))
                .await
        }
    };

    // No client named: the provider's official SDK's form.
    let (status, official) = resolve(json!({ "provider": "anthropic" })).await;
    assert_eq!(status, 200, "{official}");
    assert_eq!(official["client"]["id"], "official");
    assert_eq!(official["env"]["ANTHROPIC_API_KEY"], "sk-ant-canary-7f3e");
    // Anthropic's SDKs read it without /v1 (stripped when stored with it).
    assert_eq!(official["env"]["ANTHROPIC_BASE_URL"], "https://llm-gw.internal.example");
    assert_eq!(official["warnings"], json!([]));

    // The AI SDK reads the same name with the version segment.
    let (status, ai_sdk) = resolve(json!({ "provider": "anthropic", "client": "ai-sdk" })).await;
    assert_eq!(status, 200, "{ai_sdk}");
    assert_eq!(ai_sdk["client"]["id"], "ai-sdk");
    assert_eq!(ai_sdk["env"]["ANTHROPIC_BASE_URL"], "https://llm-gw.internal.example/v1");
    assert_eq!(ai_sdk["env"]["ANTHROPIC_API_KEY"], "sk-ant-canary-7f3e");

    // A client the manifest does not list: a clear 400 naming the ones it does.
    let (status, unknown) = resolve(json!({ "provider": "anthropic", "client": "curl" })).await;
    assert_eq!((status, code(&unknown)), (400, "unknown_client"), "{unknown}");
    let message = unknown["error"]["message"].as_str().unwrap();
    assert!(message.contains("\"curl\"") && message.contains("ai-sdk"), "{message}");
    assert!(!unknown.to_string().contains("canary"), "{unknown}");

    // An Azure endpoint the AI SDK cannot name by resource: a warning naming
    // the variable and the client, never the endpoint or the key.
    host.set(&host.operator, scope, "AZURE_OPENAI_API_KEY", "azure-canary-91c2").await;
    host.set(&host.operator, scope, "AZURE_OPENAI_ENDPOINT", "https://gw.corp.example/azure").await;
    let (status, azure) = resolve(json!({ "provider": "azure-openai", "client": "ai-sdk" })).await;
    assert_eq!(status, 200, "{azure}");
    assert!(azure["env"].get("AZURE_RESOURCE_NAME").is_none(), "{azure}");
    let warnings = azure["warnings"].as_array().unwrap();
    let ignored: Vec<&Value> =
        warnings.iter().filter(|warning| warning["code"] == "base_url_ignored").collect();
    assert_eq!(ignored.len(), 1, "{azure}");
    assert_eq!(ignored[0]["variable"], "AZURE_OPENAI_ENDPOINT");
    assert_eq!(ignored[0]["client"], "ai-sdk");
    let text = azure["warnings"].to_string();
    assert!(!text.contains("gw.corp.example") && !text.contains("azure-canary"), "{text}");
    // With the resource's own endpoint the AI SDK gets the resource name.
    host.set(&host.operator, scope, "AZURE_OPENAI_ENDPOINT", "https://acme-east.openai.azure.com/")
        .await;
    let (_, azure) = resolve(json!({ "provider": "azure-openai", "client": "ai-sdk" })).await;
    assert_eq!(azure["env"]["AZURE_RESOURCE_NAME"], "acme-east", "{azure}");
    assert_eq!(azure["env"]["AZURE_API_KEY"], "azure-canary-91c2", "{azure}");

    // The providers API says which names each client's bag carries.
    let (status, listing) =
        client.call("GET", &format!("/v1/scopes/{scope}/providers"), Some(&agent), None).await;
    assert_eq!(status, 200);
    let providers = listing["providers"].as_array().unwrap();
    let anthropic = providers.iter().find(|provider| provider["slug"] == "anthropic").unwrap();
    let clients = anthropic["clients"].as_array().unwrap();
    let ai_sdk = clients.iter().find(|client| client["id"] == "ai-sdk").unwrap();
    assert_eq!(ai_sdk["default"], false);
    assert!(
        ai_sdk["names"].as_array().unwrap().iter().any(|name| name["name"] == "ANTHROPIC_BASE_URL"
            && name["form"] == "append-suffix"
            && name["suffix"] == "/v1"),
        "{ai_sdk}"
    );
    assert!(clients.iter().any(|client| client["id"] == "official" && client["default"] == true));
    assert!(!listing.to_string().contains("canary"), "the listing never carries values");
}

/// The health of `key` in `scope`'s providers listing, once its verdict is `verdict`.
async fn wait_for_verdict(host: &Running, scope: &str, key: &str, verdict: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, listing) = host
            .client
            .call("GET", &format!("/v1/scopes/{scope}/providers"), Some(&host.operator), None)
            .await;
        let found = listing["providers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|provider| provider["keys"].as_array().unwrap().clone())
            .find(|row| row["key_id"] == key);
        if let Some(health) = found.map(|row| row["health"].clone())
            && health["verdict"] == verdict
        {
            return health;
        }
        assert!(Instant::now() < deadline, "{key} is not {verdict} within 20 s: {listing}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn keys_are_probed_on_link_and_rotation_and_an_operator_starts_rounds() {
    let (upstream, mock) = mock_upstream().await;
    // Automatic probes on; the scheduled interval far away.
    let host = start_with(|config| config.health_interval = Duration::from_secs(3600)).await;
    let client = &host.client;
    let scope = "acme/probe/dev";

    // Linking a key probes it without any button.
    host.set(&host.operator, scope, "OPENAI_API_BASE", &upstream).await;
    host.set(&host.operator, scope, "OPENAI_API_KEY", "sk-good-linked").await;
    wait_for_verdict(&host, scope, "OPENAI_API_KEY", "healthy").await;

    // Rotating it to a bad value probes again.
    host.set(&host.operator, scope, "OPENAI_API_KEY", "sk-revoked-now").await;
    wait_for_verdict(&host, scope, "OPENAI_API_KEY", "invalid-credential").await;
    let seen = mock.authorizations.lock().unwrap().clone();
    assert!(seen.contains(&"Bearer sk-good-linked".to_owned()), "{seen:?}");
    assert!(seen.contains(&"Bearer sk-revoked-now".to_owned()), "{seen:?}");

    // An operator starts a round and follows it to its end.
    host.set(&host.operator, scope, "OPENAI_API_KEY_2", "sk-good-second").await;
    let agent = host.agent_token(scope).await;
    let (status, denied) = client.call("POST", "/v1/health/rounds", Some(&agent), None).await;
    assert_eq!((status, code(&denied)), (403, "operator_only"), "{denied}");
    let (status, started) =
        client.call("POST", "/v1/health/rounds", Some(&host.operator), None).await;
    assert!(status == 202 || status == 200, "{status} {started}");
    let id = started["round"]["id"].as_u64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let round = loop {
        let (status, shown) = client
            .call("GET", &format!("/v1/health/rounds/{id}"), Some(&host.operator), None)
            .await;
        assert_eq!(status, 200, "{shown}");
        if shown["round"]["state"] != "running" {
            break shown["round"].clone();
        }
        assert!(Instant::now() < deadline, "the round did not end: {shown}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(round["state"], "done", "{round}");
    assert_eq!(round["keys"], 2, "{round}");
    assert_eq!(round["probed"], 2, "{round}");
    assert_eq!(round["verdicts"], json!({ "healthy": 1, "invalid-credential": 1 }), "{round}");
    let (_, listed) = client.call("GET", "/v1/health/rounds", Some(&host.operator), None).await;
    let rounds = listed["rounds"].as_array().unwrap();
    assert!(
        rounds.iter().any(|round| round["trigger"] == "start"),
        "a round ran at start: {listed}"
    );
    assert!(
        rounds.iter().any(|round| round["trigger"] == "change"
            && round["target"]
                == json!({ "kind": "provider", "scope": scope, "provider": "openai" })),
        "{listed}"
    );
    // A host setting with a value the host does not take is refused.
    let (status, refused) = client
        .call(
            "PUT",
            &format!("/v1/scopes/{scope}/env/PLATOS_EMBEDDING_PROVIDER"),
            Some(&host.operator),
            Some(&json!({ "value": "cohere" })),
        )
        .await;
    assert_eq!((status, code(&refused)), (400, "invalid_value"), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("`voyage` or `openai`"));
    let (status, missing) =
        client.call("GET", "/v1/health/rounds/999999", Some(&host.operator), None).await;
    assert_eq!((status, code(&missing)), (404, "round_not_found"));
    assert!(!listed.to_string().contains("sk-"), "rounds never carry values: {listed}");
}

#[tokio::test]
async fn budgets_are_set_and_removed_by_admins_read_by_agents_and_checked() {
    let host = start().await;
    let client = &host.client;
    let scope = "acme/shop/dev";
    let agent = host.agent_token(scope).await;
    let admin = host.admin_token(scope).await;
    host.set(&host.operator, scope, "OPENAI_API_KEY", "sk-budget-canary-7e21").await;
    let key_budget = format!("/v1/scopes/{scope}/providers/openai/keys/OPENAI_API_KEY/budget");
    let scope_budget = format!("/v1/scopes/{scope}/budget");
    let nothing = json!({ "day_usd": 0.0, "month_usd": 0.0, "total_usd": 0.0 });

    // No budget yet: an agent reads the null fields.
    let (status, body) = client.call("GET", &key_budget, Some(&agent), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({
            "target": "acme/shop/dev/openai/OPENAI_API_KEY", "limit_usd": null, "period": null,
            "spent_usd": 0.0, "reserved_usd": 0.0, "left_usd": null, "spend": nothing
        })
    );
    // An agent sets and removes nothing.
    let monthly = json!({ "limit_usd": 25.0, "period": "month" });
    for (method, path) in [
        ("PUT", &key_budget),
        ("DELETE", &key_budget),
        ("PUT", &scope_budget),
        ("DELETE", &scope_budget),
    ] {
        let body = (method == "PUT").then_some(&monthly);
        let (status, answer) = client.call(method, path, Some(&agent), body).await;
        assert_eq!((status, code(&answer)), (403, "admin_only"), "{method} {path}");
    }
    let (_, still) = client.call("GET", &key_budget, Some(&agent), None).await;
    assert_eq!(still["limit_usd"], Value::Null, "{still}");

    // An admin of the scope sets the key's; an operator the scope's.
    let (status, body) = client.call("PUT", &key_budget, Some(&admin), Some(&monthly)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["limit_usd"], &body["period"]), (&json!(25.0), &json!("month")));
    assert_eq!((&body["left_usd"], &body["spent_usd"]), (&json!(25.0), &json!(0.0)));
    let daily = json!({ "limit_usd": 0.125, "period": "day" });
    let (status, body) =
        client.call("PUT", &scope_budget, Some(&host.operator), Some(&daily)).await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = client.call("GET", &scope_budget, Some(&agent), None).await;
    assert_eq!(
        body,
        json!({
            "target": scope, "limit_usd": 0.125, "period": "day", "spent_usd": 0.0,
            "reserved_usd": 0.0, "left_usd": 0.125, "spend": nothing
        })
    );
    let (_, body) = client.call("GET", &key_budget, Some(&agent), None).await;
    assert_eq!(body["limit_usd"], 25.0, "{body}");

    // Spend, of the key and of the scope.
    for path in [
        format!("/v1/scopes/{scope}/providers/openai/keys/OPENAI_API_KEY/spend"),
        format!("/v1/scopes/{scope}/spend"),
    ] {
        let (status, body) = client.call("GET", &path, Some(&agent), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["spend"], nothing, "{body}");
        let day = body["day"].as_str().unwrap();
        assert!(day.len() == 10 && day.starts_with(body["month"].as_str().unwrap()), "{body}");
    }

    // Bodies that are not a budget: 400 naming the field.
    for (bad, field) in [
        (json!({ "limit_usd": -0.01, "period": "day" }), "limit_usd"),
        (json!({ "limit_usd": 1e10, "period": "day" }), "limit_usd"),
        (json!({ "limit_usd": 1.0, "period": "weekly" }), "period"),
        (json!({ "limit_usd": 1.0, "period": "Day" }), "period"),
    ] {
        for path in [&key_budget, &scope_budget] {
            let (status, answer) = client.call("PUT", path, Some(&admin), Some(&bad)).await;
            assert_eq!((status, code(&answer)), (400, "invalid_budget"), "{bad}");
            let message = answer["error"]["message"].as_str().unwrap();
            assert!(message.contains(field), "{message}");
        }
    }
    for bad in [
        json!({ "limit_usd": 1.0, "period": "day", "currency": "EUR" }),
        json!({ "period": "day" }),
        json!({ "limit_usd": "1", "period": "day" }),
    ] {
        let (status, answer) = client.call("PUT", &key_budget, Some(&admin), Some(&bad)).await;
        assert_eq!((status, code(&answer)), (400, "invalid_json"), "{bad}: {answer}");
    }
    let (_, unchanged) = client.call("GET", &key_budget, Some(&agent), None).await;
    assert_eq!(unchanged["limit_usd"], 25.0, "a refused body changed nothing: {unchanged}");

    // A key without a row, a provider not loaded: 404 as the other key routes.
    let missing = format!("/v1/scopes/{scope}/providers/openai/keys/OPENAI_API_KEY_9/budget");
    let (status, answer) = client.call("PUT", &missing, Some(&admin), Some(&monthly)).await;
    assert_eq!((status, code(&answer)), (404, "key_not_found"), "{answer}");
    let (status, answer) = client.call("GET", &missing, Some(&agent), None).await;
    assert_eq!((status, code(&answer)), (404, "key_not_found"), "{answer}");
    let unknown = format!("/v1/scopes/{scope}/providers/nosuch/keys/OPENAI_API_KEY/budget");
    let (status, answer) = client.call("GET", &unknown, Some(&agent), None).await;
    assert_eq!((status, code(&answer)), (404, "unknown_provider"), "{answer}");

    // Removed: the null fields again. A key whose variable was unset can
    // still have its budget removed.
    let (status, answer) = client
        .call("DELETE", &format!("/v1/scopes/{scope}/env/OPENAI_API_KEY"), Some(&admin), None)
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, body) = client.call("DELETE", &key_budget, Some(&admin), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["limit_usd"], &body["left_usd"]), (&Value::Null, &Value::Null));
    let (status, body) = client.call("DELETE", &scope_budget, Some(&host.operator), None).await;
    assert_eq!((status, &body["period"]), (200, &Value::Null), "{body}");
    let (_, body) = client.call("GET", &scope_budget, Some(&agent), None).await;
    assert_eq!(body["limit_usd"], Value::Null, "{body}");

    // The OpenAPI document lists every budget route with its access.
    let document = platos_host::api::openapi::document_json();
    let prefix = "/v1/scopes/{organization}/{project}/{environment}";
    for (method, path, access) in [
        ("put", "/providers/{provider}/keys/{key}/budget", Access::ScopeAdmin),
        ("get", "/providers/{provider}/keys/{key}/budget", Access::Scoped),
        ("delete", "/providers/{provider}/keys/{key}/budget", Access::ScopeAdmin),
        ("get", "/providers/{provider}/keys/{key}/spend", Access::Scoped),
        ("put", "/budget", Access::ScopeAdmin),
        ("get", "/budget", Access::Scoped),
        ("delete", "/budget", Access::ScopeAdmin),
        ("get", "/spend", Access::Scoped),
    ] {
        let path = format!("{prefix}{path}");
        let operation = &document["paths"][&path][method];
        assert_eq!(operation["tags"], json!(["budgets"]), "{method} {path}");
        let route = routes()
            .into_iter()
            .find(|route| route.method.eq_ignore_ascii_case(method) && route.path == path)
            .unwrap_or_else(|| panic!("{method} {path} is not routed"));
        assert_eq!(route.access, access, "{method} {path}");
    }
    let put = &document["paths"][format!("{prefix}/budget")]["put"];
    let errors = put["responses"]["400"]["content"]["application/json"]["schema"].to_string();
    assert!(errors.contains("invalid_budget"), "{errors}");
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}
