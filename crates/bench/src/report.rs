//! The result of a run as a person or a script reads it.
//!
//! Every scenario returns a value implementing [`Summary`]: serializable
//! fields, the list of failed correctness checks, and a human rendering built
//! with [`Lines`]. [`render`] turns it into either one JSON object (`--json`)
//! or aligned text, and the `fmt_*` helpers keep numbers uniform across
//! scenarios.

use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::{LatencySummary, Tally};

/// A scenario's result.
pub trait Summary: Serialize {
    /// The scenario's name, as typed on the command line.
    fn scenario(&self) -> &'static str;

    /// Correctness checks that failed (loss, reordering, missing messages).
    /// Empty means the run passed; the process exits non-zero otherwise.
    fn failures(&self) -> Vec<String>;

    /// Writes the human-readable body.
    fn human(&self, out: &mut Lines);
}

/// The failed checks of a run, in the words [`Summary::failures`] returns:
/// each check adds its line only when it fails.
#[derive(Debug, Default)]
#[must_use]
pub struct Failures(Vec<String>);

impl Failures {
    /// `"{missing} of {expected} {what}"` when only `got` of `expected` happened.
    pub fn short_of(mut self, got: u64, expected: u64, what: &str) -> Self {
        if got < expected {
            self.0
                .push(format!("{} of {expected} {what}", expected - got));
        }
        self
    }

    /// `"{n} {what}"` when `n` is not zero.
    pub fn count(mut self, n: u64, what: &str) -> Self {
        if n > 0 {
            self.0.push(format!("{n} {what}"));
        }
        self
    }

    /// `text` when `failed`.
    pub fn check(mut self, failed: bool, text: impl Into<String>) -> Self {
        if failed {
            self.0.push(text.into());
        }
        self
    }

    /// The lines, in the order the checks ran.
    pub fn into_vec(self) -> Vec<String> {
        self.0
    }
}

/// Aligned `key  value` lines under a heading.
#[derive(Debug, Default)]
pub struct Lines {
    text: String,
}

impl Lines {
    /// Adds one `key  value` line.
    pub fn kv(&mut self, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.text, "  {key:<16} {value}");
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[derive(Serialize)]
struct Envelope<'a, S> {
    scenario: &'static str,
    ok: bool,
    failures: &'a [String],
    #[serde(flatten)]
    result: &'a S,
}

/// Renders `summary` as one JSON object (with `scenario`, `ok` and
/// `failures` first) or as text, with a trailing newline either way.
pub fn render<S: Summary>(summary: &S, json: bool) -> Result<String, serde_json::Error> {
    let failures = summary.failures();
    if json {
        let envelope = Envelope {
            scenario: summary.scenario(),
            ok: failures.is_empty(),
            failures: &failures,
            result: summary,
        };
        let mut text = serde_json::to_string(&envelope)?;
        text.push('\n');
        return Ok(text);
    }
    let mut lines = Lines::default();
    summary.human(&mut lines);
    let verdict = if failures.is_empty() {
        "PASS".to_owned()
    } else {
        format!("FAIL ({})", failures.join("; "))
    };
    Ok(format!(
        "{}: {verdict}\n{}",
        summary.scenario(),
        lines.as_str()
    ))
}

/// `1234` → `1.23k`, `2500000` → `2.50M`; below 1000 a whole number.
pub fn fmt_count(value: f64) -> String {
    let abs = value.abs();
    if abs < 1e3 {
        format!("{value:.0}")
    } else if abs < 1e6 {
        format!("{:.2}k", value / 1e3)
    } else if abs < 1e9 {
        format!("{:.2}M", value / 1e6)
    } else {
        format!("{:.2}G", value / 1e9)
    }
}

/// A rate per second.
pub fn fmt_rate(value: f64) -> String {
    format!("{}/s", fmt_count(value))
}

/// Bytes in binary units: `512 B`, `6.1 KiB`, `1.25 MiB`, `2.00 GiB`.
pub fn fmt_bytes(bytes: f64) -> String {
    const KIB: f64 = 1024.0;
    let abs = bytes.abs();
    if abs < KIB {
        format!("{bytes:.0} B")
    } else if abs < KIB * KIB {
        format!("{:.1} KiB", bytes / KIB)
    } else if abs < KIB * KIB * KIB {
        format!("{:.2} MiB", bytes / (KIB * KIB))
    } else {
        format!("{:.2} GiB", bytes / (KIB * KIB * KIB))
    }
}

