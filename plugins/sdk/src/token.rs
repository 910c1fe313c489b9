//! Token exchange: the reserved credential name and the OAuth 2.0 answer.

use crate::{
    AccessToken, HttpResponse, StatusClass, TokenFailure, classify_status, redacted_snippet,
};

/// The credential under which `authorize` gets the access token the host
/// obtained through `token_request` and `read_token` (and caches per key).
pub const ACCESS_TOKEN_VAR: &str = "PLATOS_ACCESS_TOKEN";

/// The lifetime assumed when a token answer has no `expires_in`: short, so
/// the host refreshes soon rather than sending an expired token.
const DEFAULT_LIFETIME_SECONDS: u64 = 300;

/// Reads an OAuth 2.0 token endpoint's answer (RFC 6749, sections 5.1 and
/// 5.2): a 2xx `{"access_token": .., "expires_in": ..}` is the token, expiring
/// `expires_in` seconds after `now` (5 minutes when absent); `invalid_client`,
/// `invalid_grant` and `unauthorized_client` errors, 401 and 403 are an
/// invalid credential; 402 and 429 quota; status 0 unreachable; anything else
/// degraded. Messages never quote the token.
pub fn read_oauth_token(response: &HttpResponse, now: u64) -> Result<AccessToken, TokenFailure> {
    let status = response.status;
    let value: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    let error = value["error"].as_str().filter(|code| is_identifier(code));
    let label = error.map(|code| format!(" ({code})")).unwrap_or_default();
    match classify_status(status) {
        StatusClass::Success => {
            let token = value["access_token"].as_str().filter(|token| !token.is_empty());
            let Some(token) = token else {
                return Err(TokenFailure::Degraded(format!(
                    "HTTP {status} but the answer has no access_token"
                )));
            };
            let lifetime = match &value["expires_in"] {
                serde_json::Value::Number(number) => number.as_u64(),
                serde_json::Value::String(text) => text.parse().ok(),
                _ => None,
            };
            Ok(AccessToken {
                value: token.to_owned(),
                expires_at: now.saturating_add(lifetime.unwrap_or(DEFAULT_LIFETIME_SECONDS)),
            })
        }
        _ if matches!(error, Some("invalid_client" | "invalid_grant" | "unauthorized_client")) => {
            Err(TokenFailure::InvalidCredential(format!(
                "HTTP {status}{label}: the token endpoint refused the credential"
            )))
        }
        StatusClass::InvalidCredential => Err(TokenFailure::InvalidCredential(format!(
            "HTTP {status}{label}: the token endpoint refused the credential"
        ))),
        StatusClass::QuotaLimited => Err(TokenFailure::QuotaLimited(format!(
            "HTTP {status}{label}: out of quota or rate limited"
        ))),
        StatusClass::Unreachable => Err(TokenFailure::Unreachable(format!(
            "unreachable: {}",
            redacted_snippet(&response.body)
        ))),
        StatusClass::Degraded => Err(TokenFailure::Degraded(format!(
            "HTTP {status}{label}: {}",
            redacted_snippet(&response.body)
        ))),
    }
}

/// Whether an OAuth error code is a plain identifier (free text never
/// reaches a message).
fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> HttpResponse {
        HttpResponse { status, headers: Vec::new(), body: body.as_bytes().to_vec() }
    }

    #[test]
    fn an_oauth_answer_becomes_a_token_or_a_failure() {
        let token =
            read_oauth_token(&answer(200, r#"{"access_token":"t-1","expires_in":"60"}"#), 100)
                .unwrap();
        assert_eq!((token.value.as_str(), token.expires_at), ("t-1", 160));
        let defaulted = read_oauth_token(&answer(200, r#"{"access_token":"t-1"}"#), 100).unwrap();
        assert_eq!(defaulted.expires_at, 400);
        let saturated =
            read_oauth_token(&answer(200, r#"{"access_token":"t","expires_in":5}"#), u64::MAX)
                .unwrap();
        assert_eq!(saturated.expires_at, u64::MAX);
        let failure =
            read_oauth_token(&answer(400, r#"{"error":"invalid_grant"}"#), 0).unwrap_err();
        assert!(
            matches!(&failure, TokenFailure::InvalidCredential(message) if message == "HTTP 400 (invalid_grant): the token endpoint refused the credential"),
            "{failure:?}"
        );
        // Free text in `error` is no label, and a key-like run is masked.
        let free_text = read_oauth_token(
            &answer(400, r#"{"error":"key sk-live-1234567890abcdefgh is bad"}"#),
            0,
        );
        let failure = free_text.unwrap_err();
        assert!(
            matches!(&failure, TokenFailure::Degraded(message) if message == r#"HTTP 400: {"error":"key [redacted] is bad"}"#),
            "{failure:?}"
        );
    }
}
