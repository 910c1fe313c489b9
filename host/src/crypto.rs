//! Encryption of stored values: AES-256-GCM under the operator's
//! `ENCRYPTION_KEY`, with an optional `ENCRYPTION_KEY_PREVIOUS` that still
//! decrypts during a rotation.
//!
//! A sealed value is `[format version (1)] [key id (8)] [nonce (12)]
//! [ciphertext] [tag (16)]`. The nonce is random for every write. The
//! associated data binds the ciphertext to its row — format version, key id,
//! scope, variable name and value version — so a ciphertext copied to another
//! row, scope or version fails authentication instead of decrypting.
//!
//! A key-check record is a known plaintext sealed the same way, with its own
//! associated data (`"platos key check\0" || format version || key id`): a
//! store keeps one to tell, at open, whether the keyring holds its key.
//!
//! A lease token ([`crate::resolution::leases`]) is authenticated with
//! HMAC-SHA256 under a key derived from each master key,
//! `HMAC-SHA256(master key, "platos lease mac key v1")`: never the master
//! key itself, and one derivation per master key, so a rotation's previous
//! key still verifies the leases made under it ([`Keyring::lease_mac`],
//! [`Keyring::verify_lease_mac`]).
//!
//! A health-probe tag ([`Keyring::probe_tag`]) names a credential in the
//! probe claims a cluster shares ([`crate::store::ProbeClaim`]): an
//! HMAC-SHA256 of the credential's fingerprint under another derived key,
//! `HMAC-SHA256(master key, "platos probe tag key v1")`, so the database
//! never holds an unkeyed hash of a secret (which a guess could be checked
//! against). Only the current key tags: during a rotation, nodes still on
//! the old key name the same credential otherwise, so each side may probe it
//! once in a slot; the rotation's end ends that.
//!
//! Keys never leave this module: they are held in zeroize-on-drop types, their
//! `Debug` shows only the key id, they have no `Serialize`, and every error
//! names the variable and lengths, never the value.

use std::ffi::OsString;
use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce, Tag};
use hmac::Mac;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::scope::Scope;

/// The environment variable holding the key that encrypts.
pub const ENCRYPTION_KEY_VAR: &str = "ENCRYPTION_KEY";
/// The environment variable holding the previous key, which still decrypts.
pub const ENCRYPTION_KEY_PREVIOUS_VAR: &str = "ENCRYPTION_KEY_PREVIOUS";
/// The length of a key: exactly this many ASCII bytes, used as the AES-256 key.
pub const KEY_LEN: usize = 32;
/// The number of bytes of a key id.
pub const KEY_ID_LEN: usize = 8;
/// The version of the sealed format this host writes and reads.
pub const FORMAT_VERSION: u8 = 1;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;
/// Domain separation for key ids and associated data.
const KEY_ID_CONTEXT: &[u8] = b"platos key id v1\0";
const AAD_CONTEXT: &[u8] = b"platos sealed value\0";
/// Domain separation for the associated data of key-check records.
const KEY_CHECK_CONTEXT: &[u8] = b"platos key check\0";
/// The known plaintext of a key-check record.
const KEY_CHECK_PLAINTEXT: &[u8] = b"platos master key check v1";
/// The label a master key's lease MAC key is derived under.
const LEASE_KEY_LABEL: &[u8] = b"platos lease mac key v1";
/// The length of a lease MAC (HMAC-SHA256).
pub const LEASE_MAC_LEN: usize = 32;
/// The label a master key's probe tag key is derived under.
const PROBE_KEY_LABEL: &[u8] = b"platos probe tag key v1";
/// The length of a probe tag (HMAC-SHA256).
pub const PROBE_TAG_LEN: usize = 32;
/// How to make a key, for error messages.
const HOW_TO_GENERATE: &str = "generate one with `openssl rand -hex 16` (32 hex characters)";

