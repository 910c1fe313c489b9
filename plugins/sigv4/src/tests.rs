//! The signer's own cases: the older edition of AWS's test suite (the
//! 2015 aws-sig-v4-test-suite, credentials `AKIDEXAMPLE`, region
//! `us-east-1`, service `service`) where it differs from the current one in
//! `tests/aws-signing-test-suite`, wire paths (`:`, non-ASCII, spaces,
//! escapes) against signatures botocore computed, and malformed input.

use super::*;

const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const AMZ_DATE: &str = "20150830T123600Z";
/// 2015-08-30T12:36:00Z.
const NOW: u64 = 1_440_938_160;
const SUITE_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

fn credentials() -> Credentials<'static> {
    Credentials { access_key_id: ACCESS_KEY_ID, secret_access_key: SECRET, session_token: None }
}

/// Signs a suite request: `Host` and `X-Amz-Date` first, then `extra` headers.
fn suite(method: &str, path: &str, extra: &[(&str, &str)], body: &str) -> Signature {
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), "example.amazonaws.com".into()),
        ("X-Amz-Date".into(), AMZ_DATE.into()),
    ];
    headers.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
    let url = format!("https://example.amazonaws.com{path}");
    let request = Request { method, url: &url, headers: &headers, body: body.as_bytes() };
    let scope = Scope { region: "us-east-1", service: "service", amz_date: AMZ_DATE };
    sign(&request, &credentials(), &scope).expect("suite requests sign")
}

/// Checks a vector: the canonical request, the hash line of the string to
/// sign, and the whole authorization header.
fn check(signature: &Signature, canonical: &str, request_hash: &str, signed: &str, sig: &str) {
    assert_eq!(signature.canonical_request, canonical);
    assert_eq!(
        signature.string_to_sign,
        format!(
            "AWS4-HMAC-SHA256\n{AMZ_DATE}\n20150830/us-east-1/service/aws4_request\n{request_hash}"
        )
    );
    assert_eq!(signature.signed_headers, signed);
    assert_eq!(signature.signature, sig);
    assert_eq!(
        signature.authorization,
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={signed}, Signature={sig}"
        )
    );
}

const VANILLA_HEADERS: &str = "host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n";

