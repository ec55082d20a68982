//! Result tables: printed to the terminal and written as Markdown into a section of
//! `docs/performance.md` delimited by `<!-- bench:<id>:start -->` / `<!-- bench:<id>:end -->`.

use std::fmt::Write as _;
use std::path::Path;

use crate::BenchError;

/// One table of figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    /// Heading.
    pub title: String,
    /// Column names.
    pub headers: Vec<String>,
    /// Cells.
    pub rows: Vec<Vec<String>>,
    /// Lines printed under the table (how it was measured, caveats).
    pub notes: Vec<String>,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(title: &str, headers: &[&str]) -> Table {
        Table {
            title: title.to_string(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// The usual comparison columns.
    pub fn comparison(title: &str) -> Table {
        Table::new(
            title,
            &["measure", "watchpool", "peer", "ratio", "target", "met"],
        )
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Plain text for the terminal.
    pub fn text(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, c) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |cells: &[String]| {
            cells
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let w = widths.get(i).copied().unwrap_or(0);
                    format!("{c:<w$}")
                })
                .collect::<Vec<_>>()
                .join("  ")
        };
        let mut out = format!("== {} ==\n{}\n", self.title, line(&self.headers));
        for row in &self.rows {
            out.push_str(&line(row));
            out.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(out, "  {n}");
        }
        out
    }

    /// Markdown.
    pub fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.title);
        let _ = writeln!(out, "| {} |", self.headers.join(" | "));
        let _ = writeln!(
            out,
            "|{}|",
            self.headers
                .iter()
                .map(|_| "---")
                .collect::<Vec<_>>()
                .join("|")
        );
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                let _ = writeln!(out, "- {n}");
            }
        }
        out
    }
}

/// Formats `x` with `digits` decimals.
pub fn f(x: f64, digits: usize) -> String {
    format!("{x:.digits$}")
}

/// A ratio `a / b` as `1.23×`, or `n/a`.
pub fn times(a: f64, b: f64) -> String {
    if b == 0.0 || !a.is_finite() || !b.is_finite() {
        "n/a".into()
    } else {
        format!("{:.2}×", a / b)
    }
}

/// `yes` / `no`.
pub fn met(ok: bool) -> String {
    if ok { "yes".into() } else { "**no**".into() }
}

/// Bytes as KiB or MiB.
pub fn bytes(b: f64) -> String {
    if b.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else {
        format!("{:.0} B", b)
    }
}

/// One benchmark's section of the report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Section {
    /// Marker id (`throughput`, `memory`…).
    pub id: String,
    /// The tables.
    pub tables: Vec<Table>,
    /// The command that reproduces it.
    pub command: String,
}

impl Section {
    /// Markdown of the whole section, with its markers.
    pub fn markdown(&self) -> String {
        let mut out = format!("<!-- bench:{}:start -->\n", self.id);
        let _ = writeln!(
            out,
            "Reproduce: `{}` (load average when it ran: {}).\n",
            self.command,
            crate::procstat::load_average()
        );
        for t in &self.tables {
            out.push_str(&t.markdown());
            out.push('\n');
        }
        let _ = writeln!(out, "<!-- bench:{}:end -->", self.id);
        out
    }

    /// Prints the tables.
    pub fn print(&self) {
        for t in &self.tables {
            println!("{}", t.text());
        }
    }
}

/// Writes `section` into `path`: replaces the part between its markers, or appends it.
pub fn write_section(path: &Path, section: &Section) -> Result<(), BenchError> {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    let updated = replace_section(&current, section);
    std::fs::write(path, updated).map_err(BenchError::Io)
}

/// `doc` with `section` in place of its previous version (or appended).
pub fn replace_section(doc: &str, section: &Section) -> String {
    let start = format!("<!-- bench:{}:start -->", section.id);
    let end = format!("<!-- bench:{}:end -->", section.id);
    let body = section.markdown();
    match (doc.find(&start), doc.find(&end)) {
        (Some(s), Some(e)) if e > s => {
            let after = e + end.len();
            let rest = doc.get(after..).unwrap_or("");
            let rest = rest.strip_prefix('\n').unwrap_or(rest);
            format!("{}{}{}", doc.get(..s).unwrap_or(""), body, rest)
        }
        _ => {
            let mut out = doc.to_string();
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            out.push_str(&body);
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_in_place_and_others_kept() {
        let mut t = Table::comparison("Throughput");
        t.row(vec!["a".into(), "1".into()]);
        let s1 = Section {
            id: "x".into(),
            tables: vec![t.clone()],
            command: "run x".into(),
        };
        let doc = format!("# Title\n\n{}\ntrailer\n", s1.markdown());
        t.rows[0][1] = "2".into();
        let s2 = Section {
            tables: vec![t],
            ..s1
        };
        let out = replace_section(&doc, &s2);
        assert!(out.starts_with("# Title\n\n<!-- bench:x:start -->"));
        assert!(out.contains("| a | 2 |"));
        assert!(!out.contains("| a | 1 |"));
        assert!(out.ends_with("trailer\n"));
        assert_eq!(out.matches("bench:x:start").count(), 1);
    }

    #[test]
    fn a_new_section_is_appended() {
        let s = Section {
            id: "y".into(),
            tables: vec![],
            command: "c".into(),
        };
        let out = replace_section("# Doc\n", &s);
        assert!(out.starts_with("# Doc\n\n<!-- bench:y:start -->"));
    }
}
