//! tgw's answers for a person: lists as aligned tables, counters as
//! aligned `name value` lines. The shapes are docs/api.md's, but nothing
//! here depends on a particular key beyond `flows`, `cursor` and `text`:
//! a key tgw adds shows up as a new column.

use serde_json::{Map, Value};

use super::Shape;

/// The text to print for `result`, ending with a newline unless empty.
pub fn human(result: &Value, shape: Shape) -> String {
    match shape {
        // `{"changed": bool}` is for scripts (--json): a person sees
        // only what else tgw said, such as a new rule's handle.
        Shape::Change => match result {
            Value::Object(m) => {
                let mut rest = m.clone();
                rest.remove("changed");
                any(&Value::Object(rest))
            }
            other => any(other),
        },
        Shape::ConfigText => match result.get("text").or(Some(result)) {
            Some(Value::String(text)) if text.ends_with('\n') || text.is_empty() => text.clone(),
            Some(Value::String(text)) => format!("{text}\n"),
            _ => any(result),
        },
        Shape::Testpmd => match result.get("testpmd") {
            Some(Value::String(text)) if text.ends_with('\n') || text.is_empty() => text.clone(),
            Some(Value::String(text)) => format!("{text}\n"),
            _ => any(result),
        },
        Shape::Flows => flows(result),
        Shape::Plan => plan(result),
        Shape::Show => any(result),
        Shape::Stats | Shape::Top(_) => super::stats::human(result),
    }
}

/// `--json`: the result as tgw sent it, indented.
pub fn json(result: &Value) -> String {
    let mut out = serde_json::to_string_pretty(result).unwrap_or_default();
    out.push('\n');
    out
}

/// `config apply`: the difference, a line a change as `diff` shows it,
/// and whether it was made.
fn plan(result: &Value) -> String {
    let Some(lines) = result.get("changes").and_then(Value::as_array) else {
        return any(result);
    };
    let mut out: String = lines
        .iter()
        .map(|l| format!("{}\n", l.as_str().map_or_else(|| cell(l), str::to_owned)))
        .collect();
    let applied = result.get("applied").and_then(Value::as_bool) == Some(true);
    out.push_str(match (lines.is_empty(), applied) {
        (true, _) => "(no change: the running state is the file's)\n",
        (false, true) => "(applied)\n",
        (false, false) => "(dry run: nothing changed)\n",
    });
    out
}

/// A page of flows, and how to ask for the next when there is one.
fn flows(result: &Value) -> String {
    let rows = result.get("flows").and_then(Value::as_array);
    let mut out = match rows {
        Some(rows) => table(rows),
        None => any(result),
    };
    // `cursor` as docs/api.md names it; `next` as the workers' page does.
    match result.get("cursor").or_else(|| result.get("next")) {
        Some(Value::String(cursor)) => {
            let shown = rows.map_or(0, Vec::len);
            out.push_str(&format!(
                "(first {shown} shown; more with --cursor {cursor})\n"
            ));
        }
        _ if result.get("more").and_then(Value::as_bool) == Some(true) => {
            out.push_str("(more flows exist: raise --limit or narrow the filter)\n");
        }
        _ => {}
    }
    // `offload show`: the firewall denies on the NIC, and those left to
    // software with the reason (docs/offload.md, "Deny rules on the NIC").
    for (key, title) in [
        ("deny", "deny rules on the NIC"),
        ("deny_not_pushed", "denies left to software"),
    ] {
        if let Some(rows) = result.get(key).and_then(Value::as_array) {
            if !rows.is_empty() {
                out.push_str(&format!("\n{title}:\n{}", table(rows)));
            }
        }
    }
    out
}

/// Any result: a list is a table; an object is its plain values as
/// aligned lines (nested ones as `a.b`), then each of its lists as a
/// table under its name (alone when it is the only thing in it).
fn any(v: &Value) -> String {
    match v {
        Value::Array(rows) => table(rows),
        Value::Object(map) => object(map),
        Value::Null => String::new(),
        other => format!("{}\n", cell(other)),
    }
}

fn object(map: &Map<String, Value>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let mut lines = Vec::new();
    let mut lists = Vec::new();
    flatten("", map, &mut lines, &mut lists);
    if lines.is_empty() && lists.len() == 1 {
        return table(lists[0].1);
    }
    let mut out = aligned(&lines);
    for (name, rows) in lists {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("{name}:\n"));
        for line in table(rows).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

fn flatten<'a>(
    prefix: &str,
    map: &'a Map<String, Value>,
    lines: &mut Vec<(String, String)>,
    lists: &mut Vec<(String, &'a [Value])>,
) {
    for (key, value) in map {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => flatten(&name, inner, lines, lists),
            Value::Array(rows) if rows.iter().any(Value::is_object) || rows.is_empty() => {
                lists.push((name, rows))
            }
            other => lines.push((name, cell(other))),
        }
    }
}

/// `name  value` lines with the values in one column.
pub fn aligned(lines: &[(String, String)]) -> String {
    let column = lines.iter().map(|(k, _)| width(k)).max().unwrap_or(0);
    lines
        .iter()
        .map(|(k, v)| format!("{k}{}  {v}\n", pad(column - width(k))))
        .collect()
}

/// Rows of objects as a table: a column per key, in the order keys first
/// appear, headed by the key in capitals; a row without a key has `-`.
pub fn table(rows: &[Value]) -> String {
    if rows.is_empty() {
        return "(none)\n".to_owned();
    }
    let mut columns: Vec<&str> = Vec::new();
    for row in rows {
        if let Value::Object(m) = row {
            for key in m.keys() {
                if !columns.contains(&key.as_str()) {
                    columns.push(key);
                }
            }
        }
    }
    if columns.is_empty() {
        return rows.iter().map(|v| format!("{}\n", cell(v))).collect();
    }
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| row.get(c).map_or("-".to_owned(), cell))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| {
            std::iter::once(&header)
                .chain(&body)
                .map(|r| width(&r[i]))
                .max()
                .unwrap_or(0)
        })
        .collect();
    std::iter::once(&header)
        .chain(&body)
        .map(|r| {
            let mut line = String::new();
            for (i, text) in r.iter().enumerate() {
                line.push_str(text);
                if i + 1 < r.len() {
                    line.push_str(&pad(widths[i] - width(text) + 2));
                }
            }
            line.push('\n');
            line
        })
        .collect()
}

/// A value in one cell: text without quotes, lists joined by commas, a
/// list of objects (a tenant's routes) by its length, anything else as
/// compact JSON; `--json` shows it all.
fn cell(v: &Value) -> String {
    match v {
        Value::Array(items) if items.iter().any(Value::is_object) => items.len().to_string(),
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.iter().map(cell).collect::<Vec<_>>().join(",")
            }
        }
        other => other.to_string(),
    }
}

/// Columns a text takes: one per character (names and addresses are
/// ASCII; this keeps a stray UTF-8 name from skewing the table).
fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(n: usize) -> String {
    " ".repeat(n)
}
