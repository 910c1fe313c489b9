//! The plugin author kit end to end: every bundled plugin passes the harness,
//! each deliberately broken fixture fails the right check with the right
//! message, live mode against a mock upstream on 127.0.0.1, the CLI, and a
//! scaffolded plugin built from scratch for wasm32-wasip2.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use platos_host::bundled::{BUILT_PLUGIN_DIR, BUNDLED_PLUGINS};
use platos_host::harness::{
    Check, CheckStatus, HarnessOptions, HarnessReport, assert_passes, check_plugin, names,
};

fn component_path(stem: &str) -> PathBuf {
    Path::new(BUILT_PLUGIN_DIR).join(format!("{stem}.wasm"))
}

fn component(stem: &str) -> Vec<u8> {
    let path = component_path(stem);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn options(origin: &str) -> HarnessOptions {
    HarnessOptions { origin: origin.to_owned(), ..HarnessOptions::default() }
}

async fn check(stem: &str) -> HarnessReport {
    check_plugin(&component(stem), &options(stem)).await
}

fn failed_names(report: &HarnessReport) -> BTreeSet<&str> {
    report.failures().map(|check| check.name.as_str()).collect()
}

/// The check `name`, which must have failed; the report is printed otherwise.
fn failed<'a>(report: &'a HarnessReport, name: &str) -> &'a Check {
    let check = report.check(name).unwrap_or_else(|| panic!("no check {name}"));
    assert_eq!(check.status, CheckStatus::Failed, "{name}:\n{}", report.to_text());
    check
}

/// No canary value (`hc-` + 32 hex digits) anywhere in the report.
fn assert_no_canary(report: &HarnessReport) {
    let text = serde_json::to_string(report).unwrap() + &report.to_text();
    assert!(!text.contains("hc-"), "a canary secret is in the report:\n{text}");
}

#[tokio::test]
async fn every_bundled_plugin_passes_the_harness() {
    assert!(BUNDLED_PLUGINS.iter().any(|(name, _)| *name == "openai"));
    let mut failures = String::new();
    for (name, wasm) in BUNDLED_PLUGINS {
        let mut options = options(&format!("bundled:{name}"));
        if *name == "vertex" {
            // A service account's key must be a real RSA key to sign the
            // token request's JWT: the committed test-only one.
            let pem = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/test-only-keys/vertex-test-only-private-key.pem");
            options
                .values
                .insert("GOOGLE_PRIVATE_KEY".into(), std::fs::read_to_string(pem).unwrap());
        }
        let report = check_plugin(wasm, &options).await;
        assert_no_canary(&report);
        if !report.passed() {
            failures.push_str(&report.to_text());
        }
        // Every check ran: the only skip is live mode (no fixtures), plus
        // the missing-credential check where no secret is required.
        for check in &report.checks {
            if check.status == CheckStatus::Skipped {
                // Token checks skip only where the manifest trades no token.
                let token_check = [names::TOKEN_REQUEST, names::TOKEN_401]
                    .contains(&check.name.as_str())
                    && check.got == "the manifest declares no token exchange"
                    && !["vertex", "azure-openai-entra"].contains(name);
                assert!(
                    token_check
                        || [names::LIVE, names::AUTHORIZE_MISSING_CREDENTIAL]
                            .contains(&check.name.as_str()),
                    "{name}: {} skipped: {}",
                    check.name,
                    check.got
                );
            }
        }
    }
    assert!(failures.is_empty(), "bundled plugins fail the harness:\n{failures}");
}

#[tokio::test]
async fn the_frozen_0_1_0_plugin_still_passes_the_harness() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/v0.1.0/openai.wasm");
    let wasm = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let report = check_plugin(&wasm, &options("fixture:openai-0.1.0")).await;
    assert_no_canary(&report);
    assert_passes(&report);
    assert_eq!(report.plugin.as_deref(), Some("openai@0.1.0"));
    let exports = report.check(names::LOAD_EXPORTS).expect("the exports check ran");
    assert_eq!(exports.got, "exports platos:provider/plugin@0.1.0");
}

