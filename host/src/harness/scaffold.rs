//! `platos-host plugin new <slug>`: a new Rust provider plugin crate that
//! builds standalone for `wasm32-wasip2` and passes the harness as written.
//!
//! The crate depends on the SDK (`platos-plugin-sdk`) and the build helper
//! (`platos-plugin-build`), both self-contained packages (the SDK carries its
//! copy of the WIT contract): by default by version, the version of the SDK
//! this binary was built with ([`sdk_version`]); or from a git repository; or
//! by path, for a local checkout (`plugins/sdk`, with the build helper beside
//! it in `../build`).

use std::path::{Path, PathBuf};

use crate::policy::names::{is_valid_env_var_name, is_valid_slug};

/// The plugin workspace's manifest, where the SDK's version is set.
const PLUGIN_WORKSPACE_MANIFEST: &str = include_str!("../../../plugins/Cargo.toml");
/// The SDK's own manifest (its version may be inherited from the workspace).
const SDK_MANIFEST: &str = include_str!("../../../plugins/sdk/Cargo.toml");
/// The toolchain file of that checkout, copied into new plugins.
const TOOLCHAIN: &str = include_str!("../../../rust-toolchain.toml");

/// The version of `platos-plugin-sdk` (and `platos-plugin-build`, released
/// together) this binary was built with: what a new plugin depends on.
pub fn sdk_version() -> String {
    fn version(manifest: &str, table: &[&str]) -> Option<serde_json::Value> {
        let value: serde_json::Value = basic_toml::from_str(manifest).ok()?;
        table.iter().try_fold(&value, |value, key| value.get(key)).cloned()
    }
    match version(SDK_MANIFEST, &["package", "version"]) {
        Some(serde_json::Value::String(own)) => own,
        _ => version(PLUGIN_WORKSPACE_MANIFEST, &["workspace", "package", "version"])
            .and_then(|value| value.as_str().map(str::to_owned))
            .expect("plugins/Cargo.toml sets workspace.package.version"),
    }
}

/// Where the new crate gets the SDK and the build helper from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// The registry (crates.io), this version requirement.
    Version(String),
    /// A git repository holding both packages (cargo finds them by name).
    Git(String),
    /// A local SDK directory (`plugins/sdk` of a checkout); the build helper
    /// is beside it, in `../build`.
    Path(PathBuf),
}

impl Default for SdkSource {
    /// The published packages at [`sdk_version`].
    fn default() -> Self {
        SdkSource::Version(sdk_version())
    }
}

impl std::fmt::Display for SdkSource {
    /// Where the SDK comes from, for people: `platos-plugin-sdk 0.1.0 from crates.io`.
    fn fmt(&self, out: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SdkSource::Version(version) => {
                write!(out, "platos-plugin-sdk {version} from crates.io")
            }
            SdkSource::Git(url) => write!(out, "platos-plugin-sdk from {url}"),
            SdkSource::Path(path) => write!(out, "platos-plugin-sdk at {}", path.display()),
        }
    }
}

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct ScaffoldOptions {
    /// The provider slug, `^[a-z0-9][a-z0-9-]*$`.
    pub slug: String,
    /// The new crate's own directory (created; it must be absent or empty).
    pub dir: PathBuf,
    /// Where the SDK and the build helper come from.
    pub sdk: SdkSource,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Scaffolded {
    /// The new crate's directory.
    pub crate_dir: PathBuf,
    /// The package name, `platos-provider-<slug>`.
    pub crate_name: String,
    /// The component's file name under `target/wasm32-wasip2/release/`.
    pub wasm_file: String,
    /// Every file written, relative to `crate_dir`.
    pub files: Vec<PathBuf>,
}

/// Why scaffolding failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The slug breaks the naming rule.
    #[error(
        "slug {0:?} is not valid: use lower-case letters, digits and hyphens, starting with a letter or digit, at most 64 characters (e.g. `acme` or `acme-cloud`)"
    )]
    InvalidSlug(String),
    /// The target directory exists and is not empty.
    #[error("{0} already exists and is not empty; choose another --dir or slug")]
    Exists(PathBuf),
    /// The SDK or the build helper is not where expected.
    #[error(
        "the plugin SDK is not at {0} (or the build helper is not beside it in ../build); pass --sdk-path with the plugins/sdk directory of a Platos checkout, or leave it out to depend on the published version"
    )]
    SdkNotFound(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// Names derived from a slug.
struct Names {
    slug: String,
    display: String,
    type_name: String,
    crate_name: String,
    lib_name: String,
    key_var: String,
    base_var: String,
}

fn names_for(slug: &str) -> Names {
    let words: Vec<&str> = slug.split('-').filter(|word| !word.is_empty()).collect();
    let capitalize = |word: &str| {
        let mut chars = word.chars();
        chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
    };
    let display = words.iter().map(|word| capitalize(word)).collect::<Vec<_>>().join(" ");
    let mut type_name: String = words.iter().map(|word| capitalize(word)).collect();
    if !type_name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        type_name = format!("Provider{type_name}");
    }
    let mut prefix = words.join("_").to_ascii_uppercase();
    if !prefix.starts_with(|c: char| c.is_ascii_uppercase()) {
        prefix = format!("PROVIDER_{prefix}");
    }
    let crate_name = format!("platos-provider-{}", words.join("-"));
    Names {
        slug: slug.to_owned(),
        display,
        type_name,
        lib_name: crate_name.replace('-', "_"),
        crate_name,
        key_var: format!("{prefix}_API_KEY"),
        base_var: format!("{prefix}_API_BASE"),
    }
}

