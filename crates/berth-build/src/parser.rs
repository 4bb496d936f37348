//! Dockerfile syntax: parser directives, comments, line continuations, flags, JSON and shell
//! forms, and here-documents, as BuildKit's front end reads them.
//!
//! The parser only splits the file into instructions; which words an instruction takes and
//! the variable expansion happen when a stage is built (see [`crate::expand`]), since they
//! depend on `ARG` and `ENV` values.

use crate::BuildError;

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// Name of the file, for error messages.
    pub file: String,
    /// The escape character (`\` unless a `# escape=` directive says `` ` ``).
    pub escape: char,
    /// The instructions in order (comments and empty lines dropped).
    pub instructions: Vec<Instruction>,
}

/// One instruction, continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// The instruction name, upper case (`RUN`, `COPY`, …).
    pub keyword: String,
    /// Leading `--name=value` flags (for FROM, RUN, COPY, ADD, HEALTHCHECK); `None` for a bare `--name`.
    pub flags: Vec<(String, Option<String>)>,
    /// What follows the keyword and the flags, continuations joined, trimmed.
    pub args: String,
    /// `args` as a JSON array of strings (exec form), if it is one.
    pub json: Option<Vec<String>>,
    /// Here-documents of a RUN, COPY or ADD, in order of appearance.
    pub heredocs: Vec<Heredoc>,
}

/// A here-document (`<<EOF … EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, without quotes.
    pub name: String,
    /// The body, each line ending in `\n` (leading tabs removed for `<<-`).
    pub content: String,
    /// False when the delimiter was quoted (`<<'EOF'`): no variable expansion.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped.
    pub chomp: bool,
    /// The raw text as written, from the delimiter line's end to the terminator line,
    /// for handing the whole script to a shell.
    pub raw: String,
}

impl Instruction {
    /// The value of flag `name`, if given (`Some("")` for a bare `--name`).
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
    }

    /// Every value of a repeatable flag (`--mount`, `--exclude`).
    pub fn flag_all(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_deref().unwrap_or(""))
            .collect()
    }

    /// The instruction as it would read on one line (for history and progress output).
    pub fn text(&self) -> String {
        let mut s = self.keyword.clone();
        for (n, v) in &self.flags {
            s.push_str(" --");
            s.push_str(n);
            if let Some(v) = v {
                s.push('=');
                s.push_str(v);
            }
        }
        if !self.args.is_empty() {
            s.push(' ');
            s.push_str(&self.args);
        }
        s
    }
}

/// Instructions the parser knows.
pub const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

fn takes_flags(kw: &str) -> bool {
    matches!(kw, "FROM" | "RUN" | "COPY" | "ADD" | "HEALTHCHECK")
}

fn takes_heredocs(kw: &str) -> bool {
    matches!(kw, "RUN" | "COPY" | "ADD")
}

fn syntax(file: &str, line: usize, msg: impl Into<String>) -> BuildError {
    BuildError::Syntax {
        file: file.to_string(),
        line,
        msg: msg.into(),
    }
}

/// Whether a physical line is a comment (after leading whitespace).
fn is_comment(l: &str) -> bool {
    l.trim_start().starts_with('#')
}

/// Strip a trailing escape (followed only by blanks). Returns the line and whether it ended
/// the instruction (no continuation).
fn trim_continuation(l: &str, escape: char) -> (&str, bool) {
    let t = l.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(rest) => (rest, false),
        None => (l, true),
    }
}