#[tokio::test]
async fn the_reference_plugin_passes_every_check_by_name() {
    let report = check("platos_plugin_openai").await;
    assert_passes(&report);
    assert_eq!(report.plugin.as_deref(), Some("openai@0.2.0"));
    let ran: Vec<&str> = report.checks.iter().map(|check| check.name.as_str()).collect();
    for name in [
        names::LOAD_COMPONENT,
        names::LOAD_IMPORTS,
        names::LOAD_EXPORTS,
        names::LOAD_MANIFEST,
        names::MANIFEST_RULES,
    ]
    .iter()
    .chain(names::AFTER_LOAD)
    {
        assert!(ran.contains(name), "{name} did not run: {ran:?}");
    }
    let shape = report.check(names::AUTHORIZE_SHAPE).unwrap();
    assert_eq!(shape.expected, "exactly one header `Authorization: Bearer <OPENAI_API_KEY>`");
    assert!(shape.got.contains("authorization: Bearer <OPENAI_API_KEY>"), "{}", shape.got);
    assert_eq!(report.check(names::LIVE).unwrap().status, CheckStatus::Skipped);
}

#[tokio::test]
async fn a_wrong_401_verdict_fails_interpret_401() {
    let report = check("platos_fixture_harness_wrong_401").await;
    assert_eq!(failed_names(&report), BTreeSet::from([names::INTERPRET_401, names::INTERPRET_403]));
    let check = failed(&report, names::INTERPRET_401);
    assert_eq!(check.expected, "invalid-credential");
    assert!(check.got.starts_with("quota-limited: HTTP 401"), "{}", check.got);
    assert!(check.fix.contains("401/403 → invalid-credential"), "{}", check.fix);
    assert!(report.to_text().contains("✗ interpret.401"), "{}", report.to_text());
}

#[tokio::test]
async fn a_secret_in_the_url_fails_no_leak() {
    let report = check("platos_fixture_harness_leaky_url").await;
    assert_eq!(failed_names(&report), BTreeSet::from([names::AUTHORIZE_NO_LEAK]));
    let check = failed(&report, names::AUTHORIZE_NO_LEAK);
    assert!(
        check.got.contains("FIXTURE_API_KEY in the URL query parameter `api_key`"),
        "{}",
        check.got
    );
    assert!(check.fix.contains("never copy a secret into the URL"), "{}", check.fix);
    assert_no_canary(&report);
}

#[tokio::test]
async fn a_foreign_host_fails_authorize_allowed_host() {
    let report = check("platos_fixture_harness_foreign_host").await;
    assert_eq!(failed_names(&report), BTreeSet::from([names::AUTHORIZE_ALLOWED_HOST]));
    let check = failed(&report, names::AUTHORIZE_ALLOWED_HOST);
    assert!(check.got.contains("\"telemetry.evil.example.net\" is not allowed"), "{}", check.got);
    assert!(check.expected.contains("api.example.com"), "{}", check.expected);
    assert!(check.fix.contains("allowed_hosts"), "{}", check.fix);
    // Nothing to inspect once the host refused: the request checks are skipped.
    assert_eq!(report.check(names::AUTHORIZE_SHAPE).unwrap().status, CheckStatus::Skipped);
    assert_no_canary(&report);
}

#[tokio::test]
async fn a_forbidden_import_fails_load_imports() {
    let report = check("platos_fixture_forbidden_import").await;
    assert_eq!(failed_names(&report), BTreeSet::from([names::LOAD_IMPORTS]));
    let check = failed(&report, names::LOAD_IMPORTS);
    assert!(check.got.contains("platos-fixture:forbidden/raw-net"), "{}", check.got);
    assert!(check.fix.contains("sans-IO"), "{}", check.fix);
    assert_eq!(report.check(names::LOAD_COMPONENT).unwrap().status, CheckStatus::Passed);
    for name in [names::LOAD_EXPORTS, names::MANIFEST_RULES, names::AUTHORIZE_SHAPE, names::LIMITS]
    {
        assert_eq!(report.check(name).unwrap().status, CheckStatus::Skipped, "{name}");
    }
    assert!(report.plugin.is_none());
}

