//! RFC 6455 conformance: the Autobahn|Testsuite cases of sections 1–10, driven by `kosoku`
//! (PyPI) as a fuzzing client against the test-only echo service of a spawned
//! `switchboard serve`.
//!
//! Needs Python with kosoku (`bash scripts/python-deps.sh`): skipped loudly without it, a
//! failure under `CI=true`. The Python glue is `scripts/autobahn.py`. Knobs (environment):
//! - `SWITCHBOARD_AUTOBAHN_CASES`: comma-separated case ids or globs to run instead (`9.*,5.1`);
//! - `SWITCHBOARD_AUTOBAHN_URL`: test a server that is already running instead of spawning one;
//! - `SWITCHBOARD_AUTOBAHN_REPORT`: where Autobahn's HTML/JSON report goes
//!   (default `<target>/autobahn-report`);
//! - `SWITCHBOARD_AUTOBAHN_PARALLELISM`: cases run at once (default 1).

use crate::support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::{ServerProcess, run_with_timeout};

/// The server config that exposes the echo service at `/echo` on an ephemeral port. The ops
/// listener is off: its default port is fixed, and a second server would fail to bind it.
const ECHO_CONFIG: &str = r#"
[server]
listen = ["127.0.0.1:0"]

[echo]
enabled = true

[ops]
enabled = false
"#;

/// Case globs for sections 1–10 (the case set has no section 8).
const SECTIONS: [&str; 9] = [
    "1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*",
];

/// Cases per section in kosoku 0.1.0's case set: a run with fewer has lost cases.
const EXPECTED_PER_SECTION: [(&str, usize); 9] = [
    ("1", 16),
    ("2", 11),
    ("3", 7),
    ("4", 10),
    ("5", 20),
    ("6", 145),
    ("7", 37),
    ("9", 54),
    ("10", 1),
];

/// Bound on the whole kosoku run (it finishes in well under a minute against a healthy
/// server; each Autobahn case has its own 100 s limit inside).
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

/// Verdicts that count as a pass, for the message exchange and for the closing handshake.
const PASSING: [&str; 3] = ["OK", "NON-STRICT", "INFORMATIONAL"];

/// One case's outcome, as `scripts/autobahn.py` prints it.
#[derive(Debug, PartialEq)]
struct CaseOutcome {
    id: String,
    behavior: String,
    behavior_close: String,
    duration_ms: u64,
    description: String,
    result: String,
    result_close: String,
}

impl CaseOutcome {
    fn passed(&self) -> bool {
        PASSING.contains(&self.behavior.as_str()) && PASSING.contains(&self.behavior_close.as_str())
    }

    fn section(&self) -> &str {
        self.id.split('.').next().unwrap_or_default()
    }
}

/// What the glue printed: per-case outcomes, its summary (total, passed, failed), its errors.
#[derive(Debug, Default)]
struct RunRecords {
    cases: Vec<CaseOutcome>,
    summary: Option<(usize, usize, usize)>,
    errors: Vec<String>,
}

fn parse_records(lines: &[String]) -> RunRecords {
    let mut records = RunRecords::default();
    for line in lines {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            [
                "case",
                id,
                behavior,
                behavior_close,
                duration,
                description,
                result,
                result_close,
            ] => {
                records.cases.push(CaseOutcome {
                    id: (*id).to_owned(),
                    behavior: (*behavior).to_owned(),
                    behavior_close: (*behavior_close).to_owned(),
                    duration_ms: duration.parse().unwrap_or_default(),
                    description: (*description).to_owned(),
                    result: (*result).to_owned(),
                    result_close: (*result_close).to_owned(),
                });
            }
            ["summary", total, passed, failed] => {
                let n = |s: &str| s.parse().unwrap_or(usize::MAX);
                records.summary = Some((n(total), n(passed), n(failed)));
            }
            ["error", message] => records.errors.push((*message).to_owned()),
            _ => records
                .errors
                .push(format!("unparsed output line: {line:?}")),
        }
    }
    records
}

