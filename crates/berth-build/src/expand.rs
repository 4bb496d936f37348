//! Docker's word expansion: quotes, escapes and `$V`, `${V}`, `${V:-x}`, `${V-x}`, `${V:+x}`,
//! `${V+x}`, `${V:?msg}`, `${V?msg}`, `${V#pat}`, `${V##pat}`, `${V%pat}`, `${V%%pat}`,
//! `${V/pat/repl}`, `${V//pat/repl}`, as BuildKit's shell lexer does it for the instructions
//! Docker expands (ADD, ARG, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR).
//!
//! Unset variables expand to nothing. Outside double quotes a variable's value is split into
//! words by [`words`]; [`word`] never splits.

/// Variable lookup: `None` means unset.
pub trait Vars {
    /// The value of `name`, or `None` if it is not set.
    fn get(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Builds the result: either one string, or words split on unquoted blanks.
struct Out {
    words: Vec<String>,
    cur: String,
    in_word: bool,
}

impl Out {
    fn raw(&mut self, c: char) {
        self.cur.push(c);
        self.in_word = true;
    }
    fn raw_str(&mut self, s: &str) {
        self.cur.push_str(s);
        self.in_word = true;
    }
    /// A character that splits words when blank.
    fn split_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word {
                self.words.push(std::mem::take(&mut self.cur));
                self.in_word = false;
            }
        } else {
            self.raw(c);
        }
    }
    fn split_str(&mut self, s: &str) {
        for c in s.chars() {
            self.split_char(c);
        }
    }
}

struct Lexer<'a> {
    s: Vec<char>,
    pos: usize,
    escape: char,
    vars: &'a dyn Vars,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Process until `stop` (unquoted, unescaped) or the end. Returns the words and the joined text.
    fn process(&mut self, stops: &[char]) -> Result<(Vec<String>, String), String> {
        let mut out = Out {
            words: Vec::new(),
            cur: String::new(),
            in_word: false,
        };
        let mut joined = String::new();
        while let Some(c) = self.peek() {
            if stops.contains(&c) {
                break;
            }
            if c == '\'' {
                self.next();
                let s = self.single_quoted()?;
                joined.push_str(&s);
                out.raw_str(&s);
            } else if c == '"' {
                self.next();
                let s = self.double_quoted()?;
                joined.push_str(&s);
                out.raw_str(&s);
            } else if c == '$' {
                self.next();
                let v = self.dollar()?;
                joined.push_str(&v);
                out.split_str(&v);
            } else if c == self.escape {
                self.next();
                match self.next() {
                    None => break,
                    Some(n) => {
                        joined.push(n);
                        out.raw(n);
                    }
                }
            } else {
                self.next();
                joined.push(c);
                out.split_char(c);
            }
        }
        if out.in_word {
            out.words.push(out.cur);
        }
        Ok((out.words, joined))
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.next();
                    return Ok(s);
                }
                Some('$') => {
                    self.next();
                    let v = self.dollar()?;
                    s.push_str(&v);
                }
                Some(c) if c == self.escape => {
                    self.next();
                    match self.peek() {
                        None => {}
                        Some(n) if n == '"' || n == '$' || n == self.escape => {
                            self.next();
                            s.push(n);
                        }
                        Some(_) => s.push(c),
                    }
                }
                Some(c) => {
                    self.next();
                    s.push(c);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        // A positional `$1` is one digit.
        if let Some(c) = self.peek() {
            if c.is_ascii_digit() {
                self.next();
                n.push(c);
                return n;
            }
        }
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.next();
            } else {
                break;
            }
        }
        n
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, String> {
        if self.peek() != Some('{') {
            let n = self.name();
            if n.is_empty() {
                return Ok("$".into());
            }
            return Ok(self.vars.get(&n).unwrap_or_default());
        }
        self.next();
        let n = self.name();
        if n.is_empty() {
            return Err("bad substitution: a ${} needs a variable name".into());
        }
        let val = self.vars.get(&n);
        match self.next() {
            Some('}') => Ok(val.unwrap_or_default()),
            Some(':') => {
                let op = self.next().ok_or("bad substitution: unterminated ${")?;
                let (_, word) = self.process(&['}'])?;
                self.close()?;
                let set_nonempty = val.as_deref().is_some_and(|v| !v.is_empty());
                match op {
                    '-' => Ok(if set_nonempty {
                        val.unwrap_or_default()
                    } else {
                        word
                    }),
                    '+' => Ok(if set_nonempty { word } else { String::new() }),
                    '?' => {
                        if set_nonempty {
                            Ok(val.unwrap_or_default())
                        } else if word.is_empty() {
                            Err(format!("{n}: is not allowed to be unset or empty"))
                        } else {
                            Err(format!("{n}: {word}"))
                        }
                    }
                    _ => Err(format!(
                        "unsupported modifier ({op}) in substitution of {n}"
                    )),
                }
            }
            Some(op @ ('-' | '+' | '?')) => {
                let (_, word) = self.process(&['}'])?;
                self.close()?;
                match op {
                    '-' => Ok(val.unwrap_or(word)),
                    '+' => Ok(if val.is_some() { word } else { String::new() }),
                    _ => match val {
                        Some(v) => Ok(v),
                        None if word.is_empty() => Err(format!("{n}: is not allowed to be unset")),
                        None => Err(format!("{n}: {word}")),
                    },
                }
            }
            Some(op @ ('#' | '%')) => {
                let longest = self.peek() == Some(op);
                if longest {
                    self.next();
                }
                let (_, pat) = self.process(&['}'])?;
                self.close()?;
                let v = val.unwrap_or_default();
                Ok(if op == '#' {
                    trim_prefix(&v, &pat, longest)
                } else {
                    trim_suffix(&v, &pat, longest)
                })
            }
            Some('/') => {
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let (_, pat) = self.process(&['/', '}'])?;
                let repl = if self.peek() == Some('/') {
                    self.next();
                    self.process(&['}'])?.1
                } else {
                    String::new()
                };
                self.close()?;
                Ok(replace(&val.unwrap_or_default(), &pat, &repl, all))
            }
            Some(c) => Err(format!("unsupported modifier ({c}) in substitution of {n}")),
            None => Err("bad substitution: missing }".into()),
        }
    }

    fn close(&mut self) -> Result<(), String> {
        match self.next() {
            Some('}') => Ok(()),
            _ => Err("bad substitution: missing }".into()),
        }
    }
}

