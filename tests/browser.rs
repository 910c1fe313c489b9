//! The providers page in headless Chromium: the real binary serves it, a
//! mock upstream on loopback answers the OpenAI and Voyage probes, and
//! DevTools-protocol drivers (`tests/browser/*.mjs`, Node's built-in
//! WebSocket) use the page as a person does: paste a token, read the badges,
//! press "Test key"; and work the checklist from empty to all green through
//! the page's forms.
//!
//! Needs Debian's `chromium` and Node.js; `scripts/test.sh` installs them. If
//! either is missing the test fails and names the install command.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, mock_upstream};

/// The first of `names` found on `PATH`.
fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Chromium and Node.js, or a panic naming the install command.
fn browser_tools() -> (PathBuf, PathBuf) {
    let chromium = which(&["chromium", "chromium-browser"]).unwrap_or_else(|| {
        panic!(
            "headless Chromium is needed for the providers-page test and is not installed: run `apt-get update && apt-get install -y chromium` (`bash scripts/test.sh` does)"
        )
    });
    let node = which(&["node", "nodejs"])
        .unwrap_or_else(|| panic!("Node.js drives Chromium in this test and is not installed: run `apt-get install -y nodejs`"));
    (chromium, node)
}

/// The real binary, serving on a free loopback port.
struct Host {
    child: Child,
    address: String,
    client: Client,
    operator: String,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `platos-host serve` with its data under `data` and `args` added.
fn start_host(data: &Path, args: &[&std::ffi::OsStr]) -> Host {
    let mut child = Command::new(env!("CARGO_BIN_EXE_platos-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--allow-loopback-upstreams"])
        .args(args)
        .env("PLATOS_DATA_DIR", data)
        .env("NO_COLOR", "1")
        .env_remove("ENCRYPTION_KEY")
        .env_remove("PLATOS_LISTEN")
        .env_remove("PLATOS_PLUGIN_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (sender, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let address = loop {
        let line = lines.recv_timeout(Duration::from_secs(120)).expect("the host starts");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let address: String =
                rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
            break address;
        }
    };
    let operator = std::fs::read_to_string(data.join("operator.token")).unwrap().trim().to_owned();
    let client = Client::new(address.parse().unwrap());
    Host { child, address, client, operator }
}

impl Host {
    /// A new admin token of `scope` (the page is used with one: its changes
    /// are scope-admin changes, which agent tokens may not make).
    async fn admin_token(&self, scope: &str) -> String {
        let (status, created) = self
            .client
            .call(
                "POST",
                "/v1/tokens",
                Some(&self.operator),
                Some(&json!({ "scope": scope, "role": "admin", "label": "page" })),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        created["token"].as_str().unwrap().to_owned()
    }
}

/// One Chromium at a time: two at once on a 2-core machine starve each
/// other's timeouts.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the driver `script` (under `tests/browser/`) against `host` with
/// `env`; returns what it saw (its one JSON line).
async fn run_driver(host: &Host, script: &str, token: &str, env: &[(&str, &str)]) -> Value {
    let _one = ONE_BROWSER.lock().await;
    let (chromium, node) = browser_tools();
    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&screenshots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser").join(script);
    let output = tokio::process::Command::new(node)
        .arg("--experimental-websocket")
        .arg(&script)
        .env("PAGE_URL", format!("http://{}/", host.address))
        .env("PAGE_TOKEN", token)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT_DIR", &screenshots)
        .env("NODE_NO_WARNINGS", "1")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser driver failed:\n{stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!("the driver printed no JSON ({error}): {}", String::from_utf8_lossy(&output.stdout))
    })
}

fn provider<'a>(snapshot: &'a Value, slug: &str) -> &'a Value {
    snapshot["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|provider| provider["slug"] == slug)
        .unwrap_or_else(|| panic!("no {slug} card: {snapshot}"))
}

fn key_badges(snapshot: &Value) -> Vec<(String, String)> {
    provider(snapshot, "openai")["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| {
            (key["key"].as_str().unwrap().to_owned(), key["badge"].as_str().unwrap().to_owned())
        })
        .collect()
}

