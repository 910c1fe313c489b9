//! The plugin runtime end to end: the OpenAI plugin through the real engine,
//! in its current build (contract 0.2.0) and as the frozen 0.1.0 component
//! kept in `tests/fixtures/v0.1.0` (the same checks, forever), a 0.2.0
//! token-exchange fixture, and hostile plugins against every limit. After
//! each hostile call a good plugin must still answer.

use std::path::Path;
use std::time::Duration;

use platos_host::bundled::BUILT_PLUGIN_DIR;
use platos_host::policy::hosts::OutboundRefusal;
use platos_host::provider::{
    ACCESS_TOKEN_VAR, Credentials, HttpRequest, HttpResponse, Method, ProviderErrorCode, Verdict,
};
use platos_host::runtime::{
    CallError, CallErrorKind, CallLimits, LoadError, Plugin, PluginHost, PluginRegistry,
    RuntimeConfig,
};
use secrecy::ExposeSecret;

mod support;

const CANARY: &str = "sk-canary-7f3a9c1e5b";

/// A canary with upper-case letters (a URL's host is lower-cased) and no
/// characters that need encoding.
const H1_CANARY: &str = "sk-H1Canary-7f3aZ9c1e5bQx";

fn component(stem: &str) -> Vec<u8> {
    let path = Path::new(BUILT_PLUGIN_DIR).join(format!("{stem}.wasm"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The OpenAI plugin as built from its 0.1.0 sources, committed as bytes.
fn frozen_openai_component() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/v0.1.0/openai.wasm");
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn host_with(config: RuntimeConfig) -> PluginHost {
    PluginHost::new(config).expect("the plugin host starts")
}

/// Limits tight enough for the hostile tests to end quickly and loose
/// enough that a legitimate call (a stdio flood, a memory probe reaching its
/// own limit first) still finishes on a loaded 2-core machine, where epoch
/// ticks advance with the wall clock.
fn host() -> PluginHost {
    host_with(RuntimeConfig {
        limits: CallLimits {
            cpu_time: Duration::from_millis(800),
            wall_time: Duration::from_secs(2),
            ..CallLimits::default()
        },
        ..RuntimeConfig::default()
    })
}

async fn openai(host: &PluginHost) -> Plugin {
    host.load(&component("platos_plugin_openai"), "test:openai").await.expect("openai loads")
}

async fn frozen_openai(host: &PluginHost) -> Plugin {
    host.load(&frozen_openai_component(), "test:openai-0.1.0").await.expect("the 0.1.0 build loads")
}

/// The current OpenAI plugin and its frozen 0.1.0 build, loaded once for the
/// whole file (every compile is CPU the limit tests would compete with):
/// every OpenAI check runs on both.
async fn both_openai() -> &'static [Plugin; 2] {
    static PLUGINS: tokio::sync::OnceCell<[Plugin; 2]> = tokio::sync::OnceCell::const_new();
    PLUGINS
        .get_or_init(|| async {
            let host = host();
            [openai(&host).await, frozen_openai(&host).await]
        })
        .await
}

/// A good plugin (OpenAI) and the hostile fixture on one host, loaded once
/// for the whole file, like [`both_openai`].
async fn good_and_hostile() -> &'static (Plugin, Plugin) {
    static PLUGINS: tokio::sync::OnceCell<(Plugin, Plugin)> = tokio::sync::OnceCell::const_new();
    PLUGINS
        .get_or_init(|| async {
            let host = host();
            let hostile = host
                .load(&component("platos_fixture_hostile"), "test:hostile")
                .await
                .expect("hostile loads");
            (openai(&host).await, hostile)
        })
        .await
}

async fn token_exchange(host: &PluginHost) -> Plugin {
    host.load(&component("platos_fixture_h4_token_exchange"), "test:token-exchange")
        .await
        .expect("the token-exchange fixture loads")
}

fn models_request() -> HttpRequest {
    HttpRequest {
        method: Method::Get,
        url: "https://api.openai.com/v1/models".into(),
        headers: vec![("accept".into(), "application/json".into())],
        body: None,
    }
}

fn response(status: u16, body: &str) -> HttpResponse {
    HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
}

/// The good plugin still authorizes correctly.
async fn assert_good_plugin_answers(plugin: &Plugin) {
    let credentials = Credentials::new().with("OPENAI_API_KEY", "sk-good");
    let request =
        plugin.authorize(&credentials, &models_request(), 0).await.expect("good plugin answers");
    assert_eq!(request.header_values("authorization").collect::<Vec<_>>(), ["Bearer sk-good"]);
}

#[tokio::test]
async fn openai_manifest_round_trips_from_its_toml_file() {
    let [plugin, _] = both_openai().await;
    assert_eq!(plugin.id(), "openai@0.2.0");
    assert_eq!(plugin.api_version(), "0.2.0");
    let toml_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/openai.toml");
    let from_file: serde_json::Value =
        basic_toml::from_str(&std::fs::read_to_string(toml_path).unwrap()).unwrap();
    let from_plugin = serde_json::to_value(plugin.manifest()).unwrap();
    assert_eq!(from_plugin, from_file);
}

#[tokio::test]
async fn the_frozen_0_1_0_plugin_loads_with_its_manifest_and_no_additions() {
    let [_, plugin] = both_openai().await;
    assert_eq!(plugin.id(), "openai@0.1.0");
    assert_eq!(plugin.api_version(), "0.1.0");
    let manifest = plugin.manifest();
    let names: Vec<&str> = manifest.env_vars.iter().map(|var| var.name.as_str()).collect();
    assert_eq!(names, ["OPENAI_API_KEY", "OPENAI_API_BASE"]);
    assert_eq!(
        serde_json::to_value(&manifest.auth).unwrap(),
        serde_json::json!({"type": "bearer", "env_var": "OPENAI_API_KEY"})
    );
    assert_eq!(manifest.allowed_hosts, ["api.openai.com"]);
    assert!(manifest.default_models.iter().any(|model| model.id == "gpt-5"));
    // What 0.2.0 added is empty, and serializes as a 0.1.0 manifest did.
    assert!(manifest.env_vars.iter().all(|var| var.aliases.is_empty()));
    assert!(manifest.default_models.iter().all(|model| model.price.is_none()));
    assert!(manifest.clients.is_empty() && manifest.default_client.is_none());
    assert!(!manifest.token_exchange);
    let json = serde_json::to_value(manifest).unwrap();
    for added in ["clients", "default_client", "token_exchange"] {
        assert!(json.get(added).is_none(), "{added} in {json}");
    }
}

#[tokio::test]
async fn authorize_adds_exactly_the_bearer_header() {
    for plugin in both_openai().await {
        let credentials = Credentials::new().with("OPENAI_API_KEY", CANARY);
        let mut request = models_request();
        request.method = Method::Post;
        request.body = Some(b"{\"x\":1}".to_vec());
        let authorized = plugin.authorize(&credentials, &request, 1_700_000_000).await.unwrap();
        assert_eq!(authorized.method, Method::Post);
        assert_eq!(authorized.url, request.url);
        assert_eq!(authorized.body, request.body);
        assert_eq!(
            authorized.headers,
            [
                ("accept".to_owned(), "application/json".to_owned()),
                ("authorization".to_owned(), format!("Bearer {CANARY}")),
            ],
            "{}",
            plugin.id()
        );
        // Same input, same output; an existing Authorization header is replaced.
        let mut with_stale = request.clone();
        with_stale.headers.push(("Authorization".into(), "Bearer stale".into()));
        let again = plugin.authorize(&credentials, &with_stale, 1_700_000_000).await.unwrap();
        assert_eq!(again, authorized);
        // Debug output of both never shows the secret.
        assert!(!format!("{authorized:?} {credentials:?}").contains(CANARY));
    }
}

#[tokio::test]
async fn authorize_without_a_key_names_the_missing_variable() {
    for plugin in both_openai().await {
        let error = plugin.authorize(&Credentials::new(), &models_request(), 0).await.unwrap_err();
        match &error.kind {
            CallErrorKind::Provider(failure) => {
                assert_eq!(failure.code, ProviderErrorCode::MissingCredential);
                assert!(failure.message.contains("OPENAI_API_KEY"), "{failure:?}");
            }
            other => panic!("expected a provider error, got {other:?}"),
        }
        assert!(error.to_string().contains(plugin.id()), "{error}");
    }
}

#[tokio::test]
async fn probe_lists_models_at_the_configured_base() {
    for plugin in both_openai().await {
        let probe =
            plugin.health_probe(&Credentials::new().with("OPENAI_API_KEY", CANARY)).await.unwrap();
        assert_eq!(probe.method, Method::Get);
        assert_eq!(probe.url, "https://api.openai.com/v1/models");
        assert!(probe.headers.is_empty(), "the probe is authorized separately");

        let on_prem = Credentials::new()
            .with("OPENAI_API_KEY", CANARY)
            .with("OPENAI_API_BASE", "http://127.0.0.1:8089/v1/");
        let probe = plugin.health_probe(&on_prem).await.unwrap();
        assert_eq!(probe.url, "http://127.0.0.1:8089/v1/models");
        plugin.authorize(&on_prem, &probe, 0).await.expect("the base URL's origin is allowed");

        let bad_base =
            Credentials::new().with("OPENAI_API_KEY", CANARY).with("OPENAI_API_BASE", "ftp://x");
        let error = plugin.health_probe(&bad_base).await.unwrap_err();
        assert!(
            matches!(&error.kind, CallErrorKind::Provider(failure) if failure.code == ProviderErrorCode::InvalidCredential),
            "{error}"
        );
    }
}

#[tokio::test]
async fn verdicts_on_canned_responses() {
    for plugin in both_openai().await {
        let listing = r#"{"object":"list","data":[{"id":"gpt-5","object":"model"},{"id":"text-embedding-3-small","object":"model"}]}"#;
        match plugin.interpret_health(&Credentials::new(), &response(200, listing)).await.unwrap() {
            Verdict::Healthy { models, .. } => {
                assert_eq!(models, ["gpt-5", "text-embedding-3-small"])
            }
            other => panic!("200 should be healthy: {other:?}"),
        }
        let invalid = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        for (status, body, expected) in [
            (401, invalid, "invalid-credential"),
            (403, r#"{"error":{"message":"forbidden"}}"#, "invalid-credential"),
            (429, r#"{"error":{"type":"insufficient_quota"}}"#, "quota-limited"),
            (500, r#"{"error":{"message":"server error"}}"#, "degraded"),
            (503, "", "degraded"),
            (200, "", "degraded"),
            (200, "<html>not json</html>", "degraded"),
            (0, "connection refused", "unreachable"),
        ] {
            let verdict = plugin
                .interpret_health(&Credentials::new(), &response(status, body))
                .await
                .unwrap();
            let class =
                serde_json::to_value(&verdict).unwrap()["verdict"].as_str().unwrap().to_owned();
            assert_eq!(class, expected, "{}: HTTP {status} {body:?} gave {verdict:?}", plugin.id());
        }
    }
}

/// The answer a 0.1.0 plugin gives for a function its contract lacks.
fn assert_unsupported_by_0_1_0(result: Result<impl std::fmt::Debug, CallError>, function: &str) {
    let error = result.expect_err(function);
    assert_eq!(error.kind.code(), "unsupported_by_contract", "{function}: {error}");
    assert_eq!(error.function, function);
    assert_eq!(
        error.to_string(),
        format!(
            "plugin openai@0.1.0: {function} is not supported by contract 0.1.0 (added in 0.2.0; rebuild the plugin against platos:provider@0.2.0)"
        )
    );
}

#[tokio::test]
async fn the_0_2_0_functions_on_a_0_1_0_plugin_answer_unsupported_not_a_trap() {
    let [_, plugin] = both_openai().await;
    let credentials = Credentials::new().with("OPENAI_API_KEY", CANARY);
    assert_unsupported_by_0_1_0(plugin.token_request(&credentials, 0).await, "token-request");
    assert_unsupported_by_0_1_0(
        plugin.read_token(&Credentials::new(), &response(200, r#"{"access_token":"x"}"#), 0).await,
        "read-token",
    );
    let usage = r#"{"model":"gpt-5","usage":{"prompt_tokens":3,"completion_tokens":4}}"#;
    assert_unsupported_by_0_1_0(
        plugin.read_usage(&models_request(), &response(200, usage)).await,
        "read-usage",
    );
    // The plugin still answers everything else afterwards.
    assert_good_plugin_answers(plugin).await;
}

#[tokio::test]
async fn the_current_openai_plugin_reads_usage_and_has_no_token_exchange() {
    let [plugin, _] = both_openai().await;
    let body = r#"{"model":"gpt-5-2025-08-07","usage":{"prompt_tokens":120,"completion_tokens":30,"prompt_tokens_details":{"cached_tokens":100}}}"#;
    let usage = plugin.read_usage(&models_request(), &response(200, body)).await.unwrap().unwrap();
    assert_eq!((usage.input_tokens, usage.output_tokens, usage.cached_input_tokens), (20, 30, 100));
    assert_eq!(usage.model.as_deref(), Some("gpt-5-2025-08-07"));
    let credentials = Credentials::new().with("OPENAI_API_KEY", CANARY);
    let error = plugin.token_request(&credentials, 0).await.unwrap_err();
    match &error.kind {
        CallErrorKind::Provider(failure) => {
            assert_eq!(failure.code, ProviderErrorCode::Unsupported, "{failure:?}")
        }
        other => panic!("expected the plugin's unsupported error, got {other:?}"),
    }
    assert!(!error.to_string().contains(CANARY));
}

#[tokio::test]
async fn a_token_exchange_plugin_trades_the_secret_and_authorizes_with_the_token() {
    let host = host();
    let plugin = token_exchange(&host).await;
    assert!(plugin.manifest().token_exchange);
    let credentials = Credentials::new().with("H4_CLIENT_SECRET", CANARY);

    let request = plugin.token_request(&credentials, 1_700_000_000).await.unwrap();
    assert_eq!(
        (request.method, request.url.as_str()),
        (Method::Post, "https://auth.token.example/oauth/token")
    );
    let body = String::from_utf8(request.body.clone().unwrap()).unwrap();
    assert_eq!(body, format!("grant_type=client_credentials&client_secret={CANARY}"));
    assert!(!format!("{request:?}").contains(CANARY));
    let error = plugin.token_request(&Credentials::new(), 0).await.unwrap_err();
    assert!(
        matches!(&error.kind, CallErrorKind::Provider(failure) if failure.code == ProviderErrorCode::MissingCredential && failure.message.contains("H4_CLIENT_SECRET")),
        "{error}"
    );

    let token_answer = r#"{"access_token":"at-Zq81xYwV","token_type":"Bearer","expires_in":3600}"#;
    let token =
        plugin.read_token(&credentials, &response(200, token_answer), 1_700_000_000).await.unwrap();
    let token = token.expect("a 200 with a token is a token");
    assert_eq!(token.value.expose_secret(), "at-Zq81xYwV");
    assert_eq!(token.expires_at, 1_700_003_600);
    assert!(!format!("{token:?}").contains("at-Zq81xYwV"), "{token:?}");

    for (status, body, expected) in [
        (401, r#"{"error":"invalid_client"}"#, "invalid-credential"),
        (400, r#"{"error":"invalid_grant","error_description":"expired"}"#, "invalid-credential"),
        (429, "", "quota-limited"),
        (0, "connection refused", "unreachable"),
        (503, "", "degraded"),
        (200, r#"{"token_type":"Bearer"}"#, "degraded"),
        (200, "<html>", "degraded"),
    ] {
        let failure = plugin.read_token(&credentials, &response(status, body), 0).await.unwrap();
        let verdict = failure.expect_err("no token");
        let class = serde_json::to_value(&verdict).unwrap()["verdict"].as_str().unwrap().to_owned();
        assert_eq!(class, expected, "HTTP {status} {body:?} gave {verdict:?}");
    }

    // `authorize` gets the token under the reserved name, never the secret on the wire.
    let with_token = credentials.clone().with(ACCESS_TOKEN_VAR, "at-Zq81xYwV");
    let probe = plugin.health_probe(&with_token).await.unwrap();
    let authorized = plugin.authorize(&with_token, &probe, 0).await.unwrap();
    assert_eq!(
        authorized.header_values("authorization").collect::<Vec<_>>(),
        ["Bearer at-Zq81xYwV"]
    );
    let error = plugin.authorize(&credentials, &probe, 0).await.unwrap_err();
    assert!(error.to_string().contains(ACCESS_TOKEN_VAR), "{error}");

    // A 0.2.0 plugin that keeps the SDK's default `read-usage` says so.
    let error = plugin.read_usage(&probe, &response(200, "{}")).await.unwrap_err();
    assert!(
        matches!(&error.kind, CallErrorKind::Provider(failure) if failure.code == ProviderErrorCode::Unsupported),
        "{error}"
    );
}

/// Runs the hostile plugin's `authorize` in `mode`.
async fn hostile_call(
    plugin: &Plugin,
    mode: &str,
) -> Result<HttpRequest, platos_host::runtime::CallError> {
    let credentials = Credentials::new().with("HOSTILE_KEY", CANARY).with("HOSTILE_MODE", mode);
    let request = HttpRequest::get("https://api.example.com/v1/models");
    plugin.authorize(&credentials, &request, 0).await
}

#[tokio::test]
async fn hostile_plugins_hit_every_limit_and_the_host_keeps_serving() {
    let (good, bad) = good_and_hostile().await;
    for (mode, expected) in [
        ("loop", "cpu_limit"),
        ("memory", "memory_limit"),
        ("big-output", "output_too_large"),
        ("trap", "trap"),
        ("panic", "trap"),
        ("foreign-host", "refused_request"),
        ("sleep", "timeout"),
    ] {
        let error = hostile_call(bad, mode).await.expect_err(mode);
        assert_eq!(error.kind.code(), expected, "{mode}: {error}");
        let message = error.to_string();
        assert!(message.contains("hostile@0.0.1"), "{mode}: {message}");
        assert!(!message.contains(CANARY), "{mode} leaked the secret: {message}");
        assert_good_plugin_answers(good).await;
    }
}

#[tokio::test]
async fn a_panic_reports_the_guest_message_without_the_secret() {
    let (_, bad) = good_and_hostile().await;
    let error = hostile_call(bad, "panic").await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("the hostile fixture panics on purpose"), "{message}");
    assert!(!message.contains(CANARY), "{message}");
}

#[tokio::test]
async fn a_foreign_host_is_refused_before_sending() {
    let (_, bad) = good_and_hostile().await;
    let error = hostile_call(bad, "foreign-host").await.unwrap_err();
    match error.kind {
        CallErrorKind::Refused(OutboundRefusal::ForeignHost { host, allowed }) => {
            assert_eq!(host, "evil.example.net");
            assert_eq!(allowed, "api.example.com");
        }
        other => panic!("expected a foreign-host refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_sandbox_grants_no_filesystem_network_environment_or_args() {
    // SAFETY: set before any thread of this test reads the environment; the
    // point is that the plugin must not see it.
    unsafe { std::env::set_var("PLATOS_TEST_HOST_SECRET", CANARY) };
    let (_, bad) = good_and_hostile().await;
    let report = hostile_call(bad, "sandbox").await.expect("the sandbox probe returns");
    let header = |name: &str| report.header_values(name).next().unwrap_or_default().to_owned();
    for capability in ["x-fs-list", "x-fs-read", "x-net-connect", "x-net-lookup"] {
        assert!(header(capability).starts_with("denied"), "{capability}: {}", header(capability));
    }
    assert_eq!(header("x-env"), "", "the plugin saw environment variables");
    assert_eq!(header("x-args"), "0");

    // A plugin receives only its manifest's variables, whatever the caller
    // hands the host: another provider's key never reaches it.
    let credentials = Credentials::new()
        .with("HOSTILE_KEY", CANARY)
        .with("HOSTILE_MODE", "sandbox")
        .with("ANTHROPIC_API_KEY", "sk-ant-not-yours")
        .with("PATH", "/usr/bin");
    let request = HttpRequest::get("https://api.example.com/v1/models");
    let report = bad.authorize(&credentials, &request, 0).await.unwrap();
    let names = report.header_values("x-credential-names").next().unwrap_or_default().to_owned();
    assert_eq!(names, "HOSTILE_KEY;HOSTILE_MODE");
}

#[tokio::test]
async fn a_chatty_plugin_is_captured_not_failed() {
    let (_, bad) = good_and_hostile().await;
    let request = hostile_call(bad, "flood-stdio").await.expect("flooding stdio is not an error");
    assert_eq!(
        request.header_values("authorization").collect::<Vec<_>>(),
        [format!("Bearer {CANARY}")]
    );
}

#[tokio::test]
async fn a_runaway_plugin_does_not_block_other_calls() {
    let (good, bad) = good_and_hostile().await;
    let (runaway, good_result) = tokio::join!(hostile_call(bad, "loop"), async {
        let credentials = Credentials::new().with("OPENAI_API_KEY", "sk-good");
        good.authorize(&credentials, &models_request(), 0).await
    });
    assert_eq!(runaway.unwrap_err().kind.code(), "cpu_limit");
    good_result.expect("the good plugin answered beside the runaway one");
}

#[tokio::test]
async fn a_forbidden_import_is_refused_at_load_with_its_name() {
    let host = host();
    let error = host
        .load(&component("platos_fixture_forbidden_import"), "test:forbidden")
        .await
        .err()
        .expect("the forbidden import is refused");
    match &error {
        LoadError::DisallowedImports { imports, .. } => {
            assert_eq!(imports, &["platos-fixture:forbidden/raw-net"])
        }
        other => panic!("expected DisallowedImports, got {other}"),
    }
    assert!(error.to_string().contains("test:forbidden"));
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_a_clear_error() {
    let host = host();
    let error = host.load(b"not wasm at all", "test:garbage").await.err().expect("refused");
    assert!(matches!(error, LoadError::Compile { .. }), "{error}");
    assert!(error.to_string().contains("test:garbage"));
}

#[tokio::test]
async fn two_plugins_with_one_slug_are_a_clear_error() {
    let host = host();
    let mut registry = PluginRegistry::new();
    registry.insert(openai(&host).await).unwrap();
    let second = host.load(&component("platos_plugin_openai"), "test:openai-copy").await.unwrap();
    let error = registry.insert(second).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("\"openai\"")
            && message.contains("test:openai")
            && message.contains("test:openai-copy"),
        "{message}"
    );
    assert_eq!(registry.len(), 1);
}

#[tokio::test]
async fn compiled_components_are_cached_across_restarts() {
    let cache = tempfile::tempdir().unwrap();
    let config =
        RuntimeConfig { cache_dir: Some(cache.path().to_owned()), ..RuntimeConfig::default() };
    let first = host_with(config.clone());
    assert!(!openai(&first).await.from_cache(), "a cold cache compiles");
    drop(first);
    let artifacts: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(artifacts.len(), 1, "one artifact written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let artifact = artifacts[0].as_ref().unwrap().path();
        let mode = std::fs::metadata(artifact).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "an artifact is owner-only");
    }

    let restarted = host_with(config.clone());
    let plugin = openai(&restarted).await;
    assert!(plugin.from_cache(), "a restart loads the artifact");
    assert_good_plugin_answers(&plugin).await;

    // A damaged artifact is discarded and recompiled, never trusted.
    let path = artifacts[0].as_ref().unwrap().path();
    std::fs::write(&path, b"garbage").unwrap();
    let plugin = openai(&host_with(config)).await;
    assert!(!plugin.from_cache());
    assert_good_plugin_answers(&plugin).await;
}

#[tokio::test]
async fn bundled_plugins_load_into_the_registry() {
    let host = host();
    let mut registry = PluginRegistry::new();
    platos_host::bundled::load_bundled(&host, &mut registry).await.unwrap();
    let openai = registry.get("openai").expect("openai is bundled");
    assert_eq!(openai.origin(), "bundled:openai");
}

#[tokio::test]
async fn a_0_2_0_manifest_breaking_the_alias_rules_is_refused_at_load() {
    let host = host();
    let error = host
        .load(&component("platos_fixture_h4_bad_aliases"), "test:bad-aliases")
        .await
        .err()
        .expect("the broken aliases are refused");
    match &error {
        LoadError::InvalidManifest { plugin, problems, .. } => {
            assert_eq!(plugin, "h4-bad-aliases@0.2.0");
            assert_eq!(problems.len(), 4, "{problems:#?}");
        }
        other => panic!("expected InvalidManifest, got {other}"),
    }
    assert!(error.to_string().contains("a note-only alias needs a note"), "{error}");
}

async fn secret_echo(host: &PluginHost) -> Plugin {
    host.load(&component("platos_fixture_h1_secret_echo"), "test:h1-secret-echo")
        .await
        .expect("the secret-echo fixture loads")
}

fn echo_credentials(mode: &str) -> Credentials {
    Credentials::new()
        .with("H1_KEY", H1_CANARY)
        .with("H1_MODE", mode)
        .with("H1_BASE", "https://api.h1-echo.example/v1")
}

#[tokio::test]
async fn a_key_put_anywhere_in_a_request_or_error_never_comes_back() {
    let host = host();
    let plugin = secret_echo(&host).await;
    let (_guard, logs) = support::capture_logs();
    let request = HttpRequest::get("https://api.h1-echo.example/v1/models");
    for (mode, code, says) in [
        ("host", "refused_request", "[redacted].evil.example"),
        ("bad-header-name", "refused_request", "header \"x-[redacted] bad\""),
        ("header-name", "secret_out_of_place", "H1_KEY in a header name"),
        ("query", "secret_out_of_place", "H1_KEY in the URL query parameter `leak`"),
        ("other-header", "secret_out_of_place", "H1_KEY in header `x-copy`"),
        ("body", "secret_out_of_place", "H1_KEY in the body"),
        ("percent-url", "secret_out_of_place", "H1_KEY in the URL path"),
        ("base64-url", "secret_out_of_place", "H1_KEY in the URL query parameter `t`"),
        // Base64 keeps its last character, which carries two bits of the key.
        ("error", "plugin_error", "cannot authorize with [redacted] (or [redacted], or [redacted]"),
        ("panic", "trap", "the fixture panics holding [redacted]"),
        ("trap-stderr", "trap", "last words: [redacted] [redacted]"),
    ] {
        let error = plugin.authorize(&echo_credentials(mode), &request, 0).await.expect_err(mode);
        assert_eq!(error.kind.code(), code, "{mode}: {error}");
        let message = error.to_string();
        assert!(message.contains("h1-secret-echo@0.0.1"), "{mode}: {message}");
        assert!(message.contains(says), "{mode}: {message}");
        support::assert_no_secret(&message, H1_CANARY, mode);
        support::assert_no_secret(format!("{error:?}"), H1_CANARY, mode);
    }
    // What the guest printed is logged, redacted.
    plugin.authorize(&echo_credentials("stderr"), &request, 0).await.expect("stderr is no error");
    let logs = logs.lock().unwrap().clone();
    let text = String::from_utf8_lossy(&logs);
    assert!(text.contains("stdout sees [redacted]"), "{text}");
    assert!(text.contains("stderr sees [redacted] and [redacted]"), "{text}");
    support::assert_no_secret(&logs, H1_CANARY, "the log");
}

#[tokio::test]
async fn a_secret_out_of_place_is_refused_even_beside_a_correct_bearer() {
    let host = host();
    let plugin = secret_echo(&host).await;
    let request = HttpRequest::get("https://api.h1-echo.example/v1/models");
    let good = plugin.authorize(&echo_credentials("none"), &request, 0).await.unwrap();
    assert_eq!(
        good.header_values("authorization").collect::<Vec<_>>(),
        [format!("Bearer {H1_CANARY}")]
    );
    let error = plugin.authorize(&echo_credentials("query"), &request, 0).await.unwrap_err();
    match &error.kind {
        CallErrorKind::SecretOutOfPlace { expected, places } => {
            assert_eq!(expected, "`Authorization: Bearer <H1_KEY>`");
            assert_eq!(places, &["H1_KEY in the URL query parameter `leak`"]);
        }
        other => panic!("expected secret_out_of_place, got {other:?}"),
    }

    // The caller's own request carrying the key is refused too, and said so.
    let openai = openai(&host).await;
    let credentials = Credentials::new().with("OPENAI_API_KEY", CANARY);
    let mut mine = models_request();
    mine.headers.push(("x-mine".into(), CANARY.into()));
    let error = openai.authorize(&credentials, &mine, 0).await.unwrap_err();
    assert_eq!(error.kind.code(), "secret_out_of_place");
    let message = error.to_string();
    assert!(
        message.contains(
            "OPENAI_API_KEY in header `x-mine` (already in the request handed to authorize)"
        ),
        "{message}"
    );
    assert!(!message.contains(CANARY), "{message}");
}

fn echo_response(mode: &str, status: u16) -> HttpResponse {
    response(status, &format!("mode={mode};echo=Bearer {H1_CANARY}"))
}

#[tokio::test]
async fn verdicts_that_echo_the_key_are_redacted_against_the_probed_key() {
    let host = host();
    let plugin = secret_echo(&host).await;
    let credentials = echo_credentials("");
    let verdict =
        plugin.interpret_health(&credentials, &echo_response("echo-message", 500)).await.unwrap();
    let message = verdict.message().to_owned();
    assert!(
        message.starts_with("upstream said [redacted]; percent [redacted]; base64 [redacted]"),
        "{message}"
    );
    support::assert_no_secret(&message, H1_CANARY, "the verdict message");

    let verdict =
        plugin.interpret_health(&credentials, &echo_response("echo-models", 200)).await.unwrap();
    let Verdict::Healthy { message, models } = &verdict else { panic!("{verdict:?}") };
    assert_eq!(message, "listed models for Bearer [redacted]");
    assert_eq!(models.last().map(String::as_str), Some("h1-model-ok"));
    assert_eq!(models[0], "[redacted]");
    let all = serde_json::to_string(&verdict).unwrap();
    support::assert_no_secret(&all, H1_CANARY, "the model ids");

    // Without the key's credentials there is nothing to redact against: the
    // host's redaction is what keeps the secret out.
    let unredacted =
        plugin.interpret_health(&Credentials::new(), &echo_response("echo-message", 500)).await;
    assert!(unredacted.unwrap().message().contains(H1_CANARY));

    // The bundled OpenAI plugin quoting an upstream that echoes the key.
    let openai = openai(&host).await;
    let key = Credentials::new().with("OPENAI_API_KEY", "sk-short-Echo");
    for status in [400, 404, 500, 503] {
        let body = r#"{"error":"bad header Authorization: Bearer sk-short-Echo"}"#;
        let verdict = openai.interpret_health(&key, &response(status, body)).await.unwrap();
        assert!(!verdict.message().contains("sk-short-Echo"), "{status}: {verdict:?}");
        assert!(verdict.message().contains("[redacted]"), "{status}: {verdict:?}");
    }
}

#[tokio::test]
async fn list_sizes_count_every_element() {
    // Time enough on a loaded machine: this is about counting, not speed.
    let host = host_with(RuntimeConfig {
        limits: CallLimits {
            cpu_time: Duration::from_secs(10),
            wall_time: Duration::from_secs(20),
            ..CallLimits::default()
        },
        ..RuntimeConfig::default()
    });
    let plugin = secret_echo(&host).await;
    let credentials = echo_credentials("");
    let error = plugin
        .interpret_health(&credentials, &echo_response("empty-models", 200))
        .await
        .unwrap_err();
    match &error.kind {
        CallErrorKind::OutputTooLarge { size, limit } => {
            assert_eq!(
                (*size, *limit),
                (2_500_000 * 16 + 16 + "listed 2,500,000 models".len(), 1 << 20)
            );
        }
        other => panic!("expected output_too_large, got {other:?}"),
    }
    assert!(error.to_string().len() < 300, "{error}");

    let error = plugin
        .interpret_health(&credentials, &echo_response("many-models", 200))
        .await
        .unwrap_err();
    match &error.kind {
        CallErrorKind::TooManyModels { count, limit } => {
            assert_eq!((*count, *limit), (5_000, 4_096))
        }
        other => panic!("expected too_many_models, got {other:?}"),
    }
    assert!(error.to_string().contains("h1-secret-echo@0.0.1"), "{error}");

    // A manifest of 200,000 empty model ids is refused at load, briefly.
    let error = host
        .load(&component("platos_fixture_h1_huge_manifest"), "test:h1-huge-manifest")
        .await
        .err()
        .expect("the huge manifest is refused");
    let message = error.to_string();
    assert!(
        matches!(&error, LoadError::Manifest { call, .. } if matches!(call.kind, CallErrorKind::OutputTooLarge { .. } | CallErrorKind::TooManyModels { .. })),
        "{message}"
    );
    assert!(message.len() < 400, "{} bytes: {}", message.len(), &message[..400.min(message.len())]);
}

/// The host removes a caller's own auth before any plugin authorizes, so
/// a plugin that never learned to (the frozen 0.1.0 build only replaced a
/// header of its own name, and the token-exchange fixture only
/// `authorization`) sends no caller credential beside its own; and it
/// hands the plugin the URL in the form the HTTP client sends.
#[tokio::test]
async fn the_host_strips_a_callers_auth_whatever_the_plugin_does() {
    const CALLER: &str = "caller-stale-Zq81Xv";
    let caller = HttpRequest {
        method: Method::Get,
        url: format!("https://api.openai.com/v1/models/caf\u{e9}?X-Amz-Signature={CALLER}&a=1"),
        headers: vec![
            ("X-Api-Key".into(), CALLER.into()),
            ("api-key".into(), CALLER.into()),
            ("x-goog-api-key".into(), CALLER.into()),
            ("Authorization".into(), format!("Basic {CALLER}")),
            ("x-amz-security-token".into(), CALLER.into()),
            ("accept".into(), "application/json".into()),
        ],
        body: None,
    };
    for plugin in both_openai().await {
        let credentials = Credentials::new().with("OPENAI_API_KEY", "sk-good");
        let authorized = plugin.authorize(&credentials, &caller, 0).await.unwrap();
        assert_eq!(
            authorized.headers,
            [
                ("accept".to_owned(), "application/json".to_owned()),
                ("authorization".to_owned(), "Bearer sk-good".to_owned()),
            ],
            "{}",
            plugin.id()
        );
        assert_eq!(authorized.url, "https://api.openai.com/v1/models/caf%C3%A9?a=1");
    }
    let exchange = token_exchange(&host()).await;
    let credentials = Credentials::new()
        .with("H4_CLIENT_SECRET", "s3cret-value-0123")
        .with(platos_host::provider::ACCESS_TOKEN_VAR, "at-live-token-0123");
    let request = HttpRequest { url: "https://api.token.example/v1/models".into(), ..caller };
    let authorized = exchange.authorize(&credentials, &request, 0).await.unwrap();
    let text = format!("{} {:?}", authorized.url, authorized.headers);
    assert!(!text.contains(CALLER), "{text}");
    assert_eq!(authorized.header_values("authorization").count(), 1, "{text}");
}
