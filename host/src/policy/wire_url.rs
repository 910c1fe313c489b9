//! A request URL in the form it goes on the wire. The host sends with
//! `reqwest`, which parses with the `url` crate (WHATWG URL): it
//! percent-encodes spaces, quotes and non-ASCII bytes in the path and query,
//! resolves `.` and `..` segments (`%2e` too), turns `\` into `/`, lower-cases
//! the host and drops a default port. A plugin that signs the URL (SigV4
//! covers the path byte for byte) must see that form, or it signs one string
//! while another is sent: the runtime hands `authorize` the URL as sent, and
//! an agent that gets the signed request back sends that same string.

use url::Url;

/// `url` as the host's HTTP client would send it; unchanged when it does not
/// parse as an absolute URL (the outbound check refuses it then). Applying
/// it twice changes nothing.
pub fn as_sent(url: &str) -> String {
    match Url::parse(url) {
        Ok(parsed) => parsed.into(),
        Err(_) => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_take_the_form_the_client_sends() {
        for (written, sent) in [
            // A Bedrock model id's colon stays raw; an escaped one stays escaped.
            (
                "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-pro-v1:0/converse",
                "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-pro-v1:0/converse",
            ),
            (
                "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-pro-v1%3A0/converse",
                "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-pro-v1%3A0/converse",
            ),
            ("https://h.example/caf\u{e9} x/", "https://h.example/caf%C3%A9%20x/"),
            ("https://h.example/a/./b/../c", "https://h.example/a/c"),
            ("https://h.example/a/%2e%2E/c", "https://h.example/c"),
            ("https://h.example/a\\b", "https://h.example/a/b"),
            ("HTTPS://H.Example:443", "https://h.example/"),
            (
                "http://127.0.0.1:8080/v1?q=a b&r=\u{e9}",
                "http://127.0.0.1:8080/v1?q=a%20b&r=%C3%A9",
            ),
            ("https://h.example/p?x=1#frag ment", "https://h.example/p?x=1#frag%20ment"),
        ] {
            let once = as_sent(written);
            assert_eq!(once, sent, "{written:?}");
            assert_eq!(as_sent(&once), once, "idempotent for {written:?}");
        }
        for malformed in ["", "not a url", "https://", "http://a b/", "/relative"] {
            assert_eq!(as_sent(malformed), malformed);
        }
    }
}
