//! A `nats-server` of the test's own ([`NatsServer`]): on a dynamic loopback
//! port, with JetStream in a scratch directory, optionally with authentication
//! or TLS or a config file, and able to stop and restart on the same port and
//! store so tests can see reconnects. Killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::deps::{find_command, missing_dependency};
use crate::process::TempDir;

/// How long `nats-server` may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How to install the server, for the missing-dependency banner.
pub const NATS_INSTALL: &str = "apt-get install -y nats-server (Debian ships 2.9)";

/// What the test's server requires of its clients.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// `--user` / `--pass`.
    pub user_password: Option<(String, String)>,
    /// `--auth` (a token).
    pub token: Option<String>,
    /// `--tls` with this certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A configuration file's text, passed with `-c` (for accounts and permissions).
    pub config: Option<String>,
    /// Turn JetStream off (it is on by default).
    pub no_jetstream: bool,
    /// Listen on this port (default: a free one).
    pub port: Option<u16>,
}

/// A running `nats-server` owned by one test.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    options: NatsOptions,
    dir: TempDir,
    port: u16,
    child: Option<Child>,
    log: Vec<String>,
}

impl NatsServer {
    /// Starts a server with JetStream and no authentication, or returns `None`
    /// (after the missing-dependency rule) when `nats-server` is not installed.
    pub fn start() -> Option<Self> {
        Self::start_with(NatsOptions::default())
    }

    /// Starts a server with `options`; see [`NatsServer::start`].
    pub fn start_with(options: NatsOptions) -> Option<Self> {
        let Some(binary) = find_command("nats-server") else {
            missing_dependency("the command `nats-server`", "not found", NATS_INSTALL);
            return None;
        };
        let mut server = NatsServer {
            binary,
            port: options.port.unwrap_or(0),
            dir: TempDir::new("nats"),
            child: None,
            log: Vec::new(),
            options,
        };
        server.launch();
        Some(server)
    }

    /// `nats://127.0.0.1:PORT` (or `tls://…` when TLS is on).
    pub fn url(&self) -> String {
        let scheme = if self.options.tls.is_some() {
            "tls"
        } else {
            "nats"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server (SIGKILL: clients see the connection drop, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and JetStream directory.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// The lines the server printed at its last start, up to "ready".
    pub fn startup_log(&self) -> &[String] {
        &self.log
    }

    fn launch(&mut self) {
        let mut cmd = Command::new(&self.binary);
        // Port 0 means "pick one" (-1 in nats-server's terms) on the first start; a
        // restart keeps the port so clients reconnect to the same URL.
        let port = if self.port == 0 {
            "-1".to_owned()
        } else {
            self.port.to_string()
        };
        cmd.args(["-a", "127.0.0.1", "-p", &port]);
        if !self.options.no_jetstream {
            cmd.arg("-js")
                .arg("-sd")
                .arg(self.dir.path().join("jetstream"));
        }
        if let Some((user, pass)) = &self.options.user_password {
            cmd.args(["--user", user, "--pass", pass]);
        }
        if let Some(token) = &self.options.token {
            cmd.args(["--auth", token]);
        }
        if let Some((cert, key)) = &self.options.tls {
            cmd.arg("--tls")
                .arg("--tlscert")
                .arg(cert)
                .arg("--tlskey")
                .arg(key);
        }
        if let Some(config) = &self.options.config {
            let file = self.dir.write("nats.conf", config);
            cmd.arg("-c").arg(file);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Nobody listens any more: keep draining so the server never blocks on its log.
                    continue;
                }
            }
        });
        self.log.clear();
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.split("Listening for client connections on ").nth(1)
                        && let Some(port) = addr.trim().rsplit(':').next()
                    {
                        self.port = port.parse().expect("a port in nats-server's log");
                    }
                    let ready = line.contains("Server is ready");
                    self.log.push(line);
                    if ready {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "nats-server did not become ready within {READY_TIMEOUT:?}:\n{}",
                        self.log.join("\n")
                    );
                }
            }
        }
        self.child = Some(child);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
