//! The plugin set a server runs: who owns which variable name, what the
//! self-host import takes from the process environment, and plugins that
//! are refused without stopping the host. Hostile fixtures under
//! `plugins/fixtures/lead-*` claim another provider's key, the host's PATH
//! and HOME, or a name only an operator's grant gives.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use platos_host::api::server::{Server, ServerConfig};
use platos_host::bundled::{BUILT_PLUGIN_DIR, PluginSources, read_policy};
use platos_host::selfhost::SelfHostConfig;
use serde_json::{Value, json};
use support::{Client, code};

const CANARY: &str = "sk-ant-canary-7d1f0c93b2a54e68";

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plugin-set-test-plugin-cache")
}

fn fixture(stem: &str) -> PathBuf {
    Path::new(BUILT_PLUGIN_DIR).join(format!("platos_fixture_{stem}.wasm"))
}

/// A plugin directory holding copies of the named fixtures and a file that
/// is not a component at all.
fn plugin_dir(fixtures: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for stem in fixtures {
        std::fs::copy(fixture(stem), dir.path().join(format!("{stem}.wasm"))).unwrap();
    }
    std::fs::write(dir.path().join("garbage.wasm"), b"\0asm not really a component").unwrap();
    dir
}

fn config(data_dir: &Path, plugins: PluginSources) -> ServerConfig {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), data_dir.to_owned());
    config.cache_dir = Some(cache_dir());
    config.health_interval = Duration::ZERO;
    config.plugins = plugins;
    config
}

fn operator_token(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("operator.token")).unwrap().trim().to_owned()
}

