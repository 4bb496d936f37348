//! Go's `text/template` language over JSON values, with the functions Docker's CLI adds
//! (`json`, `split`, `join`, `title`, `lower`, `upper`, `pad`, `truncate`).
//!
//! Supported: text and actions with `{{-`/`-}}` trimming, comments, pipelines with `|`,
//! variables (`$`, `$x := …`, `$x = …`), fields (`.A.B`, `$x.A`, `(pipeline).A`), methods with
//! arguments (`.Label "k"`), string/raw/char/number/bool/nil literals, `if`/`else if`/`else`,
//! `range` (arrays, maps in key order, with one or two variables, `else`, `break`,
//! `continue`), `with`/`else with`, and Go's builtins `and or not len index slice print printf
//! println eq ne lt le gt ge html js urlquery`. `define`/`template`/`block` are refused.
//!
//! Values print as Go's `fmt` prints the `interface{}` values a JSON document decodes to:
//! strings as they are, a missing or null value as `<no value>`, arrays as `[a b]`, objects as
//! `map[k:v]` with sorted keys. Object keys starting with `@` are hidden data for methods
//! (`@labels` backs `.Label "k"`); templates cannot name them and `json` leaves them out.

use serde_json::{Map, Value};

use crate::FormatError;

/// A parsed template, ready to render any number of values.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Pipe),
    If(Pipe, Vec<Node>, Vec<Node>),
    Range(Pipe, Vec<Node>, Vec<Node>),
    With(Pipe, Vec<Node>, Vec<Node>),
    Break,
    Continue,
}

#[derive(Debug, Clone)]
struct Pipe {
    decl: Vec<String>,
    /// `=` (assign to an existing variable) rather than `:=`.
    assign: bool,
    cmds: Vec<Vec<Arg>>,
}

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B`; empty for `.`.
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    Ident(String),
    Lit(Value),
    /// `(pipeline).A.B`.
    Sub(Box<Pipe>, Vec<String>),
}

// ---------------------------------------------------------------------------------------------
// lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Ident(String),
    Lit(Value),
    LParen,
    /// `)` followed directly by `.A.B`.
    RParen(Vec<String>),
    Bar,
    Declare,
    Assign,
    Comma,
}

fn err(msg: impl Into<String>) -> FormatError {
    FormatError::Template(msg.into())
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `.A.B` at `s[i..]` (starting with '.'): the segments and the index after them.
fn field_chain(s: &[char], mut i: usize) -> (Vec<String>, usize) {
    let mut segs = Vec::new();
    while i < s.len() && s[i] == '.' {
        let start = i + 1;
        let mut j = start;
        while j < s.len() && is_ident_char(s[j]) {
            j += 1;
        }
        if j == start {
            break;
        }
        segs.push(s[start..j].iter().collect());
        i = j;
    }
    (segs, i)
}

fn lex(action: &str) -> Result<Vec<Tok>, FormatError> {
    let s: Vec<char> = action.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '|' => {
                out.push(Tok::Bar);
                i += 1;
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                let (segs, j) = field_chain(&s, i + 1);
                out.push(Tok::RParen(segs));
                i = j;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if s.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '.' if s.get(i + 1).is_some_and(|c| c.is_ascii_digit()) => {
                let (v, j) = number(&s, i)?;
                out.push(Tok::Lit(v));
                i = j;
            }
            '.' => {
                let (segs, j) = field_chain(&s, i);
                out.push(Tok::Field(segs));
                i = if j == i { i + 1 } else { j };
            }
            '$' => {
                let mut j = i + 1;
                while j < s.len() && is_ident_char(s[j]) {
                    j += 1;
                }
                let name: String = s[i + 1..j].iter().collect();
                let (segs, k) = field_chain(&s, j);
                out.push(Tok::Var(name, segs));
                i = k;
            }
            '"' => {
                let mut j = i + 1;
                let mut v = String::new();
                loop {
                    match s.get(j) {
                        None | Some('\n') => return Err(err("unterminated quoted string")),
                        Some('"') => break,
                        Some('\\') => {
                            let (ch, k) = escape(&s, j)?;
                            v.push(ch);
                            j = k;
                        }
                        Some(&ch) => {
                            v.push(ch);
                            j += 1;
                        }
                    }
                }
                out.push(Tok::Lit(Value::String(v)));
                i = j + 1;
            }
            '`' => {
                let end = s[i + 1..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| err("unterminated raw quoted string"))?;
                out.push(Tok::Lit(Value::String(
                    s[i + 1..i + 1 + end].iter().collect(),
                )));
                i += end + 2;
            }
            '\'' => {
                let (ch, j) = if s.get(i + 1) == Some(&'\\') {
                    escape(&s, i + 1)?
                } else {
                    (
                        *s.get(i + 1).ok_or_else(|| err("unterminated character"))?,
                        i + 2,
                    )
                };
                if s.get(j) != Some(&'\'') {
                    return Err(err("unterminated character constant"));
                }
                out.push(Tok::Lit(Value::from(u32::from(ch))));
                i = j + 1;
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let (v, j) = number(&s, i)?;
                out.push(Tok::Lit(v));
                i = j;
            }
            c if is_ident_char(c) => {
                let mut j = i;
                while j < s.len() && is_ident_char(s[j]) {
                    j += 1;
                }
                let w: String = s[i..j].iter().collect();
                out.push(match w.as_str() {
                    "true" => Tok::Lit(Value::Bool(true)),
                    "false" => Tok::Lit(Value::Bool(false)),
                    "nil" => Tok::Lit(Value::Null),
                    _ => Tok::Ident(w),
                });
                i = j;
            }
            c => return Err(err(format!("unexpected {c:?} in command"))),
        }
    }
    Ok(out)
}

