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
    #[serde(default)]
    clients: Vec<Client>,
    default_client: Option<String>,
    #[serde(default)]
    token_exchange: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Client {
    id: String,
    display_name: String,
}

/// One alias: `client` is `"all"` or a client id; `suffix` goes with the
/// suffix forms, `domain` with `host-label-of-url`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Alias {
    name: String,
    client: String,
    form: Form,
    suffix: Option<String>,
    domain: Option<String>,
    note: Option<String>,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Form {
    Verbatim,
    AppendSuffix,
    StripSuffix,
    HostLabelOfUrl,
    NoteOnly,
}

/// Prices in US dollars per million tokens, as price lists write them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Price {
    input: f64,
    output: f64,
    cached_input: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Var {
    name: String,
    role: Role,
    required: bool,
    description: String,
    default: Option<String>,
    #[serde(default)]
    aliases: Vec<Alias>,
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
    price: Option<Price>,
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
            "{sdk}::EnvVar {{ name: {:?}.into(), role: {sdk}::EnvVarRole::{:?}, required: {}, description: {:?}.into(), default_value: {}, aliases: vec![",
            var.name,
            var.role,
            var.required,
            var.description,
            option_string(&var.default)
        );
        for alias in &var.aliases {
            code.push_str(&alias_code(sdk, &var.name, alias)?);
        }
        code.push_str("] },");
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
            "{sdk}::ModelInfo {{ id: {:?}.into(), class: {sdk}::ModelClass::{:?}, display_name: {:?}.into(), context_window: {:?}, price: {} }},",
            model.id,
            model.class,
            model.display_name,
            model.context_window,
            price_code(sdk, &model.id, model.price.as_ref())?
        );
    }
    code.push_str("], allowed_hosts: vec![");
    for host in &file.allowed_hosts {
        let _ = write!(code, "{host:?}.into(),");
    }
    code.push_str("], clients: vec![");
    for client in &file.clients {
        let _ = write!(
            code,
            "{sdk}::ClientInfo {{ id: {:?}.into(), display_name: {:?}.into() }},",
            client.id, client.display_name
        );
    }
    let _ = write!(
        code,
        "], default_client: {}, token_exchange: {} }}",
        option_string(&file.default_client),
        file.token_exchange
    );
    Ok(code)
}

/// The SDK expression of one alias of `var`; an error names a field that
/// is missing or does not belong to the alias's form.
fn alias_code(sdk: &str, var: &str, alias: &Alias) -> Result<String, String> {
    let at = format!("alias {} of {var}", alias.name);
    let client = match alias.client.as_str() {
        "all" => format!("{sdk}::ClientSelector::All"),
        id => format!("{sdk}::ClientSelector::Only({id:?}.into())"),
    };
    let wants_suffix = matches!(alias.form, Form::AppendSuffix | Form::StripSuffix);
    let wants_domain = alias.form == Form::HostLabelOfUrl;
    if wants_suffix != alias.suffix.is_some() {
        return Err(format!(
            "{at}: `suffix` goes with form append-suffix or strip-suffix, and only with them"
        ));
    }
    if wants_domain != alias.domain.is_some() {
        return Err(format!("{at}: `domain` goes with form host-label-of-url, and only with it"));
    }
    let form = match (alias.form, &alias.suffix, &alias.domain) {
        (Form::AppendSuffix, Some(suffix), _) => {
            format!("{sdk}::ValueForm::AppendSuffix({suffix:?}.into())")
        }
        (Form::StripSuffix, Some(suffix), _) => {
            format!("{sdk}::ValueForm::StripSuffix({suffix:?}.into())")
        }
        (Form::HostLabelOfUrl, _, Some(domain)) => {
            format!("{sdk}::ValueForm::HostLabelOfUrl({domain:?}.into())")
        }
        (Form::NoteOnly, ..) => format!("{sdk}::ValueForm::NoteOnly"),
        _ => format!("{sdk}::ValueForm::Verbatim"),
    };
    Ok(format!(
        "{sdk}::EnvAlias {{ name: {:?}.into(), client: {client}, form: {form}, note: {} }},",
        alias.name,
        option_string(&alias.note)
    ))
}

/// The SDK expression of a model's price, converted from dollars to
/// micro-dollars per million tokens.
fn price_code(sdk: &str, model: &str, price: Option<&Price>) -> Result<String, String> {
    let Some(price) = price else { return Ok("None".to_owned()) };
    let micros = |field: &str, usd: f64| {
        micro_usd(usd).map_err(|why| format!("price of {model}: {field} {why}"))
    };
    let cached = match price.cached_input {
        Some(usd) => format!("Some({})", micros("cached_input", usd)?),
        None => "None".to_owned(),
    };
    Ok(format!(
        "Some({sdk}::TokenPrice {{ input: {}, output: {}, cached_input: {cached} }})",
        micros("input", price.input)?,
        micros("output", price.output)?
    ))
}

