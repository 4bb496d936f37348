//! Authentication: `WWW-Authenticate` challenges, and credentials in Docker's `config.json`
//! (including `credsStore` / `credHelpers`).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{RegistryError, Result};

/// Docker's key for Docker Hub in `config.json`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-cased scheme, e.g. `bearer` or `basic`.
    pub scheme: String,
    /// Parameters with lower-cased names.
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// The value of parameter `name` (lower-case), e.g. `realm`, `service`, `scope`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Parse a `WWW-Authenticate` header value (RFC 7235): one or more challenges, each a scheme
/// followed by comma-separated `name=value` or `name="quoted value"` parameters.
pub fn parse_www_authenticate(header: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    let s = header.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && (s[*i] == b' ' || s[*i] == b'\t' || s[*i] == b',') {
            *i += 1;
        }
    };
    let token = |i: &mut usize| -> String {
        let start = *i;
        while *i < s.len() && !matches!(s[*i], b' ' | b'\t' | b',' | b'=' | b'"') {
            *i += 1;
        }
        header[start..*i].to_string()
    };
    loop {
        skip_ws(&mut i);
        if i >= s.len() {
            break;
        }
        let word = token(&mut i);
        if word.is_empty() {
            i += 1;
            continue;
        }
        // Look ahead: `word=` is a parameter of the current challenge; otherwise a new scheme.
        let mut j = i;
        while j < s.len() && (s[j] == b' ' || s[j] == b'\t') {
            j += 1;
        }
        if j < s.len() && s[j] == b'=' && !out.is_empty() {
            i = j + 1;
            while i < s.len() && (s[i] == b' ' || s[i] == b'\t') {
                i += 1;
            }
            let value = if i < s.len() && s[i] == b'"' {
                i += 1;
                let mut v = Vec::new();
                while i < s.len() && s[i] != b'"' {
                    if s[i] == b'\\' && i + 1 < s.len() {
                        i += 1;
                    }
                    v.push(s[i]);
                    i += 1;
                }
                i += 1; // closing quote
                String::from_utf8_lossy(&v).into_owned()
            } else {
                token(&mut i)
            };
            out.last_mut()
                .expect("checked non-empty")
                .params
                .insert(word.to_ascii_lowercase(), value);
        } else if j < s.len() && s[j] == b'=' {
            // token68 or garbage before any scheme: skip it.
            i = j + 1;
            let _ = token(&mut i);
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

/// A username and password (or identity token when the username is `<token>`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name (`<token>`: `password` is an identity token).
    pub username: String,
    /// Password, or identity token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// `Basic …` header value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Normalise a registry as users type it (`https://host/v2/`, `docker.io`, …) to `host[:port]`.
pub fn normalize_registry(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s).to_ascii_lowercase();
    match host.as_str() {
        "" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

/// The key used for a registry in `config.json` and with credential helpers.
pub fn config_key(registry: &str) -> String {
    let r = normalize_registry(registry);
    if r == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        r
    }
}

/// Which auth file to use: `--authfile`, else `REGISTRY_AUTH_FILE`, else
/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn auth_file_path(explicit: Option<&Path>) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
        return PathBuf::from(d).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker").join("config.json")
}

/// Docker's `config.json`, kept as JSON so unknown members survive a rewrite.
#[derive(Debug, Clone)]
pub struct AuthFile {
    /// Path of the file (it need not exist yet).
    pub path: PathBuf,
    doc: Map<String, Value>,
}

impl AuthFile {
    /// Read the file; a missing file is an empty document.
    pub fn load(path: &Path) -> Result<AuthFile> {
        let doc = match std::fs::read(path) {
            Ok(b) if b.iter().all(|c| c.is_ascii_whitespace()) => Map::new(),
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(RegistryError::ConfigFile {
                        path: path.into(),
                        message: "is not a JSON object; fix or remove it".into(),
                    })
                }
                Err(e) => {
                    return Err(RegistryError::ConfigFile {
                        path: path.into(),
                        message: format!("invalid JSON ({e}); fix or remove it"),
                    })
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(RegistryError::io(path, e)),
        };
        Ok(AuthFile {
            path: path.to_path_buf(),
            doc,
        })
    }

    /// The credential helper responsible for `registry`, if any.
    pub fn helper_for(&self, registry: &str) -> Option<String> {
        let key = config_key(registry);
        let norm = normalize_registry(registry);
        if let Some(Value::Object(h)) = self.doc.get("credHelpers") {
            for (k, v) in h {
                if (k == &key || normalize_registry(k) == norm) && v.is_string() {
                    return v.as_str().map(String::from);
                }
            }
        }
        self.doc
            .get("credsStore")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(String::from)
    }

    fn auth_entry_key(&self, registry: &str) -> Option<String> {
        let key = config_key(registry);
        let norm = normalize_registry(registry);
        let auths = self.doc.get("auths")?.as_object()?;
        if auths.contains_key(&key) {
            return Some(key);
        }
        auths
            .keys()
            .find(|k| normalize_registry(k) == norm)
            .cloned()
    }

    /// Credentials stored inline in `auths` (not via a helper).
    pub fn inline_credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        let Some(k) = self.auth_entry_key(registry) else {
            return Ok(None);
        };
        let entry = &self.doc["auths"][&k];
        if let Some(tok) = entry.get("identitytoken").and_then(|v| v.as_str()) {
            if !tok.is_empty() {
                return Ok(Some(Credentials {
                    username: "<token>".into(),
                    password: tok.into(),
                }));
            }
        }
        let auth = entry.get("auth").and_then(|v| v.as_str()).unwrap_or("");
        if auth.is_empty() {
            let u = entry.get("username").and_then(|v| v.as_str());
            let p = entry.get("password").and_then(|v| v.as_str());
            return Ok(match (u, p) {
                (Some(u), Some(p)) => Some(Credentials {
                    username: u.into(),
                    password: p.into(),
                }),
                _ => None,
            });
        }
        let bad = || RegistryError::ConfigFile {
            path: self.path.clone(),
            message: format!("auths.{k}.auth is not base64 of user:password; log in again"),
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (u, p) = raw.split_once(':').ok_or_else(bad)?;
        Ok(Some(Credentials {
            username: u.into(),
            password: p.into(),
        }))
    }

    /// Credentials for `registry`, from a helper or inline.
    pub fn credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        if let Some(h) = self.helper_for(registry) {
            if let Some(c) = helper_get(&h, &config_key(registry))? {
                return Ok(Some(c));
            }
        }
        self.inline_credentials(registry)
    }

    /// Save credentials (through the helper when one is configured).
    pub fn store(&mut self, registry: &str, creds: &Credentials) -> Result<()> {
        let key = config_key(registry);
        let helper = self.helper_for(registry);
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let auths = auths.as_object_mut().expect("made an object");
        // Drop entries that spell the same registry differently.
        let norm = normalize_registry(registry);
        auths.retain(|k, _| k == &key || normalize_registry(k) != norm);
        if let Some(h) = helper {
            helper_store(&h, &key, creds)?;
            self.doc["auths"]
                .as_object_mut()
                .expect("made an object")
                .insert(key, Value::Object(Map::new()));
        } else {
            let auth = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", creds.username, creds.password));
            let mut entry = Map::new();
            entry.insert("auth".into(), Value::String(auth));
            auths.insert(key, Value::Object(entry));
        }
        self.save()
    }

    /// Remove credentials; returns whether any were present.
    pub fn erase(&mut self, registry: &str) -> Result<bool> {
        let mut found = false;
        if let Some(h) = self.helper_for(registry) {
            found |= helper_erase(&h, &config_key(registry))?;
        }
        while let Some(k) = self.auth_entry_key(registry) {
            if let Some(a) = self.doc.get_mut("auths").and_then(|a| a.as_object_mut()) {
                a.remove(&k);
                found = true;
            }
        }
        if found {
            self.save()?;
        }
        Ok(found)
    }

    /// Write the file atomically with mode 0600 (directory 0700 when created).
    pub fn save(&self) -> Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|e| RegistryError::io(dir, e))?;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let mut data = serde_json::to_vec_pretty(&Value::Object(self.doc.clone()))
            .map_err(|e| RegistryError::Other(format!("cannot encode auth file: {e}")))?;
        data.push(b'\n');
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config.json".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let res = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(&data)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        })();
        if let Err(e) = res {
            let _ = std::fs::remove_file(&tmp);
            return Err(RegistryError::io(&self.path, e));
        }
        Ok(())
    }
}