/// The public identity of a key: the first [`KEY_ID_LEN`] bytes of
/// `sha256("platos key id v1\0" || key)`. Safe to log and store; it does not
/// reveal the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_ID_LEN] {
        &self.0
    }

    fn of(key: &[u8]) -> Self {
        let digest = Sha256::new().chain_update(KEY_ID_CONTEXT).chain_update(key).finalize();
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    /// Lowercase hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// Why a key was refused. Messages name the variable and lengths, never the
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The variable is not set.
    #[error("{var} is not set: it must be exactly {expected} ASCII bytes; {HOW_TO_GENERATE}", expected = KEY_LEN)]
    Missing {
        /// The variable.
        var: &'static str,
    },
    /// The value has the wrong length.
    #[error("{var} must be exactly {expected} ASCII bytes, found {found} bytes; {HOW_TO_GENERATE}")]
    WrongLength {
        /// The variable.
        var: &'static str,
        /// Always [`KEY_LEN`].
        expected: usize,
        /// The length given, in bytes.
        found: usize,
    },
    /// The value has non-ASCII characters (or is not valid Unicode).
    #[error(
        "{var} must be exactly {expected} ASCII bytes, found non-ASCII characters ({found} bytes); {HOW_TO_GENERATE}"
    )]
    NotAscii {
        /// The variable.
        var: &'static str,
        /// Always [`KEY_LEN`].
        expected: usize,
        /// The length given, in bytes.
        found: usize,
    },
}

type HmacSha256 = hmac::Hmac<Sha256>;

/// One AES-256-GCM key, its id, and the lease MAC and probe tag keys
/// derived from it.
pub struct EncryptionKey {
    cipher: Box<Aes256Gcm>,
    id: KeyId,
    lease_key: Zeroizing<[u8; LEASE_MAC_LEN]>,
    probe_key: Zeroizing<[u8; PROBE_TAG_LEN]>,
}

impl EncryptionKey {
    /// Checks `value`, the content of the variable `var`: exactly [`KEY_LEN`]
    /// ASCII bytes, used directly as the AES-256 key (like Trigger.dev's
    /// `ENCRYPTION_KEY`, so existing keys keep working).
    pub fn parse(var: &'static str, value: &str) -> Result<Self, KeyError> {
        if !value.is_ascii() {
            return Err(KeyError::NotAscii { var, expected: KEY_LEN, found: value.len() });
        }
        if value.len() != KEY_LEN {
            return Err(KeyError::WrongLength { var, expected: KEY_LEN, found: value.len() });
        }
        let bytes = value.as_bytes();
        let cipher = Box::new(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes)));
        Ok(EncryptionKey {
            cipher,
            id: KeyId::of(bytes),
            lease_key: derive_key(bytes, LEASE_KEY_LABEL),
            probe_key: derive_key(bytes, PROBE_KEY_LABEL),
        })
    }

    /// A keyed HMAC-SHA256 over lease payloads.
    fn lease_hmac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(self.lease_key.as_slice())
            .expect("HMAC takes a key of any length")
    }

    /// A keyed HMAC-SHA256 over credential fingerprints.
    fn probe_hmac(&self) -> HmacSha256 {
        <HmacSha256 as KeyInit>::new_from_slice(self.probe_key.as_slice())
            .expect("HMAC takes a key of any length")
    }

    /// Reads and checks the variable `var` from `lookup` (the process
    /// environment in production). `Ok(None)` when unset.
    pub fn from_lookup(
        var: &'static str,
        lookup: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Option<Self>, KeyError> {
        let Some(raw) = lookup(var) else { return Ok(None) };
        let found = raw.as_encoded_bytes().len();
        match raw.into_string() {
            Ok(text) => {
                let text = Zeroizing::new(text);
                EncryptionKey::parse(var, &text).map(Some)
            }
            Err(_) => Err(KeyError::NotAscii { var, expected: KEY_LEN, found }),
        }
    }

    /// The key's public id.
    pub fn id(&self) -> KeyId {
        self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey").field("id", &self.id).field("key", &"[redacted]").finish()
    }
}

