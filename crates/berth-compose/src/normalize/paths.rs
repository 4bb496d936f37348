//! Relative paths made absolute against the directory of the file that wrote them.

use super::*;

/// Lexically join `rel` onto `base` and clean it (`.`/`..` removed), as Go's filepath.Join.
pub fn clean_join(base: &Path, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

pub(super) fn abs_path(base: &Path, p: &str, home: Option<&str>) -> String {
    if let (Some(rest), Some(h)) = (p.strip_prefix('~'), home) {
        if rest.is_empty() || rest.starts_with('/') {
            return clean_join(Path::new(h), rest.trim_start_matches('/'))
                .display()
                .to_string();
        }
    }
    clean_join(base, p).display().to_string()
}

pub(super) fn is_remote(ctx: &str) -> bool {
    ctx.contains("://") || ctx.starts_with("git@") || ctx.starts_with("github.com/")
}

/// Make a service's relative host paths absolute against `base` (build context, bind
/// sources, env files, extends.file). `home` expands `~`.
pub fn rebase_service(svc: &mut Node, base: &Path, home: Option<&str>) {
    if let Some(b) = svc.get_mut("build") {
        if let Some(c) = b.get_mut("context") {
            if let Some(t) = c.as_str().map(str::to_string) {
                if !is_remote(&t) {
                    *c = Node::string(abs_path(base, &t, home), c.mark.clone());
                }
            }
        }
    }
    if let Some(Kind::Seq(items)) = svc.get_mut("volumes").map(|n| &mut n.kind) {
        for it in items.iter_mut() {
            if it.get("type").and_then(Node::as_str) == Some("bind") {
                if let Some(src) = it.get_mut("source") {
                    if let Some(t) = src.as_str().map(str::to_string) {
                        *src = Node::string(abs_path(base, &t, home), src.mark.clone());
                    }
                }
            }
        }
    }
    if let Some(Kind::Seq(items)) = svc.get_mut("env_file").map(|n| &mut n.kind) {
        for it in items.iter_mut() {
            if let Some(p) = it.get_mut("path") {
                if let Some(t) = p.as_str().map(str::to_string) {
                    *p = Node::string(abs_path(base, &t, home), p.mark.clone());
                }
            }
        }
    }
    if let Some(e) = svc.get_mut("extends") {
        if let Some(f) = e.get_mut("file") {
            if let Some(t) = f.as_str().map(str::to_string) {
                *f = Node::string(abs_path(base, &t, home), f.mark.clone());
            }
        }
    }
}

/// Make top-level secrets/configs `file:` paths absolute against `base`.
pub fn rebase_top(root: &mut Node, base: &Path, home: Option<&str>) {
    for section in ["secrets", "configs"] {
        if let Some(Kind::Map(entries)) = root.get_mut(section).map(|n| &mut n.kind) {
            for (_, v) in entries.iter_mut() {
                if let Some(f) = v.get_mut("file") {
                    if let Some(t) = f.as_str().map(str::to_string) {
                        *f = Node::string(abs_path(base, &t, home), f.mark.clone());
                    }
                }
            }
        }
    }
}