#[tokio::test]
async fn a_trap_on_a_non_json_body_fails_interpret_non_json() {
    let report = check("platos_fixture_harness_trap_non_json").await;
    assert_eq!(
        failed_names(&report),
        BTreeSet::from([names::INTERPRET_EMPTY_BODY, names::INTERPRET_NON_JSON])
    );
    let check = failed(&report, names::INTERPRET_NON_JSON);
    assert_eq!(check.expected, "degraded or unreachable");
    assert_eq!(
        check.got,
        "interpret-health trapped: wasm trap: wasm `unreachable` instruction executed"
    );
    // The fix names the function and the way to parse in every plugin language.
    for hint in [
        "serde_json::from_slice(..).ok()",
        "json.loads",
        "JSON.parse",
        "`Provider::interpret_health` (Rust), `Plugin.interpret_health` (Python), `plugin.interpretHealth` (JavaScript)",
    ] {
        assert!(check.fix.contains(hint), "{hint}: {}", check.fix);
    }
    // A trap is not a limit.
    assert_eq!(report.check(names::LIMITS).unwrap().status, CheckStatus::Passed);
}

#[tokio::test]
async fn a_call_over_a_limit_fails_the_limits_check_naming_it() {
    let mut options = options("hostile");
    options.values.insert("HOSTILE_MODE".into(), "memory".into());
    let report = check_plugin(&component("platos_fixture_hostile"), &options).await;
    let limits = failed(&report, names::LIMITS);
    assert_eq!(limits.got, "authorize: memory limit (64 MiB) (3 calls)");
    let shape = failed(&report, names::AUTHORIZE_SHAPE);
    assert!(shape.got.contains("exceeded the memory limit"), "{}", shape.got);
    assert!(shape.fix.contains("allocate less"), "{}", shape.fix);
}

#[tokio::test]
async fn garbage_fails_load_component() {
    let report = check_plugin(b"\0asm not really", &options("garbage")).await;
    let check = failed(&report, names::LOAD_COMPONENT);
    assert!(check.fix.contains("cargo build --release --target wasm32-wasip2"), "{}", check.fix);
    assert_eq!(report.counts.failed, 1);
}

fn write_fixtures(dir: &Path, cases: &[(&str, serde_json::Value)]) {
    for (stem, case) in cases {
        std::fs::write(dir.join(format!("{stem}.json")), case.to_string()).unwrap();
    }
}

fn standard_cases() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "1-valid",
            serde_json::json!({
                "name": "a valid key lists models",
                "credentials": {"OPENAI_API_KEY": "sk-fixture-0123456789"},
                "request": {"method": "GET", "path": "/v1/models"},
                "response": {
                    "status": 200,
                    "headers": {"content-type": "application/json"},
                    "body": {"object": "list", "data": [{"id": "gpt-5"}, {"id": "gpt-5-mini"}]}
                },
                "expect": "healthy",
                "expect_models": ["gpt-5"]
            }),
        ),
        (
            "2-revoked",
            serde_json::json!({
                "response": {"status": 401, "body": "{\"error\":{\"code\":\"invalid_api_key\"}}"},
                "expect": "invalid-credential"
            }),
        ),
        (
            "3-quota",
            serde_json::json!({
                "response": {"status": 429, "headers": {"retry-after": "20"}, "body": ""},
                "expect": ["quota-limited"]
            }),
        ),
        (
            "4-outage",
            serde_json::json!({
                "response": {"status": 503, "body": "upstream connect error"},
                "expect": ["degraded", "unreachable"]
            }),
        ),
    ]
}