/// `usd` in millionths of a dollar, exactly: at most six decimals, not
/// negative, finite.
fn micro_usd(usd: f64) -> Result<u64, String> {
    if !usd.is_finite() || !(0.0..=1e9).contains(&usd) {
        return Err(format!("= {usd} must be a dollar amount of at least 0"));
    }
    let micros = (usd * 1_000_000.0).round();
    if (micros / 1_000_000.0 - usd).abs() > f64::EPSILON * usd.max(1.0) * 4.0 {
        return Err(format!("= {usd} has more than six decimals"));
    }
    Ok(micros as u64)
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

    /// Top-level keys go before any table.
    const ADDITIONS_TOP: &str = r#"
default_client = "official"
token_exchange = true
"#;

    const ADDITIONS_TABLES: &str = r#"
[[clients]]
id = "official"
display_name = "Acme SDKs"

[[clients]]
id = "ai-sdk"
display_name = "AI SDK"

[[env_vars]]
name = "ACME_BASE_URL"
role = "base-url"
required = false
description = "base"
aliases = [
  { name = "ACME_API_BASE", client = "all", form = "verbatim" },
  { name = "ACME_BASE_URL", client = "ai-sdk", form = "append-suffix", suffix = "/v1" },
  { name = "ACME_RESOURCE", client = "ai-sdk", form = "host-label-of-url", domain = "acme.example", note = "only for *.acme.example" },
]

[[default_models]]
id = "acme-2"
class = "chat"
display_name = "Acme 2"
price = { input = 1.25, output = 10.0, cached_input = 0.125 }
"#;

    #[test]
    fn aliases_clients_prices_and_token_exchange_become_code() {
        let code = manifest_code(&format!("{ADDITIONS_TOP}{GOOD}{ADDITIONS_TABLES}")).unwrap();
        for expected in [
            r#"name: "ACME_API_BASE".into(), client: ::platos_plugin_sdk::ClientSelector::All, form: ::platos_plugin_sdk::ValueForm::Verbatim, note: None"#,
            r#"client: ::platos_plugin_sdk::ClientSelector::Only("ai-sdk".into()), form: ::platos_plugin_sdk::ValueForm::AppendSuffix("/v1".into())"#,
            r#"form: ::platos_plugin_sdk::ValueForm::HostLabelOfUrl("acme.example".into()), note: Some("only for *.acme.example".into())"#,
            "price: Some(::platos_plugin_sdk::TokenPrice { input: 1250000, output: 10000000, cached_input: Some(125000) })",
            r#"::platos_plugin_sdk::ClientInfo { id: "ai-sdk".into(), display_name: "AI SDK".into() }"#,
            r#"default_client: Some("official".into()), token_exchange: true"#,
        ] {
            assert!(code.contains(expected), "missing {expected:?} in {code}");
        }
        // A manifest without them has empty additions.
        let bare = manifest_code(GOOD).unwrap();
        for expected in [
            "aliases: vec![]",
            "price: None",
            "clients: vec![]",
            "default_client: None, token_exchange: false",
        ] {
            assert!(bare.contains(expected), "missing {expected:?} in {bare}");
        }
    }

    #[test]
    fn alias_and_price_mistakes_name_the_field() {
        let full = format!("{ADDITIONS_TOP}{GOOD}{ADDITIONS_TABLES}");
        for (from, to, expected) in [
            (
                r#"suffix = "/v1""#,
                r#"domain = "/v1""#,
                "alias ACME_BASE_URL of ACME_BASE_URL: `suffix` goes with",
            ),
            (
                r#"form = "verbatim""#,
                r#"form = "verbatim", suffix = "/x""#,
                "alias ACME_API_BASE of ACME_BASE_URL: `suffix` goes with",
            ),
            (
                r#", domain = "acme.example""#,
                "",
                "alias ACME_RESOURCE of ACME_BASE_URL: `domain` goes with",
            ),
            (r#"form = "verbatim""#, r#"form = "as-is""#, "as-is"),
            (
                "input = 1.25",
                "input = 1.2500001",
                "price of acme-2: input = 1.2500001 has more than six decimals",
            ),
            (
                "output = 10.0",
                "output = -1.0",
                "price of acme-2: output = -1 must be a dollar amount",
            ),
            ("cached_input = 0.125", "cached = 0.125", "cached"),
        ] {
            assert!(full.contains(from), "{from}");
            let error = manifest_code(&full.replacen(from, to, 1)).unwrap_err();
            assert!(error.contains(expected), "{expected:?} not in {error}");
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
