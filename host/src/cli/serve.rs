//! `platos-host serve`: the HTTP API and the providers page (see
//! `platos_host::api::server` for what starts).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use platos_host::api::connections::ConnectionLimits;
use platos_host::api::server::{Server, ServerConfig};
use platos_host::audit::{AuditConfig, OnAuditError, SinkTarget};
use platos_host::outbound::OutboundConfig;
use platos_host::policy::addresses::AddressPolicy;
use platos_host::provider::MicroUsd;
use platos_host::scope::Scope;
use platos_host::selfhost::SelfHostConfig;

use super::Context;

#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on. Loopback by default: put a TLS proxy in front
    /// to serve other machines.
    #[arg(long, env = "PLATOS_LISTEN", default_value = "127.0.0.1:7878")]
    listen: SocketAddr,

    /// The scope the self-host configuration (.env file and process
    /// environment) is imported into.
    #[arg(
        long,
        env = "PLATOS_SELF_HOST_SCOPE",
        default_value = "self/host/default",
        value_name = "ORG/PROJECT/ENV"
    )]
    self_host_scope: Scope,

    /// The .env file imported into the self-host scope and re-imported when
    /// it changes or on SIGHUP. Default: `.env` in the working directory, if
    /// there is one.
    #[arg(long, env = "PLATOS_ENV_FILE", value_name = "PATH")]
    env_file: Option<PathBuf>,

    /// Import the provider variables of the process environment too (the
    /// process environment wins over the .env file).
    #[arg(long, env = "PLATOS_IMPORT_PROCESS_ENV", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    import_process_env: bool,

    /// Time between background health rounds (`300`, `300s`, `5m`, `1h`); a
    /// round also runs at start, after a `.env` reload, and a provider's keys
    /// are probed when one of its variables changes. `0` turns all of these
    /// off (`POST /v1/health/rounds` and "Test key" still probe). Hosts
    /// sharing a PostgreSQL store should use the same interval: each
    /// credential is then probed once per interval by one of them.
    #[arg(long, env = "PLATOS_HEALTH_INTERVAL", default_value = "300s", value_parser = parse_duration)]
    health_interval: Duration,

    /// The most connections this host keeps to a PostgreSQL store (`--store
    /// postgres://…`), 1 to 1000. Requests wait up to 3 s for one, then get
    /// 503 `store_unavailable`: size it for the concurrency a node serves, and
    /// keep nodes × size within the server's `max_connections`.
    #[arg(
        long,
        env = "PLATOS_STORE_POOL_SIZE",
        default_value_t = platos_host::store::DEFAULT_POOL_SIZE as u16,
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=1000)
    )]
    store_pool_size: u16,

    /// Let upstream base URLs resolve to loopback addresses (local mock or
    /// gateway providers; tests).
    #[arg(long, env = "PLATOS_ALLOW_LOOPBACK_UPSTREAMS")]
    allow_loopback_upstreams: bool,

    /// The most client connections held at once; more are answered 503.
    /// Default: three quarters of the open-file limit, at most 8192.
    #[arg(long, env = "PLATOS_MAX_CONNECTIONS", value_name = "N")]
    max_connections: Option<usize>,

    /// The longest a client may take to send a request's headers.
    #[arg(long, env = "PLATOS_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,

    /// The longest a connection may sit without moving a byte (idle keep-alive).
    #[arg(long, env = "PLATOS_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    idle_timeout: Duration,

    /// How long a lease (what a resolve hands a turn for authorize-by-lease)
    /// holds its value versions unless released: `15m`, `900s`, `1h`. At
    /// least 1s and at most the store's grace period for replaced values
    /// (15 minutes): a longer TTL is refused, since a lease would outlive the
    /// versions it holds after a rotation.
    #[arg(long, env = "PLATOS_LEASE_TTL", default_value = "15m", value_parser = parse_duration)]
    lease_ttl: Duration,

    /// Refuse to start when any plugin of --plugin-dir is refused (it does not
    /// load, or declares variables it does not own). By default a refused
    /// plugin is skipped, logged once and listed in GET /v1/plugins.
    #[arg(long, env = "PLATOS_REQUIRE_ALL_PLUGINS")]
    require_all_plugins: bool,

    /// Let upstream base URLs resolve to private addresses (on-prem providers).
    /// Link-local and metadata addresses stay refused.
    #[arg(long, env = "PLATOS_ALLOW_PRIVATE_UPSTREAMS")]
    allow_private_upstreams: bool,

    /// How long a forward's budget reservation holds if it is never settled
    /// (its host died mid-request): `30m`, `1h`. A forward still streaming
    /// after it no longer holds room in the budget.
    #[arg(long, env = "PLATOS_RESERVATION_TTL", default_value = "30m", value_parser = parse_duration)]
    reservation_ttl: Duration,

    /// What a forward reserves against budgets when its most possible cost
    /// cannot be computed (its body names no max_tokens, max_output_tokens or
    /// max_completion_tokens, or its provider prices no model), in US
    /// dollars: `0.50` for every provider, or `PROVIDER=USD` for one
    /// (repeat the flag; comma-separated in the variable).
    #[arg(
        long,
        env = "PLATOS_DEFAULT_RESERVATION",
        value_name = "USD|PROVIDER=USD",
        value_delimiter = ',',
        value_parser = parse_reservation
    )]
    default_reservation: Vec<(Option<String>, MicroUsd)>,

    /// Record every change, resolve, authorize, forward and plugin load in
    /// the audit trail (`on`, the default) or nothing (`off`). The trail is
    /// beside the store (files in `<data_dir>/audit` for sled, a table of
    /// the PostgreSQL database) and read with GET /v1/audit; it never holds
    /// a value.
    #[arg(
        long,
        env = "PLATOS_AUDIT",
        default_value = "on",
        value_name = "on|off",
        value_parser = parse_on_off,
        action = clap::ArgAction::Set
    )]
    audit: bool,

    /// Also write each audit record as a JSON line to this file (appended,
    /// created 0600) or, with `-`, to standard output (logs go to stderr),
    /// for a log shipper. A record it cannot take refuses its action like
    /// the trail's own (see --audit-on-error).
    #[arg(long, env = "PLATOS_AUDIT_LOG", value_name = "PATH|-")]
    audit_log: Option<SinkTarget>,

    /// How long audit records are kept: `90d`, `720h`. Older ones are purged
    /// by the maintenance loop.
    #[arg(long, env = "PLATOS_AUDIT_RETENTION", default_value = "90d", value_parser = parse_duration)]
    audit_retention: Duration,

    /// When an action's audit record cannot be written (a full disk, a
    /// database that is away): `refuse` the action (the default: fail
    /// closed, nothing happens unrecorded) or `allow` it (logged and counted
    /// in platos_audit_records_total{result="failed"}).
    #[arg(
        long,
        env = "PLATOS_AUDIT_ON_ERROR",
        default_value = "refuse",
        value_name = "refuse|allow"
    )]
    audit_on_error: OnAuditError,
}

