//! `POST .../leases/{lease}/forward`: the host authorizes the agent's
//! request with the lease, sends it, and streams the answer back redacted;
//! the authorized request never leaves the host.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;

use super::error::{ApiError, budget_exceeded};
use super::extract::params::LeaseParam;
use super::extract::{JsonBody, Scoped};
use super::resolve::AuthorizeBody;
use super::resolve::live_lease;
use super::{ApiState, audit};
use crate::forward::{
    ForwardMeter, ForwardOutcome, MeterGuard, Relay, UsageReader, is_chat_completions,
    safe_headers, with_stream_usage,
};
use crate::metering::{self, ReserveError};
use crate::outbound::SendError;
use crate::store::AuditAction;

/// `POST .../leases/{lease}/forward`: authorize as `.../authorize` does,
/// then send and relay the answer as it arrives.
#[utoipa::path(
    post,
    path = scoped!("/leases/{lease}/forward"),
    tag = "resolution",
    operation_id = "forwardByLease",
    summary = "Send a request with a lease and stream the answer",
    description = "The request is authorized exactly as by `authorizeByLease` (the lease must be live, the destination one of the provider's allowed hosts, secrets only where the declared auth shape puts them), then the host sends it itself and answers with the provider's status, headers and body as they arrive: server-sent events and chunked bodies are relayed chunk by chunk, never buffered whole. The authorized request (the key) is never returned; every leased secret value the provider echoes, in the body or a header, is replaced by `[redacted]`. Hop-by-hop headers, `content-length` and `set-cookie` are not relayed; the request is sent with `accept-encoding: identity` in place of the caller's (the answer must be readable to be redacted). For a chat completions stream (`\"stream\": true` to a path ending in `/chat/completions`) that does not ask for usage, the host asks (`stream_options.include_usage`) and takes the extra usage event back out. After the answer, the provider's plugin reads its token usage, which the host meters. No answer from the provider at all is 502 `upstream_unreachable`; an answer that breaks off ends the body early.",
    params(LeaseParam),
    request_body(content = AuthorizeBody, description = "The request to send.", example = json!({
        "request": { "method": "POST", "url": "https://api.openai.com/v1/chat/completions",
            "headers": [["content-type", "application/json"]],
            "body": "{\"model\":\"gpt-5\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}" }
    })),
    responses((status = 200, description = "The provider's answer as it arrives, with the provider's own status (any, not only 200) and safe headers.", content(
        (Object = "application/json", example = json!({ "id": "chatcmpl-1", "object": "chat.completion",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "Hello" } }],
            "usage": { "prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10 } })),
        (String = "text/event-stream", example = json!("data: {\"choices\":[{\"delta\":{\"content\":\"Hello\"}}]}\n\ndata: [DONE]\n\n")),
    ))),
)]
pub async fn forward(
    scoped: Scoped,
    State(state): State<ApiState>,
    JsonBody(body): JsonBody<AuthorizeBody>,
) -> Result<Response, ApiError> {
    let resolver = state.resolver();
    let draft = audit::draft(AuditAction::Forward, &scoped.caller).scope(&scoped.scope);
    let lease = state.refuse_on(&draft, live_lease(&state, &scoped).await).await?;
    let draft = audit::lease_fields(&state, draft, &lease);
    let agent_request = state.refuse_on(&draft, body.into_request()).await?;
    let draft = audit::request_fields(draft, &agent_request);
    let mut request = agent_request.clone();
    // The answer is redacted as it passes: it must come uncompressed.
    request.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("accept-encoding"));
    request.headers.push(("accept-encoding".to_owned(), "identity".to_owned()));
    let mut strip_usage_event = false;
    if is_chat_completions(&request.url)
        && let Some(asked) = request.body.as_deref().and_then(with_stream_usage)
    {
        request.body = Some(asked);
        strip_usage_event = true;
    }

    let outbound = state.health().outbound();
    let started = Instant::now();
    let result = resolver.authorize_for_sending(&lease, &request, outbound).await;
    let provider = lease.provider.as_str();
    let plugin_id = resolver.registry().get(provider).map_or(provider, |plugin| plugin.id());
    state.metrics().record_plugin_call(plugin_id, "authorize", started.elapsed());
    let sendable = state.refuse_on(&draft, result.map_err(ApiError::from)).await?;

    // Before anything is sent: the most it can cost, reserved against the
    // key's and the scope's budgets (refused here, nothing sent, if it does
    // not fit).
    let models = resolver
        .registry()
        .get(provider)
        .map(|plugin| plugin.manifest().default_models.clone())
        .unwrap_or_default();
    let body_bytes = agent_request.body.as_deref().unwrap_or_default();
    let reserved = metering::reserve(
        resolver.store(),
        state.metrics().spend(),
        &state.options().spend,
        &lease,
        &models,
        body_bytes,
    )
    .await
    .map_err(|error| match error {
        ReserveError::Exceeded(exceeded) => budget_exceeded(&exceeded),
        ReserveError::Store(error) => error.into(),
    });
    let reserved = state.refuse_on(&draft, reserved).await?;
    // Nothing is sent before its record is written.
    if let Err(error) = state.audit().allow(&draft).await {
        reserved.settle_in_background(ForwardOutcome::Unreachable {
            reason: "not sent: its audit record could not be written".to_owned(),
        });
        return Err(audit::audit_unavailable(&error));
    }
    let meter: Arc<dyn ForwardMeter> = state.metrics().forwards();
    let guard = MeterGuard::start(meter, lease, Some(reserved));
    let limits = state.options().forward;
    let upstream = match outbound.send_streaming(&sendable.request, &sendable.allowed, limits).await
    {
        Ok(upstream) => upstream,
        Err(error) => {
            let reason = sendable.redactor.redact(&error.to_string());
            guard.finish(ForwardOutcome::Unreachable { reason: reason.clone() }).await;
            return Err(match error {
                SendError::Refused(_) => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "refused_request",
                    format!("the host refuses to send the request: {reason}"),
                ),
                SendError::Transport(_) => ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unreachable",
                    format!("the provider could not be reached: {reason}"),
                ),
            });
        }
    };

    // A body the host cannot read cannot be searched for an echoed secret:
    // an answer compressed although identity was asked for is not relayed.
    if let Some(encoding) = foreign_encoding(&upstream.headers) {
        let reason = format!(
            "the provider answered with content-encoding {encoding} although the host asked for identity; the host relays only answers it can check for echoed secrets"
        );
        guard
            .finish(ForwardOutcome::Interrupted { status: upstream.status, reason: reason.clone() })
            .await;
        return Err(ApiError::new(StatusCode::BAD_GATEWAY, "upstream_encoded", reason));
    }
    let headers = safe_headers(&upstream.headers, &sendable.redactor);
    let usage = UsageReader { plugin: sendable.plugin, request: agent_request };
    let status = upstream.status;
    let relay = Relay::new(
        upstream.body,
        status,
        headers.clone(),
        sendable.redactor,
        strip_usage_event,
        usage,
        guard,
    );
    let mut response = Response::new(Body::from_stream(relay.into_stream()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value))
        {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

/// The `content-encoding` of an answer, if it is anything but identity
/// (bounded, for quoting).
fn foreign_encoding(headers: &[(String, String)]) -> Option<String> {
    headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("content-encoding"))
        .map(|(_, value)| value.trim())
        .find(|value| !value.is_empty() && !value.eq_ignore_ascii_case("identity"))
        .map(|value| value.chars().take(32).collect())
}

#[cfg(test)]
mod tests {
    use super::foreign_encoding;

    #[test]
    fn only_an_identity_or_absent_encoding_is_relayed() {
        let with = |value: &str| vec![("Content-Encoding".to_owned(), value.to_owned())];
        assert_eq!(foreign_encoding(&[]), None);
        assert_eq!(foreign_encoding(&with("identity")), None);
        assert_eq!(foreign_encoding(&with(" IDENTITY ")), None);
        assert_eq!(foreign_encoding(&with("gzip")), Some("gzip".to_owned()));
        assert_eq!(foreign_encoding(&with("br")), Some("br".to_owned()));
    }
}
