//! The build context: a directory (or a tar read into one), `.dockerignore` rules, source
//! selection for COPY/ADD, and the content hashes that key the cache.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use berth_store::{Digest, Hasher, Store};

use crate::BuildError;

/// One `.dockerignore` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    /// Path segments (`**` allowed as a segment).
    segs: Vec<String>,
    /// `!pattern`: re-include.
    exception: bool,
}

/// Parsed `.dockerignore` rules (later rules win; `!` re-includes).
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    rules: Vec<Rule>,
}

impl Ignore {
    /// Parse `.dockerignore` text: one pattern per line, `#` comments, `!` exceptions,
    /// `*`, `?`, `[…]` and `**` (any number of directories). Leading `/` and `./` are dropped.
    pub fn parse(text: &str) -> Ignore {
        let mut rules = Vec::new();
        for line in text.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (exception, pat) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let segs: Vec<String> = clean(pat)
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .map(str::to_string)
                .collect();
            if segs.is_empty() {
                continue;
            }
            rules.push(Rule { segs, exception });
        }
        Ignore { rules }
    }

    /// Whether there are exception (`!`) rules (then excluded directories are still walked).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// Whether `rel` (a path relative to the context, `/`-separated) is excluded. A rule
    /// matching a parent directory matches everything below it.
    pub fn excluded(&self, rel: &str) -> bool {
        let path: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let mut out = false;
        for r in &self.rules {
            let m = (1..=path.len()).any(|n| match_segs(&r.segs, &path[..n]));
            if m {
                out = !r.exception;
            }
        }
        out
    }

    /// Whether an exception rule could match something below directory `rel`.
    fn exception_below(&self, rel: &str) -> bool {
        let path: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        self.rules
            .iter()
            .filter(|r| r.exception)
            .any(|r| prefix_could_match(&r.segs, &path))
    }
}

/// Lexical clean of a pattern (`a/./b/../c` → `a/c`), leading `/` dropped.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for s in p.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    out.join("/")
}

fn match_segs(pat: &[String], path: &[&str]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|i| match_segs(rest, &path[i..])),
        Some((p, rest)) => match path.split_first() {
            Some((s, prest)) => glob_seg(p, s) && match_segs(rest, prest),
            None => false,
        },
    }
}

/// Could `pat` match some path that starts with `prefix`?
fn prefix_could_match(pat: &[String], prefix: &[&str]) -> bool {
    match (pat.split_first(), prefix.split_first()) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some((p, _)), Some(_)) if p == "**" => true,
        (Some((p, rest)), Some((s, prest))) => glob_seg(p, s) && prefix_could_match(rest, prest),
    }
}

/// Glob match of one path segment: `*`, `?`, `[abc]`, `[a-z]`, `[^x]`/`[!x]`, `\x`.
pub fn glob_seg(pat: &str, s: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let s: Vec<char> = s.chars().collect();
    glob_chars(&p, &s)
}

fn glob_chars(p: &[char], s: &[char]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some(('*', rest)) => (0..=s.len()).any(|i| glob_chars(rest, &s[i..])),
        Some(('?', rest)) => !s.is_empty() && glob_chars(rest, &s[1..]),
        Some(('[', _)) => {
            let Some(c) = s.first() else { return false };
            let mut i = 1;
            let neg = matches!(p.get(1), Some('^') | Some('!'));
            if neg {
                i += 1;
            }
            let mut matched = false;
            let mut first = true;
            while i < p.len() && (p[i] != ']' || first) {
                first = false;
                if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                    if p[i] <= *c && *c <= p[i + 2] {
                        matched = true;
                    }
                    i += 3;
                } else {
                    if p[i] == *c {
                        matched = true;
                    }
                    i += 1;
                }
            }
            if i >= p.len() {
                // No closing bracket: a literal '['.
                return *c == '[' && glob_chars(&p[1..], &s[1..]);
            }
            matched != neg && glob_chars(&p[i + 1..], &s[1..])
        }
        Some(('\\', rest)) if !rest.is_empty() => {
            s.first() == Some(&rest[0]) && glob_chars(&rest[1..], &s[1..])
        }
        Some((c, rest)) => s.first() == Some(c) && glob_chars(rest, &s[1..]),
    }
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// A build context on disk.
#[derive(Debug)]
pub struct Context {
    /// The context directory.
    pub root: PathBuf,
    ignore: Ignore,
    /// A directory this context unpacked and removes on drop (context from a tar).
    owned: Option<PathBuf>,
}

