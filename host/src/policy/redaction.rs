//! Redaction: the one rule that turns text a plugin produced (or text that
//! quotes it) into text that holds none of the call's secrets.
//!
//! A [`Redactor`] is built from the secret values of one call. It finds each
//! value, case-insensitively (a URL's host is lower-cased, hex comes in both
//! cases), in its plain form and its obvious encodings: percent-encoded (the
//! URL-component, form and encode-everything forms), percent-decoded text
//! (`%73k-...` with any bytes encoded), base64 and url-safe base64 at every
//! alignment (so the value is found inside a larger encoded blob such as
//! `Basic base64(user:<key>)`, padded or not), hex, and JSON string escapes.
//! The `Bearer <key>` form is the plain value inside a longer text.
//!
//! What it cannot find: a value split into pieces (`sk-ab.cd-12` across host
//! labels), or transformed beyond these encodings (reversed, encrypted).
//! Values shorter than [`MIN_SECRET_LEN`] are not redacted: they would match
//! ordinary words.

use std::collections::BTreeSet;
use std::fmt;

use crate::provider::{ACCESS_TOKEN_VAR, Credentials, EnvVarRole, Manifest};

/// What a found secret is replaced with in answers, logs and stored text.
pub const REDACTED: &str = "[redacted]";

/// Secret values shorter than this are not searched for.
pub const MIN_SECRET_LEN: usize = 4;

/// Encoded forms shorter than this are not searched for: a short base64 or
/// hex fragment would match unrelated text.
const MIN_ENCODED_LEN: usize = 8;

/// The secrets of one call, with every form of each the host searches for.
#[derive(Clone, Default)]
pub struct Redactor {
    secrets: Vec<SecretForms>,
}

#[derive(Clone)]
struct SecretForms {
    name: String,
    /// The plain value first, then its encodings; ASCII lower-cased, unique.
    forms: Vec<String>,
}

/// A found secret: the byte range in the searched text and the secret's
/// index in the redactor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Found {
    start: usize,
    end: usize,
    secret: usize,
}

