//! A guard against slow changes: `--record FILE` writes a run's figures beside
//! the command line that produced them, and `compare FILE` reruns that command
//! and reports every figure as a ratio to the recorded one, marking those
//! that got worse by more than a tolerance (20 % by default).
//!
//! It is a report, not a timed assertion: this machine is noisy, so the exit
//! status still says only whether the run's correctness checks passed. A
//! figure's direction (higher or lower is better) follows from its name; a
//! figure whose name says neither is shown without a verdict.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What `--record` writes: the arguments to rerun and the run's JSON summary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The command line after the program name, without `--record`.
    pub argv: Vec<String>,
    /// The summary as `--json` prints it.
    pub result: Value,
}

/// Why a record cannot be written or used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The record file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The file is not a record.
    #[error("{path} is not a record written by --record: {reason}")]
    Invalid {
        /// The record file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl Record {
    /// Reads the record at `path`.
    pub fn read(path: &Path) -> Result<Record, RecordError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecordError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let record: Record = serde_json::from_str(&text).map_err(|e| RecordError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if record.argv.is_empty() || !record.result.is_object() {
            return Err(RecordError::Invalid {
                path: path.display().to_string(),
                reason: "no command line or no summary".into(),
            });
        }
        Ok(record)
    }

    /// Writes the record to `path` (pretty JSON, so a diff of two reads well).
    pub fn write(&self, path: &Path) -> Result<(), RecordError> {
        let io = |source| RecordError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut text = serde_json::to_string_pretty(self)
            .map_err(|e| io(std::io::Error::other(e.to_string())))?;
        text.push('\n');
        std::fs::write(path, text).map_err(io)
    }

    /// The command line of a rerun: the recorded one, then `overrides` (later
    /// options win, so `--url` or `--timeout` can be given again).
    pub fn rerun_argv(&self, overrides: &[String]) -> Vec<String> {
        self.argv.iter().chain(overrides).cloned().collect()
    }
}

/// `args` (after the program name) without `--record FILE` / `--record=FILE`
/// and `--json`: what a rerun needs.
pub fn recordable_argv(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut skip_value = false;
    for a in args {
        if skip_value {
            skip_value = false;
        } else if a == "--record" {
            skip_value = true;
        } else if !(a.starts_with("--record=") || a == "--json") {
            out.push(a.clone());
        }
    }
    out
}

/// Which way a figure should move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// Rates: more is better.
    Higher,
    /// Latency, time, CPU and memory: less is better.
    Lower,
    /// Counts and settings: no verdict.
    Neither,
}

/// The direction of the figure at `path` (dot-separated field names), from
/// its own name (the last one): rates up, durations, CPU and memory down.
pub fn direction(path: &str) -> Better {
    let leaf = path.rsplit('.').next().unwrap_or(path).to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| leaf.contains(w));
    if has(&["per_sec", "rate_", "throughput"]) {
        Better::Higher
    } else if ["_us", "_ms", "_ns", "_secs"]
        .iter()
        .any(|s| leaf.ends_with(s))
        || has(&["cpu", "rss", "per_conn"])
    {
        Better::Lower
    } else {
        Better::Neither
    }
}

/// One figure, recorded and now.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Dot-separated field names.
    pub path: String,
    /// The recorded value.
    pub recorded: f64,
    /// This run's value.
    pub now: f64,
    /// Which way is better.
    pub better: Better,
    /// Worse than recorded by more than the tolerance.
    pub worse: bool,
}

impl Row {
    /// `now / recorded` (`None` when the record is zero).
    pub fn ratio(&self) -> Option<f64> {
        (self.recorded != 0.0).then(|| self.now / self.recorded)
    }
}

/// Every numeric figure both summaries have, by field name;
/// `tolerance` is a fraction (0.2: worse by more than 20 % is marked).
pub fn compare(recorded: &Value, now: &Value, tolerance: f64) -> Vec<Row> {
    let mut rows = Vec::new();
    walk(recorded, now, &mut String::new(), tolerance, &mut rows);
    rows
}

fn walk(recorded: &Value, now: &Value, path: &mut String, tolerance: f64, rows: &mut Vec<Row>) {
    match (recorded, now) {
        (Value::Object(r), Value::Object(n)) => {
            for (key, rv) in r {
                let Some(nv) = n.get(key) else { continue };
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(rv, nv, path, tolerance, rows);
                path.truncate(len);
            }
        }
        (Value::Array(r), Value::Array(n)) => {
            for (i, (rv, nv)) in r.iter().zip(n).enumerate() {
                let len = path.len();
                path.push_str(&format!(".{i}"));
                walk(rv, nv, path, tolerance, rows);
                path.truncate(len);
            }
        }
        (Value::Number(r), Value::Number(n)) => {
            let (Some(r), Some(n)) = (r.as_f64(), n.as_f64()) else {
                return;
            };
            if r == 0.0 && n == 0.0 {
                return; // nothing happened either time: no figure
            }
            let better = direction(path);
            let worse = match better {
                Better::Higher => n < r * (1.0 - tolerance),
                Better::Lower => n > r * (1.0 + tolerance),
                Better::Neither => false,
            };
            rows.push(Row {
                path: path.clone(),
                recorded: r,
                now: n,
                better,
                worse,
            });
        }
        _ => {}
    }
}

