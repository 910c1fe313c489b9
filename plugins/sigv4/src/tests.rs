//! AWS's published Signature Version 4 test suite (aws-sig-v4-test-suite,
//! credentials `AKIDEXAMPLE`, region `us-east-1`, service `service`, time
//! 20150830T123600Z): canonical request, string to sign and authorization
//! header must match byte for byte.

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
    suite_with(method, path, extra, body, PathEncoding::Single)
}

fn suite_with(
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &str,
    path_encoding: PathEncoding,
) -> Signature {
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), "example.amazonaws.com".into()),
        ("X-Amz-Date".into(), AMZ_DATE.into()),
    ];
    headers.extend(extra.iter().map(|(name, value)| (name.to_string(), value.to_string())));
    let url = format!("https://example.amazonaws.com{path}");
    let request = Request { method, url: &url, headers: &headers, body: body.as_bytes() };
    let scope =
        Scope { region: "us-east-1", service: "service", amz_date: AMZ_DATE, path_encoding };
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
fn get_vanilla() {
    check(
        &suite("GET", "/", &[], ""),
        &format!("GET\n/\n\n{VANILLA_HEADERS}\nhost;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"),
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
        "host;x-amz-date",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    );
}

#[test]
fn get_vanilla_query_order_key_case() {
    check(
        &suite("GET", "/?Param2=value2&Param1=value1", &[], ""),
        &format!(
            "GET\n/\nParam1=value1&Param2=value2\n{VANILLA_HEADERS}\nhost;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"
        ),
        "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
        "host;x-amz-date",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    );
}

#[test]
fn get_vanilla_query_order_key_and_value() {
    check(
        &suite("GET", "/?Param1=value2&Param1=Value1", &[], ""),
        &format!(
            "GET\n/\nParam1=Value1&Param1=value2\n{VANILLA_HEADERS}\nhost;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"
        ),
        "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
        "host;x-amz-date",
        "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
    );
    check(
        &suite("GET", "/?Param1=value2&Param1=value1", &[], ""),
        &format!(
            "GET\n/\nParam1=value1&Param1=value2\n{VANILLA_HEADERS}\nhost;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"
        ),
        "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
        "host;x-amz-date",
        "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
    );
}

#[test]
fn get_vanilla_utf8_query() {
    check(
        &suite("GET", "/?\u{1234}=bar", &[], ""),
        &format!(
            "GET\n/\n%E1%88%B4=bar\n{VANILLA_HEADERS}\nhost;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"
        ),
        "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
        "host;x-amz-date",
        "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    );
}

#[test]
fn get_header_value_trim() {
    check(
        &suite("GET", "/", &[("My-Header1", " value1"), ("My-Header2", " \"a   b   c\"")], ""),
        &format!(
            "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"
        ),
        "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
        "host;my-header1;my-header2;x-amz-date",
        "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    );
}

#[test]
fn get_header_key_duplicate_keeps_value_order() {
    let repeated = [("My-Header1", "value2"), ("My-Header1", "value2"), ("My-Header1", "value1")];
    check(
        &suite("GET", "/", &repeated, ""),
        &format!(
            "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"
        ),
        "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
        "host;my-header1;x-amz-date",
        "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    );
}

#[test]
fn get_unreserved_and_utf8_paths() {
    let unreserved = "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    check(
        &suite("GET", unreserved, &[], ""),
        &format!("GET\n{unreserved}\n\n{VANILLA_HEADERS}\nhost;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"),
        "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
        "host;x-amz-date",
        "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    );
    check(
        &suite("GET", "/\u{1234}", &[], ""),
        &format!("GET\n/%E1%88%B4\n\n{VANILLA_HEADERS}\nhost;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"),
        "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
        "host;x-amz-date",
        "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    );
}

#[test]
fn normalize_path_vectors() {
    for relative in ["/example/..", "/example1/example2/../..", "//", "/./"] {
        let signature = suite("GET", relative, &[], "");
        assert_eq!(
            signature.signature, "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
            "{relative}"
        );
    }
    check(
        &suite("GET", "//example//", &[], ""),
        &format!("GET\n/example/\n\n{VANILLA_HEADERS}\nhost;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"),
        "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
        "host;x-amz-date",
        "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
    );
    check(
        &suite("GET", "/example space/", &[], ""),
        &format!(
            "GET\n/example%20space/\n\n{VANILLA_HEADERS}\nhost;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"
        ),
        "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
        "host;x-amz-date",
        "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
    );
}

#[test]
fn post_vanilla_and_header_cases() {
    check(
        &suite("POST", "/", &[], ""),
        &format!("POST\n/\n\n{VANILLA_HEADERS}\nhost;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"),
        "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
        "host;x-amz-date",
        "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    );
    check(
        &suite("POST", "/", &[("My-Header1", "VALUE1")], ""),
        &format!(
            "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\nx-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"
        ),
        "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
        "host;my-header1;x-amz-date",
        "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
    );
    check(
        &suite("POST", "/?Param1=value1", &[], ""),
        &format!(
            "POST\n/\nParam1=value1\n{VANILLA_HEADERS}\nhost;x-amz-date\n{EMPTY_PAYLOAD_SHA256}"
        ),
        "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
        "host;x-amz-date",
        "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    );
}

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
fn double_encoding_follows_the_aws_documentation() {
    assert_eq!(
        canonical_uri("/documents and settings/", PathEncoding::Double),
        "/documents%2520and%2520settings/"
    );
    // A Bedrock model id with a colon, raw or already escaped, signs the same.
    for path in [
        "/model/amazon.titan-embed-text-v2:0/invoke",
        "/model/amazon.titan-embed-text-v2%3A0/invoke",
    ] {
        assert_eq!(
            canonical_uri(path, PathEncoding::Double),
            "/model/amazon.titan-embed-text-v2%253A0/invoke"
        );
    }
    assert_eq!(canonical_uri("", PathEncoding::Double), "/");
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
    let scope = Scope {
        region: "us-east-1",
        service: "service",
        amz_date: AMZ_DATE,
        path_encoding: PathEncoding::Double,
    };
    let default =
        sign(&request("https://Example.amazonaws.com:443/"), &credentials(), &scope).unwrap();
    assert!(default.canonical_request.contains("\nhost:example.amazonaws.com\n"));
    let custom = sign(&request("http://127.0.0.1:8080/"), &credentials(), &scope).unwrap();
    assert!(custom.canonical_request.contains("\nhost:127.0.0.1:8080\n"));
}
