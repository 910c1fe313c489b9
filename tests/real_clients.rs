//! The env bag in the real client libraries: for every bundled provider and
//! every client its manifest lists, the host resolves a canary key whose base
//! URL points at a recording loopback upstream, in that client's form; the
//! client's driver (`tests/clients/{python,node}/`) then starts with
//! `env_clear()` plus exactly the bag, and the test asserts that its request
//! reached the upstream on the expected path with the canary in the header
//! the provider's auth uses. Where the bag cannot make a client honour the
//! base URL, the answer must carry a warning naming the variable and the
//! client; the driver then runs the way the warning's note says (the URL
//! passed in code), which still proves the bag's key names.
//!
//! The clients come from `scripts/install-clients.sh` (pinned in
//! `tests/clients/`), installed under `target/clients/`. A client that cannot
//! run fails the test with the reason; nothing is skipped.

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use platos_host::api::server::{Server, ServerConfig};
use platos_host::outbound::OutboundConfig;
use platos_host::policy::addresses::AddressPolicy;
use serde_json::{Value, json};
use support::Client;
use support::recording::{Recorded, RecordingUpstream};

/// How long one driver may take (imports, one call, exit).
const DRIVER_TIMEOUT: Duration = Duration::from_secs(90);

/// The region the Bedrock key is set for: not a default of any client, so a
/// request signed for it proves the bag's region reached the client.
const BEDROCK_REGION: &str = "eu-west-3";

/// Which interpreter runs a driver.
#[derive(Clone, Copy, Debug)]
enum Runtime {
    Python,
    Node,
}

/// What a client does with its bag.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// It reads everything from the bag: no warning, and its request reaches
    /// the upstream at `method path` (after the row's prefix).
    Runs { method: &'static str, path: &'static str },
    /// It cannot read the base URL in `variable` from its environment: the
    /// answer warns (`base_url_ignored`) with a note naming `option`; the
    /// driver then gets the row's root plus `suffix` as its argument, as the
    /// note says, and must reach `method path`.
    Warns {
        variable: &'static str,
        option: &'static str,
        suffix: &'static str,
        method: &'static str,
        path: &'static str,
    },
}

/// One client library run for one provider and client id.
struct Row {
    provider: &'static str,
    client: &'static str,
    runtime: Runtime,
    driver: &'static str,
    /// The driver's arguments before the base URL a warning's note gives.
    args: &'static [&'static str],
    expect: Expect,
}

const fn runs(method: &'static str, path: &'static str) -> Expect {
    Expect::Runs { method, path }
}

/// Clients that send a header-auth provider's key as `Authorization: Bearer`
/// instead of the provider's header: Anthropic's own SDKs do (Python 2.x
/// `anthropic/_client.py` `_api_key_auth`, TypeScript 1.x `client.mjs`), and
/// LangChain through the Python one.
const KEY_AS_BEARER: &[(&str, &str)] = &[("anthropic", "official"), ("anthropic", "langchain")];

/// The user agent of the host's own requests (its probes), which the
/// upstream also sees under a row's prefix: never taken for a client's.
const HOST_USER_AGENT: &str = "platos-host/";

const BEDROCK_CONVERSE: &str = "/model/anthropic.claude-haiku-4-5-20251001-v1%3A0/converse";
const AZURE_CHAT: &str = "/openai/deployments/gpt-4o-mini/chat/completions";

