//! The bundled provider plugins through the real runtime: each manifest loads,
//! validates and matches its TOML file; `authorize` adds exactly the declared
//! auth; the probe asks the right URL; and verdicts on canned responses shaped
//! like each provider's documented answers (success, bad key, quota, server
//! error, malformed body, empty body, transport failure) are right and never
//! carry a secret.

use std::path::Path;
use std::process::Command;

use platos_host::bundled::BUNDLED_PLUGINS;
use platos_host::provider::{
    Credentials, HttpRequest, HttpResponse, Method, ProviderErrorCode, Verdict,
};
use platos_host::runtime::{
    CallError, CallErrorKind, Plugin, PluginHost, PluginRegistry, RuntimeConfig,
};
use sha2::{Digest, Sha256};

/// A key no verdict, message or refused request may ever show.
const CANARY: &str = "sk-canary-Q7x9Lm2Pz4Rt8Vw6";
/// 2023-11-14T22:13:20Z.
const NOW: u64 = 1_700_000_000;

/// Every bundled plugin with the env var names `plugin list` must show.
const BUNDLED: &[(&str, &[&str])] = &[
    ("anthropic", &["ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"]),
    (
        "azure-openai",
        &["AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_API_VERSION"],
    ),
    ("bedrock", &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION"]),
    ("google", &["GOOGLE_GENERATIVE_AI_API_KEY", "GOOGLE_GENERATIVE_AI_BASE_URL"]),
    ("openai", &["OPENAI_API_KEY", "OPENAI_API_BASE"]),
    ("openai-compatible", &["OPENAI_COMPATIBLE_BASE_URL", "OPENAI_COMPATIBLE_API_KEY"]),
    ("voyage", &["VOYAGE_API_KEY", "VOYAGE_API_BASE"]),
];

async fn registry() -> PluginRegistry {
    let host = PluginHost::new(RuntimeConfig::default()).expect("the plugin host starts");
    let mut registry = PluginRegistry::new();
    platos_host::bundled::load_bundled(&host, &mut registry).await.expect("bundled plugins load");
    registry
}

/// One bundled plugin, loaded alone (compiling all seven takes a while).
async fn plugin(slug: &str) -> Plugin {
    let host = PluginHost::new(RuntimeConfig::default()).expect("the plugin host starts");
    let (_, wasm) = BUNDLED_PLUGINS
        .iter()
        .find(|(name, _)| *name == slug)
        .unwrap_or_else(|| panic!("{slug} is bundled"));
    host.load(wasm, &format!("bundled:{slug}")).await.expect("the plugin loads")
}

fn get(url: &str) -> HttpRequest {
    HttpRequest {
        method: Method::Get,
        url: url.into(),
        headers: vec![("accept".into(), "application/json".into())],
        body: None,
    }
}

fn response(status: u16, body: &str) -> HttpResponse {
    HttpResponse { status, headers: vec![], body: body.as_bytes().to_vec() }
}

fn class(verdict: &Verdict) -> String {
    serde_json::to_value(verdict).unwrap()["verdict"].as_str().unwrap().to_owned()
}

/// Checks each `(status, body, expected verdict class)` and that no message
/// repeats the canary (some bodies echo it, as careless servers do).
async fn assert_verdicts(plugin: &Plugin, cases: &[(u16, &str, &str)]) {
    for (status, body, expected) in cases {
        let verdict =
            plugin.interpret_health(&Credentials::new(), &response(*status, body)).await.unwrap();
        assert_eq!(
            class(&verdict),
            *expected,
            "{}: HTTP {status} {body:?} gave {verdict:?}",
            plugin.slug()
        );
        assert!(!verdict.message().contains(CANARY), "{verdict:?} leaks the key");
        assert!(!verdict.message().is_empty());
    }
}

/// The headers `authorize` added (the request's own headers come first, unchanged).
fn added(before: &HttpRequest, after: &HttpRequest) -> Vec<(String, String)> {
    assert_eq!(after.method, before.method);
    assert_eq!(after.body, before.body);
    assert!(after.headers.starts_with(&before.headers), "{:?}", after.headers);
    after.headers[before.headers.len()..].to_vec()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

fn provider_error(error: &CallError) -> (ProviderErrorCode, String) {
    match &error.kind {
        CallErrorKind::Provider(failure) => (failure.code, failure.message.clone()),
        other => panic!("expected a provider error, got {other:?}"),
    }
}

#[tokio::test]
async fn every_bundled_manifest_loads_validates_and_matches_its_file() {
    let registry = registry().await;
    let slugs: Vec<&str> = registry.iter().map(Plugin::slug).collect();
    let expected: Vec<&str> = BUNDLED.iter().map(|(slug, _)| *slug).collect();
    assert_eq!(slugs, expected);
    for (slug, vars) in BUNDLED {
        let plugin = registry.get(slug).unwrap();
        assert_eq!(plugin.id(), format!("{slug}@0.2.0"));
        assert_eq!(plugin.origin(), format!("bundled:{slug}"));
        let manifest = plugin.manifest();
        platos_host::policy::manifest::validate(manifest).expect("the manifest validates");
        let names: Vec<&str> = manifest.env_vars.iter().map(|var| var.name.as_str()).collect();
        assert_eq!(names, *vars);
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../manifests/{slug}.toml"));
        let from_file: serde_json::Value =
            basic_toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(serde_json::to_value(manifest).unwrap(), from_file, "{}", path.display());
        for model in &manifest.default_models {
            assert!(manifest.model_classes.contains(&model.class), "{slug}: {}", model.id);
        }
    }
}

#[tokio::test]
async fn plugin_list_shows_all_seven_plugins_with_their_env_vars() {
    let data = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_platos-host"))
            .args(args)
            .env("PLATOS_DATA_DIR", data.path())
            .env_remove("PLATOS_PLUGIN_DIR")
            .env("PLATOS_LOG", "warn")
            .output()
            .expect("the binary runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    };
    let list: serde_json::Value =
        serde_json::from_slice(&run(&["plugin", "list", "--json"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), BUNDLED.len(), "{list:?}");
    for (slug, vars) in BUNDLED {
        let entry = list.iter().find(|entry| entry["slug"] == *slug).expect(slug);
        assert_eq!(entry["env_vars"], serde_json::json!(vars), "{slug}");
    }
    let text = String::from_utf8(run(&["plugin", "list"])).unwrap();
    for (slug, vars) in BUNDLED {
        let line = text.lines().find(|line| line.starts_with(&format!("{slug} "))).expect(&text);
        for var in *vars {
            assert!(line.contains(var), "{line}");
        }
    }
    assert!(
        text.contains("[ANTHROPIC_BASE_URL]") && text.contains(" AZURE_OPENAI_ENDPOINT"),
        "{text}"
    );
}

#[tokio::test]
async fn anthropic() {
    let plugin = plugin("anthropic").await;
    let credentials = Credentials::new().with("ANTHROPIC_API_KEY", CANARY);

    let request = get("https://api.anthropic.com/v1/messages");
    let authorized = plugin.authorize(&credentials, &request, NOW).await.unwrap();
    assert_eq!(authorized.url, request.url);
    assert_eq!(
        added(&request, &authorized),
        pairs(&[("x-api-key", CANARY), ("anthropic-version", "2023-06-01")])
    );
    // A caller's own anthropic-version stays; a stale key is replaced.
    let mut pinned = request.clone();
    pinned.headers.push(("Anthropic-Version".into(), "2023-01-01".into()));
    pinned.headers.push(("X-Api-Key".into(), "stale".into()));
    let again = plugin.authorize(&credentials, &pinned, NOW).await.unwrap();
    assert_eq!(again.header_values("anthropic-version").collect::<Vec<_>>(), ["2023-01-01"]);
    assert_eq!(again.header_values("x-api-key").collect::<Vec<_>>(), [CANARY]);
    let (code, message) =
        provider_error(&plugin.authorize(&Credentials::new(), &request, NOW).await.unwrap_err());
    assert_eq!(code, ProviderErrorCode::MissingCredential);
    assert!(message.contains("ANTHROPIC_API_KEY"));

    let probe = plugin.health_probe(&credentials).await.unwrap();
    assert_eq!(
        (probe.method, probe.url.as_str()),
        (Method::Get, "https://api.anthropic.com/v1/models?limit=1000")
    );
    assert!(probe.headers.is_empty() && probe.body.is_none());
    let proxied = credentials.clone().with("ANTHROPIC_BASE_URL", "http://127.0.0.1:8089/");
    let probe = plugin.health_probe(&proxied).await.unwrap();
    assert_eq!(probe.url, "http://127.0.0.1:8089/v1/models?limit=1000");
    plugin.authorize(&proxied, &probe, NOW).await.expect("the base URL's origin is allowed");

    let listing = r#"{"data":[{"type":"model","id":"claude-sonnet-4-5-20250929","display_name":"Claude Sonnet 4.5","created_at":"2025-09-29T00:00:00Z"},{"type":"model","id":"claude-haiku-4-5-20251001","display_name":"Claude Haiku 4.5","created_at":"2025-10-01T00:00:00Z"}],"has_more":false,"first_id":"claude-sonnet-4-5-20250929","last_id":"claude-haiku-4-5-20251001"}"#;
    match plugin.interpret_health(&Credentials::new(), &response(200, listing)).await.unwrap() {
        Verdict::Healthy { models, .. } => {
            assert_eq!(models, ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"])
        }
        other => panic!("{other:?}"),
    }
    let error = |kind: &str, message: &str| {
        format!(
            r#"{{"type":"error","error":{{"type":"{kind}","message":"{message}"}},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}}"#
        )
    };
    let bad_key = error("authentication_error", &format!("invalid x-api-key {CANARY}"));
    let forbidden = error(
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    );
    let limited = error(
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
    );
    let no_credit = error(
        "invalid_request_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
    );
    let bad_request =
        error("invalid_request_error", "limit: Input should be less than or equal to 1000");
    let server = error("api_error", "Internal server error");
    let overloaded = error("overloaded_error", "Overloaded");
    let echo = format!("upstream said: key={CANARY}");
    assert_verdicts(
        &plugin,
        &[
            (401, &bad_key, "invalid-credential"),
            (403, &forbidden, "invalid-credential"),
            (429, &limited, "quota-limited"),
            (402, &error("billing_error", "billing"), "quota-limited"),
            (400, &no_credit, "quota-limited"),
            (400, &bad_request, "degraded"),
            (500, &server, "degraded"),
            (529, &overloaded, "degraded"),
            (502, &echo, "degraded"),
            (200, r#"{"data":"nope"}"#, "degraded"),
            (200, "<html>captive portal</html>", "degraded"),
            (200, "", "degraded"),
            (500, "", "degraded"),
            (0, "connection refused", "unreachable"),
            (0, "", "unreachable"),
        ],
    )
    .await;
    let verdict =
        plugin.interpret_health(&Credentials::new(), &response(529, &overloaded)).await.unwrap();
    assert!(verdict.message().contains("overloaded_error"), "{verdict:?}");
}

#[tokio::test]
async fn google() {
    let plugin = plugin("google").await;
    let credentials = Credentials::new().with("GOOGLE_GENERATIVE_AI_API_KEY", CANARY);

    let request = get(
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent",
    );
    let authorized = plugin.authorize(&credentials, &request, NOW).await.unwrap();
    assert_eq!(authorized.url, request.url, "the key never goes in the URL");
    assert_eq!(added(&request, &authorized), pairs(&[("x-goog-api-key", CANARY)]));

    let probe = plugin.health_probe(&credentials).await.unwrap();
    assert_eq!(probe.method, Method::Get);
    assert_eq!(probe.url, "https://generativelanguage.googleapis.com/v1beta/models?pageSize=1000");
    assert!(probe.headers.is_empty());
    plugin.authorize(&credentials, &probe, NOW).await.unwrap();

    let listing = r#"{"models":[{"name":"models/gemini-2.5-flash","version":"001","displayName":"Gemini 2.5 Flash","inputTokenLimit":1048576,"outputTokenLimit":65536,"supportedGenerationMethods":["generateContent","countTokens"]},{"name":"models/gemini-embedding-001","version":"001","displayName":"Gemini Embedding 001","inputTokenLimit":2048,"outputTokenLimit":1,"supportedGenerationMethods":["embedContent"]}],"nextPageToken":""}"#;
    match plugin.interpret_health(&Credentials::new(), &response(200, listing)).await.unwrap() {
        Verdict::Healthy { models, .. } => {
            assert_eq!(models, ["gemini-2.5-flash", "gemini-embedding-001"])
        }
        other => panic!("{other:?}"),
    }
    let bad_key = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}},{"@type":"type.googleapis.com/google.rpc.LocalizedMessage","locale":"en-US","message":"API key not valid. Please pass a valid API key."}]}}"#;
    let bad_key_no_details = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT"}}"#;
    let location = r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#;
    let bad_page =
        r#"{"error":{"code":400,"message":"Invalid page size","status":"INVALID_ARGUMENT"}}"#;
    let denied = r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.","status":"PERMISSION_DENIED"}}"#;
    let exhausted = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details.","status":"RESOURCE_EXHAUSTED"}}"#;
    let internal =
        r#"{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}"#;
    let unavailable = r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#;
    assert_verdicts(
        &plugin,
        &[
            (400, bad_key, "invalid-credential"),
            (400, bad_key_no_details, "invalid-credential"),
            (400, location, "degraded"),
            (400, bad_page, "degraded"),
            (403, denied, "invalid-credential"),
            (401, "", "invalid-credential"),
            (429, exhausted, "quota-limited"),
            (500, internal, "degraded"),
            (503, unavailable, "degraded"),
            (200, r#"{"models":"gemini"}"#, "degraded"),
            (200, "{}", "degraded"),
            (200, "not json", "degraded"),
            (200, "", "degraded"),
            (0, "dns error: no such host", "unreachable"),
        ],
    )
    .await;
    let verdict =
        plugin.interpret_health(&Credentials::new(), &response(400, bad_key)).await.unwrap();
    assert!(verdict.message().contains("API_KEY_INVALID"), "{verdict:?}");
}

#[tokio::test]
async fn voyage() {
    let plugin = plugin("voyage").await;
    let credentials = Credentials::new().with("VOYAGE_API_KEY", CANARY);
    let manifest = plugin.manifest();
    assert!(manifest.probe_cost.as_deref().is_some_and(|cost| cost.contains("token")));

    let probe = plugin.health_probe(&credentials).await.unwrap();
    assert_eq!(probe.method, Method::Post);
    assert_eq!(probe.url, "https://api.voyageai.com/v1/embeddings");
    assert_eq!(probe.headers, pairs(&[("content-type", "application/json")]));
    let body: serde_json::Value = serde_json::from_slice(probe.body.as_deref().unwrap()).unwrap();
    assert_eq!(body, serde_json::json!({"input": ["ping"], "model": "voyage-3.5-lite"}));
    let authorized = plugin.authorize(&credentials, &probe, NOW).await.unwrap();
    assert_eq!(authorized.url, probe.url);
    assert_eq!(
        added(&probe, &authorized),
        pairs(&[("authorization", &format!("Bearer {CANARY}"))])
    );

    let embedded = r#"{"object":"list","data":[{"object":"embedding","embedding":[0.0123,-0.0456,0.0789],"index":0}],"model":"voyage-3.5-lite","usage":{"total_tokens":1}}"#;
    match plugin.interpret_health(&Credentials::new(), &response(200, embedded)).await.unwrap() {
        Verdict::Healthy { message, models } => {
            assert!(models.is_empty());
            assert!(
                message.contains("voyage-3.5-lite") && message.contains("1 tokens"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    let bad_key = format!(r#"{{"detail":"Provided API key is invalid: {CANARY}"}}"#);
    assert_verdicts(
        &plugin,
        &[
            (401, &bad_key, "invalid-credential"),
            (403, r#"{"detail":"Forbidden"}"#, "invalid-credential"),
            (429, r#"{"detail":"You have exceeded your rate limit (TPM)."}"#, "quota-limited"),
            (402, "", "quota-limited"),
            (500, r#"{"detail":"Internal server error"}"#, "degraded"),
            (503, "<html>503 Service Unavailable</html>", "degraded"),
            (400, r#"{"detail":"Model voyage-3.5-lite is not supported"}"#, "degraded"),
            (200, r#"{"object":"list","data":[]}"#, "degraded"),
            (200, r#"{"data":[{"embedding":[]}]}"#, "degraded"),
            (200, "<html>ok</html>", "degraded"),
            (200, "", "degraded"),
            (0, "operation timed out", "unreachable"),
        ],
    )
    .await;
}

#[tokio::test]
async fn azure_openai() {
    let plugin = plugin("azure-openai").await;
    let endpoint = "https://contoso-eus.openai.azure.com/";
    let credentials = Credentials::new()
        .with("AZURE_OPENAI_API_KEY", CANARY)
        .with("AZURE_OPENAI_ENDPOINT", endpoint);

    let request =
        get("https://contoso-eus.openai.azure.com/openai/deployments/gpt-4o/chat/completions");
    let authorized = plugin.authorize(&credentials, &request, NOW).await.unwrap();
    assert_eq!(authorized.url, format!("{}?api-version=2024-10-21", request.url));
    assert_eq!(added(&request, &authorized), pairs(&[("api-key", CANARY)]));
    // An api-version already on the URL stays; a configured one is used otherwise.
    let pinned =
        get("https://contoso-eus.openai.azure.com/openai/models?api-version=2025-04-01-preview");
    assert_eq!(plugin.authorize(&credentials, &pinned, NOW).await.unwrap().url, pinned.url);
    let preview = credentials.clone().with("AZURE_OPENAI_API_VERSION", "2025-04-01-preview");
    let with_query =
        get("https://contoso-eus.openai.azure.com/openai/deployments/e/embeddings?x=1");
    assert_eq!(
        plugin.authorize(&preview, &with_query, NOW).await.unwrap().url,
        format!("{}&api-version=2025-04-01-preview", with_query.url)
    );
    let injected = credentials.clone().with("AZURE_OPENAI_API_VERSION", "1&key=x");
    let (code, message) =
        provider_error(&plugin.authorize(&injected, &request, NOW).await.unwrap_err());
    assert_eq!(code, ProviderErrorCode::InvalidCredential);
    assert!(message.contains("AZURE_OPENAI_API_VERSION"));
    // Any resource under openai.azure.com, and nothing else, is reachable.
    plugin
        .authorize(&credentials, &get("https://other.openai.azure.com/openai/models"), NOW)
        .await
        .unwrap();
    let refused =
        plugin.authorize(&credentials, &get("https://evil.example.com/openai/models"), NOW).await;
    assert!(matches!(refused.unwrap_err().kind, CallErrorKind::Refused(_)));

    let probe = plugin.health_probe(&credentials).await.unwrap();
    assert_eq!(probe.method, Method::Get);
    assert_eq!(
        probe.url,
        "https://contoso-eus.openai.azure.com/openai/models?api-version=2024-10-21"
    );
    let authorized = plugin.authorize(&credentials, &probe, NOW).await.unwrap();
    assert_eq!(authorized.url, probe.url);
    let foundry = Credentials::new()
        .with("AZURE_OPENAI_API_KEY", CANARY)
        .with("AZURE_OPENAI_ENDPOINT", "https://contoso.cognitiveservices.azure.com/openai");
    let probe = plugin.health_probe(&foundry).await.unwrap();
    assert_eq!(
        probe.url,
        "https://contoso.cognitiveservices.azure.com/openai/models?api-version=2024-10-21"
    );
    plugin.authorize(&foundry, &probe, NOW).await.expect("the configured endpoint is allowed");
    let no_endpoint = Credentials::new().with("AZURE_OPENAI_API_KEY", CANARY);
    let (code, message) = provider_error(&plugin.health_probe(&no_endpoint).await.unwrap_err());
    assert_eq!(code, ProviderErrorCode::MissingCredential);
    assert!(message.contains("AZURE_OPENAI_ENDPOINT"));

    let listing = r#"{"data":[{"status":"succeeded","capabilities":{"fine_tune":false,"inference":true,"completion":false,"chat_completion":true,"embeddings":false},"lifecycle_status":"generally-available","id":"gpt-4o-2024-08-06","created_at":1722902400,"object":"model"},{"status":"succeeded","capabilities":{"embeddings":true},"id":"text-embedding-3-small","object":"model"}],"object":"list"}"#;
    match plugin.interpret_health(&Credentials::new(), &response(200, listing)).await.unwrap() {
        Verdict::Healthy { models, .. } => {
            assert_eq!(models, ["gpt-4o-2024-08-06", "text-embedding-3-small"])
        }
        other => panic!("{other:?}"),
    }
    let denied = r#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}"#;
    let limited = r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current pricing tier."}}"#;
    let not_found = r#"{"error":{"code":"404","message":"Resource not found"}}"#;
    assert_verdicts(
        &plugin,
        &[
            (401, denied, "invalid-credential"),
            (
                403,
                r#"{"error":{"code":"403","message":"Public access is disabled."}}"#,
                "invalid-credential",
            ),
            (429, limited, "quota-limited"),
            (404, not_found, "degraded"),
            (500, r#"{"error":{"code":"InternalServerError","message":"oops"}}"#, "degraded"),
            (503, "", "degraded"),
            (200, "<html>Azure portal</html>", "degraded"),
            (200, "", "degraded"),
            (0, "tls handshake failed", "unreachable"),
        ],
    )
    .await;
    let verdict =
        plugin.interpret_health(&Credentials::new(), &response(404, not_found)).await.unwrap();
    assert!(verdict.message().contains("AZURE_OPENAI_ENDPOINT"), "{verdict:?}");
}

/// HMAC-SHA256, written out so the test checks Bedrock's signatures with
/// code of its own rather than the plugin's.
fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(data).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().to_vec()
}

#[tokio::test]
async fn bedrock() {
    let plugin = plugin("bedrock").await;
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let credentials = Credentials::new()
        .with("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .with("AWS_SECRET_ACCESS_KEY", secret);

    let probe = plugin.health_probe(&credentials).await.unwrap();
    assert_eq!(probe.method, Method::Get);
    assert_eq!(probe.url, "https://bedrock.us-east-1.amazonaws.com/foundation-models");
    assert!(probe.headers.is_empty() && probe.body.is_none());
    let frankfurt = credentials.clone().with("AWS_REGION", "eu-central-1");
    assert_eq!(
        plugin.health_probe(&frankfurt).await.unwrap().url,
        "https://bedrock.eu-central-1.amazonaws.com/foundation-models"
    );
    let bad_region = credentials.clone().with("AWS_REGION", "evil.com/x");
    let (code, message) = provider_error(&plugin.health_probe(&bad_region).await.unwrap_err());
    assert_eq!(code, ProviderErrorCode::InvalidCredential);
    assert!(message.contains("AWS_REGION"));

    // The probe, signed: x-amz-date and an Authorization header whose
    // signature the test recomputes on its own.
    let signed = plugin.authorize(&credentials, &probe, NOW).await.unwrap();
    assert_eq!(signed.url, probe.url);
    let headers = added(&probe, &signed);
    assert_eq!(headers.len(), 2, "{headers:?}");
    assert_eq!(headers[0], ("x-amz-date".to_owned(), "20231114T221320Z".to_owned()));
    let canonical = "GET\n/foundation-models\n\nhost:bedrock.us-east-1.amazonaws.com\nx-amz-date:20231114T221320Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n20231114T221320Z\n20231114/us-east-1/bedrock/aws4_request\n{}",
        hex::encode(Sha256::digest(canonical))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), b"20231114");
    for part in ["us-east-1", "bedrock", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    assert_eq!(
        headers[1],
        (
            "authorization".to_owned(),
            format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}"
            )
        )
    );
    // Deterministic for equal inputs, different for another time; the secret
    // is never sent.
    assert_eq!(plugin.authorize(&credentials, &probe, NOW).await.unwrap(), signed);
    assert_ne!(plugin.authorize(&credentials, &probe, NOW + 1).await.unwrap(), signed);
    assert!(!format!("{} {:?}", signed.url, signed.headers).contains(secret));

    // The runtime endpoint, with a session token and a body: the token is
    // sent and signed, and so is the content type.
    let with_token = credentials.clone().with("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjEXAMPLE");
    let invoke = HttpRequest {
        method: Method::Post,
        url: "https://bedrock-runtime.eu-west-3.amazonaws.com/model/amazon.titan-embed-text-v2:0/invoke".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(br#"{"inputText":"ping"}"#.to_vec()),
    };
    let signed = plugin.authorize(&with_token, &invoke, NOW).await.unwrap();
    let headers = added(&invoke, &signed);
    assert_eq!(
        headers[1],
        ("x-amz-security-token".to_owned(), "IQoJb3JpZ2luX2VjEXAMPLE".to_owned())
    );
    assert!(
        headers[2].1.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-3/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="
        ),
        "{headers:?}"
    );

    // Foreign hosts are refused by the plugin itself; missing keys are named.
    let foreign = get("https://bedrock.us-east-1.amazonaws.com.evil.net/foundation-models");
    let (code, _) =
        provider_error(&plugin.authorize(&credentials, &foreign, NOW).await.unwrap_err());
    assert_eq!(code, ProviderErrorCode::InvalidRequest);
    let no_secret = Credentials::new().with("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
    let (code, message) =
        provider_error(&plugin.authorize(&no_secret, &probe, NOW).await.unwrap_err());
    assert_eq!(code, ProviderErrorCode::MissingCredential);
    assert!(message.contains("AWS_SECRET_ACCESS_KEY"));

    let listing = r#"{"modelSummaries":[{"modelArn":"arn:aws:bedrock:us-east-1::foundation-model/amazon.titan-embed-text-v2:0","modelId":"amazon.titan-embed-text-v2:0","modelName":"Titan Text Embeddings V2","providerName":"Amazon","inputModalities":["TEXT"],"outputModalities":["EMBEDDING"],"responseStreamingSupported":false,"customizationsSupported":[],"inferenceTypesSupported":["ON_DEMAND"],"modelLifecycle":{"status":"ACTIVE"}},{"modelId":"anthropic.claude-sonnet-4-5-20250929-v1:0","modelName":"Claude Sonnet 4.5","providerName":"Anthropic"}]}"#;
    match plugin.interpret_health(&Credentials::new(), &response(200, listing)).await.unwrap() {
        Verdict::Healthy { models, .. } => {
            assert_eq!(
                models,
                ["amazon.titan-embed-text-v2:0", "anthropic.claude-sonnet-4-5-20250929-v1:0"]
            )
        }
        other => panic!("{other:?}"),
    }
    let aws = |status: u16, kind: &str, message: &str| HttpResponse {
        status,
        headers: vec![(
            "x-amzn-ErrorType".into(),
            format!("{kind}:http://internal.amazon.com/coral/com.amazon.coral.service/"),
        )],
        body: format!(r#"{{"message":"{message}"}}"#).into_bytes(),
    };
    for (response, expected) in [
        (
            aws(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ),
            "invalid-credential",
        ),
        (
            aws(
                403,
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
            ),
            "invalid-credential",
        ),
        (
            aws(
                403,
                "ExpiredTokenException",
                "The security token included in the request is expired",
            ),
            "invalid-credential",
        ),
        (
            aws(
                403,
                "AccessDeniedException",
                "User: arn:aws:iam::123456789012:user/x is not authorized to perform: bedrock:ListFoundationModels",
            ),
            "invalid-credential",
        ),
        (
            aws(
                403,
                "InvalidSignatureException",
                "Signature expired: 20231114T221320Z is now earlier than 20231114T222820Z (20231114T223320Z - 5 min.)",
            ),
            "degraded",
        ),
        (
            aws(429, "ThrottlingException", "Too many requests, please wait before trying again."),
            "quota-limited",
        ),
        (aws(400, "ThrottlingException", "Rate exceeded"), "quota-limited"),
        (aws(400, "ValidationException", "1 validation error detected"), "degraded"),
        (aws(500, "InternalServerException", "Internal server error"), "degraded"),
        (aws(503, "ServiceUnavailableException", "Service unavailable"), "degraded"),
        (
            response(
                403,
                r#"{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"bad"}"#,
            ),
            "invalid-credential",
        ),
    ] {
        let verdict = plugin.interpret_health(&Credentials::new(), &response).await.unwrap();
        assert_eq!(class(&verdict), expected, "{response:?} gave {verdict:?}");
    }
    assert_verdicts(
        &plugin,
        &[
            (403, "", "invalid-credential"),
            (429, "", "quota-limited"),
            (500, "", "degraded"),
            (200, r#"{"modelSummaries":{}}"#, "degraded"),
            (200, "<?xml version=\"1.0\"?><Error/>", "degraded"),
            (200, "", "degraded"),
            (0, "connection reset by peer", "unreachable"),
        ],
    )
    .await;
}

#[tokio::test]
async fn openai_compatible() {
    let plugin = plugin("openai-compatible").await;
    let ollama = Credentials::new().with("OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:11434/v1");

    let (code, message) =
        provider_error(&plugin.health_probe(&Credentials::new()).await.unwrap_err());
    assert_eq!(code, ProviderErrorCode::MissingCredential);
    assert!(message.contains("OPENAI_COMPATIBLE_BASE_URL"));
    let probe = plugin.health_probe(&ollama).await.unwrap();
    assert_eq!(
        (probe.method, probe.url.as_str()),
        (Method::Get, "http://127.0.0.1:11434/v1/models")
    );
    assert!(probe.headers.is_empty());

    // Without a key the request goes as it is; with one, bearer auth.
    assert_eq!(plugin.authorize(&ollama, &probe, NOW).await.unwrap(), probe);
    let request = get("http://127.0.0.1:11434/v1/chat/completions");
    let keyed = ollama.clone().with("OPENAI_COMPATIBLE_API_KEY", CANARY);
    let authorized = plugin.authorize(&keyed, &request, NOW).await.unwrap();
    assert_eq!(
        added(&request, &authorized),
        pairs(&[("authorization", &format!("Bearer {CANARY}"))])
    );
    // Only the configured origin is reachable.
    for other in ["http://127.0.0.1:11435/v1/models", "https://api.openai.com/v1/models"] {
        let refused = plugin.authorize(&keyed, &get(other), NOW).await.unwrap_err();
        assert!(matches!(refused.kind, CallErrorKind::Refused(_)), "{other}");
        assert!(!refused.to_string().contains(CANARY));
    }

    let listing = r#"{"object":"list","data":[{"id":"llama3.1:8b","object":"model","created":1721430000,"owned_by":"library"},{"id":"nomic-embed-text:latest","object":"model","created":1721430000,"owned_by":"library"}]}"#;
    match plugin.interpret_health(&Credentials::new(), &response(200, listing)).await.unwrap() {
        Verdict::Healthy { models, .. } => {
            assert_eq!(models, ["llama3.1:8b", "nomic-embed-text:latest"])
        }
        other => panic!("{other:?}"),
    }
    assert_verdicts(
        &plugin,
        &[
            (200, r#"{"object":"list","data":null}"#, "healthy"),
            (
                401,
                r#"{"error":{"message":"Unauthorized","type":"invalid_request_error"}}"#,
                "invalid-credential",
            ),
            (403, "Forbidden", "invalid-credential"),
            (429, "", "quota-limited"),
            (404, "404 page not found", "degraded"),
            (500, r#"{"error":{"message":"model runner has unexpectedly stopped"}}"#, "degraded"),
            (200, r#"{"object":"list","data":7}"#, "degraded"),
            (200, "<html>LM Studio</html>", "degraded"),
            (200, "", "degraded"),
            (0, "connection refused", "unreachable"),
        ],
    )
    .await;
    let verdict = plugin.interpret_health(&Credentials::new(), &response(401, "")).await.unwrap();
    assert!(verdict.message().contains("OPENAI_COMPATIBLE_API_KEY"), "{verdict:?}");
}

#[tokio::test]
async fn hostile_inputs_never_trap_any_plugin() {
    let registry = registry().await;
    let junk: Vec<Vec<u8>> = vec![
        Vec::new(),
        vec![0xff, 0xfe, 0x00, 0x80],
        b"{".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        br#"{"error":null,"data":[null,1,{"id":2}],"models":[{"name":7}],"modelSummaries":[{}]}"#
            .to_vec(),
        br#"{"error":{"details":"x","status":5,"type":["a"],"message":{}}}"#.to_vec(),
        "x".repeat(64 * 1024).into_bytes(),
        format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
    ];
    for plugin in registry.iter() {
        for status in [0u16, 1, 200, 204, 301, 400, 401, 403, 404, 429, 500, 529, 599, u16::MAX] {
            for body in &junk {
                let response = HttpResponse {
                    status,
                    headers: vec![("x-amzn-ErrorType".into(), ":::".into())],
                    body: body.clone(),
                };
                let verdict = plugin.interpret_health(&Credentials::new(), &response).await;
                assert!(verdict.is_ok(), "{} trapped on HTTP {status}: {verdict:?}", plugin.slug());
                let stream = HttpResponse {
                    headers: vec![("content-type".into(), "text/event-stream".into())],
                    ..response.clone()
                };
                for response in [&response, &stream] {
                    if let Err(error) = plugin.read_usage(&chat_request(), response).await {
                        assert!(
                            matches!(&error.kind, CallErrorKind::Provider(failure) if failure.code == ProviderErrorCode::Unsupported),
                            "{} failed read-usage on HTTP {status}: {error}",
                            plugin.slug()
                        );
                    }
                }
            }
        }
        for url in ["", "not a url", "https://", "https://[::1", "http://a b/"] {
            let request = get(url);
            let credentials = Credentials::new()
                .with("AWS_ACCESS_KEY_ID", "AKID")
                .with("AWS_SECRET_ACCESS_KEY", "secret")
                .with("OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:1/");
            match plugin.authorize(&credentials, &request, u64::MAX).await {
                Ok(_) => {}
                Err(error) => assert!(
                    !matches!(error.kind, CallErrorKind::Trap(_)),
                    "{} trapped on {url:?}: {error}",
                    plugin.slug()
                ),
            }
        }
    }
}

/// A chat request as an agent sends it (the model is the request's).
fn chat_request() -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        url: "https://api.example.com/v1/chat/completions".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(br#"{"model":"requested-model","messages":[]}"#.to_vec()),
    }
}

fn stream(body: &str) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![("Content-Type".into(), "text/event-stream; charset=utf-8".into())],
        body: body.as_bytes().to_vec(),
    }
}

/// `(input, output, cached input, model)` of what `read-usage` read.
async fn usage_of(plugin: &Plugin, response: &HttpResponse) -> Option<(u64, u64, u64, String)> {
    let usage = plugin.read_usage(&chat_request(), response).await.unwrap()?;
    Some((
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.model.unwrap_or_default(),
    ))
}

fn counts(input: u64, output: u64, cached: u64, model: &str) -> Option<(u64, u64, u64, String)> {
    Some((input, output, cached, model.to_owned()))
}

#[tokio::test]
async fn openai_style_plugins_read_usage_from_bodies_and_streams() {
    for slug in ["openai", "openai-compatible"] {
        let plugin = plugin(slug).await;
        let chat = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-5-2025-08-07","choices":[],"usage":{"prompt_tokens":1200,"completion_tokens":80,"total_tokens":1280,"prompt_tokens_details":{"cached_tokens":1024},"completion_tokens_details":{"reasoning_tokens":64}}}"#;
        let responses = r#"{"id":"resp_1","object":"response","model":"gpt-5-mini","usage":{"input_tokens":50,"input_tokens_details":{"cached_tokens":0},"output_tokens":9,"total_tokens":59}}"#;
        let embeddings = r#"{"object":"list","data":[],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}"#;
        let ollama = r#"{"model":"llama3.1:8b","choices":[],"usage":{"prompt_tokens":26,"completion_tokens":298,"total_tokens":324}}"#;
        let chat_stream = concat!(
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,\"prompt_tokens_details\":{\"cached_tokens\":3}}}\n\n",
            "data: [DONE]\n\n",
        );
        let responses_stream = concat!(
            "event: response.created\r\ndata: {\"type\":\"response.created\",\"response\":{\"model\":\"gpt-5\",\"usage\":null}}\r\n\r\n",
            "event: response.output_text.delta\r\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\r\n\r\n",
            "event: response.completed\r\ndata: {\"type\":\"response.completed\",\"response\":{\"model\":\"gpt-5\",\"usage\":{\"input_tokens\":40,\"input_tokens_details\":{\"cached_tokens\":32},\"output_tokens\":7}}}\r\n\r\n",
        );
        let without_usage = "data: {\"model\":\"gpt-4o-mini\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n";
        for (response, expected) in [
            (response(200, chat), counts(176, 80, 1024, "gpt-5-2025-08-07")),
            (response(200, responses), counts(50, 9, 0, "gpt-5-mini")),
            (response(200, embeddings), counts(8, 0, 0, "text-embedding-3-small")),
            (response(200, ollama), counts(26, 298, 0, "llama3.1:8b")),
            (stream(chat_stream), counts(16, 10, 3, "gpt-4o-mini")),
            (stream(responses_stream), counts(8, 7, 32, "gpt-5")),
            // A body that starts like a stream is one, whatever its content type.
            (response(200, chat_stream), counts(16, 10, 3, "gpt-4o-mini")),
            (stream(without_usage), None),
            (response(401, r#"{"error":{"code":"invalid_api_key"}}"#), None),
            (response(200, "not json"), None),
        ] {
            assert_eq!(
                usage_of(&plugin, &response).await,
                expected,
                "{slug}: {}",
                String::from_utf8_lossy(&response.body)
            );
        }
        // Without a model in the answer, the request's.
        let anonymous = r#"{"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        assert_eq!(
            usage_of(&plugin, &response(200, anonymous)).await,
            counts(1, 2, 0, "requested-model")
        );
    }
}

#[tokio::test]
async fn anthropic_reads_usage_from_messages_and_their_streams() {
    let plugin = plugin("anthropic").await;
    let message = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[],"usage":{"input_tokens":21,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":393}}"#;
    let message_stream = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":128,\"output_tokens\":1}}}\n\n",
        ": a comment line\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":15}}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"output_tokens\":89}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}",
    );
    // Newer streams repeat the input counts in the last message_delta.
    let cumulative_stream = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-opus-4-1\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":5,\"output_tokens\":30}}\n\n",
    );
    for (response, expected) in [
        (response(200, message), counts(121, 393, 2000, "claude-sonnet-4-5-20250929")),
        (stream(message_stream), counts(472, 89, 128, "claude-haiku-4-5")),
        (stream(cumulative_stream), counts(12, 30, 5, "claude-opus-4-1")),
        (
            response(
                401,
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            ),
            None,
        ),
        (stream("event: ping\ndata: {\"type\":\"ping\"}\n\n"), None),
    ] {
        assert_eq!(
            usage_of(&plugin, &response).await,
            expected,
            "{}",
            String::from_utf8_lossy(&response.body)
        );
    }
}

#[tokio::test]
async fn plugins_without_usage_reading_say_unsupported() {
    for slug in ["google", "voyage", "azure-openai", "bedrock"] {
        let plugin = plugin(slug).await;
        let error = plugin.read_usage(&chat_request(), &response(200, "{}")).await.unwrap_err();
        let (code, _) = provider_error(&error);
        assert_eq!(code, ProviderErrorCode::Unsupported, "{slug}: {error}");
        assert!(error.to_string().contains(&format!("{slug}@0.2.0")), "{error}");
    }
}

#[tokio::test]
async fn manifests_carry_the_client_names_and_forms() {
    let registry = registry().await;
    let aliases = |slug: &str, var: &str| -> Vec<serde_json::Value> {
        let manifest = registry.get(slug).unwrap().manifest();
        let var = manifest.env_vars.iter().find(|candidate| candidate.name == var).unwrap();
        var.aliases.iter().map(|alias| serde_json::to_value(alias).unwrap()).collect()
    };
    use serde_json::json;
    assert!(
        aliases("openai", "OPENAI_API_BASE")
            .contains(&json!({"name": "OPENAI_BASE_URL", "client": "all", "form": "verbatim"}))
    );
    let google = aliases("google", "GOOGLE_GENERATIVE_AI_API_KEY");
    for name in ["GOOGLE_API_KEY", "GEMINI_API_KEY"] {
        assert!(google.contains(&json!({"name": name, "client": "all", "form": "verbatim"})));
    }
    assert!(
        aliases("azure-openai", "AZURE_OPENAI_API_VERSION")
            .contains(&json!({"name": "OPENAI_API_VERSION", "client": "all", "form": "verbatim"}))
    );
    assert!(aliases("anthropic", "ANTHROPIC_BASE_URL").contains(&json!({
        "name": "ANTHROPIC_BASE_URL", "client": "ai-sdk", "form": "append-suffix", "suffix": "/v1"
    })));
    let resource = aliases("azure-openai", "AZURE_OPENAI_ENDPOINT");
    assert_eq!(resource[0]["form"], "host-label-of-url");
    assert_eq!(resource[0]["domain"], "openai.azure.com");
    assert!(resource[0]["note"].as_str().unwrap().contains("baseURL"));
    // The Gemini base URL for the Python SDK and LangChain; the AI SDK reads
    // none from the environment, Voyage's SDK neither: a note, no value.
    let gemini = aliases("google", "GOOGLE_GENERATIVE_AI_BASE_URL");
    for client in ["official", "langchain"] {
        assert!(gemini.contains(
            &json!({"name": "GOOGLE_GEMINI_BASE_URL", "client": client, "form": "verbatim"})
        ));
    }
    for (slug, var, client) in [
        ("google", "GOOGLE_GENERATIVE_AI_BASE_URL", "ai-sdk"),
        ("voyage", "VOYAGE_API_BASE", "official"),
    ] {
        let note_only = aliases(slug, var);
        let alias = note_only.iter().find(|alias| alias["client"] == client).unwrap();
        assert_eq!(
            (alias["name"].as_str(), alias["form"].as_str()),
            (Some(var), Some("note-only"))
        );
        assert!(alias["note"].as_str().unwrap().contains("base"), "{alias}");
    }
    // The OpenAI-compatible server under the names the OpenAI clients read.
    assert!(
        aliases("openai-compatible", "OPENAI_COMPATIBLE_BASE_URL")
            .contains(&json!({"name": "OPENAI_BASE_URL", "client": "all", "form": "verbatim"}))
    );
    for plugin in registry.iter() {
        let manifest = plugin.manifest();
        assert!(!manifest.clients.is_empty(), "{} lists no clients", plugin.slug());
        assert_eq!(manifest.default_client.as_deref(), Some("official"), "{}", plugin.slug());
        assert!(!manifest.token_exchange, "{}", plugin.slug());
    }
    // Prices are in micro-USD per million tokens.
    let openai = registry.get("openai").unwrap().manifest();
    let gpt5 = openai.default_models.iter().find(|model| model.id == "gpt-5").unwrap();
    let price = gpt5.price.expect("gpt-5 has a price");
    assert_eq!(
        (price.input.0, price.output.0, price.cached_input.map(|micros| micros.0)),
        (1_250_000, 10_000_000, Some(125_000))
    );
}