/// Human summary of a run: verdict counts, and each failing or missing case with the reason.
fn verdict(records: &RunRecords, expected: Option<&[(&str, usize)]>) -> Result<String, String> {
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for case in &records.cases {
        *counts
            .entry((&case.behavior, &case.behavior_close))
            .or_default() += 1;
    }
    let counts = counts
        .iter()
        .map(|((b, c), n)| format!("{n} {b}/{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let slowest = records.cases.iter().max_by_key(|c| c.duration_ms);
    let mut summary = format!("{} cases: {counts}", records.cases.len());
    if let Some(case) = slowest {
        summary += &format!("; slowest {} ({} ms)", case.id, case.duration_ms);
    }

    let mut problems = Vec::new();
    for case in records.cases.iter().filter(|c| !c.passed()) {
        problems.push(format!(
            "{:<8} {} / {}: {}\n           close: {}\n           case: {}",
            case.id,
            case.behavior,
            case.behavior_close,
            case.result,
            case.result_close,
            case.description
        ));
    }
    for (section, want) in expected.unwrap_or_default() {
        let got = records
            .cases
            .iter()
            .filter(|c| c.section() == *section)
            .count();
        if got != *want {
            problems.push(format!(
                "section {section}: {got} cases ran, {want} expected (missing cases fail)"
            ));
        }
    }
    if records.cases.is_empty() {
        problems.push("no case ran".to_owned());
    }
    if records.summary.is_none() {
        problems.push("the run printed no summary (did not complete)".to_owned());
    }
    problems.extend(records.errors.iter().map(|e| format!("runner error: {e}")));

    if problems.is_empty() {
        Ok(summary)
    } else {
        Err(format!(
            "{summary}\n{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

fn report_dir() -> PathBuf {
    std::env::var_os("SWITCHBOARD_AUTOBAHN_REPORT").map_or_else(
        || support::target_dir().join("autobahn-report"),
        PathBuf::from,
    )
}

#[test]
fn echo_service_passes_autobahn_sections_1_to_10() {
    let Some(python) = support::require_python_module("kosoku") else {
        return;
    };

    // Keep the server alive for the whole run.
    let (_server, url) = match std::env::var("SWITCHBOARD_AUTOBAHN_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let server = ServerProcess::serve_config(ECHO_CONFIG, 1);
            let url = server.ws_url("/echo");
            (Some(server), url)
        }
    };
    let custom_cases = std::env::var("SWITCHBOARD_AUTOBAHN_CASES").ok();
    let cases: Vec<String> = match &custom_cases {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        None => SECTIONS.iter().map(|s| (*s).to_owned()).collect(),
    };
    let parallelism =
        std::env::var("SWITCHBOARD_AUTOBAHN_PARALLELISM").unwrap_or_else(|_| "1".to_owned());
    let report = report_dir();

    let mut command = Command::new(&python);
    command
        .arg(support::workspace_root().join("scripts/autobahn.py"))
        .arg(&url)
        .args(["--parallelism", &parallelism])
        .args(["--timeout", &RUN_TIMEOUT.as_secs().to_string()])
        .arg("--report-dir")
        .arg(&report);
    for case in &cases {
        command.args(["--case", case]);
    }
    // The glue stops itself at RUN_TIMEOUT; the extra minute covers report writing.
    let output = run_with_timeout(&mut command, RUN_TIMEOUT + Duration::from_secs(60));
    assert!(
        !output.timed_out(),
        "kosoku against {url} was killed after {:?}; its stderr:\n{}",
        output.elapsed,
        output.stderr_tail(40)
    );

    let records = parse_records(&output.stdout);
    let expected = custom_cases.is_none().then_some(&EXPECTED_PER_SECTION[..]);
    match verdict(&records, expected) {
        Ok(summary) => {
            use std::io::Write as _;
            // Straight to stderr, past the harness's capture: the one line worth seeing.
            let _ = writeln!(
                std::io::stderr(),
                "autobahn: {url}: {summary} in {:.1} s (report: {})",
                output.elapsed.as_secs_f64(),
                report.join("index.html").display()
            );
            assert_eq!(
                output.status.map(|s| s.code()),
                Some(Some(0)),
                "every case passed but scripts/autobahn.py exited with {:?}",
                output.status
            );
        }
        Err(failure) => panic!(
            "Autobahn against {url} ({:?}) failed:\n{failure}\nreport: {}\nkosoku stderr:\n{}",
            output.elapsed,
            report.join("index.html").display(),
            output.stderr_tail(20)
        ),
    }
}

#[test]
fn glue_records_parse_and_only_passing_verdicts_pass() {
    let lines: Vec<String> = [
        "case\t1.1.1\tOK\tOK\t0\tSend text message with payload 0.\tActual events match.\tConnection was properly closed",
        "case\t7.1.5\tFAILED\tWRONG CODE\t3\tSend fragment then close\tThe close code should have been 1000 or empty\tThe close code should have been 1000 or empty",
        "case\t7.13.1\tINFORMATIONAL\tINFORMATIONAL\t0\tSend close with close code 5000\tundefined\tclosed",
        "case\t6.4.1\tNON-STRICT\tOK\t2049\tinvalid UTF-8 in 3 fragments\tmatch\tclosed",
        "case\t5.1\tOK\tUNCLEAN\t1\tping fragmented\tmatch\tnot clean",
        "summary\t5\t3\t2",
    ]
    .map(str::to_owned)
    .to_vec();
    let records = parse_records(&lines);
    assert!(records.errors.is_empty(), "{:?}", records.errors);
    assert_eq!(records.summary, Some((5, 3, 2)));
    assert_eq!(records.cases[3].duration_ms, 2049);
    let passed: Vec<&str> = records
        .cases
        .iter()
        .filter(|c| c.passed())
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(passed, ["1.1.1", "7.13.1", "6.4.1"]);

    let failure = verdict(&records, Some(&[("1", 1), ("2", 11)])).unwrap_err();
    assert!(failure.contains("7.1.5"), "{failure}");
    assert!(failure.contains("5.1 "), "{failure}");
    assert!(
        failure.contains("section 2: 0 cases ran, 11 expected"),
        "{failure}"
    );
    assert!(!failure.contains("1.1.1"), "{failure}");

    let incomplete = parse_records(&["error\tthe run did not finish within 900 s".to_owned()]);
    let failure = verdict(&incomplete, None).unwrap_err();
    assert!(failure.contains("no case ran"), "{failure}");
    assert!(failure.contains("did not finish"), "{failure}");
}
