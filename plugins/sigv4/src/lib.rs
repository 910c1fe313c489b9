//! AWS Signature Version 4 (`AWS4-HMAC-SHA256`) for Platos provider plugins.
//!
//! Pure functions: no I/O, no clock, no environment. The caller passes the
//! time as Unix seconds ([`amz_date`] formats it) and gets back the headers to
//! send. Nothing here panics on any input; malformed input is a [`SignError`]
//! whose message never contains a credential.
//!
//! - [`authorize`] is what a plugin calls: it adds `x-amz-date`, the session
//!   token (`x-amz-security-token`) when there is one, and `authorization`.
//! - [`sign`] is the signing step on its own, with every intermediate string
//!   exposed (canonical request, string to sign), as AWS's test suite checks it.
//!
//! The path is signed as it goes on the wire, the rule of every AWS service
//! but S3 (whose unnormalized paths are not supported): normalized, then
//! each byte URI-encoded once more ([`canonical_uri`]). A URL is signed
//! exactly as written, so the caller passes it in the form its HTTP client
//! sends (the Platos host hands plugins URLs already in that form).

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The algorithm name that starts the string to sign and the header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The hex SHA-256 of an empty payload.
pub const EMPTY_PAYLOAD_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Headers never signed: the signature itself, and headers HTTP clients and
/// proxies add or rewrite on their own.
const UNSIGNED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-length",
    "expect",
    "transfer-encoding",
    "user-agent",
    "x-amzn-trace-id",
];

/// The credentials a request is signed with. `Debug` shows none of them.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The access key id (`AKIA...`, `ASIA...`); it appears in the `authorization` header.
    pub access_key_id: &'a str,
    /// The secret access key; it never leaves this crate, only signatures derived from it do.
    pub secret_access_key: &'a str,
    /// The session token of temporary credentials, sent as `x-amz-security-token`.
    pub session_token: Option<&'a str>,
}

impl fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &"[redacted]")
            .field("secret_access_key", &"[redacted]")
            .field("session_token", &self.session_token.map(|_| "[redacted]"))
            .finish()
    }
}

/// The parts of an HTTP request a signature covers.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The absolute URL, e.g. `https://bedrock.us-east-1.amazonaws.com/foundation-models`.
    pub url: &'a str,
    /// Header names and values, in order.
    pub headers: &'a [(String, String)],
    /// The body; empty for none.
    pub body: &'a [u8],
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// What a signature is scoped to, besides the request.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The region, e.g. `us-east-1`.
    pub region: &'a str,
    /// The signing name of the service, e.g. `bedrock`.
    pub service: &'a str,
    /// The request time, `YYYYMMDDTHHMMSSZ` (see [`amz_date`]).
    pub amz_date: &'a str,
}

/// A signature and every string it was derived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The canonical request (method, URI, query, headers, signed headers, payload hash).
    pub canonical_request: String,
    /// The string to sign (algorithm, date, credential scope, hash of the canonical request).
    pub string_to_sign: String,
    /// The signed header names, lower case, `;`-separated.
    pub signed_headers: String,
    /// The hex signature.
    pub signature: String,
    /// The `authorization` header value.
    pub authorization: String,
}

/// Why a request cannot be signed. Messages never contain a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignError {
    /// The URL is not an absolute `http(s)://host/...` URL without user info.
    MalformedUrl,
    /// The date is not `YYYYMMDDTHHMMSSZ` (or the time is past year 9999).
    MalformedDate,
    /// The region or service is empty or not lower-case letters, digits and `-`.
    MalformedScope,
    /// The access key id is empty or has characters that cannot go in the header.
    MalformedAccessKeyId,
    /// The secret access key is empty.
    MissingSecretAccessKey,
    /// The session token has characters that cannot go in a header.
    MalformedSessionToken,
    /// A header name or value cannot go on the wire.
    MalformedHeader,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignError::MalformedUrl => "the URL is not an absolute http(s) URL without user info",
            SignError::MalformedDate => "the signing time is not a valid YYYYMMDDTHHMMSSZ date",
            SignError::MalformedScope => {
                "the region or service is not lower-case letters, digits and hyphens"
            }
            SignError::MalformedAccessKeyId => {
                "the access key id is empty or has characters that cannot go in a header"
            }
            SignError::MissingSecretAccessKey => "the secret access key is empty",
            SignError::MalformedSessionToken => {
                "the session token has characters that cannot go in a header"
            }
            SignError::MalformedHeader => "a header name or value cannot go on the wire",
        })
    }
}

impl std::error::Error for SignError {}

