//! Evaluation: walking the node tree over a JSON value (variables, pipelines, `range`,
//! `break`/`continue`, fields, methods and function calls, and header mode for tables).

use serde_json::Value;

use super::value::{print_top, truth, type_name};
use super::{err, Arg, Node, Pipe};
use crate::FormatError;

pub(super) enum Flow {
    Normal,
    Break,
    Continue,
}

pub(super) struct Exec<'a> {
    pub(super) vars: Vec<(String, Value)>,
    pub(super) out: &'a mut String,
    /// Rendering a table header: fields evaluate to their header text.
    pub(super) headers: Option<&'a dyn Fn(&str) -> String>,
}

impl Exec<'_> {
    pub(super) fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, FormatError> {
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
