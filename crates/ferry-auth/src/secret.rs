//! Passwords and API tokens: how they are stored and checked.
//!
//! - A password is stored as an argon2id hash (PHC string, per-user salt).
//!   Checking one costs a memory-hard hash (~20 MiB, tens of ms), so a
//!   client that sends Basic credentials on every request is checked once
//!   and then recognised by [`VerifiedCache`], which holds a keyed BLAKE3
//!   tag of the credentials (never the password), under a key drawn at
//!   start-up, for a bounded time.
//! - An unknown user costs the same hash as a known one
//!   ([`verify_unknown`]), so login errors do not say which users exist.
//! - A token is `ferry_<id>_<secret>`: the id finds its record, the 256-bit
//!   secret is stored only as its BLAKE3 hash (a high-entropy secret needs
//!   no slow hash) and compared in constant time.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use std::collections::HashMap;
use std::sync::Mutex;

/// MLflow's password policy: at least 12 characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// The prefix every ferry token starts with (so secret scanners and logs
/// can recognise one).
pub const TOKEN_PREFIX: &str = "ferry_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("Password must be at least {MIN_PASSWORD_CHARS} characters.")]
    TooShort,
    #[error("the system's random source failed: {0}")]
    Random(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

fn random<const N: usize>() -> Result<[u8; N], SecretError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| SecretError::Random(e.to_string()))?;
    Ok(b)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the password policy.
pub fn check_policy(password: &str) -> Result<(), SecretError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(SecretError::TooShort);
    }
    Ok(())
}

/// The argon2id hash of `password` to store (OWASP's parameters: 19 MiB,
/// two passes, one lane).
pub fn hash_password(password: &str) -> Result<String, SecretError> {
    check_policy(password)?;
    let salt =
        SaltString::encode_b64(&random::<16>()?).map_err(|e| SecretError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| SecretError::Hash(e.to_string()))
}

/// Whether `password` matches a stored hash. A malformed stored hash
/// matches nothing.
pub fn verify_password(stored: &str, password: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Spends what checking a known user's password spends, and says no: the
/// answer for a user who does not exist.
pub fn verify_unknown(password: &str) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let stored =
        DUMMY.get_or_init(|| hash_password("ferry-no-such-user-placeholder").unwrap_or_default());
    let _ = verify_password(stored, password);
    false
}

/// Credentials checked recently: per user, a keyed tag of the password that
/// passed and until when it counts. A changed password, a deleted user or a
/// revoked grant forgets the user ([`VerifiedCache::forget`]).
pub struct VerifiedCache {
    key: [u8; 32],
    ttl_ms: i64,
    max_users: usize,
    entries: Mutex<HashMap<String, (blake3::Hash, i64)>>,
}

impl VerifiedCache {
    pub fn new(ttl_ms: i64, max_users: usize) -> Result<Self, SecretError> {
        Ok(Self {
            key: random::<32>()?,
            ttl_ms,
            max_users,
            entries: Mutex::new(HashMap::new()),
        })
    }

    fn tag(&self, username: &str, password: &str) -> blake3::Hash {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        h.update(&(username.len() as u64).to_le_bytes());
        h.update(username.as_bytes());
        h.update(password.as_bytes());
        h.finalize()
    }

    /// Whether these credentials passed within the time to live.
    pub fn check(&self, username: &str, password: &str, now_ms: i64) -> bool {
        let tag = self.tag(username, password);
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        // blake3::Hash compares in constant time.
        entries
            .get(username)
            .is_some_and(|(t, until)| *t == tag && now_ms < *until)
    }

    /// Records credentials that just passed a full check.
    pub fn remember(&self, username: &str, password: &str, now_ms: i64) {
        let tag = self.tag(username, password);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.max_users && !entries.contains_key(username) {
            entries.retain(|_, (_, until)| now_ms < *until);
            if entries.len() >= self.max_users {
                return; // full of live entries: check in full instead
            }
        }
        entries.insert(username.to_owned(), (tag, now_ms + self.ttl_ms));
    }

    pub fn forget(&self, username: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(username);
    }
}

/// A token as issued: the text shown once to its owner, and what is stored.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// Public: names the token in lists, the audit log and revocation.
    pub id: String,
    /// `ferry_<id>_<secret>`: shown once, never stored.
    pub text: String,
    /// The secret's BLAKE3 hash, hex: what is stored.
    pub secret_hash: String,
}

/// Draws a new token.
pub fn issue_token() -> Result<IssuedToken, SecretError> {
    let id = hex(&random::<8>()?);
    let secret = hex(&random::<32>()?);
    Ok(IssuedToken {
        text: format!("{TOKEN_PREFIX}{id}_{secret}"),
        secret_hash: blake3::hash(secret.as_bytes()).to_hex().to_string(),
        id,
    })
}

/// A presented token split into its id and secret; `None` when it is not
/// shaped like a ferry token.
pub fn parse_token(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_of = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_of(id, 16) && hex_of(secret, 64)).then_some((id, secret))
}

/// Whether `secret` is the one whose hash was stored, in constant time.
pub fn token_matches(secret_hash: &str, secret: &str) -> bool {
    let Ok(stored) = blake3::Hash::from_hex(secret_hash) else {
        return false;
    };
    stored == blake3::hash(secret.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_stored_as_argon2id_and_checked_against_it() {
        assert_eq!(hash_password("short"), Err(SecretError::TooShort));
        let stored = hash_password("correct horse battery").unwrap();
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("correct horse"));
        assert!(verify_password(&stored, "correct horse battery"));
        assert!(!verify_password(&stored, "correct horse batterY"));
        assert!(!verify_password("not a hash", "correct horse battery"));
        // Same password, different salt.
        assert_ne!(stored, hash_password("correct horse battery").unwrap());
        assert!(!verify_unknown("correct horse battery"));
    }

    #[test]
    fn the_cache_recognises_only_the_same_credentials_until_they_expire() {
        let c = VerifiedCache::new(1_000, 2).unwrap();
        c.remember("ana", "pw-ana-123456", 0);
        assert!(c.check("ana", "pw-ana-123456", 999));
        assert!(!c.check("ana", "pw-ana-123456", 1_000), "expired");
        assert!(!c.check("ana", "wrong-password", 10));
        assert!(!c.check("bob", "pw-ana-123456", 10));
        c.forget("ana");
        assert!(!c.check("ana", "pw-ana-123456", 10));
        // Bounded: a full cache of live entries takes no more.
        c.remember("a", "p-123456789012", 0);
        c.remember("b", "p-123456789012", 0);
        c.remember("c", "p-123456789012", 0);
        assert!(!c.check("c", "p-123456789012", 1));
        // Expired ones make room.
        c.remember("c", "p-123456789012", 5_000);
        assert!(c.check("c", "p-123456789012", 5_001));
    }

    #[test]
    fn a_token_is_shown_once_and_stored_as_a_hash() {
        let t = issue_token().unwrap();
        let (id, secret) = parse_token(&t.text).unwrap();
        assert_eq!(id, t.id);
        assert!(!t.secret_hash.contains(secret));
        assert!(token_matches(&t.secret_hash, secret));
        let other = issue_token().unwrap();
        let (_, other_secret) = parse_token(&other.text).unwrap();
        assert!(!token_matches(&t.secret_hash, other_secret));
        assert!(!token_matches("zz", secret));
        for bad in [
            "",
            "ferry_",
            "ferry_abc_def",
            "token",
            &t.text[1..],
            &format!("{}0", t.text),
        ] {
            assert!(parse_token(bad).is_none(), "{bad}");
        }
    }
}
