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

mod exec;
mod lex;
mod parse;
mod value;

pub(crate) use value::{go_float, print_go, print_top, truth, type_name};

use exec::Exec;
use parse::{items, Parser, Stop};

fn err(msg: impl Into<String>) -> FormatError {
    FormatError::Template(msg.into())
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

#[cfg(test)]
mod tests;
