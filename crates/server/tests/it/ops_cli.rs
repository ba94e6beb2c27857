//! The operator's command line, as a person meets it: the default command,
//! `config check` and `config print`, errors that name the key or flag, the
//! value and what is accepted (and exit non-zero), listeners that cannot be
//! bound, and a process that shuts down on SIGTERM whatever happened to its
//! stdout and stderr.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{ServerProcess, TempDir, run_with_timeout, server_binary};

const RUN: Duration = Duration::from_secs(30);

/// `switchboard ARGS…` without the caller's `SWITCHBOARD_*` variables, plus `env`.
fn switchboard(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(server_binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SWITCHBOARD_") {
            c.env_remove(name);
        }
    }
    c.env_remove("RUST_LOG")
        .args(args)
        .envs(env.iter().copied());
    c
}

/// Runs a command that must end by itself; returns (exit code, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let out = run_with_timeout(&mut switchboard(args, env), RUN);
    let status = out
        .status
        .unwrap_or_else(|| panic!("{args:?} did not finish"));
    (status.code(), out.stdout.join("\n"), out.stderr.join("\n"))
}

/// Waits for `child` to exit, up to `timeout`.
fn wait_exit(child: Child, timeout: Duration) -> Option<ExitStatus> {
    let (tx, rx) = mpsc::channel();
    let pid = child.id();
    let mut child = child;
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(timeout) {
        Ok(status) => status.ok(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            None
        }
    }
}

