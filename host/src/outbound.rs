//! The one way the host sends a request a plugin described: the allowed-host
//! check again, DNS resolution with every address checked against the
//! [`AddressPolicy`], a connection only to a checked address, no redirects, a
//! timeout and a cap on the response body. Transport failures become a
//! synthetic response with status 0 and the reason in the body, which is what
//! `interpret-health` expects.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::policy::addresses::{AddressPolicy, check_address};
use crate::policy::hosts::AllowedHosts;
use crate::provider::{HttpRequest, HttpResponse};

/// How outbound requests are bounded.
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Which addresses beyond public ones may be reached.
    pub addresses: AddressPolicy,
    /// The whole request, connect to last body byte.
    pub timeout: Duration,
    /// Response body bytes kept; the rest is dropped.
    pub max_body_bytes: usize,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            addresses: AddressPolicy::default(),
            timeout: Duration::from_secs(10),
            max_body_bytes: 2 << 20,
        }
    }
}

/// Sends plugin-described requests. Cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    config: OutboundConfig,
}

/// A DNS resolver that drops every address the policy refuses; a name with
/// no address left fails to resolve, so nothing connects to it.
struct CheckedResolver {
    policy: AddressPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusals = Vec::new();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| match check_address(address.ip(), policy) {
                    Ok(()) => true,
                    Err(refusal) => {
                        refusals.push(refusal.to_string());
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let reason = if refusals.is_empty() {
                    format!("{host} has no address")
                } else {
                    format!("{host} resolves only to refused addresses: {}", refusals.join("; "))
                };
                return Err(reason.into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl Outbound {
    /// A sender with its own connection pool.
    pub fn new(config: OutboundConfig) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .dns_resolver(Arc::new(CheckedResolver { policy: config.addresses }))
            .user_agent(concat!("platos-host/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Outbound { client, config })
    }

    /// The configuration in force.
    pub fn config(&self) -> &OutboundConfig {
        &self.config
    }

    /// Sends `request` if `allowed` and the address policy let it; any
    /// failure is a status-0 response whose body says why (never the URL's
    /// query or a header value, which may carry a secret).
    pub async fn send(&self, request: &HttpRequest, allowed: &AllowedHosts) -> HttpResponse {
        match self.try_send(request, allowed).await {
            Ok(response) => response,
            Err(reason) => {
                HttpResponse { status: 0, headers: Vec::new(), body: reason.into_bytes() }
            }
        }
    }

    async fn try_send(
        &self,
        request: &HttpRequest,
        allowed: &AllowedHosts,
    ) -> Result<HttpResponse, String> {
        allowed.check(&request.url, &request.headers).map_err(|refusal| refusal.to_string())?;
        let url = reqwest::Url::parse(&request.url).map_err(|_| "malformed URL".to_owned())?;
        // Literal addresses skip DNS, so check them here.
        if let Some(host) = url.host_str() {
            let literal = host.trim_start_matches('[').trim_end_matches(']');
            if let Ok(address) = literal.parse::<IpAddr>() {
                check_address(address, self.config.addresses)
                    .map_err(|refusal| refusal.to_string())?;
            }
        }
        let mut builder = self.client.request(request.method.into(), url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let mut response = builder.send().await.map_err(describe_error)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .take(100)
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(describe_error)? {
            let room = self.config.max_body_bytes - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if chunk.len() >= room {
                break;
            }
        }
        Ok(HttpResponse { status, headers, body })
    }
}

/// A transport error in words, without the URL (its query may hold a key).
fn describe_error(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "failed while reading the response"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() { kind.to_owned() } else { format!("{kind}: {detail}") }
}
