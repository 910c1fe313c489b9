//! The plugin runtime end to end: the OpenAI plugin through the real engine,
//! and hostile plugins against every limit. After each hostile call a good
//! plugin must still answer.

use std::path::Path;
use std::time::Duration;

use platos_host::bundled::BUILT_PLUGIN_DIR;
use platos_host::policy::hosts::OutboundRefusal;
use platos_host::provider::{
    Credentials, HttpRequest, HttpResponse, Method, ProviderErrorCode, Verdict,
};
use platos_host::runtime::{
    CallErrorKind, CallLimits, LoadError, Plugin, PluginHost, PluginRegistry, RuntimeConfig,
};

const CANARY: &str = "sk-canary-7f3a9c1e5b";

fn component(stem: &str) -> Vec<u8> {
    let path = Path::new(BUILT_PLUGIN_DIR).join(format!("{stem}.wasm"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn host_with(config: RuntimeConfig) -> PluginHost {
    PluginHost::new(config).expect("the plugin host starts")
}

fn host() -> PluginHost {
    host_with(RuntimeConfig {
        limits: CallLimits {
            cpu_time: Duration::from_millis(200),
            wall_time: Duration::from_secs(1),
            ..CallLimits::default()
        },
        ..RuntimeConfig::default()
    })
}

async fn openai(host: &PluginHost) -> Plugin {
    host.load(&component("platos_plugin_openai"), "test:openai").await.expect("openai loads")
}

async fn hostile(host: &PluginHost) -> Plugin {
    host.load(&component("platos_fixture_hostile"), "test:hostile").await.expect("hostile loads")
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
    let host = host();
    let plugin = openai(&host).await;
    assert_eq!(plugin.id(), "openai@0.1.0");
    assert_eq!(plugin.api_version(), "0.1.0");
    let toml_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/openai.toml");
    let from_file: serde_json::Value =
        basic_toml::from_str(&std::fs::read_to_string(toml_path).unwrap()).unwrap();
    let from_plugin = serde_json::to_value(plugin.manifest()).unwrap();
    assert_eq!(from_plugin, from_file);
}

#[tokio::test]
async fn authorize_adds_exactly_the_bearer_header() {
    let host = host();
    let plugin = openai(&host).await;
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
        ]
    );
    // Same input, same output; an existing Authorization header is replaced.
    let mut with_stale = request.clone();
    with_stale.headers.push(("Authorization".into(), "Bearer stale".into()));
    let again = plugin.authorize(&credentials, &with_stale, 1_700_000_000).await.unwrap();
    assert_eq!(again, authorized);
    // Debug output of both never shows the secret.
    assert!(!format!("{authorized:?} {credentials:?}").contains(CANARY));
}

#[tokio::test]
async fn authorize_without_a_key_names_the_missing_variable() {
    let host = host();
    let plugin = openai(&host).await;
    let error = plugin.authorize(&Credentials::new(), &models_request(), 0).await.unwrap_err();
    match &error.kind {
        CallErrorKind::Provider(failure) => {
            assert_eq!(failure.code, ProviderErrorCode::MissingCredential);
            assert!(failure.message.contains("OPENAI_API_KEY"), "{failure:?}");
        }
        other => panic!("expected a provider error, got {other:?}"),
    }
    assert!(error.to_string().contains("openai@0.1.0"));
}

#[tokio::test]
async fn probe_lists_models_at_the_configured_base() {
    let host = host();
    let plugin = openai(&host).await;
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

#[tokio::test]
async fn verdicts_on_canned_responses() {
    let host = host();
    let plugin = openai(&host).await;
    let listing = r#"{"object":"list","data":[{"id":"gpt-5","object":"model"},{"id":"text-embedding-3-small","object":"model"}]}"#;
    match plugin.interpret_health(&response(200, listing)).await.unwrap() {
        Verdict::Healthy { models, .. } => assert_eq!(models, ["gpt-5", "text-embedding-3-small"]),
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
        let verdict = plugin.interpret_health(&response(status, body)).await.unwrap();
        let class = serde_json::to_value(&verdict).unwrap()["verdict"].as_str().unwrap().to_owned();
        assert_eq!(class, expected, "HTTP {status} {body:?} gave {verdict:?}");
    }
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
    let host = host();
    let good = openai(&host).await;
    let bad = hostile(&host).await;
    for (mode, expected) in [
        ("loop", "cpu_limit"),
        ("memory", "memory_limit"),
        ("big-output", "output_too_large"),
        ("trap", "trap"),
        ("panic", "trap"),
        ("foreign-host", "refused_request"),
        ("sleep", "timeout"),
    ] {
        let error = hostile_call(&bad, mode).await.expect_err(mode);
        assert_eq!(error.kind.code(), expected, "{mode}: {error}");
        let message = error.to_string();
        assert!(message.contains("hostile@0.0.1"), "{mode}: {message}");
        assert!(!message.contains(CANARY), "{mode} leaked the secret: {message}");
        assert_good_plugin_answers(&good).await;
    }
}

#[tokio::test]
async fn a_panic_reports_the_guest_message_without_the_secret() {
    let host = host();
    let bad = hostile(&host).await;
    let error = hostile_call(&bad, "panic").await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("the hostile fixture panics on purpose"), "{message}");
    assert!(!message.contains(CANARY), "{message}");
}

#[tokio::test]
async fn a_foreign_host_is_refused_before_sending() {
    let host = host();
    let bad = hostile(&host).await;
    let error = hostile_call(&bad, "foreign-host").await.unwrap_err();
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
    let host = host();
    let bad = hostile(&host).await;
    let report = hostile_call(&bad, "sandbox").await.expect("the sandbox probe returns");
    let header = |name: &str| report.header_values(name).next().unwrap_or_default().to_owned();
    for capability in ["x-fs-list", "x-fs-read", "x-net-connect", "x-net-lookup"] {
        assert!(header(capability).starts_with("denied"), "{capability}: {}", header(capability));
    }
    assert_eq!(header("x-env"), "", "the plugin saw environment variables");
    assert_eq!(header("x-args"), "0");
}

#[tokio::test]
async fn a_chatty_plugin_is_captured_not_failed() {
    let host = host();
    let bad = hostile(&host).await;
    let request = hostile_call(&bad, "flood-stdio").await.expect("flooding stdio is not an error");
    assert_eq!(
        request.header_values("authorization").collect::<Vec<_>>(),
        [format!("Bearer {CANARY}")]
    );
}

#[tokio::test]
async fn a_runaway_plugin_does_not_block_other_calls() {
    let host = host();
    let good = openai(&host).await;
    let bad = hostile(&host).await;
    let (runaway, good_result) = tokio::join!(hostile_call(&bad, "loop"), async {
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