/// The dependency lines for the SDK and the build helper, checked.
struct Dependencies {
    sdk: String,
    build: String,
    /// The checkout's plugin lock file, for a path dependency.
    lock: Option<String>,
}

fn dependencies(source: &SdkSource) -> Result<Dependencies, ScaffoldError> {
    Ok(match source {
        SdkSource::Version(version) => {
            Dependencies { sdk: toml_string(version), build: toml_string(version), lock: None }
        }
        SdkSource::Git(url) => Dependencies {
            sdk: format!("{{ git = {} }}", toml_string(url)),
            build: format!("{{ git = {} }}", toml_string(url)),
            lock: None,
        },
        SdkSource::Path(given) => {
            let sdk = std::fs::canonicalize(given)
                .map_err(|_| ScaffoldError::SdkNotFound(given.clone()))?;
            let build = sdk.parent().map(|parent| parent.join("build")).unwrap_or_default();
            if !sdk.join("Cargo.toml").is_file() || !build.join("Cargo.toml").is_file() {
                return Err(ScaffoldError::SdkNotFound(sdk));
            }
            // The checkout's lock file: the dependency versions the SDK is
            // tested with (cargo prunes what this crate does not use).
            let lock = sdk
                .parent()
                .and_then(|plugins| std::fs::read_to_string(plugins.join("Cargo.lock")).ok());
            Dependencies {
                sdk: format!("{{ path = {} }}", toml_path(&sdk)),
                build: format!("{{ path = {} }}", toml_path(&build)),
                lock,
            }
        }
    })
}

/// Writes a new plugin crate for `options.slug` into `options.dir`.
pub fn scaffold(options: &ScaffoldOptions) -> Result<Scaffolded, ScaffoldError> {
    let slug = options.slug.as_str();
    if !is_valid_slug(slug) || slug.split('-').all(str::is_empty) {
        return Err(ScaffoldError::InvalidSlug(slug.to_owned()));
    }
    let names = names_for(slug);
    debug_assert!(is_valid_env_var_name(&names.key_var) && is_valid_env_var_name(&names.base_var));
    let dependencies = dependencies(&options.sdk)?;

    let crate_dir = options.dir.clone();
    if crate_dir.exists()
        && std::fs::read_dir(&crate_dir).map(|mut entries| entries.next().is_some()).unwrap_or(true)
    {
        return Err(ScaffoldError::Exists(crate_dir));
    }

    let mut files: Vec<(PathBuf, String)> = vec![
        ("Cargo.toml".into(), cargo_toml(&names, &dependencies)),
        ("build.rs".into(), BUILD_RS.to_owned()),
        ("manifest.toml".into(), manifest_toml(&names)),
        ("src/lib.rs".into(), lib_rs(&names)),
        ("README.md".into(), readme(&names)),
        ("rust-toolchain.toml".into(), TOOLCHAIN.to_owned()),
        (".gitignore".into(), "/target\n".to_owned()),
    ];
    files.extend(fixtures(&names));
    if let Some(lock) = dependencies.lock {
        files.push(("Cargo.lock".into(), lock));
    }

    for (relative, text) in &files {
        let path = crate_dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| ScaffoldError::Io { path: parent.to_owned(), source })?;
        }
        std::fs::write(&path, text).map_err(|source| ScaffoldError::Io { path, source })?;
    }
    Ok(Scaffolded {
        crate_dir,
        wasm_file: format!("{}.wasm", names.lib_name),
        crate_name: names.crate_name,
        files: files.into_iter().map(|(path, _)| path).collect(),
    })
}