impl Redactor {
    /// A redactor for `(name, value)` pairs. Values shorter than
    /// [`MIN_SECRET_LEN`] are left out.
    pub fn new<'a>(secrets: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let secrets = secrets
            .into_iter()
            .filter(|(_, value)| value.len() >= MIN_SECRET_LEN)
            .map(|(name, value)| SecretForms { name: name.to_owned(), forms: forms_of(value) })
            .collect();
        Redactor { secrets }
    }

    /// A redactor for the values of `manifest`'s `secret` variables in
    /// `credentials`, and of the access token a token exchange gave
    /// ([`ACCESS_TOKEN_VAR`]), which is a secret too.
    pub fn for_call(manifest: &Manifest, credentials: &Credentials) -> Self {
        Redactor::new(credentials.expose().filter(|(name, _)| {
            *name == ACCESS_TOKEN_VAR
                || manifest
                    .env_vars
                    .iter()
                    .any(|var| var.name == *name && var.role == EnvVarRole::Secret)
        }))
    }

    /// Whether there is nothing to redact.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret, in any form, replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        self.replace(text, |_| REDACTED.to_owned())
    }

    /// `text` with every secret, in any form, replaced by `<NAME>`, its
    /// variable's name (for reports that say which secret was where).
    pub fn redact_named(&self, text: &str) -> String {
        self.replace(text, |secret| format!("<{}>", self.secrets[secret].name))
    }

    /// Redacts `text` in place (no copy when there is nothing to redact).
    pub fn redact_in_place(&self, text: &mut String) {
        if !self.find(text).is_empty() {
            *text = self.redact(text);
        }
    }

    /// The names of the secrets found (in any form) in `bytes`, which need
    /// not be UTF-8, in the redactor's order.
    pub fn names_in(&self, bytes: &[u8]) -> Vec<&str> {
        let text = String::from_utf8_lossy(bytes);
        let found: BTreeSet<usize> = self.find(&text).iter().map(|found| found.secret).collect();
        found.into_iter().map(|secret| self.secrets[secret].name.as_str()).collect()
    }

    /// Whether the secret `name` appears, in any form, in `text`.
    pub fn finds(&self, name: &str, text: &str) -> bool {
        self.find(text).iter().any(|found| self.secrets[found.secret].name == name)
    }

    /// The secrets' names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(|secret| secret.name.as_str())
    }

    /// The length in bytes of the longest text a secret can be found in
    /// (its longest form, which is also as long as a percent-decoded
    /// reading gets); 0 for an empty redactor.
    pub fn longest_form(&self) -> usize {
        self.secrets.iter().flat_map(|secret| &secret.forms).map(String::len).max().unwrap_or(0)
    }

    /// How many bytes at the end of `bytes` could be the start of a secret
    /// (in one of its forms, or percent-encoded): what a stream holds back
    /// until the next bytes tell. Less than [`Redactor::longest_form`].
    pub fn possible_start(&self, bytes: &[u8]) -> usize {
        let earliest = bytes.len().saturating_sub(self.longest_form().saturating_sub(1));
        // Lower-cased once: a long secret (a service-account JSON and its
        // encodings run to kilobytes) must not cost a copy per position.
        let tail = bytes[earliest..].to_ascii_lowercase();
        let has_percent = tail.contains(&b'%');
        (0..tail.len())
            .find(|&start| {
                let suffix = &tail[start..];
                self.is_form_start(suffix)
                    || (has_percent
                        && suffix.contains(&b'%')
                        && self.is_form_start(&percent_decoded_start(suffix)))
            })
            .map_or(0, |start| tail.len() - start)
    }

    /// Whether `text` (lower-cased) is how some secret's form begins.
    fn is_form_start(&self, text: &[u8]) -> bool {
        self.secrets
            .iter()
            .flat_map(|secret| &secret.forms)
            .any(|form| form.as_bytes().starts_with(text))
    }

    /// `bytes` with every secret, in any form, replaced by [`REDACTED`]:
    /// each run of valid UTF-8 is redacted as text (a secret's every form is
    /// text, so none spans a byte that is not), other bytes are kept as is.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        for chunk in bytes.utf8_chunks() {
            out.extend_from_slice(self.redact(chunk.valid()).as_bytes());
            out.extend_from_slice(chunk.invalid());
        }
        out
    }

    fn replace(&self, text: &str, label: impl Fn(usize) -> String) -> String {
        let found = self.find(text);
        if found.is_empty() {
            return text.to_owned();
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for found in found {
            let (start, end) = (floor_boundary(text, found.start), ceil_boundary(text, found.end));
            if start < at {
                at = at.max(end);
                continue;
            }
            out.push_str(&text[at..start]);
            out.push_str(&label(found.secret));
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// Every place a secret's form appears in `text`, plain or in its
    /// percent-decoded reading; overlapping places merged, in order.
    fn find(&self, text: &str) -> Vec<Found> {
        if self.is_empty() || text.is_empty() {
            return Vec::new();
        }
        let mut found = Vec::new();
        let lowered = text.to_ascii_lowercase();
        self.search(&lowered, |start, end| (start, end), &mut found);
        if text.contains('%') {
            let (decoded, origin) = percent_decoded_with_origin(text);
            match std::str::from_utf8(&decoded) {
                Ok(decoded) => {
                    let decoded = decoded.to_ascii_lowercase();
                    self.search(&decoded, |start, end| (origin[start], origin[end]), &mut found);
                }
                Err(_) => {
                    // Not text once decoded: where a secret is in it, the
                    // offsets do not map back, so the whole text goes.
                    let decoded = String::from_utf8_lossy(&decoded).to_ascii_lowercase();
                    if self.search_any(&decoded) {
                        found.push(Found { start: 0, end: text.len(), secret: 0 });
                    }
                }
            }
        }
        merge(found)
    }

    fn search(
        &self,
        haystack: &str,
        to_text: impl Fn(usize, usize) -> (usize, usize),
        found: &mut Vec<Found>,
    ) {
        for (secret, forms) in self.secrets.iter().enumerate() {
            for form in &forms.forms {
                for (start, _) in haystack.match_indices(form.as_str()) {
                    let (start, end) = to_text(start, start + form.len());
                    found.push(Found { start, end, secret });
                }
            }
        }
    }

    fn search_any(&self, haystack: &str) -> bool {
        self.secrets.iter().any(|forms| forms.forms.iter().any(|form| haystack.contains(form)))
    }
}

/// Redaction of a body that arrives in chunks: a secret split across two
/// chunks is still found, because the end of a chunk that could be the
/// start of a secret ([`Redactor::possible_start`], less than
/// [`Redactor::longest_form`] bytes) is held back until the next chunk (or
/// [`StreamRedaction::finish`]); the rest passes at once. What
/// [`StreamRedaction::push`] returns is final: no later chunk can make it
/// part of a secret.
#[derive(Debug)]
pub struct StreamRedaction {
    redactor: Redactor,
    pending: Vec<u8>,
}

impl StreamRedaction {
    /// Redaction of the secrets of `redactor`.
    pub fn new(redactor: Redactor) -> Self {
        StreamRedaction { redactor, pending: Vec::new() }
    }

    /// Takes the next chunk; answers the redacted bytes that are final.
    /// A secret that ends after this chunk starts in the part held back, so
    /// every secret starting before it is whole here and redacted.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(chunk);
        if self.redactor.is_empty() {
            return std::mem::take(&mut self.pending);
        }
        let mut redacted = self.redactor.redact_bytes(&self.pending);
        let cut = redacted.len() - self.redactor.possible_start(&redacted);
        self.pending = redacted.split_off(cut);
        redacted
    }

    /// The redacted rest, at the end of the body.
    pub fn finish(self) -> Vec<u8> {
        self.redactor.redact_bytes(&self.pending)
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redactor").field("secrets", &self.names().collect::<Vec<_>>()).finish()
    }
}

fn floor_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn ceil_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
}

