//! Content digests (`algorithm:hex`), as used by OCI.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

/// A digest string that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// Not `algorithm:hex` with the right number of lowercase hex digits.
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    Invalid(String),
    /// A well-formed algorithm berth does not implement.
    #[error("unsupported digest algorithm {0:?}: only sha256 and sha512 are supported")]
    Unsupported(String),
}

/// A validated content digest such as `sha256:2cf2…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parse and validate `sha256:<64 hex>` or `sha512:<128 hex>`.
    ///
    /// Errors: [`DigestError::Invalid`] for a malformed string, [`DigestError::Unsupported`]
    /// for another algorithm.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let (algo, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::Invalid(s.to_string()))?;
        let want = match algo {
            "sha256" => 64,
            "sha512" => 128,
            other => {
                if other.is_empty()
                    || !other
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                {
                    return Err(DigestError::Invalid(s.to_string()));
                }
                return Err(DigestError::Unsupported(other.to_string()));
            }
        };
        if hex.len() != want
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::Invalid(s.to_string()));
        }
        Ok(Digest(s.to_string()))
    }

    /// sha256 of the given bytes.
    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(data))))
    }

    /// The digest of `data` with algorithm `algo` (`sha256` or `sha512`).
    ///
    /// Errors: [`DigestError::Unsupported`] for another algorithm.
    pub fn compute(algo: &str, data: &[u8]) -> Result<Digest, DigestError> {
        let mut h = Hasher::new(algo)?;
        h.update(data);
        Ok(h.finish())
    }

    /// The algorithm part (`sha256`).
    pub fn algorithm(&self) -> &str {
        self.0.split_once(':').map(|(a, _)| a).unwrap_or("sha256")
    }

    /// The hex part, without the algorithm.
    pub fn hex(&self) -> &str {
        self.0.split_once(':').map(|(_, h)| h).unwrap_or("")
    }

    /// First 12 hex digits, as `docker images` shows ids.
    pub fn short(&self) -> &str {
        &self.hex()[..12]
    }

    /// The whole digest, `algorithm:hex`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Incremental hasher for a digest algorithm.
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 in progress.
    Sha256(Sha256),
    /// SHA-512 in progress.
    Sha512(Sha512),
}

impl Hasher {
    /// A SHA-256 hasher.
    pub fn sha256() -> Hasher {
        Hasher::Sha256(Sha256::new())
    }

    /// A hasher for `algo` (`sha256` or `sha512`).
    ///
    /// Errors: [`DigestError::Unsupported`] for another algorithm.
    pub fn new(algo: &str) -> Result<Hasher, DigestError> {
        match algo {
            "sha256" => Ok(Hasher::Sha256(Sha256::new())),
            "sha512" => Ok(Hasher::Sha512(Sha512::new())),
            other => Err(DigestError::Unsupported(other.to_string())),
        }
    }

    /// Feed more bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest(format!("sha256:{}", hex::encode(h.finalize()))),
            Hasher::Sha512(h) => Digest(format!("sha512:{}", hex::encode(h.finalize()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_rules() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(Digest::parse(&ok).is_ok());
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(matches!(
            Digest::parse("md5:abc"),
            Err(DigestError::Unsupported(_))
        ));
        assert!(Digest::parse("nocolon").is_err());
    }
}