/// What a sealed value belongs to. Part of the associated data: a value
/// sealed for one binding does not open under another.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The scope of the variable.
    pub scope: &'a Scope,
    /// The variable's name.
    pub name: &'a str,
    /// The value's version.
    pub version: u64,
}

impl Binding<'_> {
    /// `context || format || key id || len(scope) scope || len(name) name || version`,
    /// lengths and version big-endian.
    fn associated_data(&self, format: u8, key: KeyId) -> Vec<u8> {
        let scope = self.scope.to_string();
        let mut aad = Vec::with_capacity(
            AAD_CONTEXT.len() + 1 + KEY_ID_LEN + 8 + scope.len() + self.name.len() + 8,
        );
        aad.extend_from_slice(AAD_CONTEXT);
        aad.push(format);
        aad.extend_from_slice(key.as_bytes());
        for part in [scope.as_bytes(), self.name.as_bytes()] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part);
        }
        aad.extend_from_slice(&self.version.to_be_bytes());
        aad
    }
}

/// Why a value could not be sealed or opened. Never carries the value or a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The record is too short or otherwise not a sealed value.
    #[error("the stored record is malformed ({0})")]
    Malformed(&'static str),
    /// The record has a format version this host does not know.
    #[error(
        "the stored record has format version {found}; this host reads version {FORMAT_VERSION}"
    )]
    UnknownFormat {
        /// The record's version.
        found: u8,
    },
    /// The record was sealed under a key the keyring does not hold.
    #[error(
        "the stored record is encrypted under key id {found}, which is neither {ENCRYPTION_KEY_VAR} (key id {current}) nor {ENCRYPTION_KEY_PREVIOUS_VAR} ({})",
        previous.map_or_else(|| "unset".to_owned(), |id| format!("key id {id}"))
    )]
    UnknownKey {
        /// The record's key id.
        found: KeyId,
        /// The current key's id.
        current: KeyId,
        /// The previous key's id, if any.
        previous: Option<KeyId>,
    },
    /// Authentication failed: the record was altered, or belongs to another
    /// row (scope, name or version).
    #[error(
        "the stored record failed authentication: it was altered or moved from another scope, name or version"
    )]
    Authentication,
    /// The value is too large to seal.
    #[error("the value is too large to encrypt")]
    TooLarge,
    /// The value is not UTF-8 text.
    #[error("the decrypted value is not UTF-8 text")]
    NotText,
}

/// The keys of a host: the current one encrypts, the previous one (during a
/// rotation) still decrypts.
pub struct Keyring {
    current: EncryptionKey,
    previous: Option<EncryptionKey>,
}

impl Keyring {
    /// A keyring from checked keys. A previous key equal to the current one
    /// is dropped.
    pub fn new(current: EncryptionKey, previous: Option<EncryptionKey>) -> Self {
        let previous = previous.filter(|key| key.id != current.id);
        Keyring { current, previous }
    }

    /// Reads `ENCRYPTION_KEY` (required) and `ENCRYPTION_KEY_PREVIOUS`
    /// (optional; empty counts as unset) from the process environment.
    pub fn from_env() -> Result<Self, KeyError> {
        Keyring::from_lookup(&|name| std::env::var_os(name))
    }

    /// [`Keyring::from_env`] with another source of variables.
    pub fn from_lookup(lookup: &dyn Fn(&str) -> Option<OsString>) -> Result<Self, KeyError> {
        let current = EncryptionKey::from_lookup(ENCRYPTION_KEY_VAR, lookup)?
            .ok_or(KeyError::Missing { var: ENCRYPTION_KEY_VAR })?;
        let previous_lookup = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let previous = EncryptionKey::from_lookup(ENCRYPTION_KEY_PREVIOUS_VAR, &previous_lookup)?;
        Ok(Keyring::new(current, previous))
    }

