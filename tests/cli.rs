//! The `platos-host` command line, run as a user would run it.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use platos_host::bundled::BUILT_PLUGIN_DIR;

const CANARY: &str = "sk-cli-canary-42d1";

fn component(stem: &str) -> PathBuf {
    Path::new(BUILT_PLUGIN_DIR).join(format!("{stem}.wasm"))
}

/// Runs the binary with a private data directory and `stdin` piped in.
fn run(args: &[&str], stdin: &str) -> Output {
    run_logged(args, stdin, "warn")
}

/// [`run`] with `PLATOS_LOG` set to `log`.
fn run_logged(args: &[&str], stdin: &str, log: &str) -> Output {
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_platos-host"))
        .args(args)
        .env("PLATOS_DATA_DIR", data.path())
        .env_remove("PLATOS_PLUGIN_DIR")
        .env("PLATOS_LOG", log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn plugin_list_shows_bundled_plugins_and_their_env_vars() {
    let output = run(&["plugin", "list"], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let line = stdout.lines().find(|line| line.starts_with("openai ")).expect(&stdout);
    assert!(line.contains("OPENAI_API_KEY") && line.contains("[OPENAI_API_BASE]"), "{line}");

    let output = run(&["plugin", "list", "--json"], "");
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let openai = list.as_array().unwrap().iter().find(|plugin| plugin["slug"] == "openai").unwrap();
    assert_eq!(openai["env_vars"], serde_json::json!(["OPENAI_API_KEY", "OPENAI_API_BASE"]));
}

#[test]
fn plugin_inspect_prints_the_manifest() {
    let path = component("platos_plugin_openai");
    let output = run(&["plugin", "inspect", path.to_str().unwrap(), "--json"], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let manifest: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(manifest["slug"], "openai");
    assert_eq!(
        manifest["auth"],
        serde_json::json!({"type": "bearer", "env_var": "OPENAI_API_KEY"})
    );

    let output = run(&["plugin", "inspect", path.to_str().unwrap()], "");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("auth: Authorization: Bearer $OPENAI_API_KEY"), "{stdout}");
    assert!(stdout.contains("gpt-4o-mini"), "{stdout}");
}

#[test]
fn plugin_call_authorize_reads_credentials_from_stdin() {
    let path = component("platos_plugin_openai");
    let input = serde_json::json!({
        "credentials": {"OPENAI_API_KEY": CANARY},
        "request": {"method": "GET", "url": "https://api.openai.com/v1/models"},
        "now": 1_700_000_000u64,
    });
    let output = run(
        &["plugin", "call", path.to_str().unwrap(), "authorize", "--input", "-"],
        &input.to_string(),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let request: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        request["headers"],
        serde_json::json!([["authorization", format!("Bearer {CANARY}")]])
    );
    assert!(!text(&output.stderr).contains(CANARY), "the secret reached stderr");
}

#[test]
fn plugin_call_interpret_health_and_probe() {
    let path = component("platos_plugin_openai");
    let input =
        r#"{"response": {"status": 401, "body": "{\"error\":{\"code\":\"invalid_api_key\"}}"}}"#;
    let output =
        run(&["plugin", "call", path.to_str().unwrap(), "interpret-health", "--input", input], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let verdict: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verdict["verdict"], "invalid-credential");

    let input = format!(r#"{{"credentials": {{"OPENAI_API_KEY": "{CANARY}"}}}}"#);
    let output =
        run(&["plugin", "call", path.to_str().unwrap(), "health-probe", "--input", "-"], &input);
    let probe: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(probe["url"], "https://api.openai.com/v1/models");
}

#[test]
fn limit_violations_and_refusals_exit_non_zero_with_a_message() {
    let hostile = component("platos_fixture_hostile");
    let input = format!(
        r#"{{"credentials": {{"HOSTILE_KEY": "{CANARY}", "HOSTILE_MODE": "foreign-host"}}, "request": {{"method": "GET", "url": "https://api.example.com/"}}}}"#
    );
    let output =
        run(&["plugin", "call", hostile.to_str().unwrap(), "authorize", "--input", "-"], &input);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("hostile@0.0.1") && stderr.contains("evil.example.net"), "{stderr}");
    assert!(!stderr.contains(CANARY), "the secret reached stderr: {stderr}");

    let forbidden = component("platos_fixture_forbidden_import");
    let output = run(&["plugin", "inspect", forbidden.to_str().unwrap()], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("platos-fixture:forbidden/raw-net"));
}

#[test]
fn bad_input_is_a_clear_error() {
    let path = component("platos_plugin_openai");
    let output =
        run(&["plugin", "call", path.to_str().unwrap(), "authorize", "--input", "{not json"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("--input is not valid JSON"), "{}", text(&output.stderr));

    let output = run(&["plugin", "call", path.to_str().unwrap(), "authorize", "--input", "{}"], "");
    assert!(
        text(&output.stderr).contains("authorize needs \"request\""),
        "{}",
        text(&output.stderr)
    );

    let output = run(&["plugin", "inspect", "/nonexistent/plugin.wasm"], "");
    assert!(text(&output.stderr).contains("cannot read plugin /nonexistent/plugin.wasm"));
}

#[test]
fn the_committed_env_example_is_up_to_date() {
    let output = run(&["env-example"], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let generated = text(&output.stdout);
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.env.example");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        generated == committed,
        ".env.example is out of date: run `cargo run -p platos-host -- env-example > .env.example`"
    );
    for name in [
        "OPENAI_API_KEY=",
        "ANTHROPIC_API_KEY=",
        "GOOGLE_GENERATIVE_AI_API_KEY=",
        "VOYAGE_API_KEY=",
        "ENCRYPTION_KEY=",
    ] {
        assert!(generated.contains(name), "{name} missing");
    }
}

/// The secret-echo fixture's key: upper-case letters, nothing to encode.
const H1_CANARY: &str = "sk-H1Cli-Canary-6yT2m8";

#[test]
fn plugin_call_never_prints_a_key_the_plugin_echoes() {
    let path = component("platos_fixture_h1_secret_echo");
    let path = path.to_str().unwrap();
    for (mode, says) in [
        ("host", "[redacted].evil.example"),
        ("header-name", "H1_KEY in a header name"),
        ("query", "H1_KEY in the URL query parameter `leak`"),
        ("other-header", "H1_KEY in header `x-copy`"),
        ("body", "H1_KEY in the body"),
        ("percent-url", "H1_KEY in the URL path"),
        ("base64-url", "H1_KEY in the URL query parameter `t`"),
        ("error", "cannot authorize with [redacted]"),
        ("panic", "the fixture panics holding [redacted]"),
        ("trap-stderr", "last words: [redacted] [redacted]"),
    ] {
        let input = serde_json::json!({
            "credentials": {"H1_KEY": H1_CANARY, "H1_MODE": mode},
            "request": {"method": "GET", "url": "https://api.h1-echo.example/v1/models"},
        });
        let output = run_logged(
            &["plugin", "call", path, "authorize", "--input", "-"],
            &input.to_string(),
            "info",
        );
        assert_eq!(output.status.code(), Some(1), "{mode}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("h1-secret-echo@0.0.1") && stderr.contains(says),
            "{mode}: {stderr}"
        );
        support::assert_no_secret(&output.stderr, H1_CANARY, mode);
        support::assert_no_secret(&output.stdout, H1_CANARY, mode);
    }

    // What the plugin prints goes to the log, redacted; the authorized
    // request on stdout is the one place the key belongs.
    let input = serde_json::json!({
        "credentials": {"H1_KEY": H1_CANARY, "H1_MODE": "stderr"},
        "request": {"method": "GET", "url": "https://api.h1-echo.example/v1/models"},
    });
    let output = run_logged(
        &["plugin", "call", path, "authorize", "--input", "-"],
        &input.to_string(),
        "info",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("stderr sees [redacted] and [redacted]"),
        "{}",
        text(&output.stderr)
    );
    support::assert_no_secret(&output.stderr, H1_CANARY, "the log");
    assert!(text(&output.stdout).contains(&format!("Bearer {H1_CANARY}")));

    // A verdict that quotes the echoed key, redacted against the input's credentials.
    let input = serde_json::json!({
        "credentials": {"H1_KEY": H1_CANARY},
        "response": {"status": 500, "body": format!("mode=echo-message;echo=Bearer {H1_CANARY}")},
    });
    let output = run_logged(
        &["plugin", "call", path, "interpret-health", "--input", "-"],
        &input.to_string(),
        "info",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let verdict: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(
        verdict["message"].as_str().unwrap().starts_with("upstream said [redacted];"),
        "{verdict}"
    );
    support::assert_no_secret(&output.stdout, H1_CANARY, "the verdict");
}

#[test]
fn a_manifest_of_500_000_model_ids_is_refused_briefly() {
    let path = component("platos_fixture_h1_huge_manifest");
    let output = run(&["plugin", "inspect", path.to_str().unwrap()], "");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    // Refused by its size, or (on a loaded machine) by the time lifting it
    // takes; either way a short message, not 500,000 problems.
    assert!(
        stderr.contains("more than the limit") || stderr.contains("did not finish within"),
        "{stderr}"
    );
    assert!(stderr.len() < 1_000, "{} bytes of error", stderr.len());
}
