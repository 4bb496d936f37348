//! Docker's `--format` for every listing and inspect command (CLI and other front ends):
//!
//! - [`Template`]: Go's `text/template` over JSON values, with Docker's functions;
//! - [`Format`]: what a `--format` value means for a listing (`table`, `table TEMPLATE`,
//!   `json`, or a bare template), rendered over rows with [`Format::render`];
//! - [`tabwrite`]: Go's `text/tabwriter` as Docker configures it (minimum width 10,
//!   padding 3), which aligns tables;
//! - [`inspect`]: `inspect`'s output (a JSON array, or a template per document);
//! - [`config_format`]: the `psFormat`/`imagesFormat`/… defaults of `~/.docker/config.json`.
//!
//! Rows are JSON objects with Docker's field names and string values (as `docker ps
//! --format '{{json .}}'` shows them). A key starting with `@` is hidden data: `@labels`
//! (an object) backs the `.Label "key"` method.

mod funcs;
pub mod human;
mod template;

pub use template::Template;

use serde_json::Value;

/// A `--format` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The template does not parse or fails on the data (the text says where).
    #[error("template: {0}")]
    Template(String),
}

/// What a listing's `--format` asks for.
#[derive(Debug, Clone)]
pub struct Format {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// Aligned with [`tabwrite`], a header line first.
    Table(Template),
    /// One JSON object per row and line.
    Json,
    /// The template once per row, each followed by a newline.
    Lines(Template),
}

/// Replace the two escapes Docker's CLI expands in a `--format` value (`\t`, `\n`).
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t").replace("\\n", "\n")
}

impl Format {
    /// Interpret a `--format` value. `None` or `"table"` means `default_table` (itself a
    /// `table …` template); `"json"` one JSON object per line; `"table TEMPLATE"` a table of
    /// that template; anything else a template rendered once per row.
    pub fn new(spec: Option<&str>, default_table: &str) -> Result<Format, FormatError> {
        let spec = match spec.map(str::trim) {
            None | Some("") | Some("table") => default_table,
            Some(s) => s,
        };
        if spec == "json" || spec == "{{json .}}" {
            return Ok(Format { kind: Kind::Json });
        }
        let kind = match spec.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
                Kind::Table(Template::parse(&unescape(rest.trim_matches(' ')))?)
            }
            _ => Kind::Lines(Template::parse(&unescape(spec))?),
        };
        Ok(Format { kind })
    }

    /// A format printing only one field per row (`-q`: `{{.ID}}`).
    pub fn field(name: &str) -> Format {
        let t = Template::parse(&format!("{{{{.{name}}}}}"));
        Format {
            kind: t.map_or(Kind::Json, Kind::Lines),
        }
    }

    /// Whether the output is a table (with a header line).
    pub fn is_table(&self) -> bool {
        matches!(self.kind, Kind::Table(_))
    }

    /// Render rows. `headers` maps field names to header text (`ID` → `CONTAINER ID`); other
    /// fields get their name in capitals. Errors: a template failing on a row.
    pub fn render(&self, rows: &[Value], headers: &[(&str, &str)]) -> Result<String, FormatError> {
        let mut out = String::new();
        match &self.kind {
            Kind::Json => {
                for r in rows {
                    out.push_str(&serde_json::to_string(&funcs::visible(r)).unwrap_or_default());
                    out.push('\n');
                }
            }
            Kind::Lines(t) => {
                for r in rows {
                    out.push_str(&t.render(r)?);
                    out.push('\n');
                }
            }
            Kind::Table(t) => {
                let header = t.render_header(&|f| {
                    headers
                        .iter()
                        .find(|(k, _)| *k == f)
                        .map(|(_, h)| h.to_string())
                        .unwrap_or_else(|| f.to_uppercase())
                })?;
                let mut text = header;
                text.push('\n');
                for r in rows {
                    text.push_str(&t.render(r)?);
                    text.push('\n');
                }
                out = tabwrite(&text, 10, 3);
            }
        }
        Ok(out)
    }
}

