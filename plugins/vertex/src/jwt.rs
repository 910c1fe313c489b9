//! The service account's JWT assertion (RFC 7519, signed RS256 as RFC 7518
//! section 3.3 says: RSASSA-PKCS1-v1_5 over SHA-256 of
//! `base64url(header).base64url(claims)`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use platos_plugin_sdk::{ErrorCode, PluginError};
use rsa::PrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::Sha256;

/// How long the assertion is valid: Google accepts at most an hour.
pub const ASSERTION_LIFETIME: u64 = 3_600;

/// The signing key of a PEM private key as service account JSON files and
/// `.env` files hold it: PKCS#8 (`BEGIN PRIVATE KEY`, Google's form) or
/// PKCS#1 (`BEGIN RSA PRIVATE KEY`), with real line breaks or literal `\n`,
/// optionally in quotes. Errors never quote the value.
pub fn signing_key(pem: &str) -> Result<SigningKey<Sha256>, PluginError> {
    let pem = normalized_pem(pem);
    let key = PrivateKey::from_pkcs8_pem(&pem)
        .or_else(|_| PrivateKey::from_pkcs1_pem(&pem))
        .map_err(|_| {
            PluginError::new(
                ErrorCode::InvalidCredential,
                "GOOGLE_PRIVATE_KEY is not a PEM RSA private key: expected the private_key of the service account JSON, -----BEGIN PRIVATE KEY----- ... -----END PRIVATE KEY-----",
            )
        })?;
    Ok(SigningKey::<Sha256>::new(key))
}

/// `pem` with literal `\n` (and `\r\n`) turned into line breaks, the quotes
/// a `.env` or JSON value may keep removed, and no surrounding whitespace.
fn normalized_pem(pem: &str) -> String {
    let trimmed = pem.trim();
    let unquoted =
        trimmed.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')).unwrap_or(trimmed);
    let text = unquoted.replace("\\r\\n", "\n").replace("\\n", "\n").replace('\r', "");
    text.trim().to_owned()
}

/// The signed assertion: `{"alg":"RS256","typ":"JWT","kid":..}` and the
/// claims `iss`, `scope`, `aud`, `iat` (`now`) and `exp` (an hour later).
pub fn assertion(
    key: &SigningKey<Sha256>,
    key_id: Option<&str>,
    issuer: &str,
    scope: &str,
    audience: &str,
    now: u64,
) -> String {
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(key_id) = key_id {
        header["kid"] = key_id.into();
    }
    let claims = serde_json::json!({
        "iss": issuer,
        "scope": scope,
        "aud": audience,
        "iat": now,
        "exp": now.saturating_add(ASSERTION_LIFETIME),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(signing_input.as_bytes()).to_vec();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_values_are_normalized_as_env_files_hold_them() {
        let pem = "-----BEGIN PRIVATE KEY-----\nAB\n-----END PRIVATE KEY-----\n";
        let escaped = pem.replace('\n', "\\n");
        assert_eq!(normalized_pem(&escaped), pem.trim());
        assert_eq!(normalized_pem(&format!("\"{escaped}\"")), pem.trim());
        assert_eq!(normalized_pem(&pem.replace('\n', "\r\n")), pem.trim());
    }

    #[test]
    fn a_value_that_is_no_key_is_refused_without_being_quoted() {
        let error =
            signing_key("-----BEGIN PRIVATE KEY-----\nsk-canary\n-----END PRIVATE KEY-----")
                .err()
                .unwrap();
        assert_eq!(error.code, ErrorCode::InvalidCredential);
        assert!(!error.message.contains("sk-canary"), "{}", error.message);
    }
}