/// Every client of every bundled manifest, and how its driver fares.
const ROWS: &[Row] = &[
    Row {
        provider: "openai",
        client: "official",
        runtime: Runtime::Python,
        driver: "openai_sdk.py",
        args: &[],
        expect: runs("GET", "/v1/models"),
    },
    Row {
        provider: "openai",
        client: "official",
        runtime: Runtime::Node,
        driver: "openai_sdk.mjs",
        args: &[],
        expect: runs("GET", "/v1/models"),
    },
    Row {
        provider: "openai",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_openai_responses.mjs",
        args: &[],
        expect: runs("POST", "/v1/responses"),
    },
    Row {
        provider: "openai",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_openai.mjs",
        args: &[],
        expect: runs("POST", "/v1/chat/completions"),
    },
    Row {
        provider: "openai",
        client: "langchain",
        runtime: Runtime::Python,
        driver: "langchain_openai_chat.py",
        args: &[],
        expect: runs("POST", "/v1/chat/completions"),
    },
    Row {
        provider: "anthropic",
        client: "official",
        runtime: Runtime::Python,
        driver: "anthropic_sdk.py",
        args: &[],
        expect: runs("POST", "/v1/messages"),
    },
    Row {
        provider: "anthropic",
        client: "official",
        runtime: Runtime::Node,
        driver: "anthropic_sdk.mjs",
        args: &[],
        expect: runs("POST", "/v1/messages"),
    },
    Row {
        provider: "anthropic",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_anthropic.mjs",
        args: &[],
        expect: runs("POST", "/v1/messages"),
    },
    Row {
        provider: "anthropic",
        client: "langchain",
        runtime: Runtime::Python,
        driver: "langchain_anthropic_chat.py",
        args: &[],
        expect: runs("POST", "/v1/messages"),
    },
    Row {
        provider: "azure-openai",
        client: "official",
        runtime: Runtime::Python,
        driver: "azure_openai_sdk.py",
        args: &[],
        expect: runs("POST", AZURE_CHAT),
    },
    Row {
        provider: "azure-openai",
        client: "official",
        runtime: Runtime::Node,
        driver: "azure_openai_sdk.mjs",
        args: &[],
        expect: runs("POST", AZURE_CHAT),
    },
    Row {
        provider: "azure-openai",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_azure.mjs",
        args: &[],
        expect: Expect::Warns {
            variable: "AZURE_OPENAI_ENDPOINT",
            option: "createAzure({ baseURL",
            suffix: "/openai/v1",
            method: "POST",
            path: "/openai/v1/responses",
        },
    },
    Row {
        provider: "azure-openai",
        client: "langchain",
        runtime: Runtime::Python,
        driver: "langchain_azure_chat.py",
        args: &[],
        expect: runs("POST", AZURE_CHAT),
    },
    Row {
        provider: "google",
        client: "official",
        runtime: Runtime::Python,
        driver: "google_genai_sdk.py",
        args: &[],
        expect: runs("POST", "/v1/models/gemini-2.5-flash:generateContent"),
    },
    Row {
        provider: "google",
        client: "official",
        runtime: Runtime::Node,
        driver: "google_genai_sdk.mjs",
        args: &[],
        expect: runs("POST", "/v1/models/gemini-2.5-flash:generateContent"),
    },
    Row {
        provider: "google",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_google.mjs",
        args: &[],
        expect: Expect::Warns {
            variable: "GOOGLE_GENERATIVE_AI_BASE_URL",
            option: "createGoogleGenerativeAI({ baseURL",
            suffix: "/v1beta",
            method: "POST",
            path: "/v1beta/models/gemini-2.5-flash:generateContent",
        },
    },
    Row {
        provider: "google",
        client: "langchain",
        runtime: Runtime::Python,
        driver: "langchain_google_chat.py",
        args: &[],
        expect: runs("POST", "/v1/models/gemini-2.5-flash:generateContent"),
    },
    Row {
        provider: "voyage",
        client: "official",
        runtime: Runtime::Python,
        driver: "voyageai_sdk.py",
        args: &[],
        expect: Expect::Warns {
            variable: "VOYAGE_API_BASE",
            option: "base_url=",
            suffix: "/v1",
            method: "POST",
            path: "/v1/embeddings",
        },
    },
    Row {
        provider: "openai-compatible",
        client: "official",
        runtime: Runtime::Python,
        driver: "openai_sdk.py",
        args: &[],
        expect: runs("GET", "/v1/models"),
    },
    Row {
        provider: "openai-compatible",
        client: "official",
        runtime: Runtime::Node,
        driver: "openai_sdk.mjs",
        args: &[],
        expect: runs("GET", "/v1/models"),
    },
    Row {
        provider: "openai-compatible",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_openai.mjs",
        args: &[],
        expect: runs("POST", "/v1/chat/completions"),
    },
    Row {
        provider: "openai-compatible",
        client: "langchain",
        runtime: Runtime::Python,
        driver: "langchain_openai_chat.py",
        args: &[],
        expect: runs("POST", "/v1/chat/completions"),
    },
    Row {
        provider: "bedrock",
        client: "official",
        runtime: Runtime::Python,
        driver: "boto3_bedrock.py",
        args: &[],
        expect: runs("POST", BEDROCK_CONVERSE),
    },
    Row {
        provider: "bedrock",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_bedrock.mjs",
        args: &[],
        expect: runs("POST", BEDROCK_CONVERSE),
    },
    Row {
        provider: "bedrock",
        client: "langchain",
        runtime: Runtime::Python,
        driver: "langchain_aws_chat.py",
        args: &[],
        expect: runs("POST", BEDROCK_CONVERSE),
    },
    Row {
        provider: "groq",
        client: "openai-sdk",
        runtime: Runtime::Python,
        driver: "openai_sdk.py",
        args: &[],
        expect: runs("GET", "/openai/v1/models"),
    },
    Row {
        provider: "groq",
        client: "openai-sdk",
        runtime: Runtime::Node,
        driver: "openai_sdk.mjs",
        args: &[],
        expect: runs("GET", "/openai/v1/models"),
    },
    Row {
        provider: "deepseek",
        client: "openai-sdk",
        runtime: Runtime::Python,
        driver: "openai_sdk.py",
        args: &[],
        expect: runs("GET", "/models"),
    },
    Row {
        provider: "deepseek",
        client: "openai-sdk",
        runtime: Runtime::Node,
        driver: "openai_sdk.mjs",
        args: &[],
        expect: runs("GET", "/models"),
    },
    Row {
        provider: "xai",
        client: "openai-sdk",
        runtime: Runtime::Python,
        driver: "openai_sdk.py",
        args: &[],
        expect: runs("GET", "/v1/models"),
    },
    Row {
        provider: "xai",
        client: "openai-sdk",
        runtime: Runtime::Node,
        driver: "openai_sdk.mjs",
        args: &[],
        expect: runs("GET", "/v1/models"),
    },
    Row {
        provider: "together",
        client: "openai-sdk",
        runtime: Runtime::Python,
        driver: "openai_sdk.py",
        args: &[],
        expect: runs("GET", "/v1/models"),
    },
    Row {
        provider: "together",
        client: "openai-sdk",
        runtime: Runtime::Node,
        driver: "openai_sdk.mjs",
        args: &[],
        expect: runs("GET", "/v1/models"),
    },
    Row {
        provider: "fireworks",
        client: "openai-sdk",
        runtime: Runtime::Python,
        driver: "openai_sdk.py",
        args: &[],
        expect: runs("GET", "/inference/v1/models"),
    },
    Row {
        provider: "fireworks",
        client: "openai-sdk",
        runtime: Runtime::Node,
        driver: "openai_sdk.mjs",
        args: &[],
        expect: runs("GET", "/inference/v1/models"),
    },
    Row {
        provider: "openrouter",
        client: "openai-sdk",
        runtime: Runtime::Python,
        driver: "openai_sdk.py",
        args: &[],
        expect: runs("GET", "/api/v1/models"),
    },
    Row {
        provider: "openrouter",
        client: "openai-sdk",
        runtime: Runtime::Node,
        driver: "openai_sdk.mjs",
        args: &[],
        expect: runs("GET", "/api/v1/models"),
    },
    Row {
        provider: "groq",
        client: "official",
        runtime: Runtime::Python,
        driver: "groq_sdk.py",
        args: &[],
        expect: runs("GET", "/openai/v1/models"),
    },
    Row {
        provider: "fireworks",
        client: "official",
        runtime: Runtime::Python,
        driver: "fireworks_sdk.py",
        args: &[],
        expect: runs("POST", "/v1/chat/completions"),
    },
    Row {
        provider: "cohere",
        client: "official",
        runtime: Runtime::Python,
        driver: "cohere_sdk.py",
        args: &[],
        expect: runs("POST", "/v2/chat"),
    },
    Row {
        provider: "deepseek",
        client: "langchain",
        runtime: Runtime::Python,
        driver: "langchain_deepseek_chat.py",
        args: &[],
        expect: runs("POST", "/chat/completions"),
    },
    Row {
        provider: "mistral",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_provider.mjs",
        args: &["@ai-sdk/mistral", "createMistral", "mistral-small-latest"],
        expect: Expect::Warns {
            variable: "MISTRAL_BASE_URL",
            option: "createMistral({ baseURL",
            suffix: "/v1",
            method: "POST",
            path: "/v1/chat/completions",
        },
    },
    Row {
        provider: "groq",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_provider.mjs",
        args: &["@ai-sdk/groq", "createGroq", "llama-3.1-8b-instant"],
        expect: Expect::Warns {
            variable: "GROQ_BASE_URL",
            option: "createGroq({ baseURL",
            suffix: "/openai/v1",
            method: "POST",
            path: "/openai/v1/chat/completions",
        },
    },
    Row {
        provider: "deepseek",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_provider.mjs",
        args: &["@ai-sdk/deepseek", "createDeepSeek", "deepseek-v4-flash"],
        expect: Expect::Warns {
            variable: "DEEPSEEK_API_BASE",
            option: "createDeepSeek({ baseURL",
            suffix: "",
            method: "POST",
            path: "/chat/completions",
        },
    },
    Row {
        provider: "xai",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_provider.mjs",
        args: &["@ai-sdk/xai", "createXai", "grok-3-mini"],
        expect: Expect::Warns {
            variable: "XAI_BASE_URL",
            option: "createXai({ baseURL",
            suffix: "/v1",
            method: "POST",
            path: "/v1/responses",
        },
    },
    Row {
        provider: "together",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_provider.mjs",
        args: &[
            "@ai-sdk/togetherai",
            "createTogetherAI",
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        ],
        expect: Expect::Warns {
            variable: "TOGETHER_BASE_URL",
            option: "createTogetherAI({ baseURL",
            suffix: "/v1",
            method: "POST",
            path: "/v1/chat/completions",
        },
    },
    Row {
        provider: "fireworks",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_provider.mjs",
        args: &[
            "@ai-sdk/fireworks",
            "createFireworks",
            "accounts/fireworks/models/llama-v3p3-70b-instruct",
        ],
        expect: Expect::Warns {
            variable: "FIREWORKS_BASE_URL",
            option: "createFireworks({ baseURL",
            suffix: "/inference/v1",
            method: "POST",
            path: "/inference/v1/chat/completions",
        },
    },
    Row {
        provider: "openrouter",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_provider.mjs",
        args: &["@openrouter/ai-sdk-provider", "createOpenRouter", "openai/gpt-5"],
        expect: Expect::Warns {
            variable: "OPENROUTER_BASE_URL",
            option: "createOpenRouter({ baseURL",
            suffix: "/api/v1",
            method: "POST",
            path: "/api/v1/chat/completions",
        },
    },
    Row {
        provider: "cohere",
        client: "ai-sdk",
        runtime: Runtime::Node,
        driver: "ai_sdk_provider.mjs",
        args: &["@ai-sdk/cohere", "createCohere", "command-a-03-2025"],
        expect: Expect::Warns {
            variable: "CO_API_URL",
            option: "createCohere({ baseURL",
            suffix: "/v2",
            method: "POST",
            path: "/v2/chat",
        },
    },
];

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The installed clients: the venv's interpreter and node with the
/// node_modules directory, or a panic saying how to install them.
struct Installed {
    python: PathBuf,
    node: PathBuf,
    node_dir: PathBuf,
}

