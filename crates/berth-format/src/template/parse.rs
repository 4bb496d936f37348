//! Parsing: the source split into text and actions (with `{{-`/`-}}` trimming), actions'
//! tokens into pipelines, and the node tree with `if`/`range`/`with`/`else`/`end`.

use super::lex::{lex, Tok};
use super::{err, Arg, Node, Pipe};
use crate::FormatError;

pub(super) enum Item {
    Text(String),
    Action(Vec<Tok>),
}

/// Split the source into text and actions, applying `{{-` / `-}}` trimming and dropping
/// comments.
pub(super) fn items(src: &str) -> Result<Vec<Item>, FormatError> {
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
pub(super) enum Stop {
    Eof,
    End,
    Else(Vec<Tok>),
}

pub(super) struct Parser {
    pub(super) items: std::vec::IntoIter<Item>,
    pub(super) depth: usize,
}

impl Parser {
    pub(super) fn list(&mut self) -> Result<(Vec<Node>, Stop), FormatError> {
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