    /// The id of the key that encrypts.
    pub fn current_id(&self) -> KeyId {
        self.current.id
    }

    /// The id of the previous key, if any.
    pub fn previous_id(&self) -> Option<KeyId> {
        self.previous.as_ref().map(|key| key.id)
    }

    /// Encrypts `plaintext` for `binding` under the current key, with a fresh
    /// random nonce.
    pub fn seal(&self, binding: &Binding<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = &self.current;
        seal_with(key, &binding.associated_data(FORMAT_VERSION, key.id), plaintext)
    }

    /// Decrypts a value sealed for `binding` under the current or the
    /// previous key. The plaintext is zeroed when dropped.
    pub fn open(
        &self,
        binding: &Binding<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self.key_for(sealed_key_id(sealed)?)?;
        open_with(key, &binding.associated_data(FORMAT_VERSION, key.id), sealed)
    }

    /// The MAC of the lease token payload `payload` under the lease key of
    /// the current master key.
    pub fn lease_mac(&self, payload: &[u8]) -> [u8; LEASE_MAC_LEN] {
        let mut mac = self.current.lease_hmac();
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }

    /// Whether `tag` is the MAC of `payload` under the lease key of the
    /// current or the previous master key (a lease made before a rotation
    /// still verifies). Compared in constant time.
    pub fn verify_lease_mac(&self, payload: &[u8], tag: &[u8]) -> bool {
        [Some(&self.current), self.previous.as_ref()].into_iter().flatten().any(|key| {
            let mut mac = key.lease_hmac();
            mac.update(payload);
            mac.verify_slice(tag).is_ok()
        })
    }

    /// The tag naming the credential of `fingerprint` (a hash of a
    /// provider and its env bag) in the shared probe claims, under the probe
    /// key of the current master key: the same on every host with that key,
    /// and no unkeyed hash of the secret.
    pub fn probe_tag(&self, fingerprint: &[u8; 32]) -> [u8; PROBE_TAG_LEN] {
        let mut mac = self.current.probe_hmac();
        mac.update(fingerprint);
        mac.finalize().into_bytes().into()
    }

    /// Whether `id` is the current or the previous key.
    pub fn holds(&self, id: KeyId) -> bool {
        self.key_for(id).is_ok()
    }

    /// A key-check record sealed under the held key `under` (the current or
    /// the previous one): a known plaintext with a fresh nonce.
    pub fn seal_key_check(&self, under: KeyId) -> Result<Vec<u8>, CryptoError> {
        let key = self.key_for(under)?;
        seal_with(key, &key_check_associated_data(key.id), KEY_CHECK_PLAINTEXT)
    }

    /// Opens a key-check record and returns the id of the key it is sealed
    /// under: [`CryptoError::UnknownKey`] when the keyring holds neither
    /// that key, [`CryptoError::Authentication`] when it was altered.
    pub fn open_key_check(&self, sealed: &[u8]) -> Result<KeyId, CryptoError> {
        let key = self.key_for(sealed_key_id(sealed)?)?;
        let plaintext = open_with(key, &key_check_associated_data(key.id), sealed)?;
        if plaintext.as_slice() != KEY_CHECK_PLAINTEXT {
            return Err(CryptoError::Authentication);
        }
        Ok(key.id)
    }

    /// The held key with id `id`.
    fn key_for(&self, id: KeyId) -> Result<&EncryptionKey, CryptoError> {
        [Some(&self.current), self.previous.as_ref()]
            .into_iter()
            .flatten()
            .find(|key| key.id == id)
            .ok_or(CryptoError::UnknownKey {
                found: id,
                current: self.current.id,
                previous: self.previous_id(),
            })
    }

