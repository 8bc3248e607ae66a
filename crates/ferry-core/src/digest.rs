//! Content digests and the stable, versioned encoding that feeds them.

use std::fmt;
use std::str::FromStr;

/// A BLAKE3 digest of content, printed as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest of `data` in one call.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[(b >> 4) as usize]));
            s.push(char::from(HEX[(b & 15) as usize]));
        }
        s
    }

    /// The first `n` hex characters, for human output.
    pub fn short(&self, n: usize) -> String {
        let mut h = self.to_hex();
        h.truncate(n);
        h
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short(12))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid digest `{0}`: expected 64 hex characters")]
pub struct DigestParseError(pub String);

impl FromStr for Digest {
    type Err = DigestParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.strip_prefix("blake3:").unwrap_or(s);
        if s.len() != 64 {
            return Err(DigestParseError(s.to_owned()));
        }
        let mut out = [0u8; 32];
        let bytes = s.as_bytes();
        for (i, o) in out.iter_mut().enumerate() {
            let hi = hex_val(bytes[2 * i]).ok_or_else(|| DigestParseError(s.to_owned()))?;
            let lo = hex_val(bytes[2 * i + 1]).ok_or_else(|| DigestParseError(s.to_owned()))?;
            *o = (hi << 4) | lo;
        }
        Ok(Self(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A hasher with an explicit, versioned, platform-independent encoding.
///
/// Every field is written with a one-byte tag and a little-endian length, so two
/// different sequences of fields never encode to the same bytes. Never feed it
/// `std::hash::Hash` output: that is neither stable nor portable.
pub struct StableHasher(blake3::Hasher);

impl StableHasher {
    /// A hasher for one kind of key; `domain` names the kind and its version,
    /// e.g. `"ferry.stage.v1"`.
    pub fn new(domain: &str) -> Self {
        let mut h = Self(blake3::Hasher::new());
        h.str(domain);
        h
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.tagged(b's', s.as_bytes())
    }

    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.tagged(b'b', b)
    }

    pub fn u64(&mut self, n: u64) -> &mut Self {
        self.0.update(b"u");
        self.0.update(&n.to_le_bytes());
        self
    }

    pub fn digest(&mut self, d: &Digest) -> &mut Self {
        self.0.update(b"d");
        self.0.update(d.as_bytes());
        self
    }

    /// Marks the start of a list of `n` items, so lists of different lengths
    /// cannot collide.
    pub fn list(&mut self, n: usize) -> &mut Self {
        self.u64(n as u64)
    }

    fn tagged(&mut self, tag: u8, b: &[u8]) -> &mut Self {
        self.0.update(&[tag]);
        self.0.update(&(b.len() as u64).to_le_bytes());
        self.0.update(b);
        self
    }

    pub fn finish(&self) -> Digest {
        Digest(*self.0.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let d = Digest::of(b"hello");
        let parsed: Digest = d.to_hex().parse().unwrap();
        assert_eq!(d, parsed);
        assert_eq!(
            d.to_hex(),
            "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
        );
        assert!("xyz".parse::<Digest>().is_err());
        assert!("g".repeat(64).parse::<Digest>().is_err());
    }

    #[test]
    fn stable_encoding_separates_fields() {
        let a = StableHasher::new("t").str("ab").str("c").finish();
        let b = StableHasher::new("t").str("a").str("bc").finish();
        assert_ne!(a, b);
        let c = StableHasher::new("t.v2").str("ab").str("c").finish();
        assert_ne!(a, c);
        // Pinned: a change here silently invalidates every user's cache.
        assert_eq!(
            StableHasher::new("ferry.test.v1")
                .str("x")
                .u64(7)
                .finish()
                .short(16),
            "457428c22602c91c"
        );
    }
}
