//! The figures of a benchmark run: a table for people, JSON for the next run to compare with.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
    /// Context for the other figures (blocks cut, traces found): a change is only noted.
    Neither,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Stable key, e.g. `search.regex.median_ms`: runs are compared by it.
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub better: Better,
}

/// Where and on what the figures were measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_bytes: u64,
    pub os: String,
    pub version: String,
}

impl Machine {
    pub fn this() -> Self {
        let memory_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))?
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: memory_kb * 1024,
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub machine: Machine,
    /// The command line that produced the figures.
    pub command: String,
    pub spans: u64,
    pub traces: u64,
    pub figures: Vec<Figure>,
}

impl Report {
    pub fn new(command: String) -> Self {
        Self {
            machine: Machine::this(),
            command,
            spans: 0,
            traces: 0,
            figures: Vec::new(),
        }
    }

    pub fn push(&mut self, name: impl Into<String>, value: f64, unit: &str, better: Better) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit: unit.to_string(),
            better,
        });
    }

    pub fn get(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// The figures as an aligned table, grouped by the first part of their names.
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut out = format!(
            "tracefusion {} on {} cores, {:.1} GiB, {}: {} spans, {} traces\n",
            m.version,
            m.cores,
            m.memory_bytes as f64 / (1u64 << 30) as f64,
            m.os,
            self.spans,
            self.traces
        );
        let width = self.figures.iter().map(|f| f.name.len()).max().unwrap_or(0);
        let mut group = "";
        for f in &self.figures {
            let g = f.name.split('.').next().unwrap_or("");
            if g != group {
                group = g;
                let _ = writeln!(out);
            }
            let _ = writeln!(
                out,
                "  {:<width$}  {:>14} {}",
                f.name,
                number(f.value),
                f.unit
            );
        }
        out
    }

    /// Each figure of `self` next to the same figure of `old`, with the ratio new/old and
    /// whether that is better or worse (changes within 5% are called even; figures that are
    /// context only say `changed`).
    pub fn compare(&self, old: &Report) -> String {
        let width = self.figures.iter().map(|f| f.name.len()).max().unwrap_or(0);
        let mut out = format!(
            "  {:<width$}  {:>14}  {:>14}  {:>7}\n",
            "figure", "old", "new", "new/old"
        );
        for f in &self.figures {
            let Some(o) = old.get(&f.name) else {
                let _ = writeln!(
                    out,
                    "  {:<width$}  {:>14}  {:>14}",
                    f.name,
                    "-",
                    number(f.value)
                );
                continue;
            };
            let ratio = if o.value == 0.0 {
                f64::NAN
            } else {
                f.value / o.value
            };
            let verdict = if !ratio.is_finite() || (0.95..=1.05).contains(&ratio) {
                ""
            } else if f.better == Better::Neither {
                "changed"
            } else if (ratio < 1.0) == (f.better == Better::Lower) {
                "better"
            } else {
                "worse"
            };
            let _ = writeln!(
                out,
                "  {:<width$}  {:>14}  {:>14}  {:>7.2}  {verdict}",
                f.name,
                number(o.value),
                number(f.value),
                ratio
            );
        }
        out
    }
}

/// A figure with as many decimals as its size needs.
fn number(v: f64) -> String {
    if v.abs() >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
