//! The result table (Markdown) and the notes under it.

use std::fmt::Write as _;
use std::time::Duration;

/// One line of the table.
pub struct Row {
    /// What was measured.
    pub scenario: String,
    /// The baseline's number.
    pub baseline: String,
    /// The sidecar's number.
    pub sidecar: String,
    /// sidecar / baseline (or the scenario's own ratio).
    pub ratio: String,
    /// The goal.
    pub goal: String,
    /// `yes`, `no`, or why it cannot be told.
    pub met: String,
}

/// The table and its notes.
#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Report {
    /// Adds a row.
    pub fn row(
        &mut self,
        scenario: impl Into<String>,
        baseline: impl Into<String>,
        sidecar: impl Into<String>,
        ratio: impl Into<String>,
        goal: impl Into<String>,
        met: impl Into<String>,
    ) {
        let row = Row {
            scenario: scenario.into(),
            baseline: baseline.into(),
            sidecar: sidecar.into(),
            ratio: ratio.into(),
            goal: goal.into(),
            met: met.into(),
        };
        eprintln!(
            "e2e_bench: {} | {} | {} | {} | {} | {}",
            row.scenario, row.baseline, row.sidecar, row.ratio, row.goal, row.met
        );
        self.rows.push(row);
    }

    /// A row saying why a scenario did not run.
    pub fn skipped(&mut self, scenario: impl Into<String>, why: impl Into<String>) {
        let why = why.into();
        self.row(scenario, "-", "-", "-", "-", format!("skipped: {why}"));
    }

    /// Adds a note printed under the table.
    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        eprintln!("e2e_bench: note: {note}");
        self.notes.push(note);
    }

    /// The Markdown table and the notes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("| scenario | baseline | sidecar | ratio | goal | met? |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&r.scenario),
                cell(&r.baseline),
                cell(&r.sidecar),
                cell(&r.ratio),
                cell(&r.goal),
                cell(&r.met)
            );
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

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `yes` or `no`.
pub fn yes_no(met: bool) -> &'static str {
    if met {
        "yes"
    } else {
        "**no**"
    }
}

/// A duration in ms (or µs below 1 ms).
pub fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Bytes as MB (10^6).
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// A ratio with two decimals and an `x`.
pub fn times(ratio: f64) -> String {
    if ratio >= 100.0 {
        format!("{ratio:.0}x")
    } else {
        format!("{ratio:.2}x")
    }
}