#[tokio::test]
async fn live_mode_replays_fixtures_from_a_loopback_mock() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), &standard_cases());
    let mut options = options("openai-live");
    options.fixtures = Some(dir.path().to_owned());
    let report = check_plugin(&component("platos_plugin_openai"), &options).await;
    assert_passes(&report);
    let live = report.check(names::LIVE).unwrap();
    assert!(live.got.starts_with("4 fixtures, mock at http://127.0.0.1:"), "{}", live.got);
    assert!(live.got.ends_with("via OPENAI_API_BASE"), "{}", live.got);
    let valid = report.check("live.1-valid").unwrap();
    assert_eq!(valid.about, "live: a valid key lists models");
    assert!(valid.got.starts_with("GET /v1/models → healthy"), "{}", valid.got);
    for stem in ["2-revoked", "3-quota", "4-outage"] {
        assert!(report.check(&format!("live.{stem}")).unwrap().passed(), "{stem}");
    }
    // The fixture's own secret is redacted like a canary.
    assert!(!report.to_text().contains("sk-fixture-0123456789"));
}

#[tokio::test]
async fn live_mode_reports_wrong_verdicts_and_bad_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    write_fixtures(dir.path(), &standard_cases());
    let mut options = options("wrong-401-live");
    options.fixtures = Some(dir.path().to_owned());
    let report = check_plugin(&component("platos_fixture_harness_wrong_401"), &options).await;
    let revoked = failed(&report, "live.2-revoked");
    assert!(revoked.got.starts_with("quota-limited"), "{}", revoked.got);
    assert!(revoked.expected.starts_with("verdict invalid-credential"), "{}", revoked.expected);
    assert!(report.check("live.1-valid").unwrap().passed());

    // The host refuses the leaky request: it never reaches the mock.
    let report = check_plugin(&component("platos_fixture_harness_leaky_url"), &options).await;
    let valid = failed(&report, "live.1-valid");
    assert!(
        valid.got.contains("FIXTURE_API_KEY in the URL query parameter `api_key`"),
        "{}",
        valid.got
    );
    assert_no_canary(&report);

    // A malformed fixture is a failed `live` check naming the file.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("broken.json"), r#"{"response": {"status": 200}}"#).unwrap();
    options.fixtures = Some(bad.path().to_owned());
    let report = check_plugin(&component("platos_plugin_openai"), &options).await;
    let live = failed(&report, names::LIVE);
    assert!(live.got.contains("broken.json") && live.got.contains("expect"), "{}", live.got);

    // Without a base-url variable, live mode is skipped with the reason.
    options.fixtures = Some(dir.path().to_owned());
    let report = check_plugin(&component("platos_fixture_hostile"), &options).await;
    let live = report.check(names::LIVE).unwrap();
    assert_eq!(live.status, CheckStatus::Skipped);
    assert!(live.got.contains("no base-url variable"), "{}", live.got);
}

/// Runs the binary with a private data directory.
fn cli(args: &[&str]) -> Output {
    let data = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_platos-host"))
        .args(args)
        .env("PLATOS_DATA_DIR", data.path())
        .env_remove("PLATOS_PLUGIN_DIR")
        .env("PLATOS_LOG", "warn")
        .output()
        .expect("the binary runs")
}