#[tokio::test]
async fn plugins_that_claim_names_they_do_not_own_are_refused_and_the_rest_serve() {
    let plugins = plugin_dir(&["lead_claims_anthropic", "lead_claims_path", "lead_granted"]);
    let data = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    let env_file = config_dir.path().join("self.env");
    std::fs::write(&env_file, format!("ANTHROPIC_API_KEY={CANARY}\nPATH=/tmp/evil-bin\n")).unwrap();
    let mut config = config(
        data.path(),
        PluginSources { plugin_dir: Some(plugins.path().to_owned()), ..PluginSources::default() },
    );
    config.self_host = Some(SelfHostConfig {
        scope: "self/host/default".parse().unwrap(),
        env_file: Some(env_file),
        process_env: true,
    });
    let server = Server::start(config).await.expect("a bad plugin does not stop the start");
    assert_eq!(server.report().refused_plugins, 4, "{:?}", server.report());
    let client = Client::new(server.address());
    let operator = operator_token(data.path());

    // Every refused plugin is listed once with a stable code and a message
    // naming the variable and its owner.
    let (status, listing) = client.call("GET", "/v1/plugins", Some(&operator), None).await;
    assert_eq!(status, 200);
    let refused = listing["refused"].as_array().unwrap();
    let by_file = |file: &str| -> &Value {
        refused
            .iter()
            .find(|entry| entry["origin"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("{file} not refused: {listing}"))
    };
    let evil = by_file("lead_claims_anthropic.wasm");
    assert_eq!(evil["code"], "name_ownership");
    let message = evil["message"].as_str().unwrap();
    assert!(message.contains("evil@0.0.1") && message.contains("ANTHROPIC_API_KEY"), "{message}");
    assert!(message.contains("owned by the plugin anthropic"), "{message}");
    assert_eq!(message.matches("lead_claims_anthropic.wasm").count(), 1, "{message}");
    let path = by_file("lead_claims_path.wasm")["message"].as_str().unwrap().to_owned();
    assert!(path.contains("PATH belongs to the host's own environment"), "{path}");
    assert!(path.contains("HOME belongs to the host's own environment"), "{path}");
    let granted = by_file("lead_granted.wasm")["message"].as_str().unwrap().to_owned();
    assert!(granted.contains("OPENAI_API_KEY is owned by the plugin openai"), "{granted}");
    assert!(granted.contains("grant"), "{granted}");
    assert_eq!(by_file("garbage.wasm")["code"], "not_a_component");
    let loaded: Vec<&str> = listing["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|plugin| plugin["manifest"]["slug"].as_str().unwrap())
        .collect();
    assert!(loaded.contains(&"anthropic") && loaded.contains(&"openai"), "{loaded:?}");
    for slug in ["evil", "pathgrab", "openai-responses"] {
        assert!(!loaded.contains(&slug), "{slug} loaded: {loaded:?}");
    }

    // A refused plugin cannot be resolved: its claim reaches nothing.
    for scope in ["self/host/default", "acme/shop/prod"] {
        let (status, body) = client
            .call(
                "PUT",
                &format!("/v1/scopes/{scope}/env/ANTHROPIC_API_KEY"),
                Some(&operator),
                Some(&json!({ "value": CANARY })),
            )
            .await;
        assert!(status == 200 || code(&body) == "managed_by_self_host", "{status} {body}");
        for provider in ["evil", "pathgrab"] {
            let (status, body) = client
                .call(
                    "POST",
                    &format!("/v1/scopes/{scope}/resolve"),
                    Some(&operator),
                    Some(&json!({ "provider": provider })),
                )
                .await;
            assert_eq!((status, code(&body)), (404, "unknown_provider"), "{body}");
            assert!(!body.to_string().contains(CANARY), "{body}");
        }
    }

    // The self-host import took neither PATH from the file nor from the
    // process environment; the Anthropic key is there, for Anthropic.
    let (_, vars) =
        client.call("GET", "/v1/scopes/self/host/default/env", Some(&operator), None).await;
    let names: Vec<&str> = vars["variables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|var| var["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"ANTHROPIC_API_KEY"), "{vars}");
    for name in ["PATH", "HOME"] {
        assert!(!names.contains(&name), "{name} imported: {vars}");
    }

    // Metrics list the refused plugins by file and code.
    let (_, metrics) = client.raw("GET", "/metrics", Some(&operator), None).await;
    assert!(
        metrics.contains("platos_plugins_refused{origin=")
            && metrics.contains("code=\"name_ownership\"} 1")
            && metrics.contains("code=\"not_a_component\"} 1"),
        "{metrics}"
    );
    server.shutdown(Duration::from_secs(2)).await.unwrap();

    // The canary is nowhere on disk, in any encoding (the store holds it
    // sealed).
    for path in support::files_under(data.path()) {
        let bytes = std::fs::read(&path).unwrap();
        support::assert_no_secret(&bytes, CANARY, &path.display().to_string());
    }
}

#[tokio::test]
async fn require_all_plugins_refuses_to_start_naming_each_plugin_once() {
    let plugins = plugin_dir(&["lead_claims_anthropic"]);
    let data = tempfile::tempdir().unwrap();
    let mut config = config(
        data.path(),
        PluginSources { plugin_dir: Some(plugins.path().to_owned()), ..PluginSources::default() },
    );
    config.require_all_plugins = true;
    let error = match Server::start(config).await {
        Ok(_) => panic!("a refused plugin must stop a fail-closed start"),
        Err(error) => format!("{error:#}"),
    };
    assert!(error.contains("2 plugin(s) refused and --require-all-plugins is set"), "{error}");
    assert_eq!(error.matches("lead_claims_anthropic.wasm").count(), 1, "{error}");
    assert_eq!(error.matches("garbage.wasm").count(), 1, "{error}");
}

#[tokio::test]
async fn an_operators_grant_lets_a_third_party_plugin_read_a_bundled_key() {
    let plugins = plugin_dir(&["lead_granted"]);
    let data = tempfile::tempdir().unwrap();
    let policy_file = data.path().join("plugin-policy.toml");
    std::fs::write(&policy_file, "[plugins.openai-responses]\ngrant = [\"OPENAI_API_KEY\"]\n")
        .unwrap();
    let sources = PluginSources {
        plugin_dir: Some(plugins.path().to_owned()),
        policy: read_policy(&policy_file).unwrap(),
    };
    let server = Server::start(config(data.path(), sources)).await.unwrap();
    assert_eq!(server.report().refused_plugins, 1, "only garbage.wasm: {:?}", server.report());
    let client = Client::new(server.address());
    let operator = operator_token(data.path());
    let scope = "acme/shop/prod";
    let (status, body) = client
        .call(
            "PUT",
            &format!("/v1/scopes/{scope}/env/OPENAI_API_KEY"),
            Some(&operator),
            Some(&json!({ "value": "sk-granted-value" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for provider in ["openai", "openai-responses"] {
        let (status, body) = client
            .call(
                "POST",
                &format!("/v1/scopes/{scope}/resolve"),
                Some(&operator),
                Some(&json!({ "provider": provider })),
            )
            .await;
        assert_eq!(status, 200, "{provider}: {body}");
        assert_eq!(body["env"]["OPENAI_API_KEY"], "sk-granted-value", "{provider}");
    }
    server.shutdown(Duration::from_secs(2)).await.unwrap();
}

fn cli(args: &[&str]) -> std::process::Output {
    let data = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_platos-host"))
        .args(args)
        .env("PLATOS_DATA_DIR", data.path())
        .env("PLATOS_LOG", "warn")
        .output()
        .expect("the binary runs")
}

#[test]
fn the_cli_lists_refused_plugins_and_rejects_a_bad_policy_file() {
    let plugins = plugin_dir(&["lead_claims_anthropic"]);
    let dir = plugins.path().to_str().unwrap();
    let output = cli(&["plugin", "list", "--plugin-dir", dir]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().any(|line| line.starts_with("anthropic ")), "{stdout}");
    assert!(!stdout.lines().any(|line| line.starts_with("evil ")), "{stdout}");
    assert!(
        stdout.contains("REFUSED name_ownership") && stdout.contains("ANTHROPIC_API_KEY"),
        "{stdout}"
    );

    let policy = plugins.path().join("policy.toml");
    std::fs::write(&policy, "[plugins.evil]\ngrant = [\"PATH\"]\ngrants = []\n").unwrap();
    let output =
        cli(&["plugin", "list", "--plugin-dir", dir, "--plugin-policy", policy.to_str().unwrap()]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("policy.toml") && stderr.contains("grants"), "{stderr}");
}

/// The plugin set `load_all` assembles from `dir` under the policy text.
async fn load_with_policy(dir: &Path, policy: &str) -> platos_host::runtime::PluginRegistry {
    let host = platos_host::runtime::PluginHost::new(platos_host::runtime::RuntimeConfig {
        cache_dir: Some(cache_dir()),
        ..Default::default()
    })
    .unwrap();
    let sources = PluginSources {
        plugin_dir: Some(dir.to_owned()),
        policy: platos_host::policy::plugin_policy::parse(policy).unwrap(),
    };
    platos_host::bundled::load_all(&host, &sources).await.unwrap()
}

fn refused_codes(registry: &platos_host::runtime::PluginRegistry) -> Vec<(String, String)> {
    let mut codes: Vec<(String, String)> = registry
        .refused()
        .iter()
        .filter(|refused| !refused.origin.ends_with("garbage.wasm"))
        .map(|refused| (refused.code.to_string(), refused.message.clone()))
        .collect();
    codes.sort();
    codes
}

#[tokio::test]
async fn a_plugin_pinned_by_hash_loads_only_with_those_bytes() {
    let plugins = plugin_dir(&["lead_granted"]);
    let file = plugins.path().join("lead_granted.wasm");
    let original = std::fs::read(&file).unwrap();
    // The reference hash, from coreutils rather than the host's own code.
    let output = Command::new("sha256sum").arg(&file).output().unwrap();
    let pin = String::from_utf8(output.stdout).unwrap()[..64].to_owned();
    let grant = "grant = [\"OPENAI_API_KEY\"]";

    // The pinned bytes load (the pin may be written in upper case).
    let policy =
        format!("[plugins.openai-responses]\n{grant}\nsha256 = \"{}\"\n", pin.to_uppercase());
    let registry = load_with_policy(plugins.path(), &policy).await;
    assert!(registry.get("openai-responses").is_some(), "{:?}", refused_codes(&registry));
    assert_eq!(registry.get("openai-responses").unwrap().sha256(), pin);

    // One extra custom section (a valid component still, same slug): refused,
    // naming both hashes, and the rest serve.
    let mut tampered = original.clone();
    tampered.extend_from_slice(&[0x00, 0x05, 0x04, b'e', b'v', b'i', b'l']);
    std::fs::write(&file, &tampered).unwrap();
    let registry = load_with_policy(plugins.path(), &policy).await;
    assert!(registry.get("openai-responses").is_none());
    assert!(registry.get("openai").is_some(), "bundled plugins are not pinned");
    let refused = refused_codes(&registry);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].0, "hash_mismatch");
    assert!(
        refused[0].1.contains(&pin) && refused[0].1.contains("openai-responses@"),
        "{refused:?}"
    );

    // With pins required, an unpinned third-party plugin is refused too.
    std::fs::write(&file, &original).unwrap();
    let registry = load_with_policy(
        plugins.path(),
        &format!("require_pins = true\n[plugins.openai-responses]\n{grant}\n"),
    )
    .await;
    let refused = refused_codes(&registry);
    assert_eq!(
        refused.iter().map(|(code, _)| code.as_str()).collect::<Vec<_>>(),
        ["hash_not_pinned"],
        "{refused:?}"
    );
    assert!(refused[0].1.contains("require_pins"), "{refused:?}");
}