impl Drop for Context {
    fn drop(&mut self) {
        if let Some(p) = self.owned.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// `COPY --exclude` patterns of one instruction.
#[derive(Debug, Clone)]
pub struct Excludes {
    ignore: Ignore,
}

impl Excludes {
    /// `COPY --exclude` patterns (`.dockerignore` syntax: `*`, `?`, `[…]`, `**` for any number
    /// of directories; a matched directory excludes everything below it).
    pub fn new(patterns: &[String]) -> Excludes {
        Excludes {
            ignore: Ignore::parse(&patterns.join("\n")),
        }
    }

    /// Whether the entry `rel` (relative to the context or `--from` root), found below the
    /// source `base` (the source's own `rel`), is excluded: patterns are matched against its
    /// path relative to the root and relative to the source, at any depth.
    pub fn excluded(&self, base: &str, rel: &str) -> bool {
        if self.ignore.excluded(rel) {
            return true;
        }
        let b = base.trim_matches('/');
        match rel.strip_prefix(b).and_then(|r| r.strip_prefix('/')) {
            Some(inner) if !b.is_empty() && b != "." => self.ignore.excluded(inner),
            _ => false,
        }
    }
}

/// A file or directory selected by a COPY/ADD source, relative to its root.
#[derive(Debug, Clone)]
pub struct Selected {
    /// Host path.
    pub path: PathBuf,
    /// Path relative to the context (or source root), `/`-separated.
    pub rel: String,
}

impl Context {
    /// A context directory. `.dockerignore` rules are read from `ignore_file` if given and
    /// present (e.g. `Dockerfile.dockerignore` next to the Dockerfile), else from
    /// `DIR/.dockerignore`.
    pub fn from_dir(dir: &Path, ignore_file: Option<&Path>) -> Result<Context, BuildError> {
        let root = fs::canonicalize(dir).map_err(|e| {
            BuildError::Context(format!(
                "cannot use {} as the build context: {e}",
                dir.display()
            ))
        })?;
        if !root.is_dir() {
            return Err(BuildError::Context(format!(
                "the build context {} is not a directory",
                dir.display()
            )));
        }
        let mut c = Context {
            root,
            ignore: Ignore::default(),
            owned: None,
        };
        c.load_ignore(ignore_file);
        Ok(c)
    }

    fn load_ignore(&mut self, ignore_file: Option<&Path>) {
        let text = ignore_file
            .filter(|p| p.is_file())
            .and_then(|p| fs::read_to_string(p).ok())
            .or_else(|| fs::read_to_string(self.root.join(".dockerignore")).ok());
        if let Some(t) = text {
            self.ignore = Ignore::parse(&t);
        }
    }

    /// A context from a tar stream (plain or gzip), unpacked safely into the store's `tmp/`
    /// (removed when the context is dropped).
    pub fn from_tar(store: &Store, r: &mut dyn Read) -> Result<Context, BuildError> {
        let dir = store.tmp_path("context");
        fs::create_dir_all(&dir).map_err(|e| BuildError::io(&dir, e))?;
        let mut c = Context {
            root: dir.clone(),
            ignore: Ignore::default(),
            owned: Some(dir.clone()),
        };
        let mut head = [0u8; 2];
        let mut got = 0;
        while got < 2 {
            match r.read(&mut head[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => return Err(BuildError::io("standard input", e)),
            }
        }
        let chained = std::io::Cursor::new(head[..got].to_vec()).chain(r);
        let mut rd: Box<dyn Read> = if head[..got] == [0x1f, 0x8b] {
            Box::new(flate2::read::MultiGzDecoder::new(chained))
        } else {
            Box::new(chained)
        };
        if got > 0 {
            berth_image::unpack_layer(&mut rd, &dir)
                .map_err(|e| BuildError::Context(format!("the context tar cannot be read: {e}")))?;
        }
        c.load_ignore(None);
        Ok(c)
    }

    /// Whether `rel` is excluded by `.dockerignore`.
    pub fn excluded(&self, rel: &str) -> bool {
        self.ignore.excluded(rel)
    }

    /// Whether a walk of the context skips `p` (relative path `rel`): it is excluded, and it is
    /// not a directory below which an exception could re-include something.
    pub fn skip(&self, p: &Path, rel: &str) -> bool {
        if !self.excluded(rel) {
            return false;
        }
        let is_dir = fs::symlink_metadata(p).map(|m| m.is_dir()).unwrap_or(false);
        !is_dir || !self.ignore.has_exceptions() || !self.ignore.exception_below(rel)
    }

    /// Resolve a COPY/ADD source (may contain wildcards) to the paths it names, skipping
    /// excluded ones. Paths are confined to the context (`..` and absolute paths stay inside).
    pub fn select(&self, src: &str) -> Result<Vec<Selected>, BuildError> {
        select_in(&self.root, src, Some(self))
    }

    /// Content digest of a selection (names, modes, types, sizes and file contents; not
    /// mtimes or owners), plus per-file digests for explaining cache misses (at most
    /// `max_files` entries; beyond that only the total).
    pub fn hash(
        &self,
        sel: &[Selected],
        max_files: usize,
    ) -> Result<(Digest, BTreeMap<String, String>), BuildError> {
        self.hash_excluding(sel, max_files, None)
    }

    /// [`Context::hash`] leaving out what `COPY --exclude` patterns match (see
    /// [`Excludes`]), so that excluded files never change the cache key.
    ///
    /// # Errors
    /// Unreadable files.
    pub fn hash_excluding(
        &self,
        sel: &[Selected],
        max_files: usize,
        ex: Option<&Excludes>,
    ) -> Result<(Digest, BTreeMap<String, String>), BuildError> {
        let mut h = Hasher::sha256();
        let mut files = BTreeMap::new();
        for s in sel {
            self.hash_one(&s.path, &s.rel, &s.rel, &mut h, &mut files, max_files, ex)?;
        }
        Ok((h.finish(), files))
    }

    #[allow(clippy::too_many_arguments)]
    fn hash_one(
        &self,
        p: &Path,
        rel: &str,
        base: &str,
        h: &mut Hasher,
        files: &mut BTreeMap<String, String>,
        max: usize,
        ex: Option<&Excludes>,
    ) -> Result<(), BuildError> {
        let md = fs::symlink_metadata(p).map_err(|e| BuildError::io(p, e))?;
        let ft = md.file_type();
        let mode = md.permissions().mode();
        let entry = if ft.is_dir() {
            format!("d {rel} {mode:o}\n")
        } else if ft.is_symlink() {
            let t = fs::read_link(p).map_err(|e| BuildError::io(p, e))?;
            format!("l {rel} {}\n", t.display())
        } else if ft.is_file() {
            let d = file_digest(p)?;
            if files.len() < max {
                files.insert(rel.to_string(), d.hex()[..16].to_string());
            }
            format!("f {rel} {mode:o} {} {}\n", md.len(), d.hex())
        } else {
            format!("o {rel} {mode:o} {}\n", md.rdev())
        };
        h.update(entry.as_bytes());
        if ft.is_dir() {
            let mut names: Vec<_> = fs::read_dir(p)
                .map_err(|e| BuildError::io(p, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect();
            names.sort();
            for n in names {
                let child_rel = if rel.is_empty() || rel == "." {
                    n.to_string_lossy().into_owned()
                } else {
                    format!("{rel}/{}", n.to_string_lossy())
                };
                let cp = p.join(&n);
                if self.skip(&cp, &child_rel) || ex.is_some_and(|e| e.excluded(base, &child_rel)) {
                    continue;
                }
                self.hash_one(&cp, &child_rel, base, h, files, max, ex)?;
            }
        }
        Ok(())
    }
}

/// sha256 of a file's content.
fn file_digest(p: &Path) -> Result<Digest, BuildError> {
    let mut f = fs::File::open(p).map_err(|e| BuildError::io(p, e))?;
    let mut h = Hasher::sha256();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).map_err(|e| BuildError::io(p, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish())
}

/// Lexically confine `src` below a root: `..` cannot climb above it.
pub fn confine(src: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for c in Path::new(src).components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.join("/")
}

/// [`Context::select`] for any root (a context, or another stage's mounted root filesystem,
/// `ctx` = None: no ignore rules). Symlinks in the source path are not followed out of the root:
/// each selected path is checked to resolve inside it.
pub fn select_in(
    root: &Path,
    src: &str,
    ctx: Option<&Context>,
) -> Result<Vec<Selected>, BuildError> {
    let rel = confine(src);
    let mut out = Vec::new();
    if !has_glob(&rel) {
        let p = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        if fs::symlink_metadata(&p).is_err()
            || ctx.is_some_and(|c| !rel.is_empty() && c.excluded(&rel))
        {
            return Err(BuildError::NotFound(src.to_string()));
        }
        if !rel.is_empty() {
            check_inside(root, &p, src)?;
        }
        out.push(Selected {
            path: p,
            rel: if rel.is_empty() { ".".into() } else { rel },
        });
        return Ok(out);
    }
    // Wildcards: walk segment by segment.
    let segs: Vec<&str> = rel.split('/').collect();
    let mut cur: Vec<(PathBuf, String)> = vec![(root.to_path_buf(), String::new())];
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let mut next = Vec::new();
        for (dir, drel) in &cur {
            if has_glob(seg) {
                let Ok(rd) = fs::read_dir(dir) else { continue };
                let mut names: Vec<String> = rd
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                for n in names {
                    if glob_seg(seg, &n) {
                        let r = if drel.is_empty() {
                            n.clone()
                        } else {
                            format!("{drel}/{n}")
                        };
                        let p = dir.join(&n);
                        if !last && !p.is_dir() {
                            continue;
                        }
                        next.push((p, r));
                    }
                }
            } else {
                let r = if drel.is_empty() {
                    seg.to_string()
                } else {
                    format!("{drel}/{seg}")
                };
                let p = dir.join(seg);
                if fs::symlink_metadata(&p).is_ok() {
                    next.push((p, r));
                }
            }
        }
        cur = next;
    }
    for (p, r) in cur {
        if ctx.is_some_and(|c| c.excluded(&r)) {
            continue;
        }
        check_inside(root, &p, src)?;
        out.push(Selected { path: p, rel: r });
    }
    if out.is_empty() {
        return Err(BuildError::NotFound(src.to_string()));
    }
    Ok(out)
}

/// Refuse a source whose parent path resolves (through symlinks) outside the root.
fn check_inside(root: &Path, p: &Path, src: &str) -> Result<(), BuildError> {
    let parent = p.parent().unwrap_or(root);
    let real = fs::canonicalize(parent).map_err(|e| BuildError::io(parent, e))?;
    let real_root = fs::canonicalize(root).map_err(|e| BuildError::io(root, e))?;
    if !real.starts_with(&real_root) {
        return Err(BuildError::Context(format!(
            "source {src:?} leads outside the build context through a symbolic link; copy the target instead"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules() {
        let i = Ignore::parse(
            "# comment\n*.log\n!keep.log\nbuild/\n**/*.tmp\n/secret\nnode_modules\n!node_modules/keep\ndocs/**/draft*\n",
        );
        assert!(i.excluded("a.log"));
        assert!(!i.excluded("keep.log"));
        assert!(!i.excluded("sub/a.log"), "*.log only matches at the top");
        assert!(i.excluded("build"));
        assert!(i.excluded("build/x/y"));
        assert!(i.excluded("x.tmp"));
        assert!(i.excluded("a/b/c.tmp"));
        assert!(i.excluded("secret"));
        assert!(i.excluded("node_modules/x"));
        assert!(!i.excluded("node_modules/keep"));
        assert!(
            !i.excluded("node_modules/keep/file"),
            "an exception covers what is below"
        );
        assert!(i.excluded("docs/draft1"));
        assert!(i.excluded("docs/a/b/draft2"));
        assert!(!i.excluded("docs/final"));
        assert!(!i.excluded("src/main.rs"));
        assert!(i.exception_below("node_modules"));
        assert!(!i.exception_below("build"));
    }

    #[test]
    fn later_rules_win() {
        let i = Ignore::parse("!a\n*\n");
        assert!(i.excluded("a"));
        let i = Ignore::parse("*\n!a\n!dir/**\n");
        assert!(!i.excluded("a"));
        assert!(i.excluded("b"));
        assert!(!i.excluded("dir/x/y"));
    }

    #[test]
    fn globs() {
        assert!(glob_seg("*.rs", "main.rs"));
        assert!(!glob_seg("*.rs", "main.rc"));
        assert!(glob_seg("file?.txt", "file1.txt"));
        assert!(glob_seg("[a-c]x", "bx"));
        assert!(!glob_seg("[!a-c]x", "bx"));
        assert!(glob_seg("[^a]x", "zx"));
        assert!(glob_seg("\\*", "*"));
        assert!(!glob_seg("\\*", "a"));
    }

    #[test]
    fn confine_paths() {
        assert_eq!(confine("../../etc/passwd"), "etc/passwd");
        assert_eq!(confine("/abs/x"), "abs/x");
        assert_eq!(confine("./a/./b/../c"), "a/c");
        assert_eq!(confine("."), "");
    }

    #[test]
    fn select_and_hash() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir_all(d.join("src/sub")).unwrap();
        fs::write(d.join("src/a.txt"), "a").unwrap();
        fs::write(d.join("src/b.log"), "b").unwrap();
        fs::write(d.join("src/sub/c.txt"), "c").unwrap();
        fs::write(d.join(".dockerignore"), "src/*.log\n").unwrap();
        let c = Context::from_dir(d, None).unwrap();
        let s = c.select("src/*.txt").unwrap();
        assert_eq!(s.len(), 1);
        assert!(c.select("src/b.log").is_err());
        assert!(c.select("nope").is_err());
        let all = c.select("src").unwrap();
        let (h1, files) = c.hash(&all, 100).unwrap();
        assert!(files.contains_key("src/a.txt"));
        assert!(!files.contains_key("src/b.log"));
        fs::write(d.join("src/b.log"), "changed but ignored").unwrap();
        assert_eq!(c.hash(&all, 100).unwrap().0, h1);
        fs::write(d.join("src/sub/c.txt"), "C").unwrap();
        let (h2, files2) = c.hash(&all, 100).unwrap();
        assert_ne!(h1, h2);
        assert_ne!(files["src/sub/c.txt"], files2["src/sub/c.txt"]);
    }
}