#[test]
fn plugin_test_prints_checks_and_exits_non_zero_on_failure() {
    let good = component_path("platos_plugin_openai");
    let output = cli(&["plugin", "test", good.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("✓ authorize.shape: "), "{stdout}");
    assert!(stdout.contains("- live: "), "{stdout}");
    assert!(stdout.contains("ok: all "), "{stdout}");

    let bad = component_path("platos_fixture_harness_wrong_401");
    let output = cli(&["plugin", "test", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("✗ interpret.401: "), "{stdout}");
    assert!(stdout.contains("    expected: invalid-credential"), "{stdout}");
    assert!(stdout.contains("    fix:      "), "{stdout}");
    assert!(stdout.contains("FAILED: 2 of "), "{stdout}");

    let output = cli(&["plugin", "test", bad.to_str().unwrap(), "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], false);
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == names::INTERPRET_401)
        .unwrap();
    assert_eq!(check["status"], "failed");
    assert_eq!(check["expected"], "invalid-credential");
}

/// The `[dependencies]` and `[build-dependencies]` entries of a scaffolded crate.
fn scaffolded_dependencies(crate_dir: &Path) -> (serde_json::Value, serde_json::Value) {
    let text = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    let manifest: serde_json::Value = basic_toml::from_str(&text).unwrap();
    assert!(manifest.get("workspace").is_some(), "a workspace of its own:\n{text}");
    (
        manifest["dependencies"]["platos-plugin-sdk"].clone(),
        manifest["build-dependencies"]["platos-plugin-build"].clone(),
    )
}

/// The version `cargo package` gives the SDK: plugins/Cargo.toml's workspace version.
fn packaged_sdk_version() -> String {
    let text = std::fs::read_to_string(checkout().join("plugins/Cargo.toml")).unwrap();
    let workspace: serde_json::Value = basic_toml::from_str(&text).unwrap();
    let sdk = std::fs::read_to_string(checkout().join("plugins/sdk/Cargo.toml")).unwrap();
    assert!(sdk.contains("version.workspace = true"), "{sdk}");
    workspace["workspace"]["package"]["version"].as_str().unwrap().to_owned()
}

fn checkout() -> PathBuf {
    std::fs::canonicalize(Path::new(env!("CARGO_MANIFEST_DIR")).join("..")).unwrap()
}

#[test]
fn plugin_new_validates_the_slug_and_writes_a_crate_on_the_published_sdk() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = dir.path().join("my-acme");
    let crate_arg = crate_dir.to_str().unwrap();
    let output = cli(&["plugin", "new", "Not_A_Slug", "--dir", crate_arg]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("slug \"Not_A_Slug\" is not valid"), "{stderr}");
    assert!(!crate_dir.exists());

    let output = cli(&["plugin", "new", "acme-cloud", "--dir", crate_arg]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("platos_provider_acme_cloud.wasm"), "{stdout}");
    let version = packaged_sdk_version();
    assert!(stdout.contains(&format!("platos-plugin-sdk {version} from crates.io")), "{stdout}");
    // `--dir` is the crate's own folder, not its parent.
    for file in ["Cargo.toml", "build.rs", "manifest.toml", "src/lib.rs", "README.md"] {
        assert!(crate_dir.join(file).is_file(), "{file} missing");
    }
    assert!(!crate_dir.join("acme-cloud").exists());
    let readme = std::fs::read_to_string(crate_dir.join("README.md")).unwrap();
    assert!(readme.contains("cargo build --release --target wasm32-wasip2"), "{readme}");
    assert!(
        readme.contains(
            "platos-host plugin test target/wasm32-wasip2/release/platos_provider_acme_cloud.wasm"
        ),
        "{readme}"
    );
    // By default both packages come from the registry, at the version this
    // checkout packages: nothing points into the checkout.
    let (sdk, build) = scaffolded_dependencies(&crate_dir);
    assert_eq!(sdk, serde_json::json!(version));
    assert_eq!(build, serde_json::json!(version));
    let checkout = checkout().display().to_string();
    for file in ["Cargo.toml", "README.md", "build.rs"] {
        let text = std::fs::read_to_string(crate_dir.join(file)).unwrap();
        assert!(!text.contains(&checkout), "{file} names the checkout:\n{text}");
    }

    // A crate directory that exists and is not empty is refused.
    let output = cli(&["plugin", "new", "acme-cloud", "--dir", crate_arg]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));
    // --sdk-path and --sdk-git are one choice.
    let other = dir.path().join("other");
    let output = cli(&[
        "plugin",
        "new",
        "other",
        "--dir",
        other.to_str().unwrap(),
        "--sdk-path",
        "x",
        "--sdk-git",
        "https://git.example.com/platos.git",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!other.exists());
}

#[test]
fn the_sdk_package_carries_the_contract_unchanged() {
    // The SDK builds from its own copy of the WIT (a package cannot reach
    // outside its folder); every file of that copy must equal wit/.
    let root = checkout();
    let copy = root.join("plugins/sdk/wit");
    let mut compared = Vec::new();
    for version in std::fs::read_dir(&copy).unwrap() {
        let version = version.unwrap().path();
        if !version.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&version).unwrap() {
            let file = file.unwrap().path();
            let relative = file.strip_prefix(&copy).unwrap();
            let original = root.join("wit").join(relative);
            let ours = std::fs::read(&file).unwrap();
            let theirs = std::fs::read(&original).unwrap_or_else(|error| {
                panic!("{} has no original {}: {error}", file.display(), original.display())
            });
            assert!(
                ours == theirs,
                "{} differs from {}: copy it again (cp {} {})",
                file.display(),
                original.display(),
                original.display(),
                file.display()
            );
            compared.push(relative.to_owned());
        }
    }
    // The copy is the contract the SDK builds against: the newest one.
    let newest = std::fs::read_dir(root.join("wit"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .max_by_key(|name| {
            name.trim_start_matches("since_v")
                .split('.')
                .map(|part| part.parse::<u32>().unwrap())
                .collect::<Vec<_>>()
        })
        .unwrap();
    assert!(compared.contains(&Path::new(&newest).join("provider.wit")), "{compared:?}");
    let lib = std::fs::read_to_string(root.join("plugins/sdk/src/lib.rs")).unwrap();
    assert!(
        lib.contains(&format!("path: \"wit/{newest}\"")),
        "the SDK's bindings read wit/{newest}"
    );
}

/// The plugin workspace's target directory, shared with host/build.rs so the
/// SDK and its dependencies are built once.
fn shared_plugin_target() -> PathBuf {
    Path::new(BUILT_PLUGIN_DIR).ancestors().nth(2).expect("<target>/platos-plugins").to_owned()
}

#[test]
fn a_plugin_new_crate_outside_the_checkout_builds_on_the_sdk_path_and_passes_plugin_test() {
    // A crate in a temporary directory (outside this checkout), on this
    // checkout's SDK by path: offline, and the SDK's dependencies are the
    // ones host/build.rs already built into the shared target directory.
    let dir = tempfile::tempdir().unwrap();
    let root = checkout();
    assert!(!dir.path().starts_with(&root));
    let crate_dir = dir.path().join("kit-check");
    let sdk = root.join("plugins/sdk");
    let output = cli(&[
        "plugin",
        "new",
        "kit-check",
        "--dir",
        crate_dir.to_str().unwrap(),
        "--sdk-path",
        sdk.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (sdk_dependency, _) = scaffolded_dependencies(&crate_dir);
    let sdk_dir = std::fs::canonicalize(&sdk).unwrap().display().to_string();
    assert_eq!(sdk_dependency, serde_json::json!({"path": sdk_dir}));

    let target = shared_plugin_target();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--release", "--target", "wasm32-wasip2", "--offline"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_LLVM_COV",
    ] {
        build.env_remove(var);
    }
    let output = build.output().expect("cargo runs");
    assert!(
        output.status.success(),
        "building the scaffolded plugin failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let wasm = target.join("wasm32-wasip2/release/platos_provider_kit_check.wasm");
    assert!(wasm.is_file(), "{}", wasm.display());
    // The build must not leave a file host/build.rs would bundle.
    assert!(!wasm.file_name().unwrap().to_string_lossy().starts_with("platos_plugin_"));

    // Through the harness as an author runs it, with its own fixtures live.
    let fixtures = crate_dir.join("fixtures");
    let output = cli(&[
        "plugin",
        "test",
        wasm.to_str().unwrap(),
        "--fixtures",
        fixtures.to_str().unwrap(),
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["ok"], true, "{stdout}");
    assert_eq!(report["plugin"], "kit-check@0.1.0");
    let checks = report["checks"].as_array().unwrap();
    let live =
        checks.iter().find(|check| check["name"] == "live.valid-key").expect("live mode ran");
    assert_eq!(live["status"], "passed", "{stdout}");
}

#[tokio::test]
async fn a_manifest_breaking_the_load_rules_fails_manifest_rules_with_fixes() {
    let report = check("platos_fixture_harness_bad_manifest").await;
    assert_eq!(failed_names(&report), BTreeSet::from([names::MANIFEST_RULES]));
    let check = failed(&report, names::MANIFEST_RULES);
    for problem in ["https://api.example.com", "docs URL", "not among the model classes"] {
        assert!(check.got.contains(problem), "{problem}: {}", check.got);
    }
    for hint in
        ["without scheme, port or path", "`docs_url` must be an https:// URL", "model_classes"]
    {
        assert!(check.fix.contains(hint), "{hint}: {}", check.fix);
    }
    assert_eq!(report.check(names::LOAD_MANIFEST).unwrap().status, CheckStatus::Passed);
    assert_eq!(report.check(names::AUTHORIZE_SHAPE).unwrap().status, CheckStatus::Skipped);
}

#[tokio::test]
async fn broken_0_2_0_additions_fail_manifest_rules_with_fixes() {
    let report = check("platos_fixture_h4_bad_aliases").await;
    assert_eq!(failed_names(&report), BTreeSet::from([names::MANIFEST_RULES]));
    let check = failed(&report, names::MANIFEST_RULES);
    for problem in [
        "default client \"langchain\" is not among the declared clients (official)",
        "alias BAD_KEY of BAD_ALIASES_KEY: client \"ai-sdk\" is not declared (declared: official)",
        "alias BAD_ALIASES_BASE of BAD_ALIASES_KEY: BAD_ALIASES_BASE is another declared variable",
        "alias BAD_NOTE of BAD_ALIASES_KEY: a note-only alias needs a note",
    ] {
        assert!(check.got.contains(problem), "{problem}: {}", check.got);
    }
    for hint in ["give each alias an env var name", "name the official SDK's in `default_client`"] {
        assert!(check.fix.contains(hint), "{hint}: {}", check.fix);
    }
}

/// The secret-echo fixture's key for the harness: given with `--var`, so
/// the test knows what to search for.
const H1_CANARY: &str = "sk-H1Harness-Canary-2pQ8v4";

#[test]
fn plugin_test_reports_secrets_out_of_place_without_showing_them() {
    let path = component_path("platos_fixture_h1_secret_echo");
    let path = path.to_str().unwrap();
    let key = format!("H1_KEY={H1_CANARY}");
    let output = cli(&["plugin", "test", path, "--var", &key]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    for (mode, failing, says) in [
        ("query", names::AUTHORIZE_NO_LEAK, "H1_KEY in the URL query parameter `leak`"),
        ("other-header", names::AUTHORIZE_NO_LEAK, "H1_KEY in header `x-copy`"),
        ("body", names::AUTHORIZE_NO_LEAK, "H1_KEY in the body"),
        ("header-name", names::AUTHORIZE_NO_LEAK, "H1_KEY in a header name"),
        ("base64-url", names::AUTHORIZE_NO_LEAK, "H1_KEY in the URL query parameter `t`"),
        ("host", names::AUTHORIZE_ALLOWED_HOST, "[redacted].evil.example"),
        ("error", names::AUTHORIZE_SHAPE, "cannot authorize with [redacted]"),
        ("panic", names::AUTHORIZE_SHAPE, "authorize trapped"),
    ] {
        let mode_var = format!("H1_MODE={mode}");
        let output = cli(&["plugin", "test", path, "--var", &key, "--var", &mode_var, "--json"]);
        assert_eq!(output.status.code(), Some(1), "{mode}");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|check| check["name"] == failing)
            .unwrap_or_else(|| panic!("{mode}: no {failing} in {report}"));
        assert_eq!(check["status"], "failed", "{mode}: {check}");
        let text = report.to_string();
        assert!(text.contains(says), "{mode}: {text}");
        support::assert_no_secret(&output.stdout, H1_CANARY, mode);
        support::assert_no_secret(&output.stderr, H1_CANARY, mode);
    }
}