/// The rows as aligned text: figure, recorded, now, ratio, and `WORSE` on
/// the rows beyond the tolerance; last a count of those.
pub fn render(rows: &[Row], tolerance: f64) -> String {
    use std::fmt::Write as _;
    let width = rows.iter().map(|r| r.path.len()).max().unwrap_or(0).max(6);
    let mut out = format!(
        "compared with the record (worse by more than {:.0} % is marked)\n",
        tolerance * 100.0
    );
    let _ = writeln!(
        out,
        "  {:<width$}  {:>14}  {:>14}  {:>7}",
        "figure", "recorded", "now", "ratio"
    );
    for r in rows {
        let ratio = r.ratio().map_or("-".to_owned(), |x| format!("{x:.2}"));
        let arrow = match r.better {
            Better::Higher => "↑",
            Better::Lower => "↓",
            Better::Neither => " ",
        };
        let _ = writeln!(
            out,
            "  {:<width$}  {:>14}  {:>14}  {:>7} {arrow}{}",
            r.path,
            short(r.recorded),
            short(r.now),
            ratio,
            if r.worse { "  WORSE" } else { "" }
        );
    }
    let worse = rows.iter().filter(|r| r.worse).count();
    let _ = writeln!(
        out,
        "  {worse} of {} figures worse than recorded",
        rows.len()
    );
    out
}

fn short(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_recorded_command_line_drops_record_and_json() {
        let args: Vec<String> = [
            "fanout",
            "--record",
            "a.json",
            "--subscribers",
            "5",
            "--json",
            "--record=b.json",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(recordable_argv(&args), ["fanout", "--subscribers", "5"]);
        let record = Record {
            argv: recordable_argv(&args),
            result: json!({}),
        };
        assert_eq!(
            record.rerun_argv(&["--url".into(), "ws://x/".into()]),
            ["fanout", "--subscribers", "5", "--url", "ws://x/"]
        );
    }

    #[test]
    fn directions_follow_the_names() {
        assert_eq!(direction("deliveries_per_sec"), Better::Higher);
        assert_eq!(direction("latency.p99_us"), Better::Lower);
        assert_eq!(direction("server_cpu_secs"), Better::Lower);
        assert_eq!(direction("subscribers"), Better::Neither);
        assert_eq!(direction("latency.count"), Better::Neither);
        assert_eq!(direction("rate"), Better::Neither, "a setting");
    }

    #[test]
    fn figures_worse_beyond_the_tolerance_are_marked() {
        let recorded = json!({
            "scenario": "fanout",
            "subscribers": 10,
            "deliveries_per_sec": 1000.0,
            "latency": {"p99_us": 100, "p50_us": 50},
            "cpu": [{"user_secs": 1.0}],
            "lost": 0,
            "only_in_the_record": 1,
        });
        let now = json!({
            "scenario": "fanout",
            "subscribers": 20,
            "deliveries_per_sec": 790.0,
            "latency": {"p99_us": 119, "p50_us": 61},
            "cpu": [{"user_secs": 1.0}],
            "lost": 0,
            "only_now": 3,
        });
        let rows = compare(&recorded, &now, 0.2);
        let marked: Vec<_> = rows
            .iter()
            .filter(|r| r.worse)
            .map(|r| r.path.as_str())
            .collect();
        assert_eq!(marked, ["deliveries_per_sec", "latency.p50_us"]);
        let paths: Vec<_> = rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "cpu.0.user_secs",
                "deliveries_per_sec",
                "latency.p50_us",
                "latency.p99_us",
                "subscribers"
            ]
        );
        assert_eq!(rows[1].ratio(), Some(0.79));
        assert_eq!(rows[4].ratio(), Some(2.0));
        let text = render(&rows, 0.2);
        assert!(text.contains("2 of 5 figures worse"), "{text}");
        assert_eq!(text.matches("WORSE").count(), 2, "{text}");
    }

    #[test]
    fn a_record_survives_a_round_trip_and_a_bad_file_is_named() {
        let dir = std::env::temp_dir().join(format!("sb-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("r.json");
        let record = Record {
            argv: vec!["fanout".into()],
            result: json!({"deliveries_per_sec": 1.5}),
        };
        record.write(&path).expect("written");
        let back = Record::read(&path).expect("read");
        assert_eq!(back.argv, record.argv);
        assert_eq!(back.result, record.result);
        std::fs::write(&path, "{}").expect("overwrite");
        let err = Record::read(&path).expect_err("not a record").to_string();
        assert!(err.contains("r.json"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
