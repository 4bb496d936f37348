//! Lexing an action's text (between `{{` and `}}`) into tokens: fields, variables,
//! identifiers, literals (strings, raw strings, chars, numbers) and punctuation.

use serde_json::Value;

use super::err;
use crate::FormatError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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

pub(super) fn lex(action: &str) -> Result<Vec<Tok>, FormatError> {
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