fn installed() -> Installed {
    let dir = root().join("target/clients");
    let python = dir.join("venv/bin/python");
    let node_dir = dir.join("node");
    let stamp = dir.join(".stamp");
    assert!(
        python.exists() && node_dir.join("node_modules").is_dir() && stamp.exists(),
        "the real clients are not installed under {}: run scripts/install-clients.sh",
        dir.display()
    );
    let installed_at = std::fs::metadata(&stamp).unwrap().modified().unwrap();
    for pin in ["requirements.txt", "package.json", "package-lock.json"] {
        let changed: SystemTime =
            std::fs::metadata(root().join("tests/clients").join(pin)).unwrap().modified().unwrap();
        assert!(
            changed <= installed_at,
            "tests/clients/{pin} changed after the last install: run scripts/install-clients.sh"
        );
    }
    let node = std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path).map(|dir| dir.join("node")).find(|node| node.is_file())
        })
        .expect(
            "node is not on PATH: run scripts/install-clients.sh, which says how to install it",
        );
    // Node resolves packages from the script's directory upward: the node
    // drivers run from a copy beside the installed node_modules.
    let drivers = node_dir.join("drivers");
    std::fs::create_dir_all(&drivers).unwrap();
    for entry in std::fs::read_dir(root().join("tests/clients/node")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, drivers.join(path.file_name().unwrap())).unwrap();
    }
    Installed { python, node, node_dir }
}

