//! Per-token default pins end to end, on a real server on loopback: a
//! token's pin is what a resolve without `pinned_key` spends, the request's
//! own pin overrides it, an explicit null or empty pin opts out of it;
//! `pinned_by` says which in resolve and explain; `PUT /v1/tokens/{id}/pins`
//! replaces them (operators and the scope's admins only); invalid entries
//! are refused naming them; pins survive a restart.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Running, code};

const SCOPE: &str = "acme/shop/prod";

async fn start_in(dir: tempfile::TempDir) -> Running {
    Running::start_in(dir, "token-pins-test-plugin-cache", |_| ()).await
}

/// A server whose scope [`SCOPE`] has three OpenAI keys (variants 1-3).
async fn start() -> Running {
    let host = start_in(tempfile::tempdir().unwrap()).await;
    for (name, value) in [
        ("OPENAI_API_KEY", "sk-canary-one"),
        ("OPENAI_API_KEY_2", "sk-canary-two"),
        ("OPENAI_API_KEY_3", "sk-canary-three"),
    ] {
        let (status, body) = host
            .client
            .call(
                "PUT",
                &format!("/v1/scopes/{SCOPE}/env/{name}"),
                Some(&host.operator),
                Some(&json!({ "value": value })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    host
}

impl Running {
    /// Creates a token from `body` with the operator token: (token, id).
    async fn token(&self, body: Value) -> (String, String) {
        let (status, created) =
            self.client.call("POST", "/v1/tokens", Some(&self.operator), Some(&body)).await;
        assert_eq!(status, 201, "{created}");
        (
            created["token"].as_str().unwrap().to_owned(),
            created["info"]["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn resolve(&self, token: &str, body: Value) -> (u16, Value) {
        self.client
            .call("POST", &format!("/v1/scopes/{SCOPE}/resolve"), Some(token), Some(&body))
            .await
    }

    /// The key a resolve with `body` spends and `pinned_by`.
    async fn resolved(&self, token: &str, body: Value) -> (String, Value) {
        let (status, answer) = self.resolve(token, body).await;
        assert_eq!(status, 200, "{answer}");
        (answer["key"]["key_id"].as_str().unwrap().to_owned(), answer["pinned_by"].clone())
    }

    async fn explain(&self, token: &str, query: &str) -> Value {
        let path = format!("/v1/scopes/{SCOPE}/providers/openai/explain{query}");
        let (status, answer) = self.client.call("GET", &path, Some(token), None).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    async fn put_pins(&self, token: &str, id: &str, pins: Value) -> (u16, Value) {
        self.client.call("PUT", &format!("/v1/tokens/{id}/pins"), Some(token), Some(&pins)).await
    }

    /// The pins `GET /v1/tokens` shows for `id` (null when none).
    async fn listed_pins(&self, id: &str) -> Value {
        let (status, list) =
            self.client.call("GET", "/v1/tokens", Some(&self.operator), None).await;
        assert_eq!(status, 200, "{list}");
        list["tokens"].as_array().unwrap().iter().find(|token| token["id"] == id).unwrap()["pins"]
            .clone()
    }
}

#[tokio::test]
async fn a_token_pin_applies_unless_the_request_pins_or_opts_out_and_says_so() {
    let host = start().await;
    let (agent, id) = host
        .token(json!({ "scope": SCOPE, "label": "checkout", "pins": { "openai": "OPENAI_API_KEY_2" } }))
        .await;

    // No pinned_key: the token's pin.
    let (status, answer) = host.resolve(&agent, json!({ "provider": "openai" })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["key"]["key_id"], "OPENAI_API_KEY_2");
    assert_eq!(
        (answer["chosen_by"].as_str(), answer["pinned_by"].as_str()),
        (Some("pinned"), Some("token"))
    );
    assert_eq!(answer["env"]["OPENAI_API_KEY"], "sk-canary-two");
    // The request's own pin overrides it.
    assert_eq!(
        host.resolved(&agent, json!({ "provider": "openai", "pinned_key": "OPENAI_API_KEY_3" }))
            .await,
        ("OPENAI_API_KEY_3".to_owned(), json!("request"))
    );
    // An explicit null or empty pin opts out: the scope default, no pin.
    for none in [Value::Null, json!("")] {
        let (status, answer) =
            host.resolve(&agent, json!({ "provider": "openai", "pinned_key": none })).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["key"]["key_id"], "OPENAI_API_KEY", "{none}");
        assert_eq!(
            (answer["chosen_by"].as_str(), &answer["pinned_by"]),
            (Some("scope-default"), &Value::Null)
        );
    }
    // A token of another provider's pin only does not pin openai.
    let (other, _) =
        host.token(json!({ "scope": SCOPE, "pins": { "anthropic": "ANTHROPIC_API_KEY_2" } })).await;
    assert_eq!(
        host.resolved(&other, json!({ "provider": "openai" })).await,
        ("OPENAI_API_KEY".to_owned(), Value::Null)
    );

    // Explain says the same.
    let explained = host.explain(&agent, "").await;
    assert_eq!(
        (&explained["pinned_key"], &explained["pinned_by"], &explained["chosen_by"]),
        (&json!("OPENAI_API_KEY_2"), &json!("token"), &json!("pinned"))
    );
    let explained = host.explain(&agent, "?pinned_key=OPENAI_API_KEY_3").await;
    assert_eq!(
        (&explained["pinned_key"], &explained["pinned_by"]),
        (&json!("OPENAI_API_KEY_3"), &json!("request"))
    );
    let explained = host.explain(&agent, "?pinned_key=").await;
    assert_eq!(
        (&explained["pinned_key"], &explained["pinned_by"], &explained["chosen_by"]),
        (&Value::Null, &Value::Null, &json!("scope-default"))
    );

    // whoami shows the caller its own pins.
    let (status, me) = host.client.call("GET", "/v1/whoami", Some(&agent), None).await;
    assert_eq!((status, &me["pins"]), (200, &json!({ "openai": "OPENAI_API_KEY_2" })), "{me}");

    // The listing shows the pins, never a token.
    assert_eq!(host.listed_pins(&id).await, json!({ "openai": "OPENAI_API_KEY_2" }));
    let (_, listing) = host.client.raw("GET", "/v1/tokens", Some(&host.operator), None).await;
    assert!(!listing.contains(&agent[20..]) && !listing.contains("sk-canary"), "{listing}");
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_token_without_pins_inherits_the_scope_default() {
    let host = start().await;
    let (agent, id) = host.token(json!({ "scope": SCOPE })).await;
    let (status, answer) = host.resolve(&agent, json!({ "provider": "openai" })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["key"]["key_id"], "OPENAI_API_KEY");
    assert_eq!(
        (answer["chosen_by"].as_str(), &answer["pinned_by"]),
        (Some("scope-default"), &Value::Null)
    );
    let explained = host.explain(&agent, "").await;
    assert_eq!((&explained["pinned_key"], &explained["pinned_by"]), (&Value::Null, &Value::Null));
    assert_eq!(host.listed_pins(&id).await, Value::Null, "no pins, no field");
    let (_, me) = host.client.call("GET", "/v1/whoami", Some(&agent), None).await;
    assert!(me.get("pins").is_none(), "{me}");
    // The operator token has none either.
    assert_eq!(
        host.resolved(&host.operator, json!({ "provider": "openai" })).await,
        ("OPENAI_API_KEY".to_owned(), Value::Null)
    );
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_token_pin_that_vanished_falls_back_with_a_warning_or_fails_strict() {
    let host = start().await;
    let (agent, _) =
        host.token(json!({ "scope": SCOPE, "pins": { "openai": "OPENAI_API_KEY_9" } })).await;
    let (status, answer) = host.resolve(&agent, json!({ "provider": "openai" })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["key"]["key_id"], "OPENAI_API_KEY");
    assert_eq!(
        (answer["chosen_by"].as_str(), answer["pinned_by"].as_str()),
        (Some("fallback-pin-missing"), Some("token"))
    );
    assert!(answer["warning"].as_str().unwrap().contains("OPENAI_API_KEY_9"), "{answer}");
    let (status, strict) =
        host.resolve(&agent, json!({ "provider": "openai", "strict": true })).await;
    assert_eq!((status, code(&strict)), (404, "pinned_key_missing"), "{strict}");
    let explained = host.explain(&agent, "").await;
    assert_eq!(explained["strict_error"]["code"], "pinned_key_missing", "{explained}");
    assert_eq!(explained["pinned_by"], "token");
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn put_pins_replaces_them_and_needs_an_operator_or_an_admin_of_the_scope() {
    let host = start().await;
    let (agent, id) =
        host.token(json!({ "scope": SCOPE, "pins": { "openai": "OPENAI_API_KEY_2" } })).await;
    let (admin, _) = host.token(json!({ "scope": SCOPE, "role": "admin" })).await;
    let (other_admin, _) = host.token(json!({ "scope": "acme/shop/dev", "role": "admin" })).await;

    // The operator replaces the whole map; the next resolve spends the new pin.
    let (status, info) = host
        .put_pins(
            &host.operator,
            &id,
            json!({ "openai": "OPENAI_API_KEY_3", "anthropic": "ANTHROPIC_API_KEY" }),
        )
        .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        info["pins"],
        json!({ "anthropic": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY_3" })
    );
    assert_eq!(info["id"], id.as_str());
    assert!(info.get("token").is_none(), "{info}");
    assert_eq!(
        host.resolved(&agent, json!({ "provider": "openai" })).await,
        ("OPENAI_API_KEY_3".to_owned(), json!("token"))
    );

    // An agent token cannot change pins, not even its own.
    let (status, answer) = host.put_pins(&agent, &id, json!({ "openai": "OPENAI_API_KEY" })).await;
    assert_eq!((status, code(&answer)), (403, "admin_only"), "{answer}");
    // An admin of another scope sees no such token.
    let (status, answer) =
        host.put_pins(&other_admin, &id, json!({ "openai": "OPENAI_API_KEY" })).await;
    assert_eq!((status, code(&answer)), (404, "token_not_found"), "{answer}");
    let (status, answer) = host.put_pins(&host.operator, "000000000000", json!({})).await;
    assert_eq!((status, code(&answer)), (404, "token_not_found"), "{answer}");
    assert_eq!(host.listed_pins(&id).await["openai"], "OPENAI_API_KEY_3", "nothing changed");

    // An admin of the scope may; `{}` removes them all.
    let (status, info) = host.put_pins(&admin, &id, json!({ "openai": "OPENAI_API_KEY_2" })).await;
    assert_eq!((status, &info["pins"]), (200, &json!({ "openai": "OPENAI_API_KEY_2" })), "{info}");
    assert_eq!(
        host.resolved(&agent, json!({ "provider": "openai" })).await,
        ("OPENAI_API_KEY_2".to_owned(), json!("token"))
    );
    let (status, info) = host.put_pins(&admin, &id, json!({})).await;
    assert_eq!(status, 200, "{info}");
    assert!(info.get("pins").is_none(), "{info}");
    assert_eq!(
        host.resolved(&agent, json!({ "provider": "openai" })).await,
        ("OPENAI_API_KEY".to_owned(), Value::Null)
    );
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn invalid_pins_are_refused_with_400_naming_the_entry() {
    let host = start().await;
    let op = Some(host.operator.as_str());
    let invalid = |answer: &Value| answer["error"]["message"].as_str().unwrap().to_owned();
    for (body, names) in [
        (json!({ "scope": SCOPE, "pins": { "OpenAI": "OPENAI_API_KEY" } }), "\"OpenAI\""),
        (json!({ "scope": SCOPE, "pins": { "openai": "sk-canary-pasted" } }), "\"openai\""),
        (json!({ "operator": true, "pins": { "openai": "OPENAI_API_KEY" } }), "operator token"),
    ] {
        let (status, answer) = host.client.call("POST", "/v1/tokens", op, Some(&body)).await;
        assert_eq!((status, code(&answer)), (400, "invalid_pins"), "{body}: {answer}");
        let message = invalid(&answer);
        assert!(message.contains(names) && !message.contains("sk-canary"), "{message}");
    }
    let (status, answer) = host
        .client
        .call("POST", "/v1/tokens", op, Some(&json!({ "scope": SCOPE, "pins": { "openai": 2 } })))
        .await;
    assert_eq!((status, code(&answer)), (400, "invalid_json"), "{answer}");
    let (_, list) = host.client.call("GET", "/v1/tokens", op, None).await;
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1, "nothing was created: {list}");

    // PUT: refused, and the pins stay as they were.
    let (_, id) =
        host.token(json!({ "scope": SCOPE, "pins": { "openai": "OPENAI_API_KEY_2" } })).await;
    let (status, answer) =
        host.put_pins(&host.operator, &id, json!({ "openai": "lower_case" })).await;
    assert_eq!((status, code(&answer)), (400, "invalid_pins"), "{answer}");
    assert!(invalid(&answer).contains("\"openai\""), "{answer}");
    assert_eq!(host.listed_pins(&id).await, json!({ "openai": "OPENAI_API_KEY_2" }));
    let (_, list) = host.client.call("GET", "/v1/tokens", op, None).await;
    let operator_id = list["tokens"][0]["id"].as_str().unwrap().to_owned();
    let (status, answer) =
        host.put_pins(&host.operator, &operator_id, json!({ "openai": "OPENAI_API_KEY" })).await;
    assert_eq!((status, code(&answer)), (400, "invalid_pins"), "{answer}");
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn pins_survive_a_restart() {
    let host = start().await;
    let (agent, id) =
        host.token(json!({ "scope": SCOPE, "pins": { "openai": "OPENAI_API_KEY_2" } })).await;
    let (status, _) =
        host.put_pins(&host.operator, &id, json!({ "openai": "OPENAI_API_KEY_3" })).await;
    assert_eq!(status, 200);
    let Running { dir, server, .. } = host;
    server.shutdown(Duration::from_secs(5)).await.unwrap();

    let host = start_in(dir).await;
    assert_eq!(host.listed_pins(&id).await, json!({ "openai": "OPENAI_API_KEY_3" }));
    assert_eq!(
        host.resolved(&agent, json!({ "provider": "openai" })).await,
        ("OPENAI_API_KEY_3".to_owned(), json!("token"))
    );
    assert!(host.dir.path().join("tokens").is_dir());
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}
