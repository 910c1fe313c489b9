//! The audit trail end to end, on a real server on loopback, with the store
//! on sled and on PostgreSQL: every audited action makes exactly one record
//! with the right fields (a refused one too, with its code); no canary value
//! reaches the trail, its JSON-lines copy or the audit database's files; an
//! audit log on a full disk refuses changes and resolves with a clear error
//! and changes nothing (or, with `--audit-on-error allow`, lets them
//! through, counted); `GET /v1/audit` pages, filters and is for operators
//! and the scope's admins; retention purges; `--audit off` records nothing;
//! the command line records its changes.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use platos_host::api::server::ServerConfig;
use platos_host::audit::{OnAuditError, SinkTarget};
use platos_host::store::StoreBackend;
use serde_json::{Value, json};
use support::{Running, assert_no_secret, code, files_under};

const SCOPE: &str = "acme/shop/prod";
const CANARY_ONE: &str = "sk-canary-audit-one-5f1e";
const CANARY_TWO: &str = "sk-canary-audit-two-9c3d";
const CANARY_ROTATED: &str = "sk-canary-audit-rotated-77aa";
const CACHE: &str = "audit-test-plugin-cache";

/// A server with the store `store`, its config changed by `adjust`.
async fn start(store: StoreBackend, adjust: impl FnOnce(&mut ServerConfig)) -> Running {
    Running::start(CACHE, |config| {
        config.store = store;
        adjust(config);
    })
    .await
}

/// Reads the trail as an operator, following it with `after`.
struct Reader {
    after: Option<String>,
}

impl Reader {
    /// The records written since the last call (all, the first time).
    async fn new_records(&mut self, host: &Running) -> Vec<Value> {
        let mut records = Vec::new();
        loop {
            let mut path = "/v1/audit?limit=1000".to_owned();
            if let Some(after) = &self.after {
                path.push_str(&format!("&after={after}"));
            }
            let (status, page) = host.send("GET", &path, &host.operator, None).await;
            assert_eq!(status, 200, "{page}");
            let batch = page["records"].as_array().unwrap().clone();
            if let Some(last) = batch.last() {
                self.after = Some(format!("{}-{}", last["at"], last["id"].as_str().unwrap()));
            }
            records.extend(batch);
            if page["next"].is_null() {
                return records;
            }
        }
    }

    /// The one record the last action made, checked to be the only one.
    async fn one(&mut self, host: &Running) -> Value {
        let records = self.new_records(host).await;
        assert_eq!(records.len(), 1, "expected exactly one record: {records:#?}");
        records.into_iter().next().unwrap()
    }
}

impl Running {
    /// `method path` with `token` and an optional JSON body.
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        self.client.call(method, path, Some(token), body).await
    }

    async fn put_env(&self, token: &str, name: &str, value: &str) -> (u16, Value) {
        self.client
            .call(
                "PUT",
                &format!("/v1/scopes/{SCOPE}/env/{name}"),
                Some(token),
                Some(&json!({ "value": value })),
            )
            .await
    }

    async fn resolve(&self, token: &str, body: Value) -> (u16, Value) {
        self.client
            .call("POST", &format!("/v1/scopes/{SCOPE}/resolve"), Some(token), Some(&body))
            .await
    }

    async fn new_token(&self, body: Value) -> (String, String) {
        let (status, created) =
            self.client.call("POST", "/v1/tokens", Some(&self.operator), Some(&body)).await;
        assert_eq!(status, 201, "{created}");
        (
            created["token"].as_str().unwrap().to_owned(),
            created["info"]["id"].as_str().unwrap().to_owned(),
        )
    }

    /// The public id of the operator token.
    fn operator_id(&self) -> String {
        self.operator.split('_').nth(1).unwrap().to_owned()
    }
}

/// `record` has these fields (and, for each `None`, not that field).
fn assert_fields(record: &Value, expected: &[(&str, Option<Value>)]) {
    for (field, value) in expected {
        match value {
            Some(value) => assert_eq!(&record[*field], value, "{field} of {record:#}"),
            None => assert!(record.get(*field).is_none(), "{field} should be absent: {record:#}"),
        }
    }
}