/// Shell-style glob match of the whole `s` (`*`, `?`, others literal).
fn glob(pat: &[char], s: &[char]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some(('*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some(('?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

fn trim_prefix(v: &str, pat: &str, longest: bool) -> String {
    let s: Vec<char> = v.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    let mut lens: Vec<usize> = (0..=s.len()).collect();
    if longest {
        lens.reverse();
    }
    for n in lens {
        if glob(&p, &s[..n]) {
            return s[n..].iter().collect();
        }
    }
    v.to_string()
}

fn trim_suffix(v: &str, pat: &str, longest: bool) -> String {
    let s: Vec<char> = v.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    let mut starts: Vec<usize> = (0..=s.len()).rev().collect();
    if longest {
        starts.reverse();
    }
    for st in starts {
        if glob(&p, &s[st..]) {
            return s[..st].iter().collect();
        }
    }
    v.to_string()
}

fn replace(v: &str, pat: &str, repl: &str, all: bool) -> String {
    if pat.is_empty() {
        return v.to_string();
    }
    let s: Vec<char> = v.chars().collect();
    let p: Vec<char> = pat.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut done = false;
    while i < s.len() {
        if !done {
            // Longest match starting at i.
            if let Some(end) = (i + 1..=s.len()).rev().find(|&e| glob(&p, &s[i..e])) {
                out.push_str(repl);
                i = end;
                if !all {
                    done = true;
                }
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// Expand one word (quotes removed, no splitting). `escape` is the Dockerfile's escape char.
pub fn word(s: &str, vars: &dyn Vars, escape: char) -> Result<String, String> {
    let mut l = Lexer {
        s: s.chars().collect(),
        pos: 0,
        escape,
        vars,
    };
    Ok(l.process(&[])?.1)
}

/// Expand and split into words on unquoted blanks (quotes removed).
pub fn words(s: &str, vars: &dyn Vars, escape: char) -> Result<Vec<String>, String> {
    let mut l = Lexer {
        s: s.chars().collect(),
        pos: 0,
        escape,
        vars,
    };
    Ok(l.process(&[])?.0)
}

/// Expand only variables in here-document content (quotes are kept; `\$` is a literal `$`).
pub fn heredoc(s: &str, vars: &dyn Vars, escape: char) -> Result<String, String> {
    let mut l = Lexer {
        s: s.chars().collect(),
        pos: 0,
        escape,
        vars,
    };
    let mut out = String::new();
    while let Some(c) = l.next() {
        if c == '$' {
            out.push_str(&l.dollar()?);
        } else if c == escape && l.peek() == Some('$') {
            l.next();
            out.push('$');
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Split into words without expanding, keeping quotes and escapes as written (for `K=V`
/// lists, whose values are expanded one by one afterwards).
pub fn split_raw(s: &str, escape: char) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    let mut have = false;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                } else if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
            None => {
                if c.is_whitespace() {
                    if have {
                        out.push(std::mem::take(&mut cur));
                        have = false;
                    }
                    continue;
                }
                have = true;
                cur.push(c);
                if c == '"' || c == '\'' {
                    quote = Some(c);
                } else if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if have {
        out.push(cur);
    }
    Ok(out)
}

/// `K=V …` pairs (ENV, LABEL, ARG), or the legacy one-pair form `K V…` when `legacy` allows
/// it and the first word has no `=`. Values are expanded; keys too, as Docker does.
pub fn pairs(
    s: &str,
    vars: &dyn Vars,
    escape: char,
    legacy: bool,
) -> Result<Vec<(String, String)>, String> {
    let raw = split_raw(s, escape)?;
    if raw.is_empty() {
        return Err("requires at least one argument".into());
    }
    if legacy && !raw[0].contains('=') {
        let t = s.trim();
        let (k, v) = t
            .split_once(char::is_whitespace)
            .ok_or("must have two arguments: NAME VALUE (or NAME=VALUE)")?;
        return Ok(vec![(k.to_string(), word(v.trim(), vars, escape)?)]);
    }
    raw.iter()
        .map(|w| {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("{w:?}: expected NAME=VALUE"))?;
            let k = word(k, vars, escape)?;
            if k.is_empty() {
                return Err(format!("{w:?}: the name is empty"));
            }
            Ok((k, word(v, vars, escape)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env() -> HashMap<String, String> {
        [
            ("A", "alpha"),
            ("E", ""),
            ("SP", "x  y"),
            ("P", "/usr/local/bin/app.tar.gz"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn w(s: &str) -> String {
        let e = env();
        word(s, &|n: &str| e.get(n).cloned(), '\\').unwrap()
    }
    fn ws(s: &str) -> Vec<String> {
        let e = env();
        words(s, &|n: &str| e.get(n).cloned(), '\\').unwrap()
    }
    fn err(s: &str) -> String {
        let e = env();
        word(s, &|n: &str| e.get(n).cloned(), '\\').unwrap_err()
    }

    #[test]
    fn simple() {
        assert_eq!(w("$A"), "alpha");
        assert_eq!(w("${A}"), "alpha");
        assert_eq!(w("x$A.y"), "xalpha.y");
        assert_eq!(w("${A}_x"), "alpha_x");
        assert_eq!(w("$A_x"), "");
        assert_eq!(w("$NOPE"), "");
        assert_eq!(w("a$"), "a$");
        assert_eq!(w("$-x"), "$-x");
        assert_eq!(w("$1x"), "x");
    }

    #[test]
    fn defaults_and_alternatives() {
        assert_eq!(w("${NOPE:-def}"), "def");
        assert_eq!(w("${E:-def}"), "def");
        assert_eq!(w("${E-def}"), "");
        assert_eq!(w("${NOPE-def}"), "def");
        assert_eq!(w("${A:-def}"), "alpha");
        assert_eq!(w("${A:+alt}"), "alt");
        assert_eq!(w("${E:+alt}"), "");
        assert_eq!(w("${E+alt}"), "alt");
        assert_eq!(w("${NOPE+alt}"), "");
        assert_eq!(w("${NOPE:-$A}"), "alpha");
        assert_eq!(w("${NOPE:-${E:-deep}}"), "deep");
        assert_eq!(w("${NOPE:-a b}"), "a b");
        assert_eq!(w("${NOPE:-\"q\"}"), "q");
    }

    #[test]
    fn required() {
        assert_eq!(w("${A:?must}"), "alpha");
        assert_eq!(err("${NOPE:?must be set}"), "NOPE: must be set");
        assert_eq!(err("${E:?}"), "E: is not allowed to be unset or empty");
        assert_eq!(w("${E?x}"), "");
        assert_eq!(err("${NOPE?}"), "NOPE: is not allowed to be unset");
    }

    #[test]
    fn patterns() {
        assert_eq!(w("${P#*/}"), "usr/local/bin/app.tar.gz");
        assert_eq!(w("${P##*/}"), "app.tar.gz");
        assert_eq!(w("${P%.*}"), "/usr/local/bin/app.tar");
        assert_eq!(w("${P%%.*}"), "/usr/local/bin/app");
        assert_eq!(w("${A/l/L}"), "aLpha");
        assert_eq!(w("${A//a/4}"), "4lph4");
        assert_eq!(w("${A/ph}"), "ala");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A\""), "alpha");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("\"\\$A\""), "$A");
        assert_eq!(w("\"a\\nb\""), "a\\nb");
        assert_eq!(w("\"say \\\"hi\\\"\""), "say \"hi\"");
        assert_eq!(w("a\\ b"), "a b");
        assert_eq!(w("\\\\"), "\\");
        assert_eq!(w("x\\"), "x");
        assert_eq!(w("'it''s'"), "its");
        assert_eq!(
            word("`$A", &|_: &str| Some("v".to_string()), '`').unwrap(),
            "$A"
        );
        assert_eq!(word("c:\\dir", &|_: &str| None, '`').unwrap(), "c:\\dir");
        assert!(err("'open").contains("single-quote"));
        assert!(err("\"open").contains("double-quote"));
        assert!(err("${}").contains("bad substitution"));
        assert!(err("${A").contains("missing }"));
    }

    #[test]
    fn heredoc_content() {
        let e = env();
        let h = |s: &str| heredoc(s, &|n: &str| e.get(n).cloned(), '\\').unwrap();
        assert_eq!(h("say \"$A\" 'x'\n"), "say \"alpha\" 'x'\n");
        assert_eq!(h("cost \\$5 ${NOPE:-d}"), "cost $5 d");
    }

    #[test]
    fn word_splitting() {
        assert_eq!(ws("a b  c"), vec!["a", "b", "c"]);
        assert_eq!(ws("$SP z"), vec!["x", "y", "z"]);
        assert_eq!(ws("\"$SP\" z"), vec!["x  y", "z"]);
        assert_eq!(ws("'a b' \"c d\""), vec!["a b", "c d"]);
        assert_eq!(ws("a\\ b c"), vec!["a b", "c"]);
        assert_eq!(ws("\"\""), vec![""]);
        assert_eq!(ws("$NOPE x"), vec!["x"]);
        assert_eq!(ws("src/$A.txt /dst/"), vec!["src/alpha.txt", "/dst/"]);
    }

    #[test]
    fn key_value_pairs() {
        let e = env();
        let v = |s: &str, legacy| pairs(s, &|n: &str| e.get(n).cloned(), '\\', legacy);
        assert_eq!(
            v("X=1 Y=\"two words\" Z=$A W=a\\ b", true).unwrap(),
            vec![
                ("X".into(), "1".into()),
                ("Y".into(), "two words".into()),
                ("Z".into(), "alpha".into()),
                ("W".into(), "a b".into())
            ]
        );
        assert_eq!(
            v("OLD some  value $A", true).unwrap(),
            vec![("OLD".into(), "some  value alpha".into())]
        );
        assert_eq!(v("E=", true).unwrap(), vec![("E".into(), "".into())]);
        assert_eq!(
            v("\"my key\"=v", false).unwrap(),
            vec![("my key".into(), "v".into())]
        );
        assert!(v("A=1 B", true).is_err());
        assert!(v("=x", true).is_err());
    }
}
