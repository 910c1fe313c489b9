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
    let mut command = Command::new(env!("CARGO_BIN_EXE_platos-host"));
    command
        .args(args)
        .env("PLATOS_DATA_DIR", data.path())
        .env_remove("PLATOS_PLUGIN_DIR")
        .env("PLATOS_LOG", log);
    support::output_with_input(command, stdin)
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
fn serve_refuses_a_lease_ttl_outside_one_second_to_the_grace_period() {
    for (flag, env, expected) in [
        (
            Some("1h"),
            None,
            "the lease TTL (3600s) is longer than the store's grace period for replaced values (900s)",
        ),
        (None, Some("901s"), "use a lease TTL of at most 900s"),
        (Some("0"), None, "the lease TTL must be at least 1s"),
    ] {
        let data = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_platos-host"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--import-process-env", "false"])
            .env("PLATOS_DATA_DIR", data.path())
            .env_remove("PLATOS_PLUGIN_DIR")
            .env_remove("PLATOS_LEASE_TTL")
            .env("PLATOS_LOG", "warn")
            .stdin(Stdio::null());
        if let Some(ttl) = flag {
            command.args(["--lease-ttl", ttl]);
        }
        if let Some(ttl) = env {
            command.env("PLATOS_LEASE_TTL", ttl);
        }
        let output = command.output().unwrap();
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{flag:?} {env:?} started: {stderr}");
        assert!(stderr.contains(expected), "{flag:?} {env:?}: {stderr}");
    }
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

// ---------------------------------------------------------------------------
// The master key and the data directory.

const KEY_A: &str = "0123456789abcdef0123456789abcdef";
const KEY_B: &str = "fedcba9876543210fedcba9876543210";
const KEY_C: &str = "00112233445566778899aabbccddeeff";

/// Runs the binary on the data directory `data` under umask `umask`
/// (through `sh`), with `env` set (`ENCRYPTION_KEY*` only from there) and
/// `stdin` piped in.
fn run_on(data: &Path, umask: &str, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_platos-host"))
        .args(args)
        .env("PLATOS_DATA_DIR", data)
        .env("PLATOS_LOG", "debug,cranelift=warn,wasmtime=warn")
        .env_remove("PLATOS_PLUGIN_DIR")
        .env_remove("ENCRYPTION_KEY")
        .env_remove("ENCRYPTION_KEY_PREVIOUS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("sh starts");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn key_id(key: &str) -> String {
    platos_host::crypto::EncryptionKey::parse("ENCRYPTION_KEY", key).unwrap().id().to_string()
}

#[test]
fn a_wrong_master_key_is_refused_by_every_store_command() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path();
    let mut outputs = Vec::new();
    let mut run = |env: &[(&str, &str)], args: &[&str], stdin: &str| {
        let output = run_on(data, "022", env, args, stdin);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        outputs.push(format!("{stdout}{stderr}"));
        (output.status.code(), stdout, stderr)
    };
    let a = [("ENCRYPTION_KEY", KEY_A)];
    let (code, _, stderr) = run(&a, &["env", "set", "acme/shop/prod", "OPENAI_API_KEY"], CANARY);
    assert_eq!(code, Some(0), "{stderr}");

    let commands: [&[&str]; 5] = [
        &["env", "set", "acme/shop/prod", "OPENAI_API_KEY_2"],
        &["env", "unset", "acme/shop/prod", "OPENAI_API_KEY"],
        &["env", "list", "acme/shop/prod"],
        &["keys", "list", "acme/shop/prod"],
        &["rewrap"],
    ];
    let wrong: [&[(&str, &str)]; 2] = [
        &[("ENCRYPTION_KEY", KEY_B)],
        &[("ENCRYPTION_KEY", KEY_B), ("ENCRYPTION_KEY_PREVIOUS", KEY_C)],
    ];
    for env in wrong {
        for args in commands {
            let (code, stdout, stderr) = run(env, args, "sk-cli-second-canary");
            assert_eq!(code, Some(1), "{args:?}: {stdout}{stderr}");
            let says = if env.len() == 1 {
                "error: the master key (ENCRYPTION_KEY) does not match the store in"
            } else {
                "error: neither ENCRYPTION_KEY nor ENCRYPTION_KEY_PREVIOUS matches the store in"
            };
            assert!(stderr.contains(says), "{args:?}: {stderr}");
            assert!(stderr.contains("run `platos-host rewrap`"), "{stderr}");
            assert!(!stderr.contains("is `platos-host serve` running"), "{stderr}");
        }
    }
    // The key generated on a first start, in the data directory, is checked too.
    std::fs::write(data.join("encryption.key"), format!("{KEY_C}\n")).unwrap();
    let (code, _, stderr) = run(&[], &["env", "list", "acme/shop/prod"], "");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does not match the store"), "{stderr}");
    // Tokens do not touch the store.
    let (code, _, stderr) = run(&[("ENCRYPTION_KEY", KEY_B)], &["token", "list"], "");
    assert_eq!(code, Some(0), "{stderr}");

    // Nothing was written: the right key lists version 1 of the one variable.
    let (code, stdout, _) = run(&a, &["env", "list", "acme/shop/prod", "--json"], "");
    assert_eq!(code, Some(0));
    let vars: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(vars.as_array().unwrap().len(), 1, "{vars}");
    assert_eq!(vars[0]["version"], 1);
    assert_eq!(vars[0]["source"], "cli", "a CLI write says it came from the CLI");

    // A rotation: the store's key as ENCRYPTION_KEY_PREVIOUS, then rewrap;
    // then the new key alone opens the store, and the old one is refused.
    let rotation = [("ENCRYPTION_KEY", KEY_B), ("ENCRYPTION_KEY_PREVIOUS", KEY_A)];
    let (code, stdout, stderr) = run(&rotation, &["rewrap"], "");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("every value is under the current key"), "{stdout}");
    let (code, stdout, stderr) =
        run(&[("ENCRYPTION_KEY", KEY_B)], &["keys", "list", "acme/shop/prod"], "");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("OPENAI_API_KEY*"), "{stdout}");
    let (code, _, stderr) = run(&a, &["env", "list", "acme/shop/prod"], "");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does not match the store"), "{stderr}");

    let ids = [key_id(KEY_A), key_id(KEY_B), key_id(KEY_C)];
    for output in &outputs {
        for secret in [CANARY, "sk-cli-second-canary", KEY_A, KEY_B, KEY_C] {
            assert!(!output.contains(secret), "{secret} leaked: {output}");
        }
        if output.contains("does not match") {
            for id in &ids {
                assert!(!output.contains(id.as_str()), "a key id in a refusal: {output}");
            }
        }
    }
}