/// Sorts `found` and merges overlapping or touching places (the first
/// secret's name labels a merged place).
fn merge(mut found: Vec<Found>) -> Vec<Found> {
    found.sort_by_key(|found| (found.start, std::cmp::Reverse(found.end)));
    let mut merged: Vec<Found> = Vec::with_capacity(found.len());
    for next in found {
        match merged.last_mut() {
            Some(last) if next.start <= last.end => last.end = last.end.max(next.end),
            _ => merged.push(next),
        }
    }
    merged
}

/// Every form of `value` searched for, lower-cased, unique, plain first.
fn forms_of(value: &str) -> Vec<String> {
    let bytes = value.as_bytes();
    let mut forms = vec![value.to_owned()];
    forms.push(percent_encode(bytes, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
    forms.push(percent_encode(bytes, |b| b.is_ascii_alphanumeric() || b"-._*".contains(&b)));
    forms.push(percent_encode(bytes, |b| b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)));
    forms.push(percent_encode(bytes, |_| false));
    forms.push(hex::encode(bytes));
    for alphabet in [BASE64, BASE64_URL] {
        for alignment in 0..3 {
            forms.push(base64_core(bytes, alignment, alphabet));
        }
    }
    let json = serde_json::to_string(value).unwrap_or_default();
    let json = json.trim_matches('"').to_owned();
    forms.push(json.replace('/', "\\/"));
    forms.push(json);

    let mut unique = Vec::with_capacity(forms.len());
    for (index, form) in forms.into_iter().enumerate() {
        let form = form.to_ascii_lowercase();
        let long_enough = if index == 0 { !form.is_empty() } else { form.len() >= MIN_ENCODED_LEN };
        if long_enough && !unique.contains(&form) {
            unique.push(form);
        }
    }
    unique
}

/// `bytes` with every byte `keep` refuses written as `%XX`.
fn percent_encode(bytes: &[u8], keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &byte in bytes {
        if keep(byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The base64 characters that encode `bytes` whatever surrounds them, when
/// `bytes` start `alignment` bytes (0, 1 or 2) into a 3-byte group: the
/// characters that also depend on a neighbouring byte are left out.
fn base64_core(bytes: &[u8], alignment: usize, alphabet: &[u8; 64]) -> String {
    let mut padded = vec![0u8; alignment];
    padded.extend_from_slice(bytes);
    let total = padded.len();
    padded.resize(total.div_ceil(3) * 3, 0);
    let mut chars = Vec::with_capacity(padded.len() / 3 * 4);
    for group in padded.chunks(3) {
        let n = u32::from(group[0]) << 16 | u32::from(group[1]) << 8 | u32::from(group[2]);
        for shift in [18, 12, 6, 0] {
            chars.push(alphabet[(n >> shift & 63) as usize]);
        }
    }
    // Character i covers bits 6i..6i+6 of the stream; keep those entirely
    // inside the value's bits.
    let first_bit = alignment * 8;
    let last_bit = total * 8;
    let start = first_bit.div_ceil(6);
    let end = last_bit / 6;
    if start >= end {
        return String::new();
    }
    String::from_utf8_lossy(&chars[start..end]).into_owned()
}

/// `text` with every `%XX` decoded (invalid sequences kept), and for each
/// decoded byte the offset in `text` it came from, plus `text.len()` last.
fn percent_decoded_with_origin(text: &str) -> (Vec<u8>, Vec<usize>) {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut origin = Vec::with_capacity(bytes.len() + 1);
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && index + 2 < bytes.len()
            && let (Some(high), Some(low)) =
                (hex_digit(bytes[index + 1]), hex_digit(bytes[index + 2]))
        {
            decoded.push(high << 4 | low);
            origin.push(index);
            index += 3;
            continue;
        }
        decoded.push(bytes[index]);
        origin.push(index);
        index += 1;
    }
    origin.push(bytes.len());
    (decoded, origin)
}

/// The percent-decoded reading of a text's end, lower-cased, without a last
/// `%` or `%X` that the next bytes may complete.
fn percent_decoded_start(suffix: &[u8]) -> Vec<u8> {
    let cut = match suffix {
        [.., b'%'] => suffix.len() - 1,
        [.., b'%', digit] if hex_digit(*digit).is_some() => suffix.len() - 2,
        _ => suffix.len(),
    };
    let text = String::from_utf8_lossy(&suffix[..cut]);
    percent_decoded_with_origin(&text).0.to_ascii_lowercase()
}

/// `%XX` sequences decoded (invalid ones kept), as lossy UTF-8.
pub fn percent_decode(text: &str) -> String {
    String::from_utf8_lossy(&percent_decoded_with_origin(text).0).into_owned()
}

fn hex_digit(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-Canary/7f3a+9c1e5b";

    fn redactor() -> Redactor {
        Redactor::new([("OPENAI_API_KEY", KEY)])
    }

    /// Padded standard base64 from the `base64` crate: an independent
    /// reference for the search forms.
    fn standard_base64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn base64_core_matches_a_real_encoder_at_every_alignment() {
        assert_eq!(standard_base64(b"any carnal pleasure."), "YW55IGNhcm5hbCBwbGVhc3VyZS4=");
        for prefix in ["", "a", "ab", "abc", "user:", "Bearer "] {
            let whole = standard_base64(format!("{prefix}{KEY}!").as_bytes());
            let core = base64_core(KEY.as_bytes(), prefix.len() % 3, BASE64);
            assert!(core.len() >= KEY.len(), "{prefix:?}: {core}");
            assert!(whole.contains(&core), "{prefix:?}: {core} not in {whole}");
        }
    }

    #[test]
    fn a_secret_split_across_chunks_anywhere_is_redacted() {
        let body = format!(
            "data: {{\"echo\":\"Bearer {KEY}\"}}\n\nplain {} end %{}",
            KEY.to_uppercase(),
            hex::encode(KEY)
        );
        let whole = String::from_utf8(redactor().redact_bytes(body.as_bytes())).unwrap();
        assert!(!whole.to_ascii_lowercase().contains(&KEY.to_ascii_lowercase()), "{whole}");
        for first in 0..body.len() {
            for second in first..body.len().min(first + 40) {
                let mut stream = StreamRedaction::new(redactor());
                let mut out = stream.push(&body.as_bytes()[..first]);
                out.extend(stream.push(&body.as_bytes()[first..second]));
                out.extend(stream.push(&body.as_bytes()[second..]));
                out.extend(stream.finish());
                assert_eq!(String::from_utf8(out).unwrap(), whole, "cut at {first} and {second}");
            }
        }
    }

    #[test]
    fn bytes_that_are_not_text_are_kept_and_the_text_around_them_redacted() {
        let mut body = vec![0xff, 0xfe];
        body.extend_from_slice(KEY.as_bytes());
        body.extend_from_slice(&[0xc3, b'x']);
        let mut expected = vec![0xff, 0xfe];
        expected.extend_from_slice(REDACTED.as_bytes());
        expected.extend_from_slice(&[0xc3, b'x']);
        assert_eq!(redactor().redact_bytes(&body), expected);
        let mut stream = StreamRedaction::new(Redactor::default());
        assert_eq!(stream.push(&body), body, "nothing to redact: nothing held back");
        assert!(stream.finish().is_empty());
    }

    #[test]
    fn only_an_end_that_could_start_a_secret_is_held_back() {
        let r = redactor();
        assert_eq!(r.possible_start(b"data: {\"content\":\"Hi\"}\n\n"), 0);
        assert_eq!(r.possible_start(b"Bearer SK-can"), 6);
        assert_eq!(r.possible_start(b"key=%73k-C"), 6, "percent-encoded");
        assert_eq!(r.possible_start(b"key=%7"), 2, "an unfinished escape");
        assert!(r.possible_start(b"sk") > 0);
        assert!(r.longest_form() >= 3 * KEY.len());
        let mut stream = StreamRedaction::new(r);
        assert_eq!(stream.push(b"data: ok\n\n"), b"data: ok\n\n", "nothing held back");
        assert_eq!(stream.push(b"x sk-Can"), b"x ");
        assert_eq!(stream.push(b"ary/7f3a+9c1e5b done"), b"[redacted] done");
    }

    #[test]
    fn plain_and_case_changed_values_are_redacted() {
        let r = redactor();
        assert_eq!(r.redact(&format!("Bearer {KEY} refused")), "Bearer [redacted] refused");
        let host = format!("host \"{}.evil.example\" is not allowed", KEY.to_lowercase());
        assert_eq!(r.redact(&host), "host \"[redacted].evil.example\" is not allowed");
        assert_eq!(r.redact(&KEY.to_uppercase()), "[redacted]");
        assert_eq!(r.redact("nothing here"), "nothing here");
        assert_eq!(r.redact_named(KEY), "<OPENAI_API_KEY>");
    }

    #[test]
    fn encodings_are_redacted() {
        let r = redactor();
        let encodings = [
            "sk-Canary%2F7f3a%2B9c1e5b".to_owned(),
            "sk-Canary%2f7f3a%2b9c1e5b".to_owned(),
            "%73%6B%2D%43anary%2F7f3a%2B9c1e5b".to_owned(),
            hex::encode(KEY),
            hex::encode(KEY).to_uppercase(),
            standard_base64(KEY.as_bytes()),
            standard_base64(KEY.as_bytes()).replace('+', "-").replace('/', "_"),
            standard_base64(KEY.as_bytes()).trim_end_matches('=').to_owned(),
            standard_base64(format!("api:{KEY}").as_bytes()),
            standard_base64(format!("Bearer {KEY}").as_bytes()),
            serde_json::to_string(KEY).unwrap(),
            KEY.replace('/', "\\/"),
        ];
        for encoded in &encodings {
            let text = format!("echo: {encoded} end");
            let redacted = r.redact(&text);
            assert!(redacted.contains(REDACTED), "{encoded}: {redacted}");
            assert!(redacted.starts_with("echo: ") && redacted.ends_with(" end"), "{redacted}");
            assert_eq!(r.names_in(text.as_bytes()), ["OPENAI_API_KEY"], "{encoded}");
            assert!(r.finds("OPENAI_API_KEY", &text));
        }
    }

    #[test]
    fn overlapping_and_several_secrets() {
        let r = Redactor::new([("A", "abcd-1234-efgh"), ("B", "1234-efgh-ijkl"), ("C", "x")]);
        assert_eq!(r.names().collect::<Vec<_>>(), ["A", "B"], "a one-letter value is left out");
        assert_eq!(r.redact("<abcd-1234-efgh-ijkl>"), "<[redacted]>");
        assert_eq!(r.redact("abcd-1234-efgh and 1234-efgh-ijkl"), "[redacted] and [redacted]");
        assert_eq!(r.redact_named("1234-efgh-ijkl, abcd-1234-efgh"), "<B>, <A>");
        assert_eq!(r.names_in(b"\xff\xfe 1234-efgh-ijkl"), ["B"]);
        assert!(!r.finds("A", "1234-efgh-ijkl"));
        let mut text = "keep".to_owned();
        r.redact_in_place(&mut text);
        assert_eq!(text, "keep");
        let mut text = "x abcd-1234-efgh".to_owned();
        r.redact_in_place(&mut text);
        assert_eq!(text, "x [redacted]");
    }

    #[test]
    fn multibyte_text_and_values() {
        let r = Redactor::new([("K", "clé-secrète-42")]);
        assert_eq!(r.redact("é clé-secrète-42 ü"), "é [redacted] ü");
        assert_eq!(r.redact("cl%C3%A9-secr%C3%A8te-42"), "[redacted]");
        assert_eq!(r.redact("100% sure, ünïcode"), "100% sure, ünïcode");
        assert_eq!(Redactor::default().redact("anything"), "anything");
    }

    #[test]
    fn debug_shows_names_only() {
        assert_eq!(format!("{:?}", redactor()), "Redactor { secrets: [\"OPENAI_API_KEY\"] }");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(percent_decode("%41%42%43"), "ABC");
    }
}