/// `text` as a TOML basic string: Debug formatting escapes backslashes and
/// quotes.
fn toml_string(text: &str) -> String {
    format!("{text:?}")
}

fn toml_path(path: &Path) -> String {
    toml_string(&path.display().to_string())
}

fn cargo_toml(names: &Names, dependencies: &Dependencies) -> String {
    format!(
        r#"[package]
name = "{crate_name}"
description = "The {display} provider plugin for the Platos host."
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
platos-plugin-sdk = {sdk}

[build-dependencies]
platos-plugin-build = {build}

# Small, fast components: plugins are tiny and called often.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A workspace of its own, so the crate builds standalone wherever it lives.
[workspace]
"#,
        crate_name = names.crate_name,
        display = names.display,
        sdk = dependencies.sdk,
        build = dependencies.build,
    )
}

const BUILD_RS: &str = r#"//! Turns manifest.toml into code at build time (`include_manifest!()`).

fn main() {
    platos_plugin_build::embed_manifest("manifest.toml");
}
"#;

fn manifest_toml(names: &Names) -> String {
    format!(
        r#"# The {display} provider manifest: the single source the plugin embeds at build
# time. The host checks every field on load; `platos-host plugin test` checks
# them too. Lines marked TODO describe an example API: make them say yours.
slug = "{slug}"
display_name = "{display}"
plugin_version = "0.1.0"
docs_url = "https://example.com/docs/api-keys" # TODO: where people get a key
model_classes = ["chat"]
# Hosts requests may go to: bare DNS names, `*` for one label. The host of a
# configured base URL is allowed in addition.
allowed_hosts = ["api.example.com"] # TODO
auth = {{ type = "bearer", env_var = "{key_var}" }}

[[env_vars]]
name = "{key_var}"
role = "secret"
required = true
description = "{display} API key"

[[env_vars]]
name = "{base_var}"
role = "base-url"
required = false
default = "https://api.example.com/v1" # TODO
description = "Base URL of the {display} API; set it for a proxy or a compatible gateway"

[[default_models]]
id = "{slug}-chat" # TODO
class = "chat"
display_name = "{display} Chat"
"#,
        display = names.display,
        slug = names.slug,
        key_var = names.key_var,
        base_var = names.base_var,
    )
}

fn lib_rs(names: &Names) -> String {
    format!(
        r#"//! The {display} provider plugin: bearer auth (the manifest's `auth`), and a
//! health probe that lists models: `GET {{base}}/models`.
//!
//! Plugins are sans-IO: they describe requests and read responses; the host
//! sends the requests, only to the manifest's allowed hosts.

use platos_plugin_sdk::{{
    Credentials, HttpRequest, HttpResponse, PluginError, Provider, ProviderManifest, Verdict,
    base_url, export_provider, include_manifest, join_url, standard_verdict,
}};

struct {type_name};

impl Provider for {type_name} {{
    fn manifest() -> ProviderManifest {{
        include_manifest!()
    }}

    // `authorize` is the SDK's default: it applies the manifest's declared
    // auth shape (`Authorization: Bearer <{key_var}>`). Override it only
    // for a custom shape, such as a request signature.

    fn health_probe(credentials: Credentials) -> Result<HttpRequest, PluginError> {{
        // {base_var}, or its default when unset.
        let base = base_url(&credentials, &Self::manifest())?;
        Ok(HttpRequest::get(join_url(&base, "models")).with_header("accept", "application/json"))
    }}

    fn interpret_health(response: HttpResponse) -> Verdict {{
        // 2xx with a model list → healthy (with the ids), 401/403 → invalid
        // credential, 402/429 → quota limited, status 0 → unreachable,
        // anything else → degraded.
        standard_verdict(&response)
    }}
}}

export_provider!({type_name});
"#,
        display = names.display,
        type_name = names.type_name,
        key_var = names.key_var,
        base_var = names.base_var,
    )
}