/// Every audited action once, each checked for its one record; returns the
/// trail's whole text as the API answered it.
async fn exercise(host: &Running) -> String {
    let operator = host.operator_id();
    let by_operator = json!({ "kind": "operator", "token_id": operator });
    let mut trail = Reader { after: None };

    // The start: one record per plugin loaded, with its hash, and the first
    // operator token.
    let start = trail.new_records(host).await;
    let first: Vec<&Value> =
        start.iter().filter(|record| record["action"] == "token.create").collect();
    assert_eq!(first.len(), 1, "{start:#?}");
    assert_eq!(
        (&first[0]["subject"], &first[0]["actor"]["kind"]),
        (&json!(operator), &json!("host"))
    );
    let loads: Vec<&Value> =
        start.iter().filter(|record| record["action"] == "plugin.load").collect();
    assert_eq!(loads.len(), host.server.report().plugins.len(), "{start:#?}");
    for load in &loads {
        assert_eq!(load["outcome"], "ok");
        assert_eq!(load["actor"]["kind"], "host");
        assert_eq!(load["detail"]["sha256"].as_str().unwrap().len(), 64, "{load}");
        assert!(
            host.server.report().plugins.contains(&load["subject"].as_str().unwrap().to_owned())
        );
    }

    // Variables: set, rotate, a second key, a refusal.
    assert_eq!(host.put_env(&host.operator, "OPENAI_API_KEY", CANARY_ONE).await.0, 200);
    let set = trail.one(host).await;
    assert_fields(
        &set,
        &[
            ("action", Some(json!("var.set"))),
            ("outcome", Some(json!("ok"))),
            ("actor", Some(by_operator.clone())),
            ("scope", Some(json!(SCOPE))),
            ("provider", Some(json!("openai"))),
            ("variable", Some(json!("OPENAI_API_KEY"))),
            ("variant", Some(json!(1))),
            ("code", None),
        ],
    );
    assert_eq!(set["request"].as_str().unwrap().len(), 16);
    assert_eq!(host.put_env(&host.operator, "OPENAI_API_KEY", CANARY_ROTATED).await.0, 200);
    let rotate = trail.one(host).await;
    assert_eq!(
        (&rotate["action"], &rotate["detail"]["previous_version"]),
        (&json!("var.rotate"), &json!("1"))
    );
    assert_eq!(host.put_env(&host.operator, "OPENAI_API_KEY_2", CANARY_TWO).await.0, 200);
    assert_fields(
        &trail.one(host).await,
        &[("action", Some(json!("var.set"))), ("variant", Some(json!(2)))],
    );
    let (status, body) = host.put_env(&host.operator, "OPENAI_API_KEY_3", "").await;
    assert_eq!((status, code(&body)), (400, "empty_value"));
    assert_fields(
        &trail.one(host).await,
        &[
            ("action", Some(json!("var.set"))),
            ("outcome", Some(json!("refused"))),
            ("code", Some(json!("empty_value"))),
            ("variable", Some(json!("OPENAI_API_KEY_3"))),
        ],
    );

    // Key rows: one record per change a PATCH asks for.
    let key_path = format!("/v1/scopes/{SCOPE}/providers/openai/keys/OPENAI_API_KEY_2");
    let patch = |body: Value| {
        let path = key_path.clone();
        async move { host.send("PATCH", &path, &host.operator, Some(&body)).await }
    };
    assert_eq!(patch(json!({ "label": "backup" })).await.0, 200);
    let label = trail.one(host).await;
    assert_fields(
        &label,
        &[
            ("action", Some(json!("key.label"))),
            ("variant", Some(json!(2))),
            ("variable", Some(json!("OPENAI_API_KEY_2"))),
        ],
    );
    assert_eq!(label["detail"]["label"], "backup");
    assert_eq!(patch(json!({ "status": "disabled", "scope_default": false })).await.0, 200);
    let actions: Vec<Value> =
        trail.new_records(host).await.iter().map(|record| record["action"].clone()).collect();
    assert_eq!(actions, [json!("key.disable"), json!("key.default")]);
    assert_eq!(patch(json!({ "status": "active" })).await.0, 200);
    assert_eq!(trail.one(host).await["action"], "key.enable");
    let (status, body) = host
        .send(
            "PATCH",
            &format!("/v1/scopes/{SCOPE}/providers/openai/keys/OPENAI_API_KEY_9"),
            &host.operator,
            Some(&json!({ "label": "x" })),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "key_not_found"));
    assert_fields(
        &trail.one(host).await,
        &[
            ("action", Some(json!("key.label"))),
            ("outcome", Some(json!("refused"))),
            ("code", Some(json!("key_not_found"))),
        ],
    );

    // Tokens: create, pins, and the agent's resolves.
    let (agent, agent_id) =
        host.new_token(json!({ "scope": SCOPE, "label": "checkout-agent" })).await;
    let create = trail.one(host).await;
    assert_fields(
        &create,
        &[
            ("action", Some(json!("token.create"))),
            ("subject", Some(json!(agent_id))),
            ("scope", Some(json!(SCOPE))),
        ],
    );
    assert_eq!(
        (&create["detail"]["kind"], &create["detail"]["label"]),
        (&json!("agent"), &json!("checkout-agent"))
    );
    let (status, body) = host
        .send(
            "PUT",
            &format!("/v1/tokens/{agent_id}/pins"),
            &host.operator,
            Some(&json!({ "openai": "OPENAI_API_KEY_2" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let pins = trail.one(host).await;
    assert_eq!(
        (&pins["action"], &pins["detail"]["pins"]),
        (&json!("token.pins"), &json!("openai=OPENAI_API_KEY_2"))
    );

    let (status, resolved) = host.resolve(&agent, json!({ "provider": "openai" })).await;
    assert_eq!(status, 200, "{resolved}");
    let resolve = trail.one(host).await;
    assert_fields(
        &resolve,
        &[
            ("action", Some(json!("resolve"))),
            ("outcome", Some(json!("ok"))),
            ("actor", Some(json!({ "kind": "agent", "token_id": agent_id }))),
            ("scope", Some(json!(SCOPE))),
            ("provider", Some(json!("openai"))),
            ("variable", Some(json!("OPENAI_API_KEY_2"))),
            ("variant", Some(json!(2))),
            ("version", Some(json!(1))),
        ],
    );
    assert_eq!(
        (&resolve["detail"]["chosen_by"], &resolve["detail"]["pinned_by"]),
        (&json!("pinned"), &json!("token"))
    );
    let (status, _) =
        host.resolve(&agent, json!({ "provider": "openai", "pinned_key": "OPENAI_API_KEY" })).await;
    assert_eq!(status, 200);
    let resolve = trail.one(host).await;
    assert_eq!((&resolve["variable"], &resolve["version"]), (&json!("OPENAI_API_KEY"), &json!(2)));
    let (status, body) = host.resolve(&agent, json!({ "provider": "anthropic" })).await;
    assert_eq!((status, code(&body)), (404, "no_key_linked"));
    assert_fields(
        &trail.one(host).await,
        &[
            ("action", Some(json!("resolve"))),
            ("outcome", Some(json!("refused"))),
            ("code", Some(json!("no_key_linked"))),
            ("provider", Some(json!("anthropic"))),
        ],
    );

    // Authorize and forward by lease, to a mock upstream.
    let (base, _log) = support::mock_upstream().await;
    assert_eq!(host.put_env(&host.operator, "OPENAI_API_BASE", &base).await.0, 200);
    assert_eq!(trail.one(host).await["action"], "var.set");
    let (_, resolved) = host.resolve(&agent, json!({ "provider": "openai" })).await;
    assert_eq!(trail.one(host).await["action"], "resolve");
    let lease = resolved["lease"]["id"].as_str().unwrap();
    let request = json!({ "request": {
        "method": "POST", "url": format!("{base}/chat/completions"),
        "headers": [["content-type", "application/json"]],
        "body": "{\"model\":\"gpt-5\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}"
    }});
    let (status, body) = host
        .send(
            "POST",
            &format!("/v1/scopes/{SCOPE}/leases/{lease}/authorize"),
            &agent,
            Some(&request),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let authorize = trail.one(host).await;
    assert_fields(
        &authorize,
        &[
            ("action", Some(json!("authorize"))),
            ("outcome", Some(json!("ok"))),
            ("variable", Some(json!("OPENAI_API_KEY_2"))),
            ("variant", Some(json!(2))),
            ("version", Some(json!(1))),
        ],
    );
    assert_eq!(
        (&authorize["detail"]["method"], &authorize["detail"]["host"]),
        (&json!("POST"), &json!("127.0.0.1"))
    );
    let (status, body) = host
        .send("POST", &format!("/v1/scopes/{SCOPE}/leases/{lease}/forward"), &agent, Some(&request))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_fields(
        &trail.one(host).await,
        &[
            ("action", Some(json!("forward"))),
            ("outcome", Some(json!("ok"))),
            ("variant", Some(json!(2))),
        ],
    );
    let (status, body) = host
        .send(
            "POST",
            &format!("/v1/scopes/{SCOPE}/leases/not-a-lease/forward"),
            &agent,
            Some(&request),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "lease_not_found"));
    assert_fields(
        &trail.one(host).await,
        &[
            ("action", Some(json!("forward"))),
            ("outcome", Some(json!("refused"))),
            ("code", Some(json!("lease_not_found"))),
        ],
    );

    // Budgets.
    let budget = format!("/v1/scopes/{SCOPE}/providers/openai/keys/OPENAI_API_KEY/budget");
    let (status, body) = host
        .send(
            "PUT",
            &budget,
            &host.operator,
            Some(&json!({ "limit_usd": 25.0, "period": "month" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let set = trail.one(host).await;
    assert_eq!(
        (&set["action"], &set["detail"]["period"], &set["detail"]["limit_usd"]),
        (&json!("budget.set"), &json!("month"), &json!("25.000000"))
    );
    assert_eq!(host.send("DELETE", &budget, &host.operator, None).await.0, 200);
    assert_eq!(trail.one(host).await["action"], "budget.remove");

    // Unset and revoke.
    let (status, _) = host
        .send("DELETE", &format!("/v1/scopes/{SCOPE}/env/OPENAI_API_KEY"), &host.operator, None)
        .await;
    assert_eq!(status, 200);
    assert_fields(
        &trail.one(host).await,
        &[
            ("action", Some(json!("var.unset"))),
            ("variable", Some(json!("OPENAI_API_KEY"))),
            ("version", Some(json!(2))),
        ],
    );
    let (status, body) = host
        .send("DELETE", &format!("/v1/scopes/{SCOPE}/env/OPENAI_API_KEY"), &host.operator, None)
        .await;
    assert_eq!((status, code(&body)), (404, "variable_not_set"));
    assert_fields(
        &trail.one(host).await,
        &[
            ("action", Some(json!("var.unset"))),
            ("outcome", Some(json!("refused"))),
            ("code", Some(json!("variable_not_set"))),
        ],
    );
    let (status, _) =
        host.send("DELETE", &format!("/v1/tokens/{agent_id}"), &host.operator, None).await;
    assert_eq!(status, 200);
    assert_fields(
        &trail.one(host).await,
        &[("action", Some(json!("token.revoke"))), ("subject", Some(json!(agent_id)))],
    );
    let (status, _) =
        host.send("DELETE", &format!("/v1/tokens/{operator}"), &host.operator, None).await;
    assert_eq!(status, 409);
    assert_fields(
        &trail.one(host).await,
        &[
            ("action", Some(json!("token.revoke"))),
            ("outcome", Some(json!("refused"))),
            ("code", Some(json!("last_operator_token"))),
        ],
    );

    // Concurrent resolves: one record each, none lost or doubled.
    let (admin, _) = host.new_token(json!({ "scope": SCOPE, "role": "admin" })).await;
    trail.one(host).await;
    let resolves = (0..64).map(|_| host.resolve(&admin, json!({ "provider": "openai" })));
    for (status, body) in futures_util::future::join_all(resolves).await {
        assert_eq!(status, 200, "{body}");
    }
    let records = trail.new_records(host).await;
    assert_eq!(records.len(), 64);
    let requests: BTreeSet<&str> =
        records.iter().map(|record| record["request"].as_str().unwrap()).collect();
    assert_eq!(requests.len(), 64);
    assert!(
        records
            .iter()
            .all(|record| record["action"] == "resolve" && record["actor"]["kind"] == "admin")
    );

    let (status, text) =
        host.client.raw("GET", "/v1/audit?limit=1000", Some(&host.operator), None).await;
    assert_eq!(status, 200);
    text
}

/// No canary in `text`, in any of its forms.
fn assert_no_canary(text: impl AsRef<[u8]>, place: &str) {
    for canary in [CANARY_ONE, CANARY_TWO, CANARY_ROTATED] {
        assert_no_secret(text.as_ref(), canary, place);
    }
}

/// The bytes of every file under `dir`.
fn bytes_under(dir: &Path) -> Vec<u8> {
    files_under(dir).iter().flat_map(|file| std::fs::read(file).unwrap_or_default()).collect()
}

#[tokio::test]
async fn every_action_makes_one_record_without_a_value_on_sled() {
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("audit.jsonl");
    let sink = SinkTarget::File(log.clone());
    let host = start(StoreBackend::Sled, |config| config.audit.sink = Some(sink)).await;
    let trail = exercise(&host).await;
    assert_no_canary(&trail, "the trail");
    assert_no_canary(bytes_under(&host.dir.path().join("audit")), "the audit database");
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_no_canary(&lines, "the JSON-lines copy");
    // The copy holds what the trail holds, line for line.
    let (_, page) = host.send("GET", "/v1/audit?limit=1000", &host.operator, None).await;
    let copied: Vec<Value> =
        lines.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(&copied, page["records"].as_array().unwrap());
}

#[tokio::test]
async fn every_action_makes_one_record_without_a_value_on_postgres() {
    let url = support::postgres_database().await;
    let host = start(StoreBackend::Postgres(url.clone()), |_| ()).await;
    let trail = exercise(&host).await;
    assert_no_canary(&trail, "the trail");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let rows = client.query("SELECT record FROM platos_audit", &[]).await.unwrap();
    let table: String = rows.iter().map(|row| row.get::<_, String>(0)).collect();
    assert!(table.contains("var.rotate"), "the table holds the records");
    assert_no_canary(&table, "the platos_audit table");
}

/// Makes `path` name a full disk: the JSON-lines copy reopens it (as after
/// log rotation) and every write fails with ENOSPC.
#[cfg(target_os = "linux")]
fn fill_disk(path: &Path) {
    std::fs::remove_file(path).unwrap();
    std::os::unix::fs::symlink("/dev/full", path).unwrap();
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_full_audit_disk_refuses_changes_and_resolves_and_changes_nothing() {
    let log_dir = tempfile::tempdir().unwrap();
    let log: PathBuf = log_dir.path().join("audit.jsonl");
    let sink = SinkTarget::File(log.clone());
    let host = start(StoreBackend::Sled, |config| config.audit.sink = Some(sink)).await;
    assert_eq!(host.put_env(&host.operator, "OPENAI_API_KEY", CANARY_ONE).await.0, 200);
    let mut trail = Reader { after: None };
    let before = trail.new_records(&host).await.len();

    fill_disk(&log);
    let (status, body) = host.put_env(&host.operator, "OPENAI_API_KEY", CANARY_ROTATED).await;
    assert_eq!((status, code(&body)), (503, "audit_unavailable"), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&log.display().to_string()), "names the log: {message}");
    assert!(message.contains("No space left on device"), "says why: {message}");
    assert!(message.contains("nothing was done"), "{message}");
    assert_no_canary(body.to_string(), "the refusal");
    let (status, body) = host.resolve(&host.operator, json!({ "provider": "openai" })).await;
    assert_eq!((status, code(&body)), (503, "audit_unavailable"), "{body}");
    assert!(body.get("env").is_none() && !body.to_string().contains(CANARY_ONE));
    let (status, body) =
        host.send("POST", "/v1/tokens", &host.operator, Some(&json!({ "scope": SCOPE }))).await;
    assert_eq!((status, code(&body)), (503, "audit_unavailable"), "{body}");

    // Nothing changed: the variable is at version 1, no token was made, and
    // the trail got no record of what was refused.
    let (_, vars) =
        host.send("GET", &format!("/v1/scopes/{SCOPE}/env"), &host.operator, None).await;
    assert_eq!(vars["variables"][0]["version"], 1, "{vars}");
    let (_, tokens) = host.send("GET", "/v1/tokens", &host.operator, None).await;
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 1, "{tokens}");
    assert!(trail.new_records(&host).await.is_empty());
    let (_, metrics) = host.client.raw("GET", "/metrics", Some(&host.operator), None).await;
    assert!(metrics.contains("platos_audit_records_total{result=\"failed\"} 3"), "{metrics}");

    // Room again (the log moved to a disk with space): writes go through.
    std::fs::remove_file(&log).unwrap();
    assert_eq!(host.put_env(&host.operator, "OPENAI_API_KEY", CANARY_ROTATED).await.0, 200);
    assert_eq!(trail.one(&host).await["action"], "var.rotate");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    assert!(before > 0);
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_full_audit_disk_at_start_refuses_to_start_and_allow_lets_changes_through() {
    let full = SinkTarget::File("/dev/full".into());
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::loopback_server_config(dir.path(), CACHE);
    config.audit.sink = Some(full.clone());
    let error = match platos_host::api::server::Server::start(config).await {
        Ok(_) => panic!("a host that cannot record its plugins must not start"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("/dev/full") && error.contains("No space left on device"), "{error}");

    let host = start(StoreBackend::Sled, |config| {
        config.audit.sink = Some(full);
        config.audit.on_error = OnAuditError::Allow;
    })
    .await;
    assert_eq!(host.put_env(&host.operator, "OPENAI_API_KEY", CANARY_ONE).await.0, 200);
    let (_, metrics) = host.client.raw("GET", "/metrics", Some(&host.operator), None).await;
    assert!(!metrics.contains("platos_audit_records_total{result=\"failed\"} 0"), "{metrics}");
}

#[tokio::test]
async fn the_trail_is_for_operators_and_the_scopes_admins_and_pages() {
    let host = start(StoreBackend::Sled, |_| ()).await;
    let (admin, _) = host.new_token(json!({ "scope": SCOPE, "role": "admin" })).await;
    let (agent, _) = host.new_token(json!({ "scope": SCOPE })).await;
    let (other_admin, _) =
        host.new_token(json!({ "scope": "acme/shop/dev", "role": "admin" })).await;
    for index in 0..5 {
        assert_eq!(
            host.put_env(&admin, "OPENAI_API_KEY", &format!("sk-page-{index}")).await.0,
            200
        );
    }
    let get = |token: &str, query: &str| {
        let path = format!("/v1/audit{query}");
        let token = token.to_owned();
        let host = &host;
        async move { host.send("GET", &path, &token, None).await }
    };
    // An admin reads its own scope's, with or without naming it.
    let (status, own) = get(&admin, "").await;
    assert_eq!(status, 200, "{own}");
    let own = own["records"].as_array().unwrap().clone();
    // Its scope's two tokens made, and five writes.
    assert_eq!(own.len(), 7, "{own:#?}");
    assert!(own.iter().all(|record| record["scope"] == SCOPE));
    assert_eq!(own.iter().filter(|record| record["action"] == "token.create").count(), 2);
    assert_eq!(
        get(&admin, &format!("?scope={SCOPE}")).await.1["records"].as_array().unwrap().len(),
        7
    );
    let (status, body) = get(&admin, "?scope=acme/shop/dev").await;
    assert_eq!((status, code(&body)), (403, "admin_only"));
    let (status, body) = get(&agent, "").await;
    assert_eq!((status, code(&body)), (403, "admin_only"));
    let (_, other) = get(&other_admin, "").await;
    let other = other["records"].as_array().unwrap();
    assert_eq!(other.len(), 1, "only its own token's creation: {other:#?}");
    assert_eq!(other[0]["scope"], "acme/shop/dev");
    // Pages of two reach every record once, in order.
    let mut seen = Vec::new();
    let mut query = format!("?scope={SCOPE}&limit=2");
    loop {
        let (status, page) = get(&host.operator, &query).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["records"].as_array().unwrap().iter().map(|record| record["id"].clone()));
        match page["next"].as_str() {
            Some(next) => query = format!("?scope={SCOPE}&limit=2&after={next}"),
            None => break,
        }
    }
    let ids: Vec<Value> = own.iter().map(|record| record["id"].clone()).collect();
    assert_eq!(seen, ids);
    // since: only the later records.
    let third = own[2]["at"].as_u64().unwrap();
    let (_, later) = get(&host.operator, &format!("?scope={SCOPE}&since={third}")).await;
    assert!(
        later["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|record| record["at"].as_u64().unwrap() >= third)
    );
    // Bad queries are named.
    for (query, expected) in [
        ("?limit=0", "invalid_query"),
        ("?limit=1001", "invalid_query"),
        ("?after=yesterday", "invalid_query"),
        ("?since=soon", "invalid_query"),
        ("?scope=acme", "invalid_scope"),
        ("?colour=red", "invalid_query"),
    ] {
        let (status, body) = get(&host.operator, query).await;
        assert_eq!((status, code(&body)), (400, expected), "{query}: {body}");
    }
}

#[tokio::test]
async fn records_past_the_retention_are_purged_and_audit_off_records_nothing() {
    let host = start(StoreBackend::Sled, |config| {
        config.audit.retention = Duration::from_millis(300);
        config.maintenance_interval = Duration::from_millis(100);
    })
    .await;
    assert_eq!(host.put_env(&host.operator, "OPENAI_API_KEY", CANARY_ONE).await.0, 200);
    let mut purged = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, page) = host.send("GET", "/v1/audit", &host.operator, None).await;
        if page["records"].as_array().unwrap().is_empty() {
            purged = true;
            break;
        }
    }
    assert!(purged, "records older than the retention are purged");

    let off = start(StoreBackend::Sled, |config| config.audit.enabled = false).await;
    assert_eq!(off.put_env(&off.operator, "OPENAI_API_KEY", CANARY_ONE).await.0, 200);
    let (status, page) = off.client.call("GET", "/v1/audit", Some(&off.operator), None).await;
    assert_eq!(status, 200);
    assert_eq!(page, json!({ "enabled": false, "records": [], "next": null }));
}

/// Runs `platos-host` on `data` with `args`, `stdin` on its input.
fn cli(data: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_platos-host"));
    command
        .args(args)
        .env("PLATOS_DATA_DIR", data)
        .env_remove("PLATOS_PLUGIN_DIR")
        .env_remove("PLATOS_STORE")
        .env("ENCRYPTION_KEY", "0123456789abcdef0123456789abcdef")
        .env_remove("ENCRYPTION_KEY_PREVIOUS");
    support::output_with_input(command, stdin)
}

#[tokio::test]
async fn the_command_line_records_its_changes() {
    let data = tempfile::tempdir().unwrap();
    let set = cli(data.path(), &["env", "set", SCOPE, "OPENAI_API_KEY"], CANARY_ONE);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let again = cli(data.path(), &["env", "set", SCOPE, "OPENAI_API_KEY"], CANARY_TWO);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    let created = cli(data.path(), &["token", "create", "--scope", SCOPE], "");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let token = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let id = token.split('_').nth(1).unwrap().to_owned();
    let revoked = cli(data.path(), &["token", "revoke", &id], "");
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    let unset = cli(data.path(), &["env", "unset", SCOPE, "OPENAI_API_KEY"], "");
    assert!(unset.status.success(), "{}", String::from_utf8_lossy(&unset.stderr));

    let trail = platos_host::store::FileAudit::open_in_data_dir(data.path()).unwrap();
    let query = platos_host::store::AuditQuery { limit: 100, ..Default::default() };
    let records = platos_host::store::AuditTrail::query(&trail, &query).await.unwrap();
    let seen: Vec<(String, Option<String>)> = records
        .iter()
        .map(|record| {
            (record.action.to_string(), record.subject.clone().or(record.variable.clone()))
        })
        .collect();
    let key = Some("OPENAI_API_KEY".to_owned());
    assert_eq!(
        seen,
        [
            ("var.set".to_owned(), key.clone()),
            ("var.rotate".to_owned(), key.clone()),
            ("token.create".to_owned(), Some(id.clone())),
            ("token.revoke".to_owned(), Some(id)),
            ("var.unset".to_owned(), key),
        ]
    );
    for record in &records {
        assert_eq!(record.actor.kind, platos_host::store::audit::ActorKind::Cli);
        assert_eq!(record.outcome, platos_host::store::AuditOutcome::Ok);
    }
    assert_eq!(records[0].provider.as_deref(), Some("openai"));
    drop(trail);
    assert_no_canary(bytes_under(&data.path().join("audit")), "the audit database");
    assert_no_secret(bytes_under(&data.path().join("audit")), &token, "the audit database");
}

#[tokio::test]
async fn a_refused_plugin_is_recorded_with_its_code() {
    let plugins = tempfile::tempdir().unwrap();
    std::fs::write(plugins.path().join("broken.wasm"), b"\0asm not a component").unwrap();
    let plugin_dir = plugins.path().to_owned();
    let host = start(StoreBackend::Sled, |config| {
        config.plugins.plugin_dir = Some(plugin_dir);
    })
    .await;
    assert_eq!(host.server.report().refused_plugins, 1);
    let records = Reader { after: None }.new_records(&host).await;
    let refused: Vec<&Value> =
        records.iter().filter(|record| record["action"] == "plugin.refuse").collect();
    assert_eq!(refused.len(), 1, "{records:#?}");
    assert_eq!(refused[0]["outcome"], "refused");
    assert!(refused[0]["subject"].as_str().unwrap().ends_with("broken.wasm"), "{}", refused[0]);
    assert!(!refused[0]["code"].as_str().unwrap().is_empty());
    let loads = records.iter().filter(|record| record["action"] == "plugin.load").count();
    assert_eq!(loads, host.server.report().plugins.len());
}
