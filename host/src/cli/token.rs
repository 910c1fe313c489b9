//! `platos-host token create | list | revoke`: operator and agent tokens.
//!
//! The token database is held by a running server, so these commands work
//! while it is stopped; with the server running, use its API (`POST
//! /v1/tokens` with the operator token). A created token is printed once, to
//! stdout, and never logged.

use std::process::ExitCode;

use clap::Subcommand;
use platos_host::api::auth::{Grant, TokenStore};
use platos_host::scope::Scope;
use secrecy::ExposeSecret;

use super::Context;

/// `platos-host token ...`
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once on stdout: an operator token (every
    /// scope) or an agent token bound to one scope.
    Create {
        /// An operator token.
        #[arg(long, conflicts_with = "scope", required_unless_present = "scope")]
        operator: bool,
        /// An agent token bound to this scope.
        #[arg(long, value_name = "ORG/PROJECT/ENV")]
        scope: Option<Scope>,
        /// A name for people.
        #[arg(long)]
        label: Option<String>,
    },
    /// List tokens (ids, kinds, scopes, labels; never the tokens).
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id (from `token list`).
        id: String,
    },
}

/// Runs `token ...`.
pub fn run(context: &Context, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let tokens = TokenStore::open_in_data_dir(&context.data_dir)?;
    match command {
        TokenCommand::Create { operator, scope, label } => {
            let grant = match (operator, scope) {
                (true, _) => Grant::Operator,
                (false, Some(scope)) => Grant::Scope(scope),
                (false, None) => anyhow::bail!("pass --operator or --scope org/project/env"),
            };
            let label = label.unwrap_or_else(|| match &grant {
                Grant::Operator => "operator".to_owned(),
                Grant::Scope(scope) => format!("agent {scope}"),
            });
            let issued = tokens.create(&grant, &label)?;
            let kind = match &grant {
                Grant::Operator => "an operator token".to_owned(),
                Grant::Scope(scope) => format!("an agent token for {scope}"),
            };
            eprintln!(
                "created {kind}, id {} ({}); it is printed once, on stdout:",
                issued.info.id, issued.info.label
            );
            println!("{}", issued.token.expose_secret());
        }
        TokenCommand::List { json } => {
            let list = tokens.list();
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no tokens");
            } else {
                println!("{:<14} {:<9} {:<40} LABEL", "ID", "KIND", "SCOPE");
                for token in &list {
                    println!(
                        "{:<14} {:<9} {:<40} {}",
                        token.id,
                        format!("{:?}", token.kind).to_lowercase(),
                        token.scope.as_deref().unwrap_or("(every scope)"),
                        token.label
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            if tokens.revoke(&id)? {
                println!("revoked token {id}");
            } else {
                anyhow::bail!("no token has the id {id:?}: `platos-host token list` shows them");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