fn readme(names: &Names) -> String {
    format!(
        r#"# {display} provider plugin

A provider plugin for the Platos host: a WebAssembly component behind the
`platos:provider@0.2.0` contract. `manifest.toml` declares the provider (env
vars, auth, allowed hosts, models); `src/lib.rs` builds the health probe and
reads its response.

## Build

```sh
cargo build --release --target wasm32-wasip2
```

The component is `target/wasm32-wasip2/release/{lib_name}.wasm`
(`rustup target add wasm32-wasip2` if the target is missing; `rust-toolchain.toml`
pins the toolchain the host uses). The first build takes a few minutes (the
SDK's dependencies compile once); later builds take seconds.

## Test

```sh
platos-host plugin test target/wasm32-wasip2/release/{lib_name}.wasm
platos-host plugin test target/wasm32-wasip2/release/{lib_name}.wasm --fixtures fixtures
```

The first runs every static check (manifest rules, auth shape, no leaked
secret, allowed hosts, verdicts on canned responses, limits); the second also
replays the recorded responses in `fixtures/` from a mock server on
127.0.0.1, with `{base_var}` pointed at it. Add `--json` for a machine-readable
report. The same checks run from `cargo test`: see "Test from cargo test" in
the Platos repository's `docs/plugin-authors.md`.

## Ship

Copy the `.wasm` file into the host's plugin directory (`--plugin-dir DIR` or
`PLATOS_PLUGIN_DIR`) and restart the host; `platos-host plugin list` shows it.
"#,
        display = names.display,
        lib_name = names.lib_name,
        base_var = names.base_var,
    )
}