fn run_helper(helper: &str, verb: &str, input: &[u8]) -> Result<(bool, String, String)> {
    let prog = format!("docker-credential-{helper}");
    let mut child = Command::new(&prog)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RegistryError::CredentialHelper {
            helper: helper.into(),
            message: format!("cannot run {prog}: {e}; install it or remove it from the auth file"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| RegistryError::CredentialHelper {
            helper: helper.into(),
            message: e.to_string(),
        })?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    ))
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>> {
    let (ok, stdout, stderr) = run_helper(helper, "get", server.as_bytes())?;
    if !ok {
        let msg = if stdout.is_empty() { stderr } else { stdout };
        if msg.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        return Err(RegistryError::CredentialHelper {
            helper: helper.into(),
            message: format!("get failed: {msg}"),
        });
    }
    let v: Value = serde_json::from_str(&stdout).map_err(|e| RegistryError::CredentialHelper {
        helper: helper.into(),
        message: format!("get returned invalid JSON: {e}"),
    })?;
    let user = v.get("Username").and_then(|x| x.as_str()).unwrap_or("");
    let secret = v.get("Secret").and_then(|x| x.as_str()).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credentials {
        username: user.into(),
        password: secret.into(),
    }))
}

fn helper_store(helper: &str, server: &str, c: &Credentials) -> Result<()> {
    let input =
        serde_json::json!({"ServerURL": server, "Username": c.username, "Secret": c.password});
    let (ok, stdout, stderr) = run_helper(helper, "store", input.to_string().as_bytes())?;
    if !ok {
        return Err(RegistryError::CredentialHelper {
            helper: helper.into(),
            message: format!(
                "store failed: {}",
                if stdout.is_empty() { stderr } else { stdout }
            ),
        });
    }
    Ok(())
}