/// Signs a request for AWS and returns its headers with `x-amz-date`,
/// `x-amz-security-token` (when `credentials` carry a session token) and
/// `authorization` set; earlier values of those headers, and an
/// `x-amz-content-sha256` it does not compute, are removed. The
/// host is signed from the URL. `now` is Unix time in seconds. The path is
/// signed as [`canonical_uri`] says.
pub fn authorize(
    request: &Request<'_>,
    credentials: &Credentials<'_>,
    region: &str,
    service: &str,
    now: u64,
) -> Result<Vec<(String, String)>, SignError> {
    let date = amz_date(now);
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .filter(|(name, _)| {
            !["authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"]
                .iter()
                .any(|replaced| name.trim().eq_ignore_ascii_case(replaced))
        })
        .cloned()
        .collect();
    headers.push(("x-amz-date".to_owned(), date.clone()));
    if let Some(token) = credentials.session_token.filter(|token| !token.is_empty()) {
        if !is_header_value(token) {
            return Err(SignError::MalformedSessionToken);
        }
        headers.push(("x-amz-security-token".to_owned(), token.to_owned()));
    }
    let scope = Scope { region, service, amz_date: &date };
    let signed = Request { headers: &headers, ..*request };
    let signature = sign(&signed, credentials, &scope)?;
    headers.push(("authorization".to_owned(), signature.authorization));
    Ok(headers)
}

/// Signs a request as it is: `headers` are signed as given (except those
/// HTTP clients rewrite, such as `user-agent` and `content-length`), plus
/// `host` from the URL when no `host` header is given. Nothing is added to
/// the request: see [`authorize`] for that.
pub fn sign(
    request: &Request<'_>,
    credentials: &Credentials<'_>,
    scope: &Scope<'_>,
) -> Result<Signature, SignError> {
    if !is_date(scope.amz_date) {
        return Err(SignError::MalformedDate);
    }
    if !is_scope_label(scope.region) || !is_scope_label(scope.service) {
        return Err(SignError::MalformedScope);
    }
    let key_id = credentials.access_key_id;
    if key_id.is_empty() || !key_id.bytes().all(|b| b.is_ascii_graphic() && !b"/,=".contains(&b)) {
        return Err(SignError::MalformedAccessKeyId);
    }
    if credentials.secret_access_key.is_empty() {
        return Err(SignError::MissingSecretAccessKey);
    }
    let parts = split_url(request.url)?;

    let mut signed: Vec<(String, String)> = Vec::with_capacity(request.headers.len() + 1);
    for (name, value) in request.headers {
        let name = name.trim().to_ascii_lowercase();
        if !is_header_name(&name) || !is_header_value(value) {
            return Err(SignError::MalformedHeader);
        }
        if !UNSIGNED_HEADERS.contains(&name.as_str()) {
            signed.push((name, canonical_header_value(value)));
        }
    }
    if !signed.iter().any(|(name, _)| name == "host") {
        signed.push(("host".to_owned(), parts.host.clone()));
    }
    // A stable sort keeps the order of repeated headers' values.
    sort_pairs(&mut signed, |a, b| a.0 > b.0);
    let mut canonical_headers = String::new();
    let mut names: Vec<&str> = Vec::new();
    for (name, value) in &signed {
        if names.last() == Some(&name.as_str()) {
            canonical_headers.pop();
            canonical_headers.push(',');
        } else {
            names.push(name);
            canonical_headers.push_str(name);
            canonical_headers.push(':');
        }
        canonical_headers.push_str(value);
        canonical_headers.push('\n');
    }
    let signed_headers = names.join(";");

    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method.trim().to_ascii_uppercase(),
        canonical_uri(parts.path),
        canonical_query(parts.query),
        canonical_headers,
        signed_headers,
        sha256_hex(request.body)
    );
    let date = &scope.amz_date[..8];
    let credential_scope = format!("{date}/{}/{}/aws4_request", scope.region, scope.service);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{credential_scope}\n{}",
        scope.amz_date,
        sha256_hex(canonical_request.as_bytes())
    );
    let key = signing_key(credentials.secret_access_key, date, scope.region, scope.service);
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    let authorization = format!(
        "{ALGORITHM} Credential={key_id}/{credential_scope}, SignedHeaders={signed_headers}, Signature={signature}"
    );
    Ok(Signature { canonical_request, string_to_sign, signed_headers, signature, authorization })
}