/// Every file and folder under `root` (itself included) with its mode.
#[cfg(unix)]
fn modes_under(root: &Path) -> Vec<(PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let metadata = std::fs::symlink_metadata(root).unwrap();
    let mut found = vec![(root.to_owned(), metadata.permissions().mode() & 0o777)];
    if metadata.is_dir() {
        for entry in std::fs::read_dir(root).unwrap() {
            found.extend(modes_under(&entry.unwrap().path()));
        }
    }
    found
}

/// Runs `serve` on `data` under umask 000 until it listens, then stops it
/// with SIGTERM; returns its log.
#[cfg(unix)]
fn serve_once(data: &Path, env: &[(&str, &str)]) -> String {
    use std::io::BufRead;
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_platos-host"))
        .args(["serve", "--listen", "127.0.0.1:0", "--import-process-env", "false"])
        .env("PLATOS_DATA_DIR", data)
        .env("PLATOS_LOG", "info,cranelift=warn,wasmtime=warn")
        .env("NO_COLOR", "1")
        .env_remove("PLATOS_LISTEN")
        .env_remove("PLATOS_PLUGIN_DIR")
        .env_remove("PLATOS_ENV_FILE")
        .env_remove("ENCRYPTION_KEY")
        .env_remove("ENCRYPTION_KEY_PREVIOUS")
        .current_dir(data.parent().unwrap())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut log = String::new();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut listening = false;
    for line in lines.by_ref().map_while(Result::ok) {
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening on http://") {
            listening = true;
            break;
        }
    }
    if listening {
        let status =
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        for line in lines.map_while(Result::ok) {
            log.push_str(&line);
            log.push('\n');
        }
    }
    let status = child.wait().unwrap();
    // `serve` logs that it listens just before it handles SIGTERM: an early
    // signal ends it by default action, which is no fault here.
    use std::os::unix::process::ExitStatusExt;
    let stopped = status.success() || status.signal() == Some(15);
    assert!(listening && stopped, "serve did not run ({status}): {log}");
    log
}

