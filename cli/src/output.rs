//! Printing for people (aligned tables) and for scripts (JSON). Untrusted text (container names, reasons)
//! is printed with control characters escaped, so it cannot move the cursor or recolour the terminal.

use std::time::SystemTime;

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

/// Text safe to print on a terminal: control characters escaped.
pub fn printable(text: &str) -> String {
    text.chars().flat_map(|c| if c.is_control() { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// A time as RFC 3339 UTC, seconds precision.
pub fn time(ts: Option<&prost_types::Timestamp>) -> String {
    ts.map(|ts| humantime::format_rfc3339_seconds(hemostat_proto::timestamp::from_proto(ts)).to_string())
        .unwrap_or_default()
}

/// How long ago, roughly, for tables.
pub fn ago(ts: Option<&prost_types::Timestamp>) -> String {
    let Some(ts) = ts else { return String::new() };
    let elapsed = SystemTime::now().duration_since(hemostat_proto::timestamp::from_proto(ts)).unwrap_or_default();
    format!("{}s ago", elapsed.as_secs())
}

/// Prints rows under headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) {
    let rows: Vec<Vec<String>> = rows.iter().map(|row| row.iter().map(|cell| printable(cell)).collect()).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("web\x1b[31m\nx"), "web\\u{1b}[31m\\nx");
        assert_eq!(printable("plain-name_1"), "plain-name_1");
    }
}
