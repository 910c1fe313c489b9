//! The `platos-host` command line, run as a user would run it.

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
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_platos-host"))
        .args(args)
        .env("PLATOS_DATA_DIR", data.path())
        .env_remove("PLATOS_PLUGIN_DIR")
        .env("PLATOS_LOG", "warn")
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
fn plugin_call_read_usage_and_the_0_1_0_answer() {
    let input = serde_json::json!({
        "request": {"method": "POST", "url": "https://api.openai.com/v1/chat/completions"},
        "response": {"status": 200, "body": r#"{"model":"gpt-5","usage":{"prompt_tokens":7,"completion_tokens":2}}"#},
    })
    .to_string();
    let path = component("platos_plugin_openai");
    let output =
        run(&["plugin", "call", path.to_str().unwrap(), "read-usage", "--input", &input], "");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"usage": {"input_tokens": 7, "output_tokens": 2, "cached_input_tokens": 0, "model": "gpt-5"}})
    );

    let frozen = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/v0.1.0/openai.wasm");
    let output =
        run(&["plugin", "call", frozen.to_str().unwrap(), "read-usage", "--input", &input], "");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("openai@0.1.0: read-usage is not supported by contract 0.1.0"),
        "{stderr}"
    );
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
