//! `/metrics`: Prometheus text exposition, written by hand (no client
//! library): resolves by outcome, fallbacks, probe verdicts by class, plugin
//! call and probe latency histograms, HTTP requests by route, method and
//! status with their latency, leases issued and released, loaded plugins,
//! forwards by outcome with the tokens they used, and audit records.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::http::Method;

use super::ApiState;
use crate::forward::{ForwardMeter, ForwardOutcome};
use crate::metering::SpendCounters;
use crate::resolution::leases::Lease;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A latency histogram with fixed buckets, lock-free.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(index) = BUCKETS.iter().position(|bound| seconds <= *bound) {
            self.buckets[index].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// How many observations.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces =
            |text: &str| if text.is_empty() { String::new() } else { format!("{{{text}}}") };
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {count}", braces(labels));
    }
}

/// The statuses counted one by one; any other is counted as `other`.
const STATUSES: [u16; 15] =
    [200, 201, 400, 401, 403, 404, 405, 409, 413, 422, 429, 500, 502, 503, 504];

/// The methods counted one by one.
const METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OTHER"];

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET | Method::HEAD => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        _ => 5,
    }
}

#[derive(Debug, Default)]
struct MethodStats {
    latency: Histogram,
    statuses: [AtomicU64; STATUSES.len() + 1],
}

#[derive(Debug, Default)]
struct RouteStats {
    methods: [MethodStats; METHODS.len()],
}

/// The API's own counters (the resolver and the health service keep theirs).
#[derive(Debug, Default)]
pub struct Metrics {
    routes: RwLock<HashMap<String, Arc<RouteStats>>>,
    plugin_calls: RwLock<HashMap<(String, &'static str), Arc<Histogram>>>,
    probes: RwLock<HashMap<String, Arc<Histogram>>>,
    /// Client connections, counted by the connection loop.
    pub(crate) connections: Arc<super::connections::ConnectionCounters>,
    forwards: Arc<ForwardCounters>,
    spend: Arc<SpendCounters>,
}

/// The outcomes of [`ForwardOutcome::name`], in the order they are counted.
const FORWARD_OUTCOMES: [&str; 4] = ["completed", "unreachable", "interrupted", "cancelled"];

/// Forwards by outcome and the tokens they used by provider: the meter
/// every forward reports to ([`Metrics::forwards`]).
#[derive(Debug, Default)]
pub struct ForwardCounters {
    in_flight: AtomicU64,
    outcomes: [AtomicU64; FORWARD_OUTCOMES.len()],
    tokens: RwLock<HashMap<String, Arc<TokenCounts>>>,
}

/// The tokens of one provider's forwards.
#[derive(Debug, Default)]
struct TokenCounts {
    input: AtomicU64,
    output: AtomicU64,
    cached_input: AtomicU64,
}

impl ForwardMeter for ForwardCounters {
    fn started(&self, _lease: &Lease) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn finished(&self, lease: &Lease, outcome: &ForwardOutcome) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(index) = FORWARD_OUTCOMES.iter().position(|name| *name == outcome.name()) {
            self.outcomes[index].fetch_add(1, Ordering::Relaxed);
        }
        if let ForwardOutcome::Completed { usage: Some(usage), .. } = outcome {
            let counts = get_or_insert(&self.tokens, &lease.provider, || lease.provider.clone());
            counts.input.fetch_add(usage.input_tokens, Ordering::Relaxed);
            counts.output.fetch_add(usage.output_tokens, Ordering::Relaxed);
            counts.cached_input.fetch_add(usage.cached_input_tokens, Ordering::Relaxed);
        }
    }
}