/// Go's `text/tabwriter` with Docker's settings for tables: cells end at `\t`; each column
/// (a block of consecutive lines that have a cell in it) is as wide as its widest cell plus
/// `padding` spaces, and at least `minwidth`; the last cell of a line is not padded.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    let mut out = String::with_capacity(text.len() * 2);
    format_block(
        &lines,
        0,
        lines.len(),
        &mut widths,
        minwidth,
        padding,
        &mut out,
    );
    // `split('\n')` made one more line than there were newlines.
    if out.ends_with('\n') && !text.ends_with('\n') {
        out.pop();
    }
    out
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    minwidth: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = minwidth;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, minwidth, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for (i, line) in lines.iter().enumerate().take(to).skip(from) {
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < widths.len() {
                let n = cell.chars().count();
                out.push_str(&" ".repeat(widths[j].saturating_sub(n)));
            }
        }
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
}

/// `inspect` output: without a format (or with `json`) the documents as one indented JSON
/// array; otherwise the template rendered once per document, each followed by a newline.
pub fn inspect(docs: &[Value], spec: Option<&str>) -> Result<String, FormatError> {
    match spec.map(str::trim) {
        None | Some("") | Some("json") => {
            let mut s = serde_json::to_string_pretty(docs).unwrap_or_default();
            s.push('\n');
            Ok(s)
        }
        Some(f) => {
            let t = Template::parse(&unescape(f))?;
            let mut out = String::new();
            for d in docs {
                out.push_str(&t.render(d)?);
                out.push('\n');
            }
            Ok(out)
        }
    }
}

/// The default format a user set in the Docker CLI's configuration
/// (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`) under `key` (`psFormat`,
/// `imagesFormat`, `networksFormat`, `volumesFormat`, `statsFormat`). `None` when the file
/// or the key is missing or unreadable.
pub fn config_format(key: &str) -> Option<String> {
    let dir = match std::env::var_os("DOCKER_CONFIG") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".docker"),
    };
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get(key)?
        .as_str()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows() -> Vec<Value> {
        vec![
            json!({"ID":"abc","Names":"web","Image":"busybox","@labels":{"k":"v"}}),
            json!({"ID":"defdefdefdef","Names":"database-server","Image":"debian:bookworm"}),
        ]
    }

    #[test]
    fn table_with_headers_aligns_as_docker() {
        let f = Format::new(Some("table {{.ID}}\\t{{.Names}}\\t{{.Image}}"), "").unwrap();
        let out = f.render(&rows(), &[("ID", "CONTAINER ID")]).unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   NAMES             IMAGE\n\
             abc            web               busybox\n\
             defdefdefdef   database-server   debian:bookworm\n"
        );
    }

    #[test]
    fn minimum_column_width_is_ten() {
        let out = tabwrite("A\tB\tC\nx\ty\tz\n", 10, 3);
        assert_eq!(out, "A         B         C\nx         y         z\n");
    }

    #[test]
    fn json_lines_and_plain_templates() {
        let f = Format::new(Some("json"), "").unwrap();
        assert_eq!(
            f.render(&rows()[..1], &[]).unwrap(),
            "{\"ID\":\"abc\",\"Image\":\"busybox\",\"Names\":\"web\"}\n"
        );
        let f = Format::new(Some("{{.Names}}: {{.Label \"k\"}}"), "").unwrap();
        assert_eq!(
            f.render(&rows(), &[]).unwrap(),
            "web: v\ndatabase-server: \n"
        );
        let f = Format::new(None, "table {{.Names}}").unwrap();
        assert!(f.is_table());
        assert_eq!(f.render(&[], &[]).unwrap(), "NAMES\n");
    }

    #[test]
    fn inspect_output() {
        let docs = vec![json!({"Id":"x","State":{"Pid":3}})];
        assert_eq!(inspect(&docs, Some("{{.State.Pid}}")).unwrap(), "3\n");
        assert!(inspect(&docs, None).unwrap().starts_with("[\n"));
        assert!(inspect(&docs, Some("{{.Id")).is_err());
    }
}
