//! Aligned text tables: a header row, then one row per item, each column padded to its widest cell, two
//! spaces between columns, no trailing spaces. Every cell is made [`printable`] first.

use crate::terminal::printable;

/// A table being built.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and no rows.
    pub fn new(headers: &[&str]) -> Self {
        Table { headers: headers.iter().map(|h| (*h).to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) -> &mut Self {
        let mut cells: Vec<String> = cells.iter().map(|cell| printable(cell)).collect();
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
        self
    }

    /// The table as text, one line per row, each ending in a newline.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            out.push_str(&line(row, &widths));
            out.push('\n');
        }
        out
    }
}

/// One row padded to `widths` (the last column is not padded), without trailing spaces.
pub fn line(cells: &[String], widths: &[usize]) -> String {
    let mut out = String::new();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i + 1 == cells.len() {
            out.push_str(cell);
        } else {
            let pad = width.saturating_sub(cell.chars().count());
            out.push_str(cell);
            out.push_str(&" ".repeat(pad + 2));
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_cells_escaped() {
        let mut table = Table::new(&["A", "LONGER", "C"]);
        table.row(vec!["wide-cell".into(), "x".into(), "last".into()]);
        table.row(vec!["y\x1b[1m".into(), String::new(), String::new()]);
        assert_eq!(
            table.render(),
            "A           LONGER  C\nwide-cell   x       last\ny\\u{1b}[1m\n",
            "{}",
            table.render()
        );
    }
}