/// Waits until the server answers `GET /api/stats` on the unix socket `path`.
fn wait_serving(path: &Path) {
    let deadline = Instant::now() + RUN;
    loop {
        if let Ok(mut s) = UnixStream::connect(path) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(b"GET /api/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server never served on {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok);
}

/// A config for a server on a unix socket in `dir`, with a store in `dir`.
fn unix_config(dir: &TempDir) -> (std::path::PathBuf, std::path::PathBuf) {
    let sock = dir.path().join("sb.sock");
    let config = dir.write(
        "switchboard.toml",
        &format!(
            "[server]\nlisten = [\"{}\"]\n[ops]\nenabled = false\n[store]\nurl = \"sqlite:{}\"\n",
            sock.display(),
            dir.path().join("names.db").display()
        ),
    );
    (config, sock)
}

#[test]
fn sigterm_shuts_down_after_the_reader_of_the_output_pipe_has_gone() {
    // `switchboard serve … 2>&1 | head -3`: one pipe for both streams, closed after a few lines.
    let dir = TempDir::new("closed-pipe");
    let (config, sock) = unix_config(&dir);
    let (reader, writer) = std::io::pipe().expect("pipe");
    let child = switchboard(&["serve", "--config", config.to_str().unwrap()], &[])
        .stdin(Stdio::null())
        .stdout(writer.try_clone().expect("clone"))
        .stderr(writer)
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(reader);
    let mut seen = String::new();
    while !seen.contains("listening on") {
        let mut line = String::new();
        assert!(
            lines.read_line(&mut line).expect("read") > 0,
            "output ended: {seen}"
        );
        seen.push_str(&line);
    }
    drop(lines);
    wait_serving(&sock);
    sigterm(&child);
    let status =
        wait_exit(child, RUN).expect("the server ignored SIGTERM after its log pipe closed");
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn a_closed_stderr_pipe_neither_panics_nor_stops_shutdown() {
    // `switchboard serve … 2>&1 >/dev/null | head -1`: logs into a pipe closed after one line.
    let dir = TempDir::new("closed-stderr");
    let (config, sock) = unix_config(&dir);
    let (reader, writer) = std::io::pipe().expect("pipe");
    let child = switchboard(&["serve", "--config", config.to_str().unwrap()], &[])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(writer)
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(reader)
        .read_line(&mut first)
        .expect("a first log line");
    assert!(!first.is_empty());
    // The reader is gone now: every later line fails with EPIPE.
    wait_serving(&sock);
    sigterm(&child);
    let status = wait_exit(child, RUN).expect("the server ignored SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "exit 101 would be a panic: {status}"
    );
}

#[test]
fn the_default_command_takes_serves_flags_and_logs_plainly_once() {
    let dir = TempDir::new("top-level");
    let config = dir.write(
        "x.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\n[ops]\nenabled = false\n[store]\nurl = \"sqlite:{}\"\n",
            dir.path().join("n.db").display()
        ),
    );
    let server = ServerProcess::start(["--config", config.to_str().unwrap()]);
    server
        .wait_for_line("store opened", RUN)
        .expect("the store is opened and logged");
    server
        .wait_for_line("pubsub   ws://127.0.0.1:", RUN)
        .expect("the banner lists the services");
    let out = server.output(200);
    assert_eq!(
        out.matches("store opened").count(),
        1,
        "logged once:\n{out}"
    );
    assert!(
        !out.contains('\u{1b}'),
        "no colour codes when stderr is a pipe:\n{out}"
    );
}

#[test]
fn ops_listen_off_is_accepted_by_serve_and_by_the_environment() {
    let server = ServerProcess::start(["serve", "--listen", "127.0.0.1:0", "--ops-listen", "off"]);
    assert!(
        !server.output(50).contains("ops on"),
        "{}",
        server.output(50)
    );
    drop(server);
    let dir = TempDir::new("ops-off");
    let config = dir.write(
        "c.toml",
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[store]\nurl = \"sqlite::memory:\"\n",
    );
    let server = ServerProcess::start_with_env(
        ["serve", "--config", config.to_str().unwrap()],
        &[("SWITCHBOARD_OPS_LISTEN", "off")],
        1,
    );
    assert!(
        !server.output(50).contains("ops on"),
        "{}",
        server.output(50)
    );
}

#[test]
fn a_busy_ops_port_names_the_listener_and_the_flag_that_moves_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = run(
        &["serve", "--listen", "127.0.0.1:0", "--ops-listen", &addr],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    for needle in [addr.as_str(), "ops.listen", "--ops-listen", "off", "in use"] {
        assert!(err.contains(needle), "{needle:?} missing from: {err}");
    }
    let port = addr.rsplit(':').next().unwrap();
    let (code, _, err) = run(
        &["pinghub", "-addr=127.0.0.1:0", &format!("-mport={port}")],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("ops.listen") && err.contains("-mport"),
        "{err}"
    );
    let (code, _, err) = run(&["serve", "--listen", &addr, "--ops-listen", "off"], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("server.listen") && err.contains("--listen"),
        "{err}"
    );
}

#[test]
fn bad_input_at_the_command_line_and_in_files_names_key_value_and_what_is_accepted() {
    let dir = TempDir::new("bad-input");
    // (file contents, extra env, what the message must contain)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case<'_>] = &[
        (
            "[log]\nlevel = \"loud\"\n",
            &[],
            &[
                "log.level",
                "\"loud\"",
                "trace, debug, info, warn, error, off",
            ],
        ),
        (
            "",
            &[("SWITCHBOARD_LOG_LEVEL", "loud")],
            &["log.level", "SWITCHBOARD_LOG_LEVEL"],
        ),
        (
            "[pubsub]\norigins = [\"example.com\"]\n",
            &[],
            &["pubsub.origins", "\"example.com\"", "https://example.com"],
        ),
        (
            "[rtc]\norigins = [\"app.example\"]\n",
            &[],
            &["rtc.origins", "https://app.example"],
        ),
        (
            "[ops]\nlisten = \"8198\"\n",
            &[],
            &["ops.listen", "\"8198\"", "host:port", "off"],
        ),
        (
            "[server]\ntls_cert = \"/nonexistent/cert.pem\"\n",
            &[],
            &["server.tls_key", "set both"],
        ),
        ("[pubsub]\nmax_mesage = 5\n", &[], &["max_mesage", "c.toml"]),
    ];
    for (text, env, needles) in cases {
        let file = dir.write("c.toml", text);
        let file = file.to_str().unwrap();
        for args in [
            vec!["serve", "--config", file],
            vec!["config", "check", file],
        ] {
            let (code, out, err) = run(&args, env);
            assert_eq!(code, Some(2), "{args:?} with {text:?} {env:?}: {out}{err}");
            for needle in *needles {
                assert!(
                    err.contains(needle),
                    "{args:?} with {text:?} {env:?}: {needle:?} missing from: {err}"
                );
            }
            assert!(!err.contains("listening on") && !out.contains("listening on"));
        }
    }
    let (code, _, err) = run(
        &["--listen", "127.0.0.1:0", "--ops-listen", "off"],
        &[("RUST_LOG", "loud")],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("RUST_LOG") && err.contains("\"loud\"") && err.contains("TARGET=LEVEL"),
        "{err}"
    );
    let (code, _, err) = run(&["--bogus"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--bogus"), "{err}");
    let (code, _, err) = run(&["serve", "--listen", "8080"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("server.listen") && err.contains("--listen"),
        "{err}"
    );
}

#[test]
fn the_pinghub_persona_warns_about_an_origin_without_a_scheme_and_says_what_matches() {
    let server = ServerProcess::start([
        "pinghub",
        "-addr=127.0.0.1:0",
        "-mport=0",
        "-origin=example.com",
    ]);
    let warning = server
        .wait_for_line("-origin", Duration::from_secs(10))
        .expect("a warning about -origin");
    assert!(
        warning.contains("\"example.com\"")
            && warning.contains("https://example.com")
            && warning.contains("without an Origin header"),
        "{warning}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let browser = switchboard_testkit::ws::try_connect(
            server.addr(),
            "/c",
            &[("Origin", "https://example.com")],
        )
        .await;
        assert!(
            browser.is_err(),
            "a browser origin cannot match a scheme-less entry"
        );
        switchboard_testkit::ws::connect(server.addr(), "/c").await;
    });
}

#[test]
fn config_check_prints_what_would_be_served() {
    let dir = TempDir::new("check");
    let file = dir.write(
        "ok.toml",
        "[server]\nlisten = [\"127.0.0.1:8199\", \"/run/sb.sock\"]\n[rtc]\nenabled = false\n",
    );
    let (code, out, err) = run(&["config", "check", file.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{err}");
    for needle in [
        "ok.toml: ok",
        "would listen on http://127.0.0.1:8199",
        "pubsub   ws://127.0.0.1:8199/pubsub/<channel>",
        "pairing  ws://127.0.0.1:8199/v1/ws/",
        "would listen on unix:/run/sb.sock",
        "would serve ops on http://127.0.0.1:8198/metrics",
    ] {
        assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
    }
    assert!(!out.contains("rtc "), "{out}");
    let (code, _, err) = run(&["config", "check", "/nonexistent.toml"], &[]);
    assert_eq!(code, Some(2));
    assert!(err.contains("/nonexistent.toml"), "{err}");
}

#[test]
fn config_print_marks_every_value_with_its_source_and_redacts_secrets() {
    let dir = TempDir::new("print");
    let file = dir.write("sb.toml", "[pubsub]\nmax_post = 1000\n");
    let file = file.to_str().unwrap();
    let (code, out, err) = run(
        &[
            "config",
            "print",
            "--config",
            file,
            "--listen",
            "127.0.0.1:9",
        ],
        &[
            (
                "SWITCHBOARD_RTC_COOKIE_SECRET",
                "0123456789abcdef-very-secret",
            ),
            (
                "SWITCHBOARD_STORE_URL",
                "postgres://sb:pg-password@db:5432/sb",
            ),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    for needle in [
        format!("max_post = 1000  # file {file}"),
        "listen = [\"127.0.0.1:9\"]  # flag --listen".to_owned(),
        "cookie_secret = \"<redacted>\"  # environment SWITCHBOARD_RTC_COOKIE_SECRET".to_owned(),
        "url = \"postgres://sb:<redacted>@db:5432/sb\"  # environment SWITCHBOARD_STORE_URL"
            .to_owned(),
        "max_message = 65536  # default".to_owned(),
        "[pairing]".to_owned(),
    ] {
        assert!(out.contains(&needle), "{needle:?} missing from:\n{out}");
    }
    assert!(
        !out.contains("very-secret") && !out.contains("pg-password"),
        "{out}"
    );
    // Without secrets, the printout is a configuration file that checks as valid.
    let (code, out, err) = run(&["config", "print"], &[]);
    assert_eq!(code, Some(0), "{err}");
    let printed = dir.write("printed.toml", &out);
    let (code, _, err) = run(&["config", "check", printed.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn an_unreachable_postgresql_is_named_with_host_port_and_cause() {
    let (code, _, err) = run(
        &[
            "signal-server",
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "off",
            "--store",
            "postgres://postgres@127.0.0.1:1/switchboard",
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("127.0.0.1:1") && err.contains("connection refused"),
        "{err}"
    );
    let Some(server) = crate::support::require_postgres() else {
        return;
    };
    let host = switchboard_testkit::deps::url_host_port(&server);
    let missing = format!("postgres://postgres@{host}/switchboard_no_such_database");
    let (code, _, err) = run(
        &[
            "signal-server",
            "--listen",
            "127.0.0.1:0",
            "--ops-listen",
            "off",
            "--store",
            &missing,
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(host)
            && err.contains("switchboard_no_such_database")
            && err.contains("does not exist"),
        "{err}"
    );
}
