//! Image references, parsed and normalised as Docker does.
//!
//! `debian` → `docker.io/library/debian:latest`; `localhost:5000/a/b@sha256:…` keeps its
//! registry; a first component counts as a registry when it holds a `.` or a `:`, or is
//! `localhost`, or has upper-case letters.

use std::fmt;
use std::str::FromStr;

use berth_store::Digest;

/// Registry of references that name none (Docker Hub).
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Tag of references that name neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
const MAX_NAME: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// Why an image reference is refused (Docker's `invalid reference format` messages).
pub enum ReferenceError {
    #[error("invalid reference format: {reference:?} is empty")]
    /// Nothing to parse.
    Empty {
        /// The reference as given.
        reference: String,
    },
    #[error("invalid reference format: repository name ({name}) must be lowercase")]
    /// Upper-case letters in the repository name.
    Uppercase {
        /// The repository name.
        name: String,
    },
    #[error("invalid reference format: {reference:?}: {why}")]
    /// Malformed: the reference and why.
    Invalid {
        /// The reference as given.
        reference: String,
        /// What is wrong.
        why: String,
    },
    #[error(
        "invalid reference format: {reference:?}: repository name is longer than 255 characters"
    )]
    /// A repository name over 255 characters.
    TooLong {
        /// The reference as given.
        reference: String,
    },
    #[error("invalid reference format: {reference:?}: a bare 64-digit hex string is an image id, not a repository name")]
    /// A 64-digit hex string, which names an image id, not a repository.
    HexName {
        /// The reference as given.
        reference: String,
    },
}

/// A fully normalised image reference.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parse and normalise; a reference with neither tag nor digest gets `:latest`.
    pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
        let mut r = Self::parse_bare(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        Ok(r)
    }

    /// Parse and normalise without adding a default tag.
    pub fn parse_bare(s: &str) -> Result<Reference, ReferenceError> {
        let invalid = |why: &str| ReferenceError::Invalid {
            reference: s.to_string(),
            why: why.to_string(),
        };
        if s.is_empty() {
            return Err(ReferenceError::Empty {
                reference: s.to_string(),
            });
        }
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReferenceError::HexName {
                reference: s.to_string(),
            });
        }
        let (rest, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(Digest::parse(d).map_err(|e| invalid(&e.to_string()))?),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&rest[..i], Some(rest[i + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(invalid(&format!(
                    "tag {t:?} must be 1-128 characters of letters, digits, '_', '.' or '-', not starting with '.' or '-'"
                )));
            }
        }
        if name.is_empty() {
            return Err(invalid("repository name is empty"));
        }
        let (mut registry, mut path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), remainder.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        if !valid_domain(&registry) {
            return Err(invalid(&format!(
                "registry {registry:?} is not a valid host[:port]"
            )));
        }
        if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            registry = DEFAULT_REGISTRY.to_string();
        }
        if registry == DEFAULT_REGISTRY && !path.contains('/') {
            path = format!("library/{path}");
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase { name: path });
        }
        for comp in path.split('/') {
            if !valid_component(comp) {
                return Err(invalid(&format!(
                    "path component {comp:?} must be lowercase letters and digits, separated by '.', '_', '__' or '-'"
                )));
            }
        }
        if registry.len() + 1 + path.len() > MAX_NAME {
            return Err(ReferenceError::TooLong {
                reference: s.to_string(),
            });
        }
        Ok(Reference {
            registry,
            repository: path,
            tag,
            digest,
        })
    }

    /// Registry host (and port), e.g. `docker.io`.
    pub fn registry(&self) -> &str {
        &self.registry
    }
    /// Repository path within the registry, e.g. `library/debian`.
    pub fn repository(&self) -> &str {
        &self.repository
    }
    /// Tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    /// Manifest digest, if the reference has one (`name@sha256:…`).
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, the name stored for tags.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Name as Docker prints it: without `docker.io/` and `library/`.
    pub fn familiar_name(&self) -> String {
        if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix("library/")
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        }
    }

    /// Familiar form with tag/digest, e.g. `debian:bookworm`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }

    /// The same reference with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        }
    }

    /// The same repository pinned to a digest (no tag).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The tag or digest as a registry "reference" path element.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }
}

impl fmt::Display for Reference {
    /// Fully qualified: `docker.io/library/debian:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "."
            || sep == "_"
            || sep == "__"
            || (!sep.is_empty() && sep.bytes().all(|x| x == b'-'));
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        // IPv6 literal
        match rest.split_once(']') {
            Some((h, p)) => {
                if !h.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                    return false;
                }
                (None, p.strip_prefix(':'))
            }
            None => return false,
        }
    } else {
        match d.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(d), None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5 {
            return false;
        }
    }
    if let Some(h) = host {
        if h.is_empty() {
            return false;
        }
        for label in h.split('.') {
            let b = label.as_bytes();
            if b.is_empty()
                || !b[0].is_ascii_alphanumeric()
                || !b[b.len() - 1].is_ascii_alphanumeric()
                || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(n("debian"), "docker.io/library/debian:latest");
        assert_eq!(n("debian:bookworm"), "docker.io/library/debian:bookworm");
        assert_eq!(n("user/app"), "docker.io/user/app:latest");
        assert_eq!(n("docker.io/debian"), "docker.io/library/debian:latest");
        assert_eq!(
            n("index.docker.io/debian"),
            "docker.io/library/debian:latest"
        );
        assert_eq!(n("localhost/app"), "localhost/app:latest");
        assert_eq!(n("localhost:5000/app:1"), "localhost:5000/app:1");
        assert_eq!(
            n("127.0.0.1:5000/team/app:1.2"),
            "127.0.0.1:5000/team/app:1.2"
        );
        assert_eq!(n("quay.io/a/b/c"), "quay.io/a/b/c:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r = Reference::parse(&format!("127.0.0.1:5000/team/app@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().as_str(), d);
        let r = Reference::parse(&format!("app:1@{d}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.familiar(), format!("app:1@{d}"));
        assert_eq!(
            Reference::parse("a_b.c-d__e").unwrap().familiar(),
            "a_b.c-d__e:latest"
        );
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "Debian",
            "debian:",
            ":tag",
            "a//b",
            "-a",
            "a-",
            "a:b:c",
            "a@sha256:12",
            "a:.tag",
            "a..b",
            "ex ample",
            "host:port/x",
            "a___b",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(matches!(
            Reference::parse(&"a".repeat(64)),
            Err(ReferenceError::HexName { .. })
        ));
        assert!(Reference::parse(&format!("x/{}", "a".repeat(300))).is_err());
        let e = Reference::parse("Debian").unwrap_err().to_string();
        assert!(e.contains("must be lowercase"), "{e}");
    }
}