/// The host, in-process on a loopback port, loopback upstreams allowed.
struct Host {
    _dir: tempfile::TempDir,
    _server: Server,
    client: Client,
    operator: String,
}

async fn start_host() -> Host {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    config.cache_dir =
        Some(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("real-clients-plugin-cache"));
    config.health_interval = Duration::ZERO;
    config.outbound = OutboundConfig {
        addresses: AddressPolicy { allow_loopback: true, allow_private: false },
        timeout: Duration::from_secs(5),
        ..OutboundConfig::default()
    };
    let server = Server::start(config).await.expect("the server starts");
    let operator =
        std::fs::read_to_string(dir.path().join("operator.token")).unwrap().trim().to_owned();
    let client = Client::new(server.address());
    Host { _dir: dir, _server: server, client, operator }
}

impl Host {
    async fn set(&self, scope: &str, name: &str, value: &str) {
        let (status, body) = self
            .client
            .call(
                "PUT",
                &format!("/v1/scopes/{scope}/env/{name}"),
                Some(&self.operator),
                Some(&json!({ "value": value })),
            )
            .await;
        assert_eq!(status, 200, "setting {name} in {scope}: {body}");
    }

    async fn agent_token(&self, scope: &str) -> String {
        let (status, body) = self
            .client
            .call(
                "POST",
                "/v1/tokens",
                Some(&self.operator),
                Some(&json!({ "scope": scope, "role": "agent", "label": "real clients" })),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }
}

/// How the provider's auth carries the key, from its manifest.
enum Auth {
    Bearer { var: String },
    Header { header: String, var: String },
    SigV4,
}

fn auth_of(manifest: &Value) -> Auth {
    let auth = &manifest["auth"];
    let text = |key: &str| auth[key].as_str().unwrap_or_default().to_owned();
    match auth["type"].as_str() {
        Some("bearer") => Auth::Bearer { var: text("env_var") },
        Some("header") => Auth::Header { header: text("header"), var: text("env_var") },
        Some("custom") if text("description").contains("Signature Version 4") => Auth::SigV4,
        other => panic!("{}: no check for auth {other:?}: {auth}", manifest["slug"]),
    }
}

/// The canary values a row stores: every secret, and the base URL (when the
/// manifest declares one) pointing at `base`.
fn values_for(manifest: &Value, base: &str) -> Vec<(String, String)> {
    let slug = manifest["slug"].as_str().unwrap();
    let mut values = Vec::new();
    for var in manifest["env_vars"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap();
        let value = match (var["role"].as_str().unwrap(), name) {
            ("secret", "AWS_ACCESS_KEY_ID") => "AKIACANARY7C41BEDROCK".to_owned(),
            ("secret", "AWS_SESSION_TOKEN") => continue,
            ("secret", _) => format!("canary-{slug}-{}-7c41", name.to_ascii_lowercase()),
            ("base-url", _) => base.to_owned(),
            ("other", "AWS_REGION") => BEDROCK_REGION.to_owned(),
            _ => continue,
        };
        values.push((name.to_owned(), value));
    }
    values
}

/// The version segment a row's stored base URL ends with: the one the
/// variable's description asks for, or (where it takes the URL with or
/// without one) the AI SDK's form, so that the forms that strip it are
/// exercised.
fn stored_suffix(provider: &str) -> &'static str {
    match provider {
        "openai" | "openai-compatible" | "voyage" | "anthropic" | "mistral" | "xai" => "/v1",
        "openrouter" => "/api/v1",
        "google" => "/v1beta",
        "azure-openai" => "/openai/v1",
        _ => "",
    }
}