#[cfg(unix)]
#[test]
fn data_files_and_folders_are_private_whatever_the_umask() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // A first start (generated key, operator token, store, tokens, audit, plugin
    // cache), then every command that writes, all under umask 000.
    let log = serve_once(&data, &[]);
    assert!(log.contains("generated a master key"), "{log}");
    let umask_000 = |args: &[&str], stdin: &str| {
        let output = run_on(&data, "000", &[], args, stdin);
        assert!(output.status.success(), "{args:?}: {}", text(&output.stderr));
    };
    umask_000(&["env", "set", "acme/shop/prod", "OPENAI_API_KEY"], CANARY);
    umask_000(&["env", "set", "acme/shop/prod", "OPENAI_API_KEY_2"], CANARY);
    umask_000(&["env", "unset", "acme/shop/prod", "OPENAI_API_KEY_2"], "");
    umask_000(&["keys", "list", "acme/shop/prod"], "");
    umask_000(&["token", "create", "--operator"], "");
    umask_000(&["rewrap"], "");
    serve_once(&data, &[]);
    let modes = modes_under(&data);
    assert!(modes.len() > 10, "{modes:?}");
    for (path, mode) in &modes {
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(*mode, want, "{} is {mode:03o}", path.display());
    }
    for entry in ["store", "tokens", "audit", "cache", "encryption.key", "operator.token"] {
        assert!(data.join(entry).exists(), "{entry}");
    }

    // A data directory left open by an earlier run (as a release that did
    // not restrict modes, under umask 022): the next start restricts it and
    // says so; a file that is not the host's is left alone.
    use std::os::unix::fs::PermissionsExt;
    for (path, _) in &modes {
        let open = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(open)).unwrap();
    }
    let foreign = data.join("notes.txt");
    std::fs::write(&foreign, "not the host's").unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o644)).unwrap();
    let log = serve_once(&data, &[]);
    assert!(log.contains("was mode 755, open to other users; set it to 700"), "{log}");
    assert!(log.contains("were readable by other users; now owner-only"), "{log}");
    for (path, mode) in modes_under(&data) {
        if path == foreign {
            assert_eq!(mode, 0o644);
        } else {
            let want = if path.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(mode, want, "{} is {mode:03o}", path.display());
        }
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
fn a_manifest_of_200_000_model_ids_is_refused_briefly() {
    let path = component("platos_fixture_h1_huge_manifest");
    let output = run(&["plugin", "inspect", path.to_str().unwrap()], "");
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    // Refused by its size, or (on a loaded machine) by the time lifting it
    // takes; either way a short message, not 200,000 problems.
    assert!(
        stderr.contains("more than the limit") || stderr.contains("did not finish within"),
        "{stderr}"
    );
    assert!(stderr.len() < 1_000, "{} bytes of error", stderr.len());
    assert_eq!(stderr.matches("platos_fixture_h1_huge_manifest.wasm").count(), 1, "{stderr}");
}

#[test]
fn token_create_takes_pins_and_token_list_shows_them() {
    let data = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| run_on(data.path(), "077", &[], args, "");
    let created = cli(&[
        "token",
        "create",
        "--scope",
        "acme/shop/prod",
        "--label",
        "checkout",
        "--pin",
        "openai=OPENAI_API_KEY_2",
        "--pin",
        "anthropic=ANTHROPIC_API_KEY",
    ]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let token = text(&created.stdout).trim().to_owned();
    let listed = cli(&["token", "list"]);
    let listed = text(&listed.stdout);
    assert!(
        listed.contains("pins: anthropic=ANTHROPIC_API_KEY, openai=OPENAI_API_KEY_2"),
        "{listed}"
    );
    assert!(!listed.contains(&token), "{listed}");
    let json = cli(&["token", "list", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json[0]["pins"]["openai"], "OPENAI_API_KEY_2", "{json}");

    // Refused, never repeating what may be a pasted key; nothing created.
    for (pin, says) in [
        ("sk-cli-canary-pasted", "expects PROVIDER=KEY_ID"),
        ("openai=sk-cli-canary-pasted", "invalid pins: the key id of \"openai\""),
        ("OpenAI=OPENAI_API_KEY", "\"OpenAI\" is not a provider slug"),
    ] {
        let refused = cli(&["token", "create", "--scope", "acme/shop/prod", "--pin", pin]);
        let stderr = text(&refused.stderr);
        assert!(!refused.status.success() && refused.stdout.is_empty(), "{pin}: {stderr}");
        assert!(stderr.contains(says) && !stderr.contains("canary"), "{pin}: {stderr}");
    }
    let twice =
        cli(&["token", "create", "--scope", "a/b/c", "--pin", "openai=A", "--pin", "openai=B"]);
    assert!(text(&twice.stderr).contains("twice"), "{}", text(&twice.stderr));
    let operator = cli(&["token", "create", "--operator", "--pin", "openai=OPENAI_API_KEY"]);
    assert!(!operator.status.success());
    let json = cli(&["token", "list", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1, "{json}");
}