fn fixtures(names: &Names) -> Vec<(PathBuf, String)> {
    let model = format!("{}-chat", names.slug);
    let valid = serde_json::json!({
        "name": "a valid key lists models",
        "request": {"method": "GET", "path": "/v1/models"},
        "response": {
            "status": 200,
            "headers": {"content-type": "application/json"},
            "body": {"object": "list", "data": [{"id": model, "object": "model"}]}
        },
        "expect": "healthy",
        "expect_models": [model]
    });
    let revoked = serde_json::json!({
        "name": "a revoked key is refused",
        "response": {
            "status": 401,
            "headers": {"content-type": "application/json"},
            "body": {"error": {"message": "Invalid API key", "type": "authentication_error"}}
        },
        "expect": "invalid-credential"
    });
    let limited = serde_json::json!({
        "name": "an exhausted quota",
        "response": {
            "status": 429,
            "headers": {"content-type": "application/json", "retry-after": "30"},
            "body": {"error": {"message": "Rate limit reached"}}
        },
        "expect": "quota-limited"
    });
    [("valid-key", valid), ("revoked-key", revoked), ("rate-limited", limited)]
        .into_iter()
        .map(|(stem, value)| {
            let text = serde_json::to_string_pretty(&value).unwrap_or_default() + "\n";
            (PathBuf::from(format!("fixtures/{stem}.json")), text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rules() {
        let names = names_for("acme-cloud");
        assert_eq!(names.display, "Acme Cloud");
        assert_eq!(names.type_name, "AcmeCloud");
        assert_eq!(names.crate_name, "platos-provider-acme-cloud");
        assert_eq!(names.lib_name, "platos_provider_acme_cloud");
        assert_eq!(names.key_var, "ACME_CLOUD_API_KEY");
        let digits = names_for("42-x-");
        assert_eq!(digits.type_name, "Provider42X");
        assert_eq!(digits.key_var, "PROVIDER_42_X_API_KEY");
        assert!(is_valid_env_var_name(&digits.base_var));
    }

    #[test]
    fn invalid_slugs_and_existing_dirs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = |slug: &str, sdk: SdkSource| ScaffoldOptions {
            slug: slug.into(),
            dir: dir.path().join("acme"),
            sdk,
        };
        for slug in ["Acme", "-acme", "", "a_b"] {
            let refused = scaffold(&options(slug, SdkSource::default()));
            assert!(matches!(refused, Err(ScaffoldError::InvalidSlug(_))), "{slug}");
        }
        let made = scaffold(&options("acme", SdkSource::default())).unwrap();
        assert_eq!(made.crate_dir, dir.path().join("acme"), "--dir is the crate's own folder");
        assert!(made.crate_dir.join("src/lib.rs").is_file());
        assert_eq!(made.wasm_file, "platos_provider_acme.wasm");
        let manifest = std::fs::read_to_string(made.crate_dir.join("manifest.toml")).unwrap();
        platos_manifest_parses(&manifest);
        assert!(matches!(
            scaffold(&options("acme", SdkSource::default())),
            Err(ScaffoldError::Exists(_))
        ));
        let missing = ScaffoldOptions {
            slug: "other".into(),
            dir: dir.path().join("other"),
            sdk: SdkSource::Path(dir.path().join("nope")),
        };
        assert!(matches!(scaffold(&missing), Err(ScaffoldError::SdkNotFound(_))));
        assert!(!dir.path().join("other").exists(), "nothing is written for a refused SDK");
    }

    /// The `[dependencies]` and `[build-dependencies]` entries of a scaffolded Cargo.toml.
    fn scaffolded_dependencies(sdk: SdkSource) -> (serde_json::Value, serde_json::Value, bool) {
        let dir = tempfile::tempdir().unwrap();
        let made =
            scaffold(&ScaffoldOptions { slug: "acme".into(), dir: dir.path().join("x"), sdk })
                .unwrap();
        let text = std::fs::read_to_string(made.crate_dir.join("Cargo.toml")).unwrap();
        let manifest: serde_json::Value = basic_toml::from_str(&text).unwrap();
        (
            manifest["dependencies"]["platos-plugin-sdk"].clone(),
            manifest["build-dependencies"]["platos-plugin-build"].clone(),
            made.crate_dir.join("Cargo.lock").exists(),
        )
    }

    #[test]
    fn by_default_the_sdk_is_the_published_version_this_binary_was_built_with() {
        let version = sdk_version();
        assert!(
            version.split('.').count() == 3
                && version.split('.').all(|part| part.parse::<u32>().is_ok()),
            "{version}"
        );
        let workspace: serde_json::Value = basic_toml::from_str(PLUGIN_WORKSPACE_MANIFEST).unwrap();
        assert_eq!(workspace["workspace"]["package"]["version"], version.as_str());
        // The workspace's path dependencies name the same version, so the
        // packages that depend on each other publish together.
        assert_eq!(
            workspace["workspace"]["dependencies"]["platos-plugin-sdk"]["version"],
            version.as_str()
        );
        let (sdk, build, lock) = scaffolded_dependencies(SdkSource::default());
        assert_eq!(sdk, serde_json::json!(version));
        assert_eq!(build, serde_json::json!(version));
        assert!(!lock, "a lock file of this checkout would pin path packages");
    }

    #[test]
    fn a_git_or_path_sdk_is_named_as_given() {
        let url = "https://git.example.com/platos.git";
        let (sdk, build, _) = scaffolded_dependencies(SdkSource::Git(url.into()));
        assert_eq!(sdk, serde_json::json!({"git": url}));
        assert_eq!(build, serde_json::json!({"git": url}));

        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/sdk");
        let (sdk, build, lock) = scaffolded_dependencies(SdkSource::Path(checkout.clone()));
        let sdk_dir = std::fs::canonicalize(&checkout).unwrap();
        assert_eq!(sdk, serde_json::json!({"path": sdk_dir.display().to_string()}));
        let build_dir = sdk_dir.parent().unwrap().join("build");
        assert_eq!(build, serde_json::json!({"path": build_dir.display().to_string()}));
        assert!(lock, "a checkout's lock file pins what the SDK is tested with");
    }

    fn platos_manifest_parses(text: &str) {
        let value: serde_json::Value = basic_toml::from_str(text).unwrap();
        assert_eq!(value["slug"], "acme");
        assert_eq!(value["auth"]["env_var"], "ACME_API_KEY");
    }
}