    /// [`Keyring::open`], as text in a zeroize-on-drop string.
    pub fn open_text(
        &self,
        binding: &Binding<'_>,
        sealed: &[u8],
    ) -> Result<secrecy::SecretString, CryptoError> {
        let plaintext = self.open(binding, sealed)?;
        let text = std::str::from_utf8(&plaintext).map_err(|_| CryptoError::NotText)?;
        // `String::from(&str)` allocates exactly `len`, so the `Box<str>` below
        // reuses the allocation and no unzeroed copy is left behind.
        Ok(secrecy::SecretString::from(String::from(text)))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field("previous", &self.previous_id())
            .finish()
    }
}

/// `HMAC-SHA256(master, label)`: the key of one purpose (lease MACs, probe
/// tags) derived from a master key.
fn derive_key(master: &[u8], label: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac =
        <HmacSha256 as KeyInit>::new_from_slice(master).expect("HMAC takes a key of any length");
    mac.update(label);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// `"platos key check\0" || format || key id`.
fn key_check_associated_data(key: KeyId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(KEY_CHECK_CONTEXT.len() + 1 + KEY_ID_LEN);
    aad.extend_from_slice(KEY_CHECK_CONTEXT);
    aad.push(FORMAT_VERSION);
    aad.extend_from_slice(key.as_bytes());
    aad
}

/// `[format] [key id] [fresh nonce] [ciphertext] [tag]` of `plaintext` under
/// `key` with associated data `aad`.
fn seal_with(key: &EncryptionKey, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let mut sealed = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    sealed.push(FORMAT_VERSION);
    sealed.extend_from_slice(key.id.as_bytes());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    let tag = key
        .cipher
        .encrypt_in_place_detached(&nonce, aad, &mut sealed[HEADER_LEN..])
        .map_err(|_| CryptoError::TooLarge)?;
    sealed.extend_from_slice(&tag);
    Ok(sealed)
}

/// The plaintext of `sealed` (already checked by [`sealed_key_id`] to be
/// under `key`), zeroed when dropped.
fn open_with(
    key: &EncryptionKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let (header, rest) = sealed.split_at(HEADER_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let nonce = Nonce::from_slice(&header[1 + KEY_ID_LEN..]);
    let mut plaintext = Zeroizing::new(ciphertext.to_vec());
    key.cipher
        .decrypt_in_place_detached(nonce, aad, &mut plaintext, Tag::from_slice(tag))
        .map_err(|_| CryptoError::Authentication)?;
    Ok(plaintext)
}

/// The id of the key a sealed value was encrypted under, after checking the
/// record's format and length.
pub fn sealed_key_id(sealed: &[u8]) -> Result<KeyId, CryptoError> {
    if sealed.len() < HEADER_LEN + TAG_LEN {
        return Err(CryptoError::Malformed("too short"));
    }
    if sealed[0] != FORMAT_VERSION {
        return Err(CryptoError::UnknownFormat { found: sealed[0] });
    }
    let mut id = [0; KEY_ID_LEN];
    id.copy_from_slice(&sealed[1..1 + KEY_ID_LEN]);
    Ok(KeyId(id))
}

/// `N` bytes from the operating system's secure random source (lease ids,
/// tokens, jitter).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    const KEY_A: &str = "0123456789abcdef0123456789abcdef";
    const KEY_B: &str = "fedcba9876543210fedcba9876543210";

    fn key(value: &str) -> EncryptionKey {
        EncryptionKey::parse(ENCRYPTION_KEY_VAR, value).unwrap()
    }

    fn scope(text: &str) -> Scope {
        text.parse().unwrap()
    }

    #[test]
    fn key_lengths() {
        for len in [0, 1, 16, 31, 33, 64] {
            let value = "k".repeat(len);
            let error = EncryptionKey::parse(ENCRYPTION_KEY_VAR, &value).unwrap_err();
            assert_eq!(
                error,
                KeyError::WrongLength { var: ENCRYPTION_KEY_VAR, expected: 32, found: len }
            );
            let message = error.to_string();
            assert!(message.contains("exactly 32 ASCII bytes"), "{message}");
            assert!(message.contains(&format!("found {len} bytes")), "{message}");
            assert!(message.contains("openssl rand -hex 16"), "{message}");
            if len > 0 {
                assert!(!message.contains(&value), "{message}");
            }
        }
        let accented = "é".repeat(16); // 32 bytes, not ASCII
        let message = EncryptionKey::parse(ENCRYPTION_KEY_VAR, &accented).unwrap_err().to_string();
        assert!(message.contains("non-ASCII") && message.contains("32 bytes"), "{message}");
        assert!(!message.contains('é'), "{message}");
        assert!(EncryptionKey::parse(ENCRYPTION_KEY_VAR, KEY_A).is_ok());
    }

    #[test]
    fn from_lookup() {
        let lookup = |current: Option<&str>, previous: Option<&str>| {
            let current = current.map(OsString::from);
            let previous = previous.map(OsString::from);
            Keyring::from_lookup(&move |name| match name {
                ENCRYPTION_KEY_VAR => current.clone(),
                ENCRYPTION_KEY_PREVIOUS_VAR => previous.clone(),
                _ => None,
            })
        };
        assert_eq!(lookup(None, None).unwrap_err(), KeyError::Missing { var: ENCRYPTION_KEY_VAR });
        assert!(lookup(None, None).unwrap_err().to_string().contains("openssl rand -hex 16"));
        let ring = lookup(Some(KEY_A), Some("")).unwrap();
        assert_eq!(ring.previous_id(), None);
        let ring = lookup(Some(KEY_A), Some(KEY_B)).unwrap();
        assert_eq!(ring.previous_id(), Some(key(KEY_B).id()));
        let error = lookup(Some(KEY_A), Some("short")).unwrap_err();
        assert_eq!(
            error,
            KeyError::WrongLength { var: ENCRYPTION_KEY_PREVIOUS_VAR, expected: 32, found: 5 }
        );
        // The same key twice is one key.
        assert_eq!(lookup(Some(KEY_A), Some(KEY_A)).unwrap().previous_id(), None);
    }

    #[cfg(unix)]
    #[test]
    fn non_unicode_key() {
        use std::os::unix::ffi::OsStringExt;
        let raw = OsString::from_vec(vec![0xff; 32]);
        let error =
            Keyring::from_lookup(&move |name| (name == ENCRYPTION_KEY_VAR).then(|| raw.clone()))
                .unwrap_err();
        assert_eq!(error, KeyError::NotAscii { var: ENCRYPTION_KEY_VAR, expected: 32, found: 32 });
    }

    #[test]
    fn key_ids_are_stable_and_not_the_key() {
        let a = key(KEY_A);
        assert_eq!(a.id(), key(KEY_A).id());
        assert_ne!(a.id(), key(KEY_B).id());
        assert_eq!(a.id().to_string().len(), 2 * KEY_ID_LEN);
        assert!(!KEY_A.contains(&a.id().to_string()));
        let debug = format!("{a:?} {:?}", Keyring::new(key(KEY_A), Some(key(KEY_B))));
        assert!(!debug.contains(KEY_A) && !debug.contains(KEY_B), "{debug}");
        assert!(debug.contains(&a.id().to_string()), "{debug}");
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let ring = Keyring::new(key(KEY_A), None);
        let dev = scope("acme/shop/dev");
        let binding = Binding { scope: &dev, name: "OPENAI_API_KEY", version: 1 };
        let one = ring.seal(&binding, b"sk-secret").unwrap();
        let two = ring.seal(&binding, b"sk-secret").unwrap();
        assert_ne!(one, two);
        assert_eq!(one.len(), HEADER_LEN + 9 + TAG_LEN);
        assert!(!one.windows(9).any(|window| window == b"sk-secret"));
        assert_eq!(&*ring.open(&binding, &one).unwrap(), b"sk-secret");
        assert_eq!(ring.open_text(&binding, &two).unwrap().expose_secret(), "sk-secret");
        assert_eq!(sealed_key_id(&one).unwrap(), ring.current_id());
    }

    #[test]
    fn bound_to_the_row() {
        let ring = Keyring::new(key(KEY_A), None);
        let dev = scope("acme/shop/dev");
        let prod = scope("acme/shop/prod");
        let binding = Binding { scope: &dev, name: "OPENAI_API_KEY", version: 3 };
        let sealed = ring.seal(&binding, b"sk-secret").unwrap();
        for other in [
            Binding { scope: &prod, ..binding },
            Binding { name: "OPENAI_API_KEY_2", ..binding },
            Binding { version: 2, ..binding },
        ] {
            assert_eq!(ring.open(&other, &sealed).unwrap_err(), CryptoError::Authentication);
        }
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open(&binding, &tampered).unwrap_err(), CryptoError::Authentication);
        let mut flipped = sealed.clone();
        flipped[HEADER_LEN] ^= 1;
        assert_eq!(ring.open(&binding, &flipped).unwrap_err(), CryptoError::Authentication);
        // A changed key id is an unknown key, not another key's record.
        let mut relabelled = sealed.clone();
        relabelled[1] ^= 1;
        assert!(matches!(ring.open(&binding, &relabelled), Err(CryptoError::UnknownKey { .. })));
        let mut reformatted = sealed;
        reformatted[0] = 9;
        assert_eq!(
            ring.open(&binding, &reformatted).unwrap_err(),
            CryptoError::UnknownFormat { found: 9 }
        );
        assert_eq!(ring.open(&binding, &[1; 10]).unwrap_err(), CryptoError::Malformed("too short"));
    }

    #[test]
    fn key_check_records_name_the_key_and_are_bound() {
        let ring = Keyring::new(key(KEY_A), None);
        let check = ring.seal_key_check(ring.current_id()).unwrap();
        assert_ne!(check, ring.seal_key_check(ring.current_id()).unwrap());
        assert_eq!(ring.open_key_check(&check).unwrap(), key(KEY_A).id());
        // Another key: unknown, whatever its length or form.
        let other = Keyring::new(key(KEY_B), None);
        assert!(matches!(other.open_key_check(&check), Err(CryptoError::UnknownKey { .. })));
        // The same key as the previous one of a rotation opens it.
        let rotated = Keyring::new(key(KEY_B), Some(key(KEY_A)));
        assert_eq!(rotated.open_key_check(&check).unwrap(), key(KEY_A).id());
        assert_eq!(
            rotated.open_key_check(&rotated.seal_key_check(key(KEY_A).id()).unwrap()).unwrap(),
            key(KEY_A).id()
        );
        assert!(matches!(
            ring.seal_key_check(key(KEY_B).id()),
            Err(CryptoError::UnknownKey { .. })
        ));
        // Altered, or a sealed value passed off as a check record: refused.
        let mut altered = check.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(ring.open_key_check(&altered).unwrap_err(), CryptoError::Authentication);
        let dev = scope("acme/shop/dev");
        let binding = Binding { scope: &dev, name: "X", version: 1 };
        let value = ring.seal(&binding, KEY_CHECK_PLAINTEXT).unwrap();
        assert_eq!(ring.open_key_check(&value).unwrap_err(), CryptoError::Authentication);
        assert_eq!(ring.open(&binding, &check).unwrap_err(), CryptoError::Authentication);
        assert!(ring.holds(key(KEY_A).id()) && !ring.holds(key(KEY_B).id()));
        assert!(rotated.holds(key(KEY_A).id()) && rotated.holds(key(KEY_B).id()));
    }

    #[test]
    fn lease_macs_are_under_a_derived_key_and_verify_across_a_rotation() {
        let payload = b"a lease payload";
        let ring = Keyring::new(key(KEY_A), None);
        let tag = ring.lease_mac(payload);
        assert!(ring.verify_lease_mac(payload, &tag));
        // Deterministic, bound to the payload, to every bit of the tag and to its length.
        assert_eq!(tag, Keyring::new(key(KEY_A), None).lease_mac(payload));
        assert!(!ring.verify_lease_mac(b"a lease payloaD", &tag));
        for bit in 0..8 * LEASE_MAC_LEN {
            let mut flipped = tag;
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(!ring.verify_lease_mac(payload, &flipped), "bit {bit}");
        }
        assert!(!ring.verify_lease_mac(payload, &tag[..LEASE_MAC_LEN - 1]));
        assert!(!ring.verify_lease_mac(payload, &[]));
        // Not the master key itself: an HMAC under the raw key is another tag.
        let mut raw = <HmacSha256 as KeyInit>::new_from_slice(KEY_A.as_bytes()).unwrap();
        raw.update(payload);
        assert_ne!(<[u8; LEASE_MAC_LEN]>::from(raw.finalize().into_bytes()), tag);
        // Another master key refuses it; as the previous key of a rotation it verifies.
        let other = Keyring::new(key(KEY_B), None);
        assert!(!other.verify_lease_mac(payload, &tag));
        let rotated = Keyring::new(key(KEY_B), Some(key(KEY_A)));
        assert!(rotated.verify_lease_mac(payload, &tag));
        assert!(rotated.verify_lease_mac(payload, &rotated.lease_mac(payload)));
        assert_eq!(rotated.lease_mac(payload), other.lease_mac(payload));
        // The derived key is not shown.
        let debug = format!("{:?} {ring:?}", key(KEY_A));
        assert!(!debug.contains(&hex::encode(*key(KEY_A).lease_key)), "{debug}");
    }

    #[test]
    fn probe_tags_are_stable_keyed_and_apart_from_lease_macs() {
        let (one, two) = ([1u8; 32], [2u8; 32]);
        let ring = Keyring::new(key(KEY_A), None);
        let tag = ring.probe_tag(&one);
        assert_eq!(tag, Keyring::new(key(KEY_A), None).probe_tag(&one), "stable");
        assert_ne!(tag, ring.probe_tag(&two), "per fingerprint");
        assert_ne!(tag, Keyring::new(key(KEY_B), None).probe_tag(&one), "per master key");
        // Neither the bare fingerprint, nor its plain hash, nor a lease MAC of it.
        assert_ne!(tag, one);
        assert_ne!(tag, <[u8; 32]>::from(Sha256::digest(one)));
        assert_ne!(tag, ring.lease_mac(&one));
        // A rotation tags under the current key, whatever the previous one.
        let rotated = Keyring::new(key(KEY_B), Some(key(KEY_A)));
        assert_eq!(rotated.probe_tag(&one), Keyring::new(key(KEY_B), None).probe_tag(&one));
        let debug = format!("{:?} {ring:?}", key(KEY_A));
        assert!(!debug.contains(&hex::encode(*key(KEY_A).probe_key)), "{debug}");
    }

    #[test]
    fn previous_key_decrypts_current_encrypts() {
        let dev = scope("acme/shop/dev");
        let binding = Binding { scope: &dev, name: "X", version: 1 };
        let old = Keyring::new(key(KEY_A), None).seal(&binding, b"v").unwrap();
        let rotated = Keyring::new(key(KEY_B), Some(key(KEY_A)));
        assert_eq!(&*rotated.open(&binding, &old).unwrap(), b"v");
        let new = rotated.seal(&binding, b"v").unwrap();
        assert_eq!(sealed_key_id(&new).unwrap(), key(KEY_B).id());
        let without_previous = Keyring::new(key(KEY_B), None);
        let message = without_previous.open(&binding, &old).unwrap_err().to_string();
        assert!(
            message.contains(&key(KEY_A).id().to_string()) && message.contains("unset"),
            "{message}"
        );
        assert!(!message.contains(KEY_A) && !message.contains(KEY_B));
    }
}
