//! `platos-host plugin ...`: inspect, list and call plugins from outside.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};
use platos_host::provider::{AuthShape, Credentials, HttpRequest, HttpResponse, Manifest};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::Context;

#[path = "plugin_test.rs"]
mod plugin_test;

#[derive(Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's manifest.
    Inspect {
        /// The plugin component.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List the loaded plugins (bundled, plus --plugin-dir) with their env vars.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Call one export under the runtime's limits and print the result as JSON.
    ///
    /// Input JSON by function (credentials are the key's env bag):
    ///   manifest:          {}
    ///   authorize:         {"credentials": {"OPENAI_API_KEY": "..."}, "request": {"method": "GET", "url": "...", "headers": [["name", "value"]]}, "now": 1700000000}
    ///   health-probe:      {"credentials": {...}}
    ///   interpret-health:  {"response": {"status": 200, "headers": [], "body": "..."}}
    ///   read-usage:        {"request": {...}, "response": {...}}          (contract 0.2.0)
    ///   token-request:     {"credentials": {...}, "now": 1700000000}      (contract 0.2.0)
    ///   read-token:        {"response": {...}, "now": 1700000000}         (contract 0.2.0)
    ///
    /// Pass credentials on stdin (`--input -`) or in a file (`--input @file.json`),
    /// never on the command line, where other users can read them. The output of
    /// `authorize` and `token-request` contains the credential it applied, that of
    /// `read-token` the access token.
    Call {
        /// The plugin component.
        file: PathBuf,
        /// The export to call.
        function: Function,
        /// The input: JSON text, `-` for stdin, or `@path` for a file.
        #[arg(long, default_value = "{}")]
        input: String,
    },
    /// Check a plugin component against everything the host relies on: the
    /// load rules, the declared auth shape, no leaked secret, allowed hosts,
    /// verdicts on canned responses, the limits; with --fixtures, recorded
    /// responses from a mock upstream too. Exit code 1 when a check fails.
    Test(plugin_test::TestArgs),
    /// Write a new Rust provider plugin crate that builds standalone for
    /// wasm32-wasip2 and passes `plugin test` as written.
    New(plugin_test::NewArgs),
}

/// A plugin export.
#[derive(Clone, Copy, ValueEnum)]
pub enum Function {
    Manifest,
    Authorize,
    HealthProbe,
    InterpretHealth,
    ReadUsage,
    TokenRequest,
    ReadToken,
}