/// The base URL a row stores, and the row's root on the upstream (its own
/// prefix), or `None` when the manifest declares no base URL.
fn base_for(manifest: &Value, origin: &str, prefix: &str) -> Option<(String, String)> {
    manifest["env_vars"].as_array().unwrap().iter().find(|var| var["role"] == "base-url")?;
    let root = format!("{origin}{prefix}");
    let slug = manifest["slug"].as_str().unwrap();
    Some((format!("{root}{}", stored_suffix(slug)), root))
}

/// Runs `row` and returns what went wrong, if anything.
async fn run_row(
    index: usize,
    row: &Row,
    manifest: &Value,
    host: &Host,
    upstream: &RecordingUpstream,
    clients: &Installed,
) -> Result<String, String> {
    let prefix = format!("/row{index}-{}-{}", row.provider, row.client);
    let scope = format!("real-clients/{}/row{index}", row.provider);
    let Some((base, row_root)) = base_for(manifest, &upstream.origin, &prefix) else {
        return Err(format!(
            "{} declares no base-url variable: the bag cannot point {} at a private endpoint",
            row.provider, row.client
        ));
    };
    let values = values_for(manifest, &base);
    for (name, value) in &values {
        host.set(&scope, name, value).await;
    }
    let agent = host.agent_token(&scope).await;
    let (status, answer) = host
        .client
        .call(
            "POST",
            &format!("/v1/scopes/{scope}/resolve"),
            Some(&agent),
            Some(&json!({ "provider": row.provider, "client": row.client })),
        )
        .await;
    if status != 200 {
        return Err(format!("resolve answered {status}: {answer}"));
    }
    if answer["client"]["id"] != row.client {
        return Err(format!("the answer names client {} instead", answer["client"]));
    }
    let bag: Vec<(String, String)> = answer["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_owned()))
        .collect();
    let warnings = answer["warnings"].as_array().cloned().unwrap_or_default();
    let secrets: Vec<&str> = values
        .iter()
        .filter(|(name, _)| is_secret(manifest, name))
        .map(|(_, value)| value.as_str())
        .collect();
    let warnings_text = Value::Array(warnings.clone()).to_string();
    for secret in secrets.iter().copied().chain([base.as_str()]) {
        if warnings_text.contains(secret) {
            return Err(format!("a warning repeats a stored value: {warnings_text}"));
        }
    }

    let (method, path, argument) = match row.expect {
        Expect::Runs { method, path } => {
            if !warnings.is_empty() {
                return Err(format!("expected no warning, got {warnings_text}"));
            }
            (method, path, None)
        }
        Expect::Warns { variable, option, suffix, method, path } => {
            let found = warnings.iter().find(|warning| {
                warning["code"] == "base_url_ignored"
                    && warning["variable"] == variable
                    && warning["client"] == row.client
            });
            let Some(warning) = found else {
                return Err(format!(
                    "expected a base_url_ignored warning for {variable} and {}, got {warnings_text}",
                    row.client
                ));
            };
            let message = warning["message"].as_str().unwrap_or_default();
            if !message.contains(option) {
                return Err(format!("the warning does not say to pass {option:?}: {message}"));
            }
            (method, path, Some(format!("{row_root}{suffix}")))
        }
    };

    let (program, script, dir) = match row.runtime {
        Runtime::Python => (
            &clients.python,
            root().join("tests/clients/python").join(row.driver),
            root().join("tests/clients/python"),
        ),
        Runtime::Node => (
            &clients.node,
            clients.node_dir.join("drivers").join(row.driver),
            clients.node_dir.join("drivers"),
        ),
    };
    let mut command = tokio::process::Command::new(program);
    command
        .arg(&script)
        .args(row.args)
        .args(argument.iter())
        .current_dir(&dir)
        .env_clear()
        .kill_on_drop(true);
    command.envs(bag.iter().map(|(name, value)| (name.as_str(), value.as_str())));
    let output = match tokio::time::timeout(DRIVER_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => return Err(format!("{} could not start: {error}", program.display())),
        Err(_) => return Err(format!("{} did not finish in {DRIVER_TIMEOUT:?}", row.driver)),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    for secret in &secrets {
        if let Some(form) = support::find_secret(format!("{stdout}{stderr}").as_bytes(), secret) {
            return Err(format!("the driver printed a secret (as {form:?})"));
        }
    }
    let seen: Vec<Recorded> = upstream
        .under(&prefix)
        .into_iter()
        .filter(|seen| {
            !seen.header("user-agent").is_some_and(|agent| agent.starts_with(HOST_USER_AGENT))
        })
        .collect();
    if !output.status.success() {
        return Err(format!(
            "{} exited with {}: {}\n  requests: {}",
            row.driver,
            output.status,
            tail(&stderr),
            describe(&seen, &prefix)
        ));
    }
    let expected = format!("{prefix}{path}");
    let Some(request) = seen.iter().find(|seen| seen.method == method && seen.path == expected)
    else {
        return Err(format!("no {method} {path}; requests: {}", describe(&seen, &prefix)));
    };
    let as_bearer = KEY_AS_BEARER.contains(&(row.provider, row.client));
    check_auth(manifest, request, &values, as_bearer)?;
    if let Some(request) =
        seen.iter().find(|seen| leaks(seen, &secrets_not_sent(manifest, &values)))
    {
        return Err(format!(
            "{} {} carries a secret that is never sent",
            request.method, request.path
        ));
    }
    if row.provider == "azure-openai" && matches!(row.expect, Expect::Runs { .. }) {
        // The version the manifest defaults to, under OPENAI_API_VERSION.
        let version = manifest["env_vars"]
            .as_array()
            .unwrap()
            .iter()
            .find(|var| var["name"] == "AZURE_OPENAI_API_VERSION")
            .and_then(|var| var["default"].as_str())
            .unwrap();
        if !request.query.split('&').any(|pair| pair == format!("api-version={version}")) {
            return Err(format!("expected api-version={version}, got ?{}", request.query));
        }
    }
    Ok(format!("{method} {path}: {}", stdout.trim()))
}

fn is_secret(manifest: &Value, name: &str) -> bool {
    manifest["env_vars"]
        .as_array()
        .unwrap()
        .iter()
        .any(|var| var["name"] == name && var["role"] == "secret")
}

/// The canary in the header the provider's auth uses.
fn check_auth(
    manifest: &Value,
    request: &Recorded,
    values: &[(String, String)],
    as_bearer: bool,
) -> Result<(), String> {
    let value_of = |var: &str| {
        values.iter().find(|(name, _)| name == var).map(|(_, value)| value.clone()).unwrap()
    };
    match auth_of(manifest) {
        Auth::Bearer { var } => {
            let expected = format!("Bearer {}", value_of(&var));
            match request.header("authorization") {
                Some(got) if got == expected => Ok(()),
                got => Err(format!("authorization {:?} is not the bearer canary", redact(got))),
            }
        }
        Auth::Header { var, .. } if as_bearer => {
            let expected = format!("Bearer {}", value_of(&var));
            match request.header("authorization") {
                Some(got) if got == expected => Ok(()),
                got => Err(format!("authorization {:?} is not the bearer canary", redact(got))),
            }
        }
        Auth::Header { header, var } => match request.header(&header) {
            Some(got) if got == value_of(&var) => Ok(()),
            got => Err(format!("{header} {:?} is not the canary", redact(got))),
        },
        Auth::SigV4 => {
            let expected =
                format!("AWS4-HMAC-SHA256 Credential={}/", value_of("AWS_ACCESS_KEY_ID"));
            let scope = format!("/{BEDROCK_REGION}/bedrock/aws4_request");
            match request.header("authorization") {
                Some(got) if got.starts_with(&expected) && got.contains(&scope) => Ok(()),
                got => Err(format!(
                    "authorization {got:?} is not SigV4 with the canary key id for {BEDROCK_REGION}"
                )),
            }
        }
    }
}

/// The secrets that never travel (SigV4's secret key signs, it is not sent).
fn secrets_not_sent(manifest: &Value, values: &[(String, String)]) -> Vec<String> {
    match auth_of(manifest) {
        Auth::SigV4 => values
            .iter()
            .filter(|(name, _)| name == "AWS_SECRET_ACCESS_KEY")
            .map(|(_, value)| value.clone())
            .collect(),
        _ => Vec::new(),
    }
}

fn leaks(request: &Recorded, secrets: &[String]) -> bool {
    let text =
        format!("{} {}?{} {:?}", request.method, request.path, request.query, request.headers);
    secrets.iter().any(|secret| support::find_secret(text.as_bytes(), secret).is_some())
}

fn redact(value: Option<&str>) -> String {
    match value {
        None => "<absent>".to_owned(),
        Some(value) if value.contains("canary") => "<another canary value>".to_owned(),
        Some(value) => value.chars().take(40).collect(),
    }
}

fn describe(seen: &[Recorded], prefix: &str) -> String {
    if seen.is_empty() {
        return "none reached the upstream".to_owned();
    }
    seen.iter()
        .map(|seen| {
            format!("{} {}", seen.method, seen.path.strip_prefix(prefix).unwrap_or(&seen.path))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n    ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bundled_provider_and_client_gets_a_bag_its_real_client_follows() {
    let clients = installed();
    let upstream = RecordingUpstream::start().await;
    let host = start_host().await;
    let (status, plugins) =
        host.client.call("GET", "/v1/plugins", Some(&host.operator), None).await;
    assert_eq!(status, 200, "{plugins}");
    let manifests: Vec<Value> = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|plugin| {
            plugin["origin"].as_str().is_some_and(|origin| origin.starts_with("bundled"))
        })
        .map(|plugin| plugin["manifest"].clone())
        .collect();
    assert!(manifests.len() >= 17, "{} bundled plugins, expected at least 17", manifests.len());

    let mut failures = String::new();
    // Every client of every bundled manifest has a row, and every row a client.
    for manifest in &manifests {
        let slug = manifest["slug"].as_str().unwrap();
        let clients = manifest["clients"].as_array().cloned().unwrap_or_default();
        // A token-exchange provider lists none: its clients fetch tokens
        // from a fixed endpoint no bag can point at this upstream
        // (docs/clients.md); every other provider lists some.
        if clients.is_empty() && manifest["token_exchange"] != true {
            writeln!(failures, "{slug}: the manifest lists no clients").unwrap();
        }
        for client in clients {
            let id = client["id"].as_str().unwrap();
            if !ROWS.iter().any(|row| row.provider == slug && row.client == id) {
                writeln!(failures, "{slug}/{id}: no driver runs this client; add a row").unwrap();
            }
        }
    }
    let mut report = String::new();
    for (index, row) in ROWS.iter().enumerate() {
        let label = format!("{}/{} ({})", row.provider, row.client, row.driver);
        let Some(manifest) = manifests.iter().find(|manifest| manifest["slug"] == row.provider)
        else {
            writeln!(failures, "{label}: no bundled plugin {}", row.provider).unwrap();
            continue;
        };
        let listed = manifest["clients"]
            .as_array()
            .is_some_and(|clients| clients.iter().any(|client| client["id"] == row.client));
        if !listed {
            writeln!(failures, "{label}: the manifest does not list client {}", row.client)
                .unwrap();
            continue;
        }
        match run_row(index, row, manifest, &host, &upstream, &clients).await {
            Ok(what) => writeln!(report, "ok   {label}: {what}").unwrap(),
            Err(why) => writeln!(failures, "{label}: {why}").unwrap(),
        }
    }
    println!("{report}");
    assert!(
        failures.is_empty(),
        "real clients that do not follow their bag:\n{failures}\npassed:\n{report}"
    );
}