impl ForwardCounters {
    fn render(&self, out: &mut String) {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        out.push_str("# HELP platos_forwards_in_flight Forwarded requests whose answer is still being relayed.\n# TYPE platos_forwards_in_flight gauge\n");
        let _ = writeln!(out, "platos_forwards_in_flight {}", load(&self.in_flight));
        out.push_str("# HELP platos_forwards_total Forwarded requests by outcome (cancelled: the agent went away before the end).\n# TYPE platos_forwards_total counter\n");
        for (outcome, counter) in FORWARD_OUTCOMES.iter().zip(&self.outcomes) {
            let _ =
                writeln!(out, "platos_forwards_total{{outcome=\"{outcome}\"}} {}", load(counter));
        }
        out.push_str("# HELP platos_forward_tokens_total Tokens forwarded requests used, as their provider's plugin read them, by provider and kind.\n# TYPE platos_forward_tokens_total counter\n");
        let tokens = self.tokens.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut tokens: Vec<_> = tokens.iter().collect();
        tokens.sort_by(|a, b| a.0.cmp(b.0));
        for (provider, counts) in tokens {
            for (kind, counter) in [
                ("input", &counts.input),
                ("output", &counts.output),
                ("cached_input", &counts.cached_input),
            ] {
                let _ = writeln!(
                    out,
                    "platos_forward_tokens_total{{provider=\"{}\",kind=\"{kind}\"}} {}",
                    label(provider),
                    load(counter)
                );
            }
        }
    }
}

fn get_or_insert<K, V: Default>(
    map: &RwLock<HashMap<K, Arc<V>>>,
    key: &K,
    owned: impl FnOnce() -> K,
) -> Arc<V>
where
    K: std::hash::Hash + Eq,
{
    if let Some(value) = map.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(key) {
        return value.clone();
    }
    map.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .entry(owned())
        .or_default()
        .clone()
}