/// Microseconds: `850 µs`, `1.23 ms`, `2.50 s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 1_000_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// `p50 … p90 … p99 … p99.9 … max …`, or `no samples`.
pub fn fmt_latency(latency: &LatencySummary) -> String {
    if latency.count == 0 {
        return "no samples".to_owned();
    }
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        fmt_us(latency.p50_us),
        fmt_us(latency.p90_us),
        fmt_us(latency.p99_us),
        fmt_us(latency.p999_us),
        fmt_us(latency.max_us)
    )
}

/// `none`, or `label ×count` pairs separated by commas.
pub fn fmt_tally(tally: &Tally) -> String {
    if tally.is_empty() {
        return "none".to_owned();
    }
    tally
        .iter()
        .map(|(label, n)| format!("{label} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_list_only_the_checks_that_failed() {
        let none = Failures::default()
            .short_of(10, 10, "lines missing")
            .count(0, "out of order")
            .check(false, "never")
            .into_vec();
        assert!(none.is_empty());
        let some = Failures::default()
            .short_of(7, 10, "lines missing")
            .count(2, "out of order")
            .check(true, "no sample taken")
            .into_vec();
        assert_eq!(
            some,
            ["3 of 10 lines missing", "2 out of order", "no sample taken"]
        );
    }

    #[test]
    fn number_formats() {
        let counts = [
            (0.0, "0"),
            (999.0, "999"),
            (1234.0, "1.23k"),
            (2_500_000.0, "2.50M"),
            (3.2e9, "3.20G"),
        ];
        for (value, want) in counts {
            assert_eq!(fmt_count(value), want);
        }
        assert_eq!(fmt_rate(1_000_000.0), "1.00M/s");
        let bytes = [
            (512.0, "512 B"),
            (6246.0, "6.1 KiB"),
            (1_310_720.0, "1.25 MiB"),
            (2_147_483_648.0, "2.00 GiB"),
            (-2048.0, "-2.0 KiB"),
        ];
        for (value, want) in bytes {
            assert_eq!(fmt_bytes(value), want);
        }
        let micros = [(850, "850 µs"), (1234, "1.23 ms"), (2_500_000, "2.50 s")];
        for (value, want) in micros {
            assert_eq!(fmt_us(value), want);
        }
    }

    #[test]
    fn latency_and_tally_formats() {
        let latency = LatencySummary {
            count: 10,
            mean_us: 500.0,
            p50_us: 400,
            p90_us: 900,
            p99_us: 1500,
            p999_us: 2000,
            max_us: 3_000_000,
        };
        assert_eq!(
            fmt_latency(&latency),
            "p50 400 µs  p90 900 µs  p99 1.50 ms  p99.9 2.00 ms  max 3.00 s"
        );
        assert_eq!(fmt_latency(&LatencySummary::default()), "no samples");
        let mut tally = Tally::default();
        assert_eq!(fmt_tally(&tally), "none");
        tally.add("1013");
        tally.add("1013");
        tally.add("eof");
        assert_eq!(fmt_tally(&tally), "1013 ×2, eof ×1");
    }

    #[derive(Serialize)]
    struct Demo {
        delivered: u64,
    }

    impl Summary for Demo {
        fn scenario(&self) -> &'static str {
            "demo"
        }
        fn failures(&self) -> Vec<String> {
            if self.delivered < 10 {
                vec![format!("{} lost", 10 - self.delivered)]
            } else {
                Vec::new()
            }
        }
        fn human(&self, out: &mut Lines) {
            out.kv("delivered", self.delivered);
        }
    }

    #[test]
    fn renders_json_and_text() {
        let pass = Demo { delivered: 10 };
        assert_eq!(
            render(&pass, true).unwrap(),
            "{\"scenario\":\"demo\",\"ok\":true,\"failures\":[],\"delivered\":10}\n"
        );
        assert_eq!(
            render(&pass, false).unwrap(),
            "demo: PASS\n  delivered        10\n"
        );
        let fail = Demo { delivered: 7 };
        let json: serde_json::Value = serde_json::from_str(&render(&fail, true).unwrap()).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["failures"][0], "3 lost");
        assert!(
            render(&fail, false)
                .unwrap()
                .starts_with("demo: FAIL (3 lost)\n")
        );
    }
}