/// The signing key: `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret_access_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut secret = Vec::with_capacity(4 + secret_access_key.len());
    secret.extend_from_slice(b"AWS4");
    secret.extend_from_slice(secret_access_key.as_bytes());
    let key = hmac_sha256(&secret, date.as_bytes());
    let key = hmac_sha256(&key, region.as_bytes());
    let key = hmac_sha256(&key, service.as_bytes());
    hmac_sha256(&key, b"aws4_request")
}

/// Unix seconds as the SigV4 timestamp `YYYYMMDDTHHMMSSZ` (UTC), computed
/// without any clock. Times past year 9999 give a longer string, which
/// [`sign`] refuses as [`SignError::MalformedDate`].
pub fn amz_date(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let seconds = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The canonical URI of a path as it goes on the wire, by the rule of every
/// AWS service but S3 (botocore: `quote(remove_dot_segments(path), safe='/~')`):
/// empty and `.` segments dropped, `..` applied, a trailing slash kept, then
/// every byte but `/` and the unreserved characters URI-encoded once more.
/// Nothing is decoded first: a raw `:` signs as `%3A`, a `%3A` on the wire
/// as `%253A`, a `%C3%A9` as `%25C3%25A9`, so the signature covers exactly
/// the bytes AWS receives.
pub fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::from("/");
    for (index, segment) in segments.iter().enumerate() {
        if index > 0 {
            out.push('/');
        }
        out.push_str(&uri_encode(segment.as_bytes()));
    }
    if !segments.is_empty() && path.ends_with('/') {
        out.push('/');
    }
    out
}

/// The canonical query string: every parameter decoded and re-encoded, then
/// sorted by name and value; a parameter without `=` gets an empty value.
pub fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (uri_encode(&percent_decode(name)), uri_encode(&percent_decode(value)))
        })
        .collect();
    sort_pairs(&mut pairs, |a, b| a > b);
    pairs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("&")
}

/// A stable insertion sort: `after(a, b)` says `a` goes after `b`. Lists
/// here are a handful of headers or query parameters, and one small
/// non-generic sort keeps the component small.
fn sort_pairs(
    pairs: &mut [(String, String)],
    after: fn(&(String, String), &(String, String)) -> bool,
) {
    for index in 1..pairs.len() {
        let mut slot = index;
        while slot > 0 && after(&pairs[slot - 1], &pairs[slot]) {
            pairs.swap(slot - 1, slot);
            slot -= 1;
        }
    }
}

/// A header value as signed: trimmed, inner runs of spaces and tabs made one space.
fn canonical_header_value(value: &str) -> String {
    value.split([' ', '\t']).filter(|word| !word.is_empty()).collect::<Vec<_>>().join(" ")
}

/// The parts of an absolute URL that a signature covers.
struct UrlParts<'a> {
    /// Lower-case host, with the port when it is not the scheme's default.
    host: String,
    path: &'a str,
    query: &'a str,
}

fn split_url(url: &str) -> Result<UrlParts<'_>, SignError> {
    let (scheme, rest) = url.split_once("://").ok_or(SignError::MalformedUrl)?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else if scheme.eq_ignore_ascii_case("http") {
        ":80"
    } else {
        return Err(SignError::MalformedUrl);
    };
    let rest = rest.split('#').next().unwrap_or_default();
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(authority_end);
    if authority.is_empty()
        || authority.contains('@')
        || !authority.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(SignError::MalformedUrl);
    }
    let host = authority.to_ascii_lowercase();
    let host = host.strip_suffix(default_port).map(str::to_owned).unwrap_or(host);
    let (path, query) = after.split_once('?').unwrap_or((after, ""));
    Ok(UrlParts { host, path, query })
}

/// Percent-decodes `%XY` escapes; anything else (a lone `%` too) stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escape = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|pair| Some((hex_value(pair[0])? << 4) | hex_value(pair[1])?));
        match escape {
            Some(byte) => {
                out.push(byte);
                index += 3;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// URI-encodes everything but RFC 3986 unreserved characters, with upper-case hex.
fn uri_encode(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len());
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0xf)] as char);
        }
    }
    out
}

/// The lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().into()
        }
        // HMAC takes keys of any length: this arm never runs.
        Err(_) => [0; 32],
    }
}

fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0xf)] as char);
    }
    out
}

fn is_date(date: &str) -> bool {
    let bytes = date.as_bytes();
    bytes.len() == 16
        && bytes[8] == b'T'
        && bytes[15] == b'Z'
        && bytes[..8].iter().chain(&bytes[9..15]).all(u8::is_ascii_digit)
}

fn is_scope_label(label: &str) -> bool {
    !label.is_empty()
        && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests;