/// `on` or `off` (also `true`/`false`, `1`/`0`).
fn parse_on_off(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("`{text}`: expected `on` or `off`")),
    }
}

/// `0.50` (every provider) or `anthropic=2` (one provider), in US dollars.
fn parse_reservation(text: &str) -> Result<(Option<String>, MicroUsd), String> {
    let (provider, amount) = match text.split_once('=') {
        Some((provider, amount)) => {
            let provider = provider.trim();
            if !platos_host::policy::names::is_valid_slug(provider) {
                return Err(format!(
                    "invalid provider slug `{provider}` in `{text}`: expected e.g. anthropic=2.00"
                ));
            }
            (Some(provider.to_owned()), amount)
        }
        None => (None, text),
    };
    amount
        .trim()
        .parse::<f64>()
        .ok()
        .and_then(platos_host::policy::spend::usd_to_micro)
        .map(|micro| (provider, micro))
        .ok_or_else(|| {
            format!("invalid reservation `{text}`: expected US dollars from 0 to 1e9, e.g. 0.50 or openai=0.50")
        })
}

/// `300`, `300s`, `5m`, `2h`, `90d`, `500ms`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| {
        format!(
            "invalid duration `{text}`: expected a number of seconds, or e.g. 300s, 5m, 1h, 90d"
        )
    })?;
    let scale: u64 = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 24 * 3600,
        "ms" => return Ok(Duration::from_millis(number)),
        _ => return Err(format!("invalid duration unit in `{text}`: expected ms, s, m, h or d")),
    };
    number
        .checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("invalid duration `{text}`: too long"))
}