/// Parse a Dockerfile. `file` names it in errors (`Dockerfile:12: …`).
pub fn parse(file: &str, text: &str) -> Result<Dockerfile, BuildError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    // A trailing newline does not make an extra line.
    let nlines = if text.ends_with('\n') {
        lines.len() - 1
    } else {
        lines.len()
    };
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: `# key=value` lines at the very top.
    let mut seen = std::collections::HashSet::new();
    while i < nlines {
        let l = lines[i].trim();
        let Some(body) = l.strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = body.split_once('=') else {
            break;
        };
        let k = k.trim().to_ascii_lowercase();
        if k.is_empty() || k.contains(char::is_whitespace) {
            break;
        }
        if !seen.insert(k.clone()) {
            return Err(syntax(
                file,
                i + 1,
                format!("only one {k} parser directive can be used"),
            ));
        }
        if k == "escape" {
            escape = match v.trim() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(syntax(
                        file,
                        i + 1,
                        format!("invalid escape token {other:?}: use \\ or `"),
                    ))
                }
            };
        }
        i += 1;
    }
    let mut out = Vec::new();
    while i < nlines {
        let raw = lines[i];
        i += 1;
        let start = i;
        if is_comment(raw) || raw.trim().is_empty() {
            continue;
        }
        let (first, mut done) = trim_continuation(raw.trim_start(), escape);
        let mut line = first.to_string();
        while !done && i < nlines {
            let l = lines[i];
            i += 1;
            if is_comment(l) {
                continue;
            }
            if l.trim().is_empty() {
                // Docker warns about empty continuation lines but accepts them.
                continue;
            }
            let (part, end) = trim_continuation(l, escape);
            line.push_str(part);
            done = end;
        }
        let line = line.trim().to_string();
        if line.is_empty() {
            continue;
        }
        let (kw, rest) = match line.find(char::is_whitespace) {
            Some(p) => (&line[..p], line[p..].trim_start()),
            None => (line.as_str(), ""),
        };
        let keyword = kw.to_ascii_uppercase();
        if !KEYWORDS.contains(&keyword.as_str()) {
            return Err(syntax(
                file,
                start,
                format!("unknown instruction {kw:?}; check its spelling (instructions: FROM, RUN, COPY, ADD, ENV, ARG, CMD, ENTRYPOINT, WORKDIR, USER, LABEL, EXPOSE, VOLUME, SHELL, STOPSIGNAL, HEALTHCHECK, ONBUILD, MAINTAINER)"),
            ));
        }
        let mut ins = parse_rest(file, start, &keyword, rest)?;
        if takes_heredocs(&keyword) && ins.json.is_none() {
            for (name, expand, chomp) in heredoc_starts(&ins.args) {
                let mut content = String::new();
                let mut raw = String::new();
                let mut terminated = false;
                while i < nlines {
                    let l = lines[i];
                    i += 1;
                    raw.push_str(l);
                    raw.push('\n');
                    let cand = if chomp { l.trim_start_matches('\t') } else { l };
                    if cand == name {
                        terminated = true;
                        break;
                    }
                    content.push_str(if chomp { cand } else { l });
                    content.push('\n');
                }
                if !terminated {
                    return Err(syntax(
                        file,
                        start,
                        format!("here-document {name:?} is not terminated: add a line {name} after its content"),
                    ));
                }
                ins.heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                    chomp,
                    raw,
                });
            }
        }
        out.push(ins);
    }
    Ok(Dockerfile {
        file: file.to_string(),
        escape,
        instructions: out,
    })
}

/// Split the flags off and recognise the JSON form. Used for ONBUILD triggers too.
pub fn parse_rest(
    file: &str,
    line: usize,
    keyword: &str,
    rest: &str,
) -> Result<Instruction, BuildError> {
    let mut flags = Vec::new();
    let mut rest = rest.trim();
    if takes_flags(keyword) {
        while let Some(f) = rest.strip_prefix("--") {
            let end = f.find(char::is_whitespace).unwrap_or(f.len());
            let word = &f[..end];
            if word.is_empty() {
                break;
            }
            let (n, v) = match word.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(unquote_flag(v))),
                None => (word.to_string(), None),
            };
            flags.push((n.to_ascii_lowercase(), v));
            rest = f[end..].trim_start();
        }
    }
    let json = if rest.starts_with('[') {
        serde_json::from_str::<Vec<String>>(rest).ok()
    } else {
        None
    };
    if rest.is_empty() && !matches!(keyword, "HEALTHCHECK") {
        return Err(syntax(
            file,
            line,
            format!("{keyword} requires at least one argument"),
        ));
    }
    Ok(Instruction {
        line,
        keyword: keyword.to_string(),
        flags,
        args: rest.to_string(),
        json,
        heredocs: Vec::new(),
    })
}

