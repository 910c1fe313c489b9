//! Build-script helper for Platos provider plugins.
//!
//! The manifest TOML file (`manifests/<slug>.toml`) is the single source of a
//! provider's manifest. A plugin's `build.rs` calls [`embed_manifest`], which
//! parses the file at build time (a malformed file fails the build with the
//! parser's message) and writes Rust code that the plugin pulls in with
//! `platos_plugin_sdk::include_manifest!()`. Nothing is parsed at run time.
//!
//! ```ignore
//! // build.rs
//! fn main() { platos_plugin_build::embed_manifest("../../manifests/acme.toml"); }
//! ```

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

/// The manifest file's format. Field names follow the WIT `manifest` record.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    slug: String,
    display_name: String,
    plugin_version: String,
    docs_url: String,
    probe_cost: Option<String>,
    model_classes: Vec<Class>,
    allowed_hosts: Vec<String>,
    auth: Auth,
    env_vars: Vec<Var>,
    default_models: Vec<Model>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Var {
    name: String,
    role: Role,
    required: bool,
    description: String,
    default: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "kebab-case")]
enum Role {
    Secret,
    BaseUrl,
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum Auth {
    Bearer { env_var: String },
    Header { header: String, env_var: String },
    Query { param: String, env_var: String },
    Custom { description: String },
}

#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(rename_all = "kebab-case")]
enum Class {
    Chat,
    Completion,
    Embedding,
    Rerank,
    Image,
    Audio,
    Moderation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Model {
    id: String,
    class: Class,
    display_name: String,
    context_window: Option<u32>,
}

/// Parses the manifest at `path` (relative to the plugin crate) and writes
/// `$OUT_DIR/platos_manifest.rs` for `include_manifest!()`.
///
/// # Panics
/// When the file cannot be read or is malformed: that fails the plugin's
/// build with a message naming the file and the problem.
pub fn embed_manifest(path: impl AsRef<Path>) {
    let path = path.as_ref();
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read manifest {}: {error}", path.display()));
    let code = manifest_code(&text)
        .unwrap_or_else(|error| panic!("malformed manifest {}: {error}", path.display()));
    let out_dir = std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo for build scripts");
    let out = Path::new(&out_dir).join("platos_manifest.rs");
    std::fs::write(&out, code)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", out.display()));
}

/// The Rust expression building the WIT manifest described by `text`.
pub fn manifest_code(text: &str) -> Result<String, String> {
    let file: ManifestFile = basic_toml::from_str(text).map_err(|error| error.to_string())?;
    let sdk = "::platos_plugin_sdk";
    let mut code = String::new();
    let _ = write!(
        code,
        "{sdk}::ProviderManifest {{ slug: {:?}.into(), display_name: {:?}.into(), plugin_version: {:?}.into(), docs_url: {:?}.into(), probe_cost: {}, ",
        file.slug,
        file.display_name,
        file.plugin_version,
        file.docs_url,
        option_string(&file.probe_cost)
    );
    code.push_str("env_vars: vec![");
    for var in &file.env_vars {
        let _ = write!(
            code,
            "{sdk}::EnvVar {{ name: {:?}.into(), role: {sdk}::EnvVarRole::{:?}, required: {}, description: {:?}.into(), default_value: {} }},",
            var.name,
            var.role,
            var.required,
            var.description,
            option_string(&var.default)
        );
    }
    code.push_str("], auth: ");
    let _ = match &file.auth {
        Auth::Bearer { env_var } => write!(code, "{sdk}::AuthShape::Bearer({env_var:?}.into())"),
        Auth::Header { header, env_var } => write!(
            code,
            "{sdk}::AuthShape::Header({sdk}::HeaderAuth {{ header: {header:?}.into(), env_var: {env_var:?}.into() }})"
        ),
        Auth::Query { param, env_var } => write!(
            code,
            "{sdk}::AuthShape::Query({sdk}::QueryAuth {{ param: {param:?}.into(), env_var: {env_var:?}.into() }})"
        ),
        Auth::Custom { description } => {
            write!(code, "{sdk}::AuthShape::Custom({description:?}.into())")
        }
    };
    code.push_str(", model_classes: vec![");
    for class in &file.model_classes {
        let _ = write!(code, "{sdk}::ModelClass::{class:?},");
    }
    code.push_str("], default_models: vec![");
    for model in &file.default_models {
        let _ = write!(
            code,
            "{sdk}::ModelInfo {{ id: {:?}.into(), class: {sdk}::ModelClass::{:?}, display_name: {:?}.into(), context_window: {:?} }},",
            model.id, model.class, model.display_name, model.context_window
        );
    }
    code.push_str("], allowed_hosts: vec![");
    for host in &file.allowed_hosts {
        let _ = write!(code, "{host:?}.into(),");
    }
    code.push_str("] }");
    Ok(code)
}

fn option_string(value: &Option<String>) -> String {
    match value {
        Some(value) => format!("Some({value:?}.into())"),
        None => "None".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::manifest_code;

    const GOOD: &str = r#"
slug = "acme"
display_name = "Acme"
plugin_version = "1.0.0"
docs_url = "https://acme.example/keys"
model_classes = ["chat"]
allowed_hosts = ["api.acme.example"]
auth = { type = "header", header = "x-api-key", env_var = "ACME_API_KEY" }

[[env_vars]]
name = "ACME_API_KEY"
role = "secret"
required = true
description = "Acme key"

[[default_models]]
id = "acme-1"
class = "chat"
display_name = "Acme 1"
context_window = 8192
"#;

    #[test]
    fn a_manifest_becomes_the_sdk_expression() {
        let code = manifest_code(GOOD).unwrap();
        for expected in [
            r#"slug: "acme".into()"#,
            r#"::platos_plugin_sdk::AuthShape::Header(::platos_plugin_sdk::HeaderAuth { header: "x-api-key".into(), env_var: "ACME_API_KEY".into() })"#,
            r#"role: ::platos_plugin_sdk::EnvVarRole::Secret, required: true"#,
            r#"context_window: Some(8192)"#,
            r#"allowed_hosts: vec!["api.acme.example".into(),]"#,
            "probe_cost: None",
        ] {
            assert!(code.contains(expected), "missing {expected:?} in {code}");
        }
    }

    #[test]
    fn a_malformed_manifest_names_the_problem() {
        let unknown_field = GOOD.replace("plugin_version", "plugin_versoin");
        let error = manifest_code(&unknown_field).unwrap_err();
        assert!(error.contains("plugin_versoin"), "{error}");
        let bad_role = GOOD.replace(r#"role = "secret""#, r#"role = "password""#);
        let error = manifest_code(&bad_role).unwrap_err();
        assert!(error.contains("password"), "{error}");
    }
}
