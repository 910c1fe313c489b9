//! AWS's published SigV4 test suite (`tests/aws-signing-test-suite`, see its
//! `SOURCE.md`): every vector that applies to a non-S3 service, signed
//! through the public API and compared byte for byte with the expected
//! canonical request, string to sign and signature.

use std::fs;
use std::path::{Path, PathBuf};

use platos_sigv4::{Credentials, Request, Scope, amz_date, authorize, sign};

/// The number of vectors kept (see `SOURCE.md`): a missing directory fails.
const VECTORS: usize = 29;

/// A parsed `request.txt`: request line, headers (folded lines unfolded
/// with one space, as RFC 9112 says a recipient may), blank line, body.
struct SuiteRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_request(text: &str) -> SuiteRequest {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let request_line = lines.next().expect("a request line");
    let (method, rest) = request_line.split_once(' ').expect("method and target");
    let path = rest.strip_suffix(" HTTP/1.1").expect("an HTTP/1.1 request line");
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let (_, value) = headers.last_mut().expect("a folded line follows a header");
            value.push(' ');
            value.push_str(line.trim());
        } else {
            let (name, value) = line.split_once(':').expect("a header line");
            headers.push((name.to_owned(), value.to_owned()));
        }
    }
    SuiteRequest {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws-signing-test-suite/v4")
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
}

/// Unix seconds of a suite timestamp `YYYY-MM-DDTHH:MM:SSZ`: every vector
/// is signed at 2015-08-30T12:36:00Z, checked against [`amz_date`].
fn unix_seconds(timestamp: &str) -> u64 {
    const SUITE_TIME: u64 = 1_440_938_160;
    let digits: String = timestamp.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    assert_eq!(amz_date(SUITE_TIME), digits, "a timestamp other than the suite's");
    SUITE_TIME
}

#[test]
fn every_applicable_vector_of_the_aws_suite_signs_byte_for_byte() {
    let mut names: Vec<String> = fs::read_dir(suite_dir())
        .expect("the suite is present")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), VECTORS, "{names:?}");
    for name in &names {
        let dir = suite_dir().join(name);
        let context: serde_json::Value = serde_json::from_str(&read(&dir, "context.json")).unwrap();
        assert_eq!(context["normalize"], true, "{name}: only normalized vectors apply");
        assert_eq!(context["sign_body"], false, "{name}");
        let request = parse_request(&read(&dir, "request.txt"));
        let keys = &context["credentials"];
        let omit_token = context["omit_session_token"] == true;
        let credentials = Credentials {
            access_key_id: keys["access_key_id"].as_str().unwrap(),
            secret_access_key: keys["secret_access_key"].as_str().unwrap(),
            session_token: keys["token"].as_str().filter(|_| !omit_token),
        };
        let region = context["region"].as_str().unwrap();
        let service = context["service"].as_str().unwrap();
        let now = unix_seconds(context["timestamp"].as_str().unwrap());
        let url = format!("https://example.amazonaws.com{}", request.path);
        let to_sign = Request {
            method: &request.method,
            url: &url,
            headers: &request.headers,
            body: &request.body,
        };

        // `authorize` adds x-amz-date (and the token), then signs.
        let signed = authorize(&to_sign, &credentials, region, service, now)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let expected_signature = read(&dir, "header-signature.txt");
        let authorization = &signed.last().unwrap().1;
        assert!(
            authorization.ends_with(&format!("Signature={}", expected_signature.trim())),
            "{name}: {authorization}"
        );

        // The same headers through `sign`: every intermediate string.
        let date = amz_date(now);
        let scope = Scope { region, service, amz_date: &date };
        let without_authorization = &signed[..signed.len() - 1];
        let signature =
            sign(&Request { headers: without_authorization, ..to_sign }, &credentials, &scope)
                .unwrap();
        assert_eq!(
            signature.canonical_request,
            read(&dir, "header-canonical-request.txt"),
            "{name}"
        );
        assert_eq!(signature.string_to_sign, read(&dir, "header-string-to-sign.txt"), "{name}");
        assert_eq!(&signature.authorization, authorization, "{name}");
    }
}

#[test]
fn the_request_parser_unfolds_and_splits() {
    let parsed = parse_request("GET /a?b HTTP/1.1\nHost:x\nMy:one\n  two\n\nbody");
    assert_eq!((parsed.method.as_str(), parsed.path.as_str()), ("GET", "/a?b"));
    assert_eq!(
        parsed.headers,
        [("Host".to_owned(), "x".to_owned()), ("My".to_owned(), "one two".to_owned())]
    );
    assert_eq!(parsed.body, b"body");
}