/// Flag values may be quoted as a whole (`--chown="1:1"`).
fn unquote_flag(v: &str) -> String {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

/// Here-document starts in a line: words `[N]<<[-]NAME`, `<<'NAME'`, `<<"NAME"`.
/// Returns (name, expand, chomp) in order.
pub fn heredoc_starts(args: &str) -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let b: Vec<char> = args.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            } else if c == '\\' && q == '"' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            i += 1;
            continue;
        }
        if c == '\\' {
            i += 2;
            continue;
        }
        // `<<` starting a word (optionally after a file descriptor number).
        let word_start = {
            let mut k = i;
            while k > 0 && b[k - 1].is_ascii_digit() {
                k -= 1;
            }
            k == 0 || b[k - 1].is_whitespace() || matches!(b[k - 1], ';' | '&' | '|')
        };
        if c == '<'
            && word_start
            && i + 1 < b.len()
            && b[i + 1] == '<'
            && (i + 2 >= b.len() || b[i + 2] != '<')
        {
            let mut j = i + 2;
            let chomp = j < b.len() && b[j] == '-';
            if chomp {
                j += 1;
            }
            // The name: a word, possibly quoted as a whole.
            let (name, expand, end) = if j < b.len() && (b[j] == '\'' || b[j] == '"') {
                let q = b[j];
                let mut k = j + 1;
                while k < b.len() && b[k] != q {
                    k += 1;
                }
                if k >= b.len() {
                    i = j;
                    continue;
                }
                (b[j + 1..k].iter().collect::<String>(), false, k + 1)
            } else {
                let mut k = j;
                while k < b.len()
                    && !b[k].is_whitespace()
                    && !matches!(b[k], '<' | '>' | '|' | '&' | ';' | '(' | ')' | '\'' | '"')
                {
                    k += 1;
                }
                (b[j..k].iter().collect::<String>(), true, k)
            };
            if !name.is_empty() {
                out.push((name, expand, chomp));
            }
            i = end;
            continue;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<Instruction> {
        parse("Dockerfile", s).unwrap().instructions
    }

    #[test]
    fn basic_and_case() {
        let v = p("from busybox AS b\nrun echo hi\n\n# c\nCMD [\"sh\", \"-c\", \"x\"]\n");
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].keyword, "FROM");
        assert_eq!(v[0].args, "busybox AS b");
        assert_eq!(v[1].line, 2);
        assert_eq!(v[2].line, 5);
        assert_eq!(
            v[2].json.as_deref(),
            Some(&["sh".to_string(), "-c".into(), "x".into()][..])
        );
    }

    #[test]
    fn continuations_and_comments() {
        let v = p("RUN echo a && \\\n  # inner comment\n  echo b \\  \n\n  && echo c\nENV X=1\n");
        assert_eq!(v[0].args, "echo a &&   echo b   && echo c");
        assert_eq!(v[1].line, 6);
    }

    #[test]
    fn escape_directive() {
        let d = parse("x", "# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo\n").unwrap();
        assert_eq!(d.escape, '`');
        assert_eq!(d.instructions[1].args, "dir c:\\   && echo");
        // Not a directive once an instruction was seen.
        let d = parse("x", "FROM a\n# escape=`\nRUN a \\\n b\n").unwrap();
        assert_eq!(d.escape, '\\');
        assert_eq!(d.instructions[1].args, "a  b");
        assert!(parse("x", "# escape=x\nFROM a\n").is_err());
    }

    #[test]
    fn flags() {
        let v = p("COPY --from=build --chown=\"1:2\" --link a b /c/\nRUN --mount=type=cache,target=/x --network=none make\n");
        assert_eq!(v[0].flag("from"), Some("build"));
        assert_eq!(v[0].flag("chown"), Some("1:2"));
        assert_eq!(v[0].flag("link"), Some(""));
        assert_eq!(v[0].args, "a b /c/");
        assert_eq!(v[1].flag_all("mount"), vec!["type=cache,target=/x"]);
        assert_eq!(v[1].args, "make");
        // ENV values starting with -- are not flags.
        let v = p("ENV --a=b\n");
        assert!(v[0].flags.is_empty());
    }

    #[test]
    fn heredocs() {
        let v = p("FROM a\nRUN <<EOF\necho hi\n  FROM x\nEOF\nRUN <<A cat > /a && <<-\"B\" cat >/b\none $X\nA\n\ttwo\n\tB\nCOPY <<EOT /f\nhello\nEOT\nCMD x\n");
        assert_eq!(v.len(), 5);
        assert_eq!(v[1].heredocs[0].content, "echo hi\n  FROM x\n");
        assert!(v[1].heredocs[0].expand);
        assert_eq!(v[2].heredocs.len(), 2);
        assert_eq!(v[2].heredocs[0].content, "one $X\n");
        assert_eq!(v[2].heredocs[1].name, "B");
        assert_eq!(v[2].heredocs[1].content, "two\n");
        assert!(!v[2].heredocs[1].expand);
        assert!(v[2].heredocs[1].chomp);
        assert_eq!(v[3].heredocs[0].name, "EOT");
        assert_eq!(v[4].keyword, "CMD");
        assert_eq!(v[4].line, 14);
    }

    #[test]
    fn heredoc_not_in_quotes_or_json() {
        let v = p("RUN echo \"<<EOF\" '<<X'\nRUN [\"sh\", \"<<EOF\"]\n");
        assert!(v[0].heredocs.is_empty());
        assert!(v[1].heredocs.is_empty());
        assert_eq!(heredoc_starts("cat <<<x"), vec![]);
        assert_eq!(heredoc_starts("echo $((1<<2))"), vec![]);
        assert_eq!(
            heredoc_starts("a&&<<X cat"),
            vec![("X".to_string(), true, false)]
        );
        assert_eq!(
            heredoc_starts("python3 3<<'X' >out"),
            vec![("X".to_string(), false, false)]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("deploy/Containerfile", "FROM a\n\nRUNN x\n").unwrap_err();
        assert_eq!(
            e.to_string().split(' ').next().unwrap(),
            "deploy/Containerfile:3:"
        );
        let e = parse("D", "FROM a\nRUN <<EOF\nno end\n").unwrap_err();
        assert!(e.to_string().starts_with("D:2:"), "{e}");
        let e = parse("D", "FROM a\nCOPY\n").unwrap_err();
        assert!(e.to_string().starts_with("D:2:"), "{e}");
    }

    #[test]
    fn crlf_and_bom() {
        let v = p("\u{feff}FROM a\r\nRUN a \\\r\n b\r\n");
        assert_eq!(v[1].args, "a  b");
    }
}