pub async fn run(context: &Context, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let env_file = match args.env_file {
        Some(path) => Some(path),
        None => Some(PathBuf::from(".env")).filter(|path| path.is_file()),
    };
    if let Some(path) = &env_file {
        tracing::info!(
            "self-host scope {}: importing {} and the process environment",
            args.self_host_scope,
            path.display()
        );
    }
    let mut config = ServerConfig::new(args.listen, context.data_dir.clone());
    config.store = context.store.clone();
    config.store_pool_size = usize::from(args.store_pool_size);
    config.plugins = context.plugin_sources()?;
    config.require_all_plugins = args.require_all_plugins;
    config.connections = ConnectionLimits {
        max_connections: args.max_connections.unwrap_or(config.connections.max_connections),
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
    };
    config.self_host = Some(SelfHostConfig {
        scope: args.self_host_scope,
        env_file,
        process_env: args.import_process_env,
    });
    config.health_interval = args.health_interval;
    config.audit = AuditConfig {
        enabled: args.audit,
        on_error: args.audit_on_error,
        retention: args.audit_retention,
        sink: args.audit_log,
    };
    config.lease_ttl = args.lease_ttl;
    config.api.spend.reservation_ttl = args.reservation_ttl;
    for (provider, amount) in args.default_reservation {
        match provider {
            Some(provider) => {
                config.api.spend.provider_reservations.insert(provider, amount);
            }
            None => config.api.spend.default_reservation = amount,
        }
    }
    config.outbound = OutboundConfig {
        addresses: AddressPolicy {
            allow_loopback: args.allow_loopback_upstreams,
            allow_private: args.allow_private_upstreams,
        },
        ..OutboundConfig::default()
    };
    // The handlers are in place before the start says it listens, so an
    // early SIGTERM still shuts down cleanly.
    let stop = shutdown_signal()?;
    let server = Server::start(config).await?;
    server.log_start(&context.data_dir);
    stop.await;
    tracing::info!("shutting down: finishing requests in flight");
    server.shutdown(Duration::from_secs(10)).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM. The SIGTERM handler is installed when this is called
/// (what service managers send); Ctrl-C's on the first wait.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    Ok(async move {
        #[cfg(unix)]
        let terminate = terminate.recv();
        #[cfg(not(unix))]
        let terminate = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86400)));
        assert!(parse_duration("99999999999999999d").unwrap_err().contains("too long"));
        assert_eq!(parse_on_off("OFF"), Ok(false));
    }

    /// `serve`'s arguments alone.
    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    #[test]
    fn audit_flags_take_their_values() {
        use clap::Parser as _;
        let parse = |args: &[&str]| Serve::try_parse_from([&["serve"], args].concat());
        let default = parse(&[]).unwrap().args;
        assert!(default.audit);
        assert_eq!(default.audit_on_error, OnAuditError::Refuse);
        assert_eq!(default.audit_retention, Duration::from_secs(90 * 86400));
        assert_eq!(default.audit_log, None);
        assert!(!parse(&["--audit", "off"]).unwrap().args.audit);
        assert!(parse(&["--audit=on"]).unwrap().args.audit);
        let set =
            parse(&["--audit-log", "-", "--audit-on-error", "allow", "--audit-retention", "7d"])
                .unwrap()
                .args;
        assert_eq!(set.audit_log, Some(SinkTarget::Stdout));
        assert_eq!(set.audit_on_error, OnAuditError::Allow);
        assert_eq!(set.audit_retention, Duration::from_secs(7 * 86400));
        let error = parse(&["--audit", "maybe"]).err().unwrap().to_string();
        assert!(error.contains("expected `on` or `off`"), "{error}");
        let error = parse(&["--audit-on-error", "ignore"]).err().unwrap().to_string();
        assert!(error.contains("expected `refuse`"), "{error}");
        assert!(parse_on_off("maybe").unwrap_err().contains("expected `on` or `off`"));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