#[test]
fn post_x_www_form_urlencoded() {
    let body_hash = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e";
    check(
        &suite(
            "POST",
            "/",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "Param1=value1",
        ),
        &format!(
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n{VANILLA_HEADERS}\ncontent-type;host;x-amz-date\n{body_hash}"
        ),
        "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
        "content-type;host;x-amz-date",
        "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    );
    check(
        &suite(
            "POST",
            "/",
            &[("Content-Type", "application/x-www-form-urlencoded; charset=utf8")],
            "Param1=value1",
        ),
        &format!(
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf8\n{VANILLA_HEADERS}\ncontent-type;host;x-amz-date\n{body_hash}"
        ),
        "2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
        "content-type;host;x-amz-date",
        "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
    );
}

#[test]
fn authorize_reproduces_post_sts_header_before() {
    let credentials = Credentials { session_token: Some(SUITE_TOKEN), ..credentials() };
    let stale = [("Authorization".to_owned(), "AWS4-HMAC-SHA256 stale".to_owned())];
    let request = Request {
        method: "POST",
        url: "https://example.amazonaws.com/",
        headers: &stale,
        body: b"",
    };
    let headers = authorize(&request, &credentials, "us-east-1", "service", NOW).unwrap();
    assert_eq!(
        headers,
        [
            ("x-amz-date".to_owned(), AMZ_DATE.to_owned()),
            ("x-amz-security-token".to_owned(), SUITE_TOKEN.to_owned()),
            (
                "authorization".to_owned(),
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead".to_owned()
            ),
        ]
    );
    // Without a token: get-vanilla's signature, and no token header.
    let request = Request { method: "GET", ..request };
    let headers = authorize(&request, &self::credentials(), "us-east-1", "service", NOW).unwrap();
    assert_eq!(headers.len(), 2);
    assert!(
        headers[1].1.ends_with("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31")
    );
}

#[test]
fn signing_is_deterministic_and_the_secret_never_appears() {
    let request = Request {
        method: "GET",
        url: "https://bedrock.us-east-1.amazonaws.com/foundation-models",
        headers: &[],
        body: b"",
    };
    let first = authorize(&request, &credentials(), "us-east-1", "bedrock", NOW).unwrap();
    let second = authorize(&request, &credentials(), "us-east-1", "bedrock", NOW).unwrap();
    assert_eq!(first, second);
    let text = format!("{first:?} {:?} {request:?}", credentials());
    assert!(!text.contains(SECRET) && !text.contains("MDENG"), "{text}");
    let later = authorize(&request, &credentials(), "us-east-1", "bedrock", NOW + 1).unwrap();
    assert_ne!(first, later);
}

#[test]
fn query_parameters_without_values_and_odd_escapes() {
    assert_eq!(canonical_query("b&a=1&&c=%zz"), "a=1&b=&c=%25zz");
    assert_eq!(canonical_query("a=x+y&a=x%20y"), "a=x%20y&a=x%2By");
}

#[test]
fn amz_dates_from_unix_seconds() {
    assert_eq!(amz_date(NOW), AMZ_DATE);
    assert_eq!(amz_date(0), "19700101T000000Z");
    assert_eq!(amz_date(951_782_400), "20000229T000000Z");
    assert_eq!(amz_date(1_709_251_199), "20240229T235959Z");
    assert_eq!(amz_date(253_402_300_799), "99991231T235959Z");
}

#[test]
fn malformed_input_is_an_error_not_a_panic() {
    let request = |url: &'static str| Request { method: "GET", url, headers: &[], body: b"" };
    for url in
        ["", "bedrock.amazonaws.com/x", "ftp://x/", "https://", "https://u:p@x/", "https:///x"]
    {
        assert_eq!(
            authorize(&request(url), &credentials(), "us-east-1", "bedrock", NOW),
            Err(SignError::MalformedUrl),
            "{url:?}"
        );
    }
    let good = request("https://bedrock.us-east-1.amazonaws.com/");
    assert_eq!(
        authorize(&good, &credentials(), "us-east-1", "bedrock", u64::MAX),
        Err(SignError::MalformedDate)
    );
    assert_eq!(
        authorize(&good, &credentials(), "US EAST", "bedrock", NOW),
        Err(SignError::MalformedScope)
    );
    let bad_key = Credentials { access_key_id: "AKID/x", ..credentials() };
    assert_eq!(
        authorize(&good, &bad_key, "us-east-1", "bedrock", NOW),
        Err(SignError::MalformedAccessKeyId)
    );
    let no_secret = Credentials { secret_access_key: "", ..credentials() };
    assert_eq!(
        authorize(&good, &no_secret, "us-east-1", "bedrock", NOW),
        Err(SignError::MissingSecretAccessKey)
    );
    let bad_token = Credentials { session_token: Some("a\r\nb"), ..credentials() };
    assert_eq!(
        authorize(&good, &bad_token, "us-east-1", "bedrock", NOW),
        Err(SignError::MalformedSessionToken)
    );
    let bad_header = [("x-bad".to_owned(), "a\nb".to_owned())];
    let request = Request { headers: &bad_header, ..good };
    assert_eq!(
        authorize(&request, &credentials(), "us-east-1", "bedrock", NOW),
        Err(SignError::MalformedHeader)
    );
    // Errors never carry a credential.
    assert!(!SignError::MalformedAccessKeyId.to_string().contains("AKID"));
}

#[test]
fn the_host_header_comes_from_the_url_with_non_default_ports_only() {
    let request = |url: &'static str| Request { method: "GET", url, headers: &[], body: b"" };
    let scope = Scope { region: "us-east-1", service: "service", amz_date: AMZ_DATE };
    let default =
        sign(&request("https://Example.amazonaws.com:443/"), &credentials(), &scope).unwrap();
    assert!(default.canonical_request.contains("\nhost:example.amazonaws.com\n"));
    let custom = sign(&request("http://127.0.0.1:8080/"), &credentials(), &scope).unwrap();
    assert!(custom.canonical_request.contains("\nhost:127.0.0.1:8080\n"));
}

/// 2023-11-14T22:13:20Z, the time of the botocore references below.
const BOTOCORE_NOW: u64 = 1_700_000_000;

/// Signs a Bedrock request as `authorize` does and returns the
/// authorization header and the canonical request's URI line.
fn bedrock(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> (String, String) {
    let headers: Vec<(String, String)> =
        headers.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
    let request = Request { method, url, headers: &headers, body };
    let token = Some("IQoJb3JpZ2luX2VjEXAMPLE").filter(|_| method == "GET");
    let keys = Credentials { session_token: token, ..credentials() };
    let signed = authorize(&request, &keys, "us-east-1", "bedrock", BOTOCORE_NOW).unwrap();
    let date = amz_date(BOTOCORE_NOW);
    let scope = Scope { region: "us-east-1", service: "bedrock", amz_date: &date };
    let without = &signed[..signed.len() - 1];
    let canonical = sign(&Request { headers: without, ..request }, &keys, &scope).unwrap();
    let uri = canonical.canonical_request.lines().nth(1).unwrap().to_owned();
    (signed.last().unwrap().1.clone(), uri)
}

/// Independent references: the signatures botocore 1.44.8 computed
/// (`SigV4Auth(Credentials("AKIDEXAMPLE", <suite secret>[, token]),
/// "bedrock", "us-east-1").add_auth(AWSRequest(...))` at 2023-11-14T22:13:20Z)
/// for the same requests. A model id's `:` raw on the wire signs as `%3A`;
/// the `%3A` botocore's own serializer sends signs as `%253A`.
#[test]
fn wire_paths_sign_as_botocore_signs_them() {
    let body = br#"{"inputText":"ping"}"#;
    let json = [("Content-Type", "application/json")];
    let expected = |signature: &str, signed_headers: &str| {
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/bedrock/aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
        )
    };
    let raw = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1:0/invoke";
    assert_eq!(
        bedrock("POST", raw, &json, body),
        (
            expected(
                "06c2bf0cbeecfb5c92bc21a72a665f6e85dc6b73c8f4040c5e2f25f898ced25e",
                "content-type;host;x-amz-date"
            ),
            "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke".to_owned()
        )
    );
    let escaped = raw.replace("v1:0", "v1%3A0");
    assert_eq!(
        bedrock("POST", &escaped, &json, body),
        (
            expected(
                "cc36209784af5a67930dd79eb10ebc04944cbc1c973055962bd7c6c93f0d4820",
                "content-type;host;x-amz-date"
            ),
            "/model/anthropic.claude-3-haiku-20240307-v1%253A0/invoke".to_owned()
        )
    );
    // What boto3's invoke_model sends: the escaped path, accept and content type.
    let accept = [("Content-Type", "application/json"), ("Accept", "application/json")];
    assert_eq!(
        bedrock("POST", &escaped, &accept, body).0,
        expected(
            "7ebfc6642cd91d3c9e4e3ccabe4df38b85ea35e3fcf6db27373c326bc3619f2b",
            "accept;content-type;host;x-amz-date"
        )
    );
    // Non-ASCII and a space, escaped on the wire, with a session token.
    let utf8 = "https://bedrock-runtime.us-east-1.amazonaws.com/model/caf%C3%A9%20x/invoke";
    assert_eq!(
        bedrock("GET", utf8, &[], b""),
        (
            expected(
                "ec710e2c2224fbbaad08aa70d43e9040dd0f6a68f8f8e68d2aaf281a5a25edcb",
                "host;x-amz-date;x-amz-security-token"
            ),
            "/model/caf%25C3%25A9%2520x/invoke".to_owned()
        )
    );
    let listing = "https://bedrock.us-east-1.amazonaws.com/foundation-models?byProvider=anthropic";
    assert_eq!(
        bedrock("GET", listing, &[], b"").0,
        expected(
            "c3aacfc50594d2e7b5427a03be740ac25401ce5427cace2d6efb058c54b51708",
            "host;x-amz-date;x-amz-security-token"
        )
    );
}

#[test]
fn the_canonical_uri_encodes_each_wire_byte_once_more() {
    for (wire, canonical) in [
        (
            "/model/amazon.titan-embed-text-v2:0/invoke",
            "/model/amazon.titan-embed-text-v2%3A0/invoke",
        ),
        (
            "/model/amazon.titan-embed-text-v2%3A0/invoke",
            "/model/amazon.titan-embed-text-v2%253A0/invoke",
        ),
        (
            "/model/amazon.titan-embed-text-v2%3a0/invoke",
            "/model/amazon.titan-embed-text-v2%253a0/invoke",
        ),
        ("/documents%20and%20settings/", "/documents%2520and%2520settings/"),
        ("/documents and settings/", "/documents%20and%20settings/"),
        ("/caf\u{e9}", "/caf%C3%A9"),
        ("/caf%C3%A9", "/caf%25C3%25A9"),
        ("/a%2Fb", "/a%252Fb"),
        ("/100%", "/100%25"),
        ("/a+b=c,d;e@f!", "/a%2Bb%3Dc%2Cd%3Be%40f%21"),
        ("/-._~", "/-._~"),
        // botocore normalizes literal dot segments and repeated slashes only.
        ("/a/./b/../c//d/", "/a/c/d/"),
        ("/a/%2E%2E/b", "/a/%252E%252E/b"),
        ("/..", "/"),
        ("", "/"),
        ("/", "/"),
    ] {
        assert_eq!(canonical_uri(wire), canonical, "{wire:?}");
    }
}