fn escape(s: &[char], i: usize) -> Result<(char, usize), FormatError> {
    let c = *s.get(i + 1).ok_or_else(|| err("unterminated escape"))?;
    Ok(match c {
        'n' => ('\n', i + 2),
        't' => ('\t', i + 2),
        'r' => ('\r', i + 2),
        '\\' => ('\\', i + 2),
        '"' => ('"', i + 2),
        '\'' => ('\'', i + 2),
        '0' => ('\0', i + 2),
        'a' => ('\x07', i + 2),
        'b' => ('\x08', i + 2),
        'f' => ('\x0c', i + 2),
        'v' => ('\x0b', i + 2),
        'x' | 'u' | 'U' => {
            let n = match c {
                'x' => 2,
                'u' => 4,
                _ => 8,
            };
            let hex: String = s.get(i + 2..i + 2 + n).unwrap_or_default().iter().collect();
            let v = u32::from_str_radix(&hex, 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| err(format!("invalid escape \\{c}{hex}")))?;
            (v, i + 2 + n)
        }
        c => return Err(err(format!("unknown escape sequence \\{c}"))),
    })
}

fn number(s: &[char], i: usize) -> Result<(Value, usize), FormatError> {
    let mut j = i;
    if matches!(s[j], '-' | '+') {
        j += 1;
    }
    while j < s.len() && (s[j].is_ascii_alphanumeric() || s[j] == '.' || s[j] == '_') {
        if matches!(s[j], 'e' | 'E') && matches!(s.get(j + 1), Some('-' | '+')) {
            j += 1;
        }
        j += 1;
    }
    let text: String = s[i..j].iter().filter(|&&c| c != '_').collect();
    if let Ok(n) = text.parse::<i64>() {
        return Ok((Value::from(n), j));
    }
    if let Some(h) = text.strip_prefix("0x") {
        if let Ok(n) = i64::from_str_radix(h, 16) {
            return Ok((Value::from(n), j));
        }
    }
    match text.parse::<f64>() {
        Ok(f) => Ok((Value::from(f), j)),
        Err(_) => Err(err(format!("bad number syntax: {text:?}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// parsing

enum Item {
    Text(String),
    Action(Vec<Tok>),
}

/// Split the source into text and actions, applying `{{-` / `-}}` trimming and dropping
/// comments.
fn items(src: &str) -> Result<Vec<Item>, FormatError> {
    let mut out = Vec::new();
    let mut rest = src;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let mut inner_start = start + 2;
        let after = &rest[inner_start..];
        if after.starts_with("- ") || after.starts_with("-\t") || after.starts_with("-\n") {
            text = text.trim_end();
            inner_start += 1;
        }
        if !text.is_empty() {
            out.push(Item::Text(text.to_string()));
        }
        // Find the closing "}}" outside quotes.
        let b = rest.as_bytes();
        let mut j = inner_start;
        let mut quote: Option<u8> = None;
        let end = loop {
            if j + 1 >= b.len() {
                return Err(err("unclosed action"));
            }
            match (quote, b[j]) {
                (Some(b'"'), b'\\') => j += 1,
                (Some(q), c) if c == q => quote = None,
                (None, c @ (b'"' | b'`' | b'\'')) => quote = Some(c),
                (None, b'}') if b[j + 1] == b'}' => break j,
                _ => {}
            }
            j += 1;
        };
        let mut inner = &rest[inner_start..end];
        trim_next = false;
        if inner.ends_with(" -") || inner.ends_with("\t-") || inner.ends_with("\n-") {
            inner = &inner[..inner.len() - 1];
            trim_next = true;
        }
        let t = inner.trim();
        if t.starts_with("/*") {
            if !t.ends_with("*/") {
                return Err(err("unclosed comment"));
            }
        } else {
            out.push(Item::Action(lex(inner)?));
        }
        rest = &rest[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        out.push(Item::Text(text.to_string()));
    }
    Ok(out)
}

/// How a list of nodes ended.
enum Stop {
    Eof,
    End,
    Else(Vec<Tok>),
}

struct Parser {
    items: std::vec::IntoIter<Item>,
    depth: usize,
}

impl Parser {
    fn list(&mut self) -> Result<(Vec<Node>, Stop), FormatError> {
        let mut nodes = Vec::new();
        while let Some(item) = self.items.next() {
            let toks = match item {
                Item::Text(t) => {
                    nodes.push(Node::Text(t));
                    continue;
                }
                Item::Action(t) => t,
            };
            let kw = match toks.first() {
                Some(Tok::Ident(k)) => k.as_str(),
                None => return Err(err("missing value for command")),
                _ => "",
            };
            match kw {
                "end" => return Ok((nodes, Stop::End)),
                "else" => return Ok((nodes, Stop::Else(toks[1..].to_vec()))),
                "if" | "range" | "with" => {
                    let pipe = pipe_of(&toks[1..], kw == "range")?;
                    nodes.push(self.control(kw, pipe)?);
                }
                "break" | "continue" => {
                    if self.depth == 0 {
                        return Err(err(format!("{{{{{kw}}}}} outside {{{{range}}}}")));
                    }
                    nodes.push(if kw == "break" {
                        Node::Break
                    } else {
                        Node::Continue
                    });
                }
                "define" | "template" | "block" => {
                    return Err(err(format!("{{{{{kw}}}}} is not supported")))
                }
                _ => nodes.push(Node::Action(pipe_of(&toks, false)?)),
            }
        }
        Ok((nodes, Stop::Eof))
    }

    fn control(&mut self, kw: &str, pipe: Pipe) -> Result<Node, FormatError> {
        if kw == "range" {
            self.depth += 1;
        }
        let (body, end) = self.list()?;
        if kw == "range" {
            self.depth -= 1;
        }
        let els = match end {
            Stop::Eof => {
                return Err(err(format!(
                    "unexpected EOF: {{{{{kw}}}}} without {{{{end}}}}"
                )))
            }
            Stop::End => Vec::new(),
            Stop::Else(rest) if rest.is_empty() => match self.list()? {
                (els, Stop::End) => els,
                _ => {
                    return Err(err(format!(
                        "expected {{{{end}}}} after {{{{else}}}} of {{{{{kw}}}}}"
                    )))
                }
            },
            Stop::Else(rest) => match rest.first() {
                // `else if …` / `else with …`: a nested control sharing this one's `end`.
                Some(Tok::Ident(k)) if (k == "if" || k == "with") && k == kw => {
                    let inner = pipe_of(&rest[1..], false)?;
                    vec![self.control(kw, inner)?]
                }
                _ => {
                    return Err(err(format!(
                        "unexpected tokens after {{{{else}}}} in {{{{{kw}}}}}"
                    )))
                }
            },
        };
        Ok(match kw {
            "if" => Node::If(pipe, body, els),
            "range" => Node::Range(pipe, body, els),
            _ => Node::With(pipe, body, els),
        })
    }
}

/// Parse a pipeline from tokens (for `range`, up to two declared variables separated by a comma).
fn pipe_of(toks: &[Tok], range: bool) -> Result<Pipe, FormatError> {
    let mut decl = Vec::new();
    let mut assign = false;
    let mut rest = toks;
    // Declarations: `$x :=`, `$x =`, `$i, $e :=` (range only).
    let decl_end = toks
        .iter()
        .position(|t| matches!(t, Tok::Declare | Tok::Assign));
    if let Some(p) = decl_end {
        let names: Vec<&Tok> = toks[..p].iter().filter(|t| **t != Tok::Comma).collect();
        let all_vars = names
            .iter()
            .all(|t| matches!(t, Tok::Var(_, segs) if segs.is_empty()));
        if all_vars && !names.is_empty() {
            if names.len() > 2 || (names.len() == 2 && !range) {
                return Err(err("too many declarations in command"));
            }
            for n in names {
                if let Tok::Var(v, _) = n {
                    decl.push(v.clone());
                }
            }
            assign = toks[p] == Tok::Assign;
            rest = &toks[p + 1..];
        }
    }
    let mut pos = 0;
    let cmds = commands(rest, &mut pos, false)?;
    if pos != rest.len() {
        return Err(err("unexpected \")\" in command"));
    }
    Ok(Pipe { decl, assign, cmds })
}

/// Commands separated by `|` until the end or (inside parentheses) a `)`.
fn commands(toks: &[Tok], pos: &mut usize, nested: bool) -> Result<Vec<Vec<Arg>>, FormatError> {
    let mut cmds = Vec::new();
    let mut cur: Vec<Arg> = Vec::new();
    while *pos < toks.len() {
        let t = &toks[*pos];
        *pos += 1;
        match t {
            Tok::Bar => {
                if cur.is_empty() {
                    return Err(err("missing command before \"|\""));
                }
                cmds.push(std::mem::take(&mut cur));
            }
            Tok::RParen(_) if nested => {
                *pos -= 1;
                break;
            }
            Tok::RParen(_) => return Err(err("unexpected \")\"")),
            Tok::LParen => {
                let inner = commands(toks, pos, true)?;
                match toks.get(*pos) {
                    Some(Tok::RParen(segs)) => {
                        *pos += 1;
                        cur.push(Arg::Sub(
                            Box::new(Pipe {
                                decl: vec![],
                                assign: false,
                                cmds: inner,
                            }),
                            segs.clone(),
                        ));
                    }
                    _ => return Err(err("unclosed left paren")),
                }
            }
            Tok::Field(s) => cur.push(Arg::Field(s.clone())),
            Tok::Var(n, s) => cur.push(Arg::Var(n.clone(), s.clone())),
            Tok::Ident(i) => cur.push(Arg::Ident(i.clone())),
            Tok::Lit(v) => cur.push(Arg::Lit(v.clone())),
            Tok::Comma | Tok::Declare | Tok::Assign => {
                return Err(err("unexpected \",\", \":=\" or \"=\" in command"))
            }
        }
    }
    if cur.is_empty() {
        return Err(err("missing value for command"));
    }
    cmds.push(cur);
    Ok(cmds)
}

// ---------------------------------------------------------------------------------------------
// evaluation

enum Flow {
    Normal,
    Break,
    Continue,
}

struct Exec<'a> {
    vars: Vec<(String, Value)>,
    out: &'a mut String,
    /// Rendering a table header: fields evaluate to their header text.
    headers: Option<&'a dyn Fn(&str) -> String>,
}

impl Template {
    /// Parse Go-template source. Errors name what is wrong (`unclosed action`, …).
    pub fn parse(src: &str) -> Result<Template, FormatError> {
        let mut p = Parser {
            items: items(src)?.into_iter(),
            depth: 0,
        };
        match p.list()? {
            (nodes, Stop::Eof) => Ok(Template { nodes }),
            (_, Stop::End) => Err(err("unexpected {{end}}")),
            (_, Stop::Else(_)) => Err(err("unexpected {{else}}")),
        }
    }

    /// Render with `data` as dot (and `$`). Errors are evaluation errors (a function given the
    /// wrong arguments, an unknown function, a field of a string …).
    pub fn render(&self, data: &Value) -> Result<String, FormatError> {
        let mut out = String::new();
        let mut ex = Exec {
            vars: vec![("".into(), data.clone())],
            out: &mut out,
            headers: None,
        };
        ex.walk(&self.nodes, data)?;
        Ok(out)
    }

    /// Render a table header: every field `.Name` evaluates to `header(Name)`; a method such as
    /// `.Label "k"` to `header(Label)`.
    pub fn render_header(&self, header: &dyn Fn(&str) -> String) -> Result<String, FormatError> {
        let mut out = String::new();
        let data = Value::Object(Map::new());
        let mut ex = Exec {
            vars: vec![("".into(), data.clone())],
            out: &mut out,
            headers: Some(header),
        };
        ex.walk(&self.nodes, &data)?;
        Ok(out)
    }
}

/// Go's notion of an empty (false) value.
pub(crate) fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

impl Exec<'_> {
    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, FormatError> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        let s = print_top(&v);
                        self.out.push_str(&s);
                    }
                }
                Node::If(p, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let f = if truth(&v) {
                        self.walk(body, dot)?
                    } else {
                        self.walk(els, dot)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(f, Flow::Normal) {
                        return Ok(f);
                    }
                }
                Node::With(p, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let f = if truth(&v) {
                        self.walk(body, &v)?
                    } else {
                        self.walk(els, dot)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(f, Flow::Normal) {
                        return Ok(f);
                    }
                }
                Node::Range(p, body, els) => {
                    let mark = self.vars.len();
                    let decl = p.decl.clone();
                    let bare = Pipe {
                        decl: vec![],
                        assign: false,
                        cmds: p.cmds.clone(),
                    };
                    let v = self.pipe(&bare, dot)?;
                    let pairs: Vec<(Value, Value)> = match &v {
                        Value::Array(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, e)| (Value::from(i), e.clone()))
                            .collect(),
                        Value::Object(o) => {
                            let mut ks: Vec<&String> =
                                o.keys().filter(|k| !k.starts_with('@')).collect();
                            ks.sort();
                            ks.into_iter()
                                .map(|k| (Value::String(k.clone()), o[k].clone()))
                                .collect()
                        }
                        Value::Null => vec![],
                        Value::Number(n) if n.as_i64().is_some() => (0..n.as_i64().unwrap_or(0))
                            .map(|i| (Value::from(i), Value::from(i)))
                            .collect(),
                        other => {
                            return Err(err(format!(
                                "range can't iterate over {}",
                                print_top(other)
                            )))
                        }
                    };
                    if pairs.is_empty() {
                        self.walk(els, dot)?;
                    }
                    for (k, e) in pairs {
                        self.vars.truncate(mark);
                        match decl.len() {
                            1 => self.vars.push((decl[0].clone(), e.clone())),
                            2 => {
                                self.vars.push((decl[0].clone(), k));
                                self.vars.push((decl[1].clone(), e.clone()));
                            }
                            _ => {}
                        }
                        match self.walk(body, &e)? {
                            Flow::Break => break,
                            Flow::Continue | Flow::Normal => {}
                        }
                    }
                    self.vars.truncate(mark);
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value, FormatError> {
        let mut prev: Option<Value> = None;
        for cmd in &p.cmds {
            prev = Some(self.command(cmd, dot, prev)?);
        }
        let v = prev.unwrap_or(Value::Null);
        for name in &p.decl {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return Err(err(format!("undefined variable: ${name}"))),
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn var(&self, name: &str) -> Result<Value, FormatError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| err(format!("undefined variable: ${name}")))
    }

    fn command(
        &mut self,
        cmd: &[Arg],
        dot: &Value,
        prev: Option<Value>,
    ) -> Result<Value, FormatError> {
        let (first, rest) = cmd.split_first().ok_or_else(|| err("empty command"))?;
        let has_args = !rest.is_empty() || prev.is_some();
        let mut args = || -> Result<Vec<Value>, FormatError> {
            let mut a = Vec::new();
            for x in rest {
                a.push(self.operand(x, dot)?);
            }
            if let Some(p) = prev.clone() {
                a.push(p);
            }
            Ok(a)
        };
        match first {
            Arg::Ident(name) => {
                let a = args()?;
                if self.headers.is_some() {
                    return Ok(header_call(name, a));
                }
                crate::funcs::call(name, &a)
            }
            Arg::Field(segs) if has_args && !segs.is_empty() => {
                let a = args()?;
                let (method, path) = segs.split_last().unwrap_or((&segs[0], &[]));
                if let Some(h) = self.headers {
                    return Ok(Value::String(h(method)));
                }
                let recv = walk_fields(dot, path)?;
                method_call(&recv, method, &a)
            }
            Arg::Var(_, segs) | Arg::Sub(_, segs) if has_args && !segs.is_empty() => {
                let a = args()?;
                let (method, path) = segs.split_last().unwrap_or((&segs[0], &[]));
                let base = match first {
                    Arg::Var(n, _) => self.var(n)?,
                    Arg::Sub(p, _) => self.pipe(p, dot)?,
                    _ => Value::Null,
                };
                let recv = walk_fields(&base, path)?;
                method_call(&recv, method, &a)
            }
            other => {
                if has_args {
                    return Err(err("can't give argument to non-function"));
                }
                self.operand(other, dot)
            }
        }
    }

    fn operand(&mut self, a: &Arg, dot: &Value) -> Result<Value, FormatError> {
        match a {
            Arg::Lit(v) => Ok(v.clone()),
            Arg::Field(segs) => {
                if let (Some(h), Some(last)) = (self.headers, segs.last()) {
                    return Ok(Value::String(h(last)));
                }
                walk_fields(dot, segs)
            }
            Arg::Var(n, segs) => {
                let base = self.var(n)?;
                if let (Some(h), Some(last)) = (self.headers, segs.last()) {
                    return Ok(Value::String(h(last)));
                }
                walk_fields(&base, segs)
            }
            Arg::Sub(p, segs) => {
                let base = self.pipe(p, dot)?;
                walk_fields(&base, segs)
            }
            Arg::Ident(name) => {
                if self.headers.is_some() {
                    return Ok(Value::String(String::new()));
                }
                crate::funcs::call(name, &[])
            }
        }
    }
}

/// In header mode functions keep their text argument (`{{upper .Name}}` → `NAME`) or
/// render nothing.
fn header_call(name: &str, args: Vec<Value>) -> Value {
    match name {
        "json" | "lower" | "upper" | "title" | "truncate" | "pad" | "print" | "println" => args
            .into_iter()
            .find(|a| a.is_string())
            .unwrap_or(Value::String(String::new())),
        _ => Value::String(String::new()),
    }
}

fn walk_fields(v: &Value, segs: &[String]) -> Result<Value, FormatError> {
    let mut cur = v;
    for s in segs {
        cur = match cur {
            Value::Object(o) => match o.get(s) {
                Some(v) => v,
                None => return Ok(Value::Null),
            },
            Value::Null => return Ok(Value::Null),
            other => {
                return Err(err(format!(
                    "can't evaluate field {s} in type {}",
                    type_name(other)
                )))
            }
        };
    }
    Ok(cur.clone())
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "interface {}",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Methods of listing rows: `.Label "k"` reads the hidden `@labels` object.
fn method_call(recv: &Value, name: &str, args: &[Value]) -> Result<Value, FormatError> {
    match name {
        "Label" => {
            let [Value::String(k)] = args else {
                return Err(err("wrong number of args for Label: want 1 string"));
            };
            Ok(recv
                .get("@labels")
                .and_then(|l| l.get(k))
                .cloned()
                .unwrap_or(Value::String(String::new())))
        }
        _ => Err(err(format!(
            "can't call method/function {name:?} with {} args",
            args.len()
        ))),
    }
}

/// Print a value as an action prints it.
pub(crate) fn print_top(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        other => print_go(other),
    }
}

/// Print as Go's `fmt.Sprint` prints decoded JSON (`<nil>` inside containers).
pub(crate) fn print_go(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => go_float(f),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(print_go).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(o) => {
            let mut ks: Vec<&String> = o.keys().filter(|k| !k.starts_with('@')).collect();
            ks.sort();
            let parts: Vec<String> = ks
                .into_iter()
                .map(|k| format!("{k}:{}", print_go(&o[k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// A float as Go's `%v` prints it: shortest digits, exponent form below 1e-4 or from 1e6.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return "0".into();
    }
    let e = format!("{f:e}"); // shortest digits: "1.5e6"
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v).unwrap()
    }

    #[test]
    fn fields_and_printing() {
        let v = json!({"Names":"web","State":{"Running":true,"Pid":42},
            "Config":{"Labels":{"b":"2","a":"1"},"Env":["A=1","B=2"],"Cmd":null}});
        assert_eq!(r("{{.Names}}", &v), "web");
        assert_eq!(r("{{.State.Pid}} {{.State.Running}}", &v), "42 true");
        assert_eq!(r("{{.Config.Labels}}", &v), "map[a:1 b:2]");
        assert_eq!(r("{{.Config.Env}}", &v), "[A=1 B=2]");
        assert_eq!(
            r("{{.Missing}}|{{.Config.Cmd}}", &v),
            "<no value>|<no value>"
        );
        assert_eq!(r("{{.Missing.Deeper}}", &v), "<no value>");
        assert_eq!(r("{{ . }}", &json!("x")), "x");
        assert_eq!(r("{{json .Config.Env}}", &v), r#"["A=1","B=2"]"#);
        assert_eq!(r("{{json .Config.Cmd}}", &v), "null");
    }

    #[test]
    fn control_structures() {
        let v = json!({"L":{"b":"2","a":"1"},"E":["x","y"],"T":true,"Z":"","N":[]});
        assert_eq!(
            r("{{range $k, $v := .L}}{{$k}}={{$v}};{{end}}", &v),
            "a=1;b=2;"
        );
        assert_eq!(r("{{range .E}}<{{.}}>{{end}}", &v), "<x><y>");
        assert_eq!(
            r("{{range $i, $e := .E}}{{$i}}{{$e}} {{end}}", &v),
            "0x 1y "
        );
        assert_eq!(r("{{range .N}}x{{else}}empty{{end}}", &v), "empty");
        assert_eq!(
            r(
                "{{range .E}}{{if eq . \"y\"}}{{break}}{{end}}{{.}}{{end}}",
                &v
            ),
            "x"
        );
        assert_eq!(r("{{if .T}}yes{{else}}no{{end}}", &v), "yes");
        assert_eq!(r("{{if .Z}}a{{else if .T}}b{{else}}c{{end}}", &v), "b");
        assert_eq!(r("{{with .L}}{{.a}}{{end}}", &v), "1");
        assert_eq!(r("{{with .Z}}x{{else}}none{{end}}", &v), "none");
        assert_eq!(r("{{$x := .E}}{{index $x 1}}", &v), "y");
        assert_eq!(r("{{- \"a\" }}  {{- \"b\" -}}  c", &v), "abc");
        assert_eq!(r("a {{/* comment */}}b", &v), "a b");
        assert_eq!(r("{{$.T}}{{range .E}}{{$.T}}{{end}}", &v), "truetruetrue");
    }

    #[test]
    fn functions() {
        let v = json!({"S":"Hello World","E":["a","b"],"L":{"k":"v"},"@labels":{"com.x":"1"}});
        assert_eq!(r("{{join .E \", \"}}", &v), "a, b");
        assert_eq!(
            r("{{lower .S}} {{upper .S}}", &v),
            "hello world HELLO WORLD"
        );
        assert_eq!(r("{{title \"foo bar-baz\"}}", &v), "Foo Bar-Baz");
        assert_eq!(r("{{truncate .S 5}}", &v), "Hello");
        assert_eq!(r("{{pad .S 1 2}}|", &v), " Hello World  |");
        assert_eq!(r("{{split .S \" \"}}", &v), "[Hello World]");
        assert_eq!(r("{{index (split .S \" \") 1}}", &v), "World");
        assert_eq!(r("{{println .S}}", &v), "Hello World\n");
        assert_eq!(r("{{.S | printf \"%q\"}}", &v), "\"Hello World\"");
        assert_eq!(
            r("{{printf \"%-6s|%3d|%v\" \"ab\" 7 .E}}", &v),
            "ab    |  7|[a b]"
        );
        assert_eq!(r("{{len .E}} {{index .L \"k\"}}", &v), "2 v");
        assert_eq!(r("{{.Label \"com.x\"}}|{{.Label \"no\"}}|", &v), "1||");
        assert_eq!(
            r("{{json .}}", &v),
            r#"{"E":["a","b"],"L":{"k":"v"},"S":"Hello World"}"#
        );
        assert_eq!(r("{{if and .S (not .Z)}}y{{end}}", &v), "y");
        assert_eq!(r("{{if or .Z .S}}y{{end}}", &v), "y");
        assert_eq!(r("{{if ne (len .E) 3}}y{{end}}", &v), "y");
        assert_eq!(r("{{if lt 1 2}}y{{end}}{{if ge 1.5 2}}n{{end}}", &v), "y");
        assert_eq!(r("{{slice .S 0 4}}", &v), "Hell");
        assert_eq!(r("{{json \"<&>\"}}", &v), "\"<&>\"");
    }

    #[test]
    fn errors_are_reported() {
        for bad in [
            "{{.A",
            "{{if .A}}x",
            "{{end}}",
            "{{else}}",
            "{{\"x}}",
            "{{template \"a\"}}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
        let t = Template::parse("{{nosuch .A}}").unwrap();
        assert!(t.render(&json!({})).is_err());
        let t = Template::parse("{{.A.B}}").unwrap();
        assert!(t.render(&json!({"A":"s"})).is_err());
    }

    #[test]
    fn headers() {
        let t = Template::parse("{{.ID}}\t{{.Names}}\t{{.Label \"x\"}}\t{{upper .Image}}").unwrap();
        let h = t.render_header(&|f| f.to_uppercase()).unwrap();
        assert_eq!(h, "ID\tNAMES\tLABEL\tIMAGE");
    }

    #[test]
    fn floats_print_as_go() {
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(123456.0), "123456");
    }
}