fn pair(key: &str, badge: &str) -> (String, String) {
    (key.to_owned(), badge.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_page_shows_badges_and_tests_keys() {
    let (upstream, mock) = mock_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("page.env");
    std::fs::write(
        &env_file,
        format!(
            "OPENAI_API_KEY=sk-good-page\nOPENAI_API_KEY_2=sk-bad-page\nOPENAI_API_BASE={upstream}\nOPENAI_KEY=typo\n"
        ),
    )
    .unwrap();
    // Health rounds off so only the page's button probes.
    let args: Vec<&std::ffi::OsStr> = [
        "--health-interval",
        "0",
        "--import-process-env",
        "false",
        "--self-host-scope",
        "acme/shop/prod",
        "--env-file",
    ]
    .iter()
    .map(std::ffi::OsStr::new)
    .chain([env_file.as_os_str()])
    .collect();
    let host = start_host(&dir.path().join("data"), &args);
    let token = host.admin_token("acme/shop/prod").await;
    let (status, answer) = host
        .client
        .call(
            "PUT",
            "/v1/scopes/acme/shop/prod/providers/openai/keys/OPENAI_API_KEY_2/budget",
            Some(&host.operator),
            Some(&json!({ "limit_usd": 25.0, "period": "month" })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let seen = run_driver(&host, "providers_page.mjs", &token, &[]).await;
    drop(host);

    // Before any probe: scope filled from the token, every provider shown,
    // expected names and the near-miss hint, keys unchecked (grey).
    let before = &seen["before"];
    assert_eq!(before["scope"], "acme/shop/prod", "{before}");
    assert_eq!(before["tokenStored"], true);
    assert!(before["providers"].as_array().unwrap().len() >= 6, "{before}");
    let openai = provider(before, "openai");
    assert_eq!(openai["badge"], "grey");
    assert!(openai["expected"].as_array().unwrap().contains(&json!("OPENAI_API_KEY")), "{openai}");
    assert!(openai["expected"].as_array().unwrap().contains(&json!("OPENAI_API_BASE")), "{openai}");
    // Which names the bag carries for each client, the default marked.
    let clients = &provider(before, "anthropic")["clients"];
    let official = clients["official"].as_str().unwrap_or_default();
    assert!(official.contains("(default)") && official.contains("ANTHROPIC_BASE_URL"), "{clients}");
    assert!(
        clients["ai-sdk"].as_str().unwrap_or_default().contains("ANTHROPIC_BASE_URL with /v1"),
        "{clients}"
    );
    let hints = openai["nearMisses"].as_array().unwrap();
    assert!(
        hints.iter().any(|hint| hint.as_str().unwrap().contains("OPENAI_KEY")
            && hint.as_str().unwrap().contains("did you mean OPENAI_API_KEY")),
        "{openai}"
    );
    assert_eq!(
        key_badges(before),
        [pair("OPENAI_API_KEY", "grey"), pair("OPENAI_API_KEY_2", "grey")]
    );
    assert_eq!(openai["keys"][0]["button"], "Test key");
    assert_eq!(openai["keys"][0]["lastUsed"], "never");
    // Each key's spend, and its cap with what is left.
    assert_eq!(openai["keys"][0]["spend"], "$0.00 today · $0.00 this month no cap", "{openai}");
    assert_eq!(
        openai["keys"][1]["spend"],
        "$0.00 today · $0.00 this month cap $25.00 per month: $25.00 left",
        "{openai}"
    );
    assert_eq!(provider(before, "anthropic")["linked"], "not linked");
    assert!(before["embedding"].as_str().unwrap().contains("VOYAGE_API_KEY"), "{before}");
    let models = before["models"].as_array().unwrap();
    assert!(
        !models.is_empty() && !models.contains(&json!("mock-chat-1")),
        "defaults only before a probe: {models:?}"
    );

    // "Test key" on the good key: green, and the picker gains the discovered models.
    let good = &seen["afterGood"];
    assert_eq!(
        key_badges(good),
        [pair("OPENAI_API_KEY", "green"), pair("OPENAI_API_KEY_2", "grey")]
    );
    assert_eq!(provider(good, "openai")["badge"], "grey", "the worst key is still unchecked");
    assert!(good["models"].as_array().unwrap().contains(&json!("mock-chat-1")), "{good}");
    assert!(good["status"].as_str().unwrap().contains("healthy"), "{good}");

    // On the bad key: red, and the provider badge (its worst key) red.
    let bad = &seen["afterBad"];
    assert_eq!(key_badges(bad), [pair("OPENAI_API_KEY", "green"), pair("OPENAI_API_KEY_2", "red")]);
    assert_eq!(provider(bad, "openai")["badge"], "red");
    assert!(bad["status"].as_str().unwrap().contains("invalid-credential"), "{bad}");

    // A reload: the token stays in session storage and the verdicts were recorded.
    let reload = &seen["afterReload"];
    assert_eq!(
        key_badges(reload),
        [pair("OPENAI_API_KEY", "green"), pair("OPENAI_API_KEY_2", "red")]
    );
    assert_eq!(provider(reload, "openai")["badge"], "red");

    assert_eq!(
        seen["problems"],
        json!([]),
        "console errors, exceptions or CSP violations on the page"
    );
    let probes = mock.authorizations.lock().unwrap().clone();
    assert_eq!(probes, ["Bearer sk-good-page", "Bearer sk-bad-page"], "one probe per button press");
    let page_text = seen.to_string();
    assert!(
        !page_text.contains("sk-good-page") && !page_text.contains("sk-bad-page"),
        "no secret on the page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checklist_goes_from_empty_to_green_through_the_pages_forms() {
    let (upstream, mock) = mock_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    // Automatic probes on (a change probes at once), the schedule far away.
    let args: Vec<&std::ffi::OsStr> =
        ["--health-interval", "1h"].iter().map(std::ffi::OsStr::new).collect();
    let host = start_host(&dir.path().join("data"), &args);
    let scope = "acme/web/dev";
    let token = host.admin_token(scope).await;
    let (good, bad, voyage) = ("sk-good-cl-5e1f0c", "sk-bad-cl-77d2aa", "pa-good-cl-0b93de");
    let seen = run_driver(
        &host,
        "checklist.mjs",
        &token,
        &[
            ("PAGE_SCOPE", scope),
            ("UPSTREAM", &upstream),
            ("GOOD_OPENAI", good),
            ("BAD_OPENAI", bad),
            ("GOOD_VOYAGE", voyage),
        ],
    )
    .await;

    let steps =
        |state: &str| json!({ "llm": state, "embedding": state, "keys": state, "names": "done" });
    assert_eq!(seen["empty"], steps("todo"), "{}", seen["empty"]);
    assert_eq!(seen["scopeOptions"], json!([scope]), "an admin token sees its own scope");
    assert_eq!(seen["afterOpenai"]["llm"], "done", "{}", seen["afterOpenai"]);
    assert_eq!(seen["afterOpenai"]["embedding"], "todo", "{}", seen["afterOpenai"]);
    assert_eq!(seen["allGreen"], steps("done"), "{}", seen["allGreen"]);
    assert_eq!(seen["afterBadRotation"]["llm"], "warn", "{}", seen["afterBadRotation"]);
    assert_eq!(seen["afterBadRotation"]["keys"], "warn", "{}", seen["afterBadRotation"]);
    assert_eq!(seen["afterDisable"]["llm"], "todo", "no active LLM key: {}", seen["afterDisable"]);
    assert_eq!(seen["rowErrors"], json!([]));
    assert_eq!(
        seen["defaultBefore"],
        json!({ "two": "scope default", "three": "" }),
        "the lowest active variant is the default until an operator chooses"
    );
    assert_eq!(seen["defaultAfter"], json!({ "two": "", "three": "scope default (chosen)" }));
    assert_eq!(seen["rowErrorsAfterDefault"], json!([]));
    assert_eq!(seen["problems"], json!([]), "console errors or exceptions on the page");

    // The probes came from the host on its own, one per change of a key.
    let probes = mock.authorizations.lock().unwrap().clone();
    for value in [good, bad, voyage] {
        assert!(
            probes.contains(&format!("Bearer {value}")),
            "{value} was never probed: {probes:?}"
        );
    }
    // No value anywhere in the page: DOM, fields, URL, storage.
    let surfaces = seen["surfaces"].to_string();
    for value in [good, bad, voyage, upstream.as_str()] {
        if value == upstream {
            // The base URL is not a secret, but the form still never shows it back.
            assert!(!seen["surfaces"]["fields"].to_string().contains(value), "{surfaces}");
            continue;
        }
        assert!(!surfaces.contains(value), "{value} appears on the page: {surfaces}");
    }
    // The changes the page made are the ones the host recorded.
    let (_, keys) = host
        .client
        .call("GET", &format!("/v1/scopes/{scope}/providers/openai/keys"), Some(&token), None)
        .await;
    let key = &keys["provider"]["keys"][0];
    assert_eq!(
        (key["label"].as_str(), key["status"].as_str()),
        (Some("primary"), Some("disabled"))
    );
}