impl Metrics {
    /// Records an HTTP request: its route template (`None`: no route
    /// matched), method, status and time taken.
    pub fn record_request(
        &self,
        route: Option<&str>,
        method: &Method,
        status: u16,
        elapsed: Duration,
    ) {
        let route = route.unwrap_or("unmatched");
        let stats = {
            let routes = self.routes.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            routes.get(route).cloned()
        };
        let stats = stats.unwrap_or_else(|| {
            self.routes
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(route.to_owned())
                .or_default()
                .clone()
        });
        let method = &stats.methods[method_index(method)];
        method.latency.observe(elapsed);
        let index = STATUSES.iter().position(|known| *known == status).unwrap_or(STATUSES.len());
        method.statuses[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one plugin call made by the API.
    pub fn record_plugin_call(&self, plugin: &str, function: &'static str, elapsed: Duration) {
        let key = (plugin.to_owned(), function);
        get_or_insert(&self.plugin_calls, &key, || key.clone()).observe(elapsed);
    }

    /// The meter forwards report to.
    pub fn forwards(&self) -> Arc<ForwardCounters> {
        self.forwards.clone()
    }

    /// The spend forwards were charged, by provider.
    pub fn spend(&self) -> &Arc<SpendCounters> {
        &self.spend
    }

    /// Records one probe ("test key") made by the API.
    pub fn record_probe(&self, provider: &str, elapsed: Duration) {
        let key = provider.to_owned();
        get_or_insert(&self.probes, &key, || key.clone()).observe(elapsed);
    }
}

/// The spend forwards were charged and the forwards budgets refused.
fn render_spend(spend: &SpendCounters, out: &mut String) {
    let usd = |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64 / 1_000_000.0;
    let mut charged = String::new();
    let mut refused = String::new();
    spend.for_each(|provider, counters| {
        let provider = label(provider);
        for (basis, counter) in [
            ("listed-price", &counters.listed),
            ("dearest-default", &counters.unlisted),
            ("whole-reservation", &counters.reserved),
        ] {
            let _ = writeln!(
                charged,
                "platos_spend_usd_total{{provider=\"{provider}\",basis=\"{basis}\"}} {}",
                usd(counter)
            );
        }
        let _ = writeln!(
            refused,
            "platos_budget_refusals_total{{provider=\"{provider}\"}} {}",
            counters.refusals.load(Ordering::Relaxed)
        );
    });
    out.push_str("# HELP platos_spend_usd_total US dollars this host charged forwards, by provider and how the price was found (listed-price; dearest-default: an unknown model; whole-reservation: the usage was not known).\n# TYPE platos_spend_usd_total counter\n");
    out.push_str(&charged);
    out.push_str("# HELP platos_budget_refusals_total Forwards refused before sending because a key's or scope's budget had no room, by provider.\n# TYPE platos_budget_refusals_total counter\n");
    out.push_str(&refused);
}

/// Escapes a label value.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The exposition text; `tokens` (every token), when the token records
/// could answer, gives the `platos_tokens` gauge.
pub fn render(state: &ApiState, tokens: Option<&[super::auth::TokenInfo]>) -> String {
    let mut out = String::with_capacity(8 << 10);
    let resolver = state.resolver();
    let counters = resolver.counters();
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);

    out.push_str(
        "# HELP platos_resolves_total Resolves by outcome (fallbacks: the sum of the two fallback-pin outcomes).\n# TYPE platos_resolves_total counter\n",
    );
    for (outcome, value) in [
        ("pinned", load(&counters.pinned)),
        ("scope-default", load(&counters.scope_default)),
        ("fallback-pin-missing", load(&counters.fallbacks)),
        ("fallback-pin-disabled", load(&counters.disabled_pin_fallbacks)),
        ("fallback-pin-at-cap", load(&counters.cap_pin_fallbacks)),
        ("error", load(&counters.errors)),
    ] {
        let _ = writeln!(out, "platos_resolves_total{{outcome=\"{outcome}\"}} {value}");
    }

    out.push_str("# HELP platos_probe_verdicts_total Health probe verdicts by class (background rounds and test-key probes).\n# TYPE platos_probe_verdicts_total counter\n");
    for (class, value) in state.health().counters().snapshot() {
        let _ = writeln!(out, "platos_probe_verdicts_total{{class=\"{class}\"}} {value}");
    }

    out.push_str("# HELP platos_leases_issued_total Leases issued by this host (one per resolve; a lease is a token the agent holds, the host keeps nothing per lease).\n# TYPE platos_leases_issued_total counter\n");
    let _ = writeln!(out, "platos_leases_issued_total {}", load(&counters.leases_issued));
    out.push_str("# HELP platos_leases_released_total Leases released early through this host.\n# TYPE platos_leases_released_total counter\n");
    let _ = writeln!(out, "platos_leases_released_total {}", load(&counters.leases_released));
    out.push_str("# HELP platos_token_exchanges_total Token exchanges run for authorize by lease (a secret traded for an access token; cached tokens not counted).\n# TYPE platos_token_exchanges_total counter\n");
    let _ = writeln!(out, "platos_token_exchanges_total {}", resolver.tokens().exchanges());
    out.push_str("# HELP platos_access_tokens_cached Keys with an access token (or an exchange in flight) in memory.\n# TYPE platos_access_tokens_cached gauge\n");
    let _ = writeln!(out, "platos_access_tokens_cached {}", resolver.tokens().cached_keys());
    if let Some(audit) = state.audit().counters() {
        out.push_str("# HELP platos_audit_records_total Audit records written to every audit device, and records that could not be (their actions refused, or with --audit-on-error allow let through).\n# TYPE platos_audit_records_total counter\n");
        let _ = writeln!(
            out,
            "platos_audit_records_total{{result=\"written\"}} {}",
            load(&audit.written)
        );
        let _ = writeln!(
            out,
            "platos_audit_records_total{{result=\"failed\"}} {}",
            load(&audit.failed)
        );
    }
    out.push_str("# HELP platos_plugins_loaded Loaded provider plugins.\n# TYPE platos_plugins_loaded gauge\n");
    let _ = writeln!(out, "platos_plugins_loaded {}", resolver.registry().len());
    let connections = &state.metrics().connections;
    out.push_str("# HELP platos_connections_open Client connections open now.\n# TYPE platos_connections_open gauge\n");
    let _ = writeln!(out, "platos_connections_open {}", load(&connections.open));
    out.push_str("# HELP platos_connections_refused_total Client connections answered 503 because the connection cap was reached.\n# TYPE platos_connections_refused_total counter\n");
    let _ = writeln!(out, "platos_connections_refused_total {}", load(&connections.refused));
    out.push_str("# HELP platos_plugins_refused Plugins refused at start, by file and reason code.\n# TYPE platos_plugins_refused gauge\n");
    for refused in resolver.registry().refused() {
        let _ = writeln!(
            out,
            "platos_plugins_refused{{origin=\"{}\",code=\"{}\"}} 1",
            label(&refused.origin),
            refused.code
        );
    }
    if let Some(tokens) = tokens {
        out.push_str("# HELP platos_tokens Access tokens by kind.\n# TYPE platos_tokens gauge\n");
        for kind in [
            super::auth::TokenKind::Operator,
            super::auth::TokenKind::Admin,
            super::auth::TokenKind::Agent,
        ] {
            let count = tokens.iter().filter(|token| token.kind == kind).count();
            let _ = writeln!(out, "platos_tokens{{kind=\"{}\"}} {count}", kind.name());
        }
    }

    let metrics = state.metrics();
    out.push_str("# HELP platos_plugin_call_duration_seconds Plugin calls made by the API (authorize by lease), by plugin and function.\n# TYPE platos_plugin_call_duration_seconds histogram\n");
    let calls = metrics.plugin_calls.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut calls: Vec<_> = calls.iter().collect();
    calls.sort_by(|a, b| a.0.cmp(b.0));
    for ((plugin, function), histogram) in calls {
        let labels = format!("plugin=\"{}\",function=\"{function}\"", label(plugin));
        histogram.render(&mut out, "platos_plugin_call_duration_seconds", &labels);
    }
    out.push_str("# HELP platos_probe_duration_seconds Test-key probes made by the API (plugin calls and the upstream request), by provider.\n# TYPE platos_probe_duration_seconds histogram\n");
    let probes = metrics.probes.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut probes: Vec<_> = probes.iter().collect();
    probes.sort_by(|a, b| a.0.cmp(b.0));
    for (provider, histogram) in probes {
        histogram.render(
            &mut out,
            "platos_probe_duration_seconds",
            &format!("provider=\"{}\"", label(provider)),
        );
    }

    metrics.forwards.render(&mut out);
    render_spend(&metrics.spend, &mut out);

    let routes = metrics.routes.read().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut routes: Vec<_> = routes.iter().collect();
    routes.sort_by(|a, b| a.0.cmp(b.0));
    out.push_str("# HELP platos_http_requests_total HTTP requests by route template, method and status.\n# TYPE platos_http_requests_total counter\n");
    for (route, stats) in &routes {
        for (method, method_stats) in METHODS.iter().zip(&stats.methods) {
            for (index, counter) in method_stats.statuses.iter().enumerate() {
                let value = counter.load(Ordering::Relaxed);
                if value == 0 {
                    continue;
                }
                let status = STATUSES.get(index).map_or_else(|| "other".to_owned(), u16::to_string);
                let _ = writeln!(
                    out,
                    "platos_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {value}",
                    label(route)
                );
            }
        }
    }
    out.push_str("# HELP platos_http_request_duration_seconds HTTP request latency by route template and method.\n# TYPE platos_http_request_duration_seconds histogram\n");
    for (route, stats) in &routes {
        for (method, method_stats) in METHODS.iter().zip(&stats.methods) {
            if method_stats.latency.count() > 0 {
                let labels = format!("route=\"{}\",method=\"{method}\"", label(route));
                method_stats.latency.render(
                    &mut out,
                    "platos_http_request_duration_seconds",
                    &labels,
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(50));
        histogram.observe(Duration::from_millis(3));
        histogram.observe(Duration::from_secs(60));
        let mut out = String::new();
        histogram.render(&mut out, "x", "a=\"b\"");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.0001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"0.005\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"5\"} 2\n"), "{out}");
        assert!(out.contains("x_bucket{a=\"b\",le=\"+Inf\"} 3\n"), "{out}");
        assert!(out.contains("x_count{a=\"b\"} 3\n"), "{out}");
    }
}