pub async fn run(context: &Context, command: PluginCommand) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Inspect { file, json } => {
            let host = context.plugin_host()?;
            let plugin = host.load_file(&file).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(plugin.manifest())?);
            } else {
                print!("{}", describe(plugin.manifest(), plugin.api_version(), plugin.sha256()));
            }
        }
        PluginCommand::List { json } => {
            let host = context.plugin_host()?;
            let registry = context.registry(&host).await?;
            if json {
                let list: Vec<_> = registry
                    .iter()
                    .map(|plugin| {
                        serde_json::json!({
                            "slug": plugin.slug(),
                            "version": plugin.manifest().plugin_version,
                            "origin": plugin.origin(),
                            "api": plugin.api_version(),
                            "env_vars": plugin.manifest().env_vars.iter().map(|var| &var.name).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                // Refused plugins are logged (stderr); the list stays an array.
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!("{:<20} {:<10} {:<28} ENV VARS", "SLUG", "VERSION", "ORIGIN");
                for plugin in registry.iter() {
                    let vars: Vec<String> = plugin
                        .manifest()
                        .env_vars
                        .iter()
                        .map(|var| {
                            if var.required { var.name.clone() } else { format!("[{}]", var.name) }
                        })
                        .collect();
                    println!(
                        "{:<20} {:<10} {:<28} {}",
                        plugin.slug(),
                        plugin.manifest().plugin_version,
                        plugin.origin(),
                        vars.join(" ")
                    );
                }
                for refused in registry.refused() {
                    println!("REFUSED {}: {}", refused.code, refused.message);
                }
            }
        }
        PluginCommand::Test(args) => return plugin_test::run_test(context, args).await,
        PluginCommand::New(args) => return plugin_test::run_new(args),
        PluginCommand::Call { file, function, input } => {
            let input = read_input(&input)?;
            let host = context.plugin_host()?;
            let plugin = host.load_file(&file).await?;
            let output = call(&plugin, function, &input).await?;
            println!("{}", serde_json::to_string_pretty(&output)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The text form of `plugin inspect`.
fn describe(manifest: &Manifest, api: &str, sha256: &str) -> String {
    let mut out = format!(
        "{} ({}) v{}\n  api: platos:provider@{api}\n  sha256: {sha256}\n  docs: {}\n",
        manifest.display_name, manifest.slug, manifest.plugin_version, manifest.docs_url
    );
    let auth = match &manifest.auth {
        AuthShape::Bearer { env_var } => format!("Authorization: Bearer ${env_var}"),
        AuthShape::Header { header, env_var } => format!("{header}: ${env_var}"),
        AuthShape::Query { param, env_var } => format!("?{param}=${env_var}"),
        AuthShape::Custom { description } => format!("custom: {description}"),
    };
    out.push_str(&format!(
        "  auth: {auth}\n  allowed hosts: {}\n",
        manifest.allowed_hosts.join(", ")
    ));
    if let Some(cost) = &manifest.probe_cost {
        out.push_str(&format!("  probe cost: {cost}\n"));
    }
    out.push_str("  env vars:\n");
    for var in &manifest.env_vars {
        let default = var
            .default_value
            .as_deref()
            .map(|value| format!(" (default {value})"))
            .unwrap_or_default();
        out.push_str(&format!(
            "    {:<28} {:?}{}{default}: {}\n",
            var.name,
            var.role,
            if var.required { ", required" } else { "" },
            var.description
        ));
    }
    out.push_str("  default models:\n");
    for model in &manifest.default_models {
        let window =
            model.context_window.map(|tokens| format!(", {tokens} tokens")).unwrap_or_default();
        out.push_str(&format!(
            "    {:<28} {:?}{window}: {}\n",
            model.id, model.class, model.display_name
        ));
    }
    out
}

fn read_input(input: &str) -> anyhow::Result<serde_json::Value> {
    let text = if input == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading --input from stdin")?;
        text
    } else if let Some(path) = input.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("reading --input file {path}"))?
    } else {
        input.to_owned()
    };
    serde_json::from_str(&text)
        .context("--input is not valid JSON (see `plugin call --help` for its shape)")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallInput {
    #[serde(default)]
    credentials: BTreeMap<String, String>,
    request: Option<HttpRequest>,
    now: Option<u64>,
    response: Option<ResponseInput>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct ResponseInput {
    status: u16,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: String,
}

async fn call(
    plugin: &platos_host::runtime::Plugin,
    function: Function,
    input: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let input: CallInput = serde_json::from_value(input.clone())
        .context("--input does not have the expected shape (see `plugin call --help`)")?;
    let mut credentials = Credentials::new();
    for (name, value) in input.credentials {
        credentials = credentials.with(name, value);
    }
    let now = input.now.unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
    });
    let response = |function: &str| -> anyhow::Result<HttpResponse> {
        let response = input
            .response
            .clone()
            .with_context(|| format!("{function} needs \"response\" in --input"))?;
        Ok(HttpResponse {
            status: response.status,
            headers: response.headers,
            body: response.body.into_bytes(),
        })
    };
    Ok(match function {
        Function::Manifest => serde_json::to_value(plugin.call_manifest().await?)?,
        Function::Authorize => {
            let request = input.request.context("authorize needs \"request\" in --input")?;
            request_json(&plugin.authorize(&credentials, &request, now).await?)
        }
        Function::HealthProbe => request_json(&plugin.health_probe(&credentials).await?),
        Function::InterpretHealth => serde_json::to_value(
            plugin.interpret_health(&credentials, &response("interpret-health")?).await?,
        )?,
        Function::ReadUsage => {
            let request =
                input.request.as_ref().context("read-usage needs \"request\" in --input")?;
            let usage = plugin.read_usage(request, &response("read-usage")?).await?;
            serde_json::json!({ "usage": usage })
        }
        Function::TokenRequest => request_json(&plugin.token_request(&credentials, now).await?),
        Function::ReadToken => {
            match plugin.read_token(&credentials, &response("read-token")?, now).await? {
                Ok(token) => serde_json::json!({
                    "token": { "value": token.value.expose_secret(), "expires_at": token.expires_at }
                }),
                Err(verdict) => serde_json::json!({ "failure": verdict }),
            }
        }
    })
}

/// A request as JSON, with the body as text when it is UTF-8.
fn request_json(request: &HttpRequest) -> serde_json::Value {
    let body = request.body.as_ref().map(|body| match std::str::from_utf8(body) {
        Ok(text) => serde_json::Value::String(text.to_owned()),
        Err(_) => serde_json::to_value(body).unwrap_or_default(),
    });
    serde_json::json!({
        "method": request.method,
        "url": request.url,
        "headers": request.headers,
        "body": body,
    })
}