fn helper_erase(helper: &str, server: &str) -> Result<bool> {
    let (ok, stdout, stderr) = run_helper(helper, "erase", server.as_bytes())?;
    if !ok {
        let msg = if stdout.is_empty() { stderr } else { stdout };
        if msg.to_ascii_lowercase().contains("not found") {
            return Ok(false);
        }
        return Err(RegistryError::CredentialHelper {
            helper: helper.into(),
            message: format!("erase failed: {msg}"),
        });
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_challenges() {
        let c = parse_www_authenticate(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/debian:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("https://auth.docker.io/token"));
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].param("scope"), Some("repository:library/debian:pull"));

        let c = parse_www_authenticate(r#"Basic realm="Registry Realm""#);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));

        let c = parse_www_authenticate(
            r#"Basic realm="a, b", Bearer realm=http://x/t , service = "s\"q", error="insufficient_scope""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some("a, b"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("http://x/t"));
        assert_eq!(c[1].param("service"), Some("s\"q"));
        assert_eq!(c[1].param("error"), Some("insufficient_scope"));

        assert!(parse_www_authenticate("").is_empty());
        let c = parse_www_authenticate("Negotiate");
        assert_eq!(c[0].scheme, "negotiate");
        assert!(c[0].params.is_empty());
    }

    #[test]
    fn normalises_registries() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("registry-1.docker.io"), "docker.io");
        assert_eq!(
            normalize_registry("http://127.0.0.1:5000/v2/"),
            "127.0.0.1:5000"
        );
        assert_eq!(config_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(config_key("Quay.io"), "quay.io");
    }

    #[test]
    fn config_json_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        let mut f = AuthFile::load(&path).unwrap();
        assert!(f.credentials("127.0.0.1:5000").unwrap().is_none());
        let c = Credentials {
            username: "alice".into(),
            password: "s3cr:et".into(),
        };
        f.store("127.0.0.1:5000", &c).unwrap();
        f.store("docker.io", &c).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let raw: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            raw["auths"]["127.0.0.1:5000"]["auth"],
            base64::engine::general_purpose::STANDARD.encode("alice:s3cr:et")
        );
        assert!(raw["auths"][DOCKER_HUB_KEY]["auth"].is_string());

        // Unknown members survive a rewrite; other spellings of a host are found.
        let mut doc = raw.clone();
        doc["psFormat"] = Value::String("x".into());
        doc["auths"]["https://quay.io"] =
            serde_json::json!({"auth": base64::engine::general_purpose::STANDARD.encode("bob:pw")});
        std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
        let mut f = AuthFile::load(&path).unwrap();
        assert_eq!(f.credentials("quay.io").unwrap().unwrap().username, "bob");
        assert_eq!(f.credentials("index.docker.io").unwrap(), Some(c.clone()));
        assert!(f.erase("127.0.0.1:5000").unwrap());
        assert!(!f.erase("127.0.0.1:5000").unwrap());
        let raw: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(raw["psFormat"], "x");
        assert!(raw["auths"].get("127.0.0.1:5000").is_none());

        std::fs::write(&path, b"{not json").unwrap();
        let e = AuthFile::load(&path).unwrap_err().to_string();
        assert!(e.contains("invalid JSON"), "{e}");
    }

    #[test]
    fn credential_helper_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir(&store).unwrap();
        let helper = dir.path().join("docker-credential-berthtest");
        // A tiny helper keeping one secret per server in a file.
        std::fs::write(
            &helper,
            format!(
                r#"#!/bin/sh
S={store}
case "$1" in
  store) cat > "$S/in"; server=$(sed 's/.*"ServerURL":"\([^"]*\)".*/\1/' "$S/in" | tr '/:' '__'); mv "$S/in" "$S/$server";;
  get) read server; f="$S/$(echo "$server" | tr '/:' '__')"; if [ -f "$f" ]; then sed 's/"ServerURL":"[^"]*",//' "$f"; else echo "credentials not found in native keychain"; exit 1; fi;;
  erase) read server; rm "$S/$(echo "$server" | tr '/:' '__')";;
esac
"#,
                store = store.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let old_path = std::env::var("PATH").unwrap_or_default();
        // Only this test looks anything up through PATH changes; other tests do not run helpers.
        std::env::set_var("PATH", format!("{}:{old_path}", dir.path().display()));
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            br#"{"credHelpers":{"reg.example:5000":"berthtest"}}"#,
        )
        .unwrap();
        let mut f = AuthFile::load(&path).unwrap();
        assert_eq!(
            f.helper_for("reg.example:5000").as_deref(),
            Some("berthtest")
        );
        assert_eq!(f.helper_for("other.example"), None);
        assert!(f.credentials("reg.example:5000").unwrap().is_none());
        let c = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        f.store("reg.example:5000", &c).unwrap();
        let raw = std::fs::read_to_string(&path).unwrap();
        assert!(!raw.contains("\"auth\""), "{raw}");
        assert_eq!(f.credentials("reg.example:5000").unwrap(), Some(c));
        assert!(f.erase("reg.example:5000").unwrap());
        assert!(f.credentials("reg.example:5000").unwrap().is_none());
    }
}
