//! The deployment samples in `deploy/` work as shipped: the systemd unit
//! passes `systemd-analyze verify`, the container's config checks, every
//! nginx sample is valid, and the native and Pinghub samples carry a
//! WebSocket exchange, a pairing channel and a POST through a real nginx
//! (Debian's, run as a child on dynamic loopback ports with a config the test
//! writes; never the system service).
//!
//! Needs `systemd-analyze` (Debian's `systemd`) and `nginx` (Debian's `nginx`):
//! `bash scripts/ops-deps.sh`; skipped loudly when missing, a failure under `CI=true`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchboard_testkit::{http, ws};

use crate::support::{
    ServerProcess, TempDir, require_command, run_with_timeout, server_binary, workspace_root,
};

const INSTALL: &str = "bash scripts/ops-deps.sh (installs Debian's nginx and systemd)";

fn sample(rel: &str) -> String {
    let path = workspace_root().join("deploy").join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let Some(analyze) = require_command("systemd-analyze", INSTALL) else {
        return;
    };
    let unit = sample("systemd/switchboard.service");
    for hardening in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "DynamicUser=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=",
        "SystemCallFilter=@system-service",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitNOFILE=",
    ] {
        assert!(unit.contains(hardening), "the unit lacks {hardening:?}");
    }
    let dir = TempDir::new("systemd");
    // verify checks that ExecStart names an executable: point it at the binary under test.
    let path = dir.write(
        "switchboard.service",
        &unit.replace(
            "/usr/local/bin/switchboard",
            server_binary().to_str().unwrap(),
        ),
    );
    let out = run_with_timeout(
        Command::new(analyze).arg("verify").arg(&path),
        Duration::from_secs(60),
    );
    assert!(
        out.status.is_some_and(|s| s.success()) && out.stderr.is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify: {:?}\n{}\n{}",
        out.status,
        out.stdout.join("\n"),
        out.stderr.join("\n")
    );
}

#[test]
fn the_container_config_is_valid() {
    let path = workspace_root().join("deploy/container/switchboard.toml");
    let out = run_with_timeout(
        Command::new(server_binary())
            .args(["config", "check"])
            .arg(&path),
        Duration::from_secs(30),
    );
    assert!(
        out.status.is_some_and(|s| s.success()),
        "{}",
        out.stderr.join("\n")
    );
    assert!(
        out.stdout
            .iter()
            .any(|l| l.contains("would listen on http://0.0.0.0:8199")),
        "{:?}",
        out.stdout
    );
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// nginx running `site` (an `http {}`-level sample, rewritten to listen on a
/// loopback port and proxy to `upstream`), killed on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Nginx {
    /// Writes `site` and a main config around it (pid, logs and temp files in `dir`).
    fn config(dir: &TempDir, site: &str) -> PathBuf {
        let d = dir.path().display();
        dir.write("site.conf", site);
        dir.write(
            "nginx.conf",
            &format!(
                "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  \
                 proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  \
                 scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n"
            ),
        )
    }

    /// `site` with its `listen 80;` moved to a free loopback port and every
    /// `server 127.0.0.1:PORT;` upstream pointed at `upstream`.
    fn rewrite(site: &str, port: u16, upstream: SocketAddr) -> String {
        site.lines()
            .map(|l| {
                let t = l.trim();
                if t == "listen 80;" {
                    format!("    listen 127.0.0.1:{port};")
                } else if t.starts_with("server 127.0.0.1:") && t.ends_with(';') {
                    format!("    server {upstream};")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn start(nginx: &Path, site: &str, upstream: SocketAddr) -> Nginx {
        let dir = TempDir::new("nginx");
        let port = free_port();
        let conf = Nginx::config(&dir, &Nginx::rewrite(site, port, upstream));
        let child = Command::new(nginx)
            .arg("-c")
            .arg(&conf)
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut nginx = Nginx { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn every_nginx_sample_is_valid() {
    let Some(nginx) = require_command("nginx", INSTALL) else {
        return;
    };
    for name in [
        "switchboard",
        "pinghub",
        "channelserver",
        "signal-server",
        "meetingserver",
    ] {
        let dir = TempDir::new("nginx-t");
        let site = Nginx::rewrite(
            &sample(&format!("nginx/{name}.conf")),
            free_port(),
            "127.0.0.1:9".parse().unwrap(),
        );
        let conf = Nginx::config(&dir, &site);
        let out = run_with_timeout(
            Command::new(&nginx)
                .arg("-t")
                .arg("-c")
                .arg(&conf)
                .arg("-p")
                .arg(dir.path()),
            Duration::from_secs(30),
        );
        assert!(
            out.status.is_some_and(|s| s.success()),
            "nginx -t on deploy/nginx/{name}.conf:\n{}",
            out.stderr.join("\n")
        );
    }
}

#[test]
fn the_native_nginx_sample_carries_websockets_pairing_and_posts() {
    let Some(nginx_bin) = require_command("nginx", INSTALL) else {
        return;
    };
    let server = ServerProcess::serve_config(
        "[server]\nlisten = [\"127.0.0.1:0\"]\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [ops]\nenabled = false\n[store]\nurl = \"sqlite::memory:\"\n",
        1,
    );
    let nginx = Nginx::start(&nginx_bin, &sample("nginx/switchboard.conf"), server.addr());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sub = ws::connect(nginx.addr, "/pubsub/through-nginx").await;
        let posted = http::post(nginx.addr, "/pubsub/through-nginx", b"posted via nginx").await;
        assert_eq!(posted.status, 200, "{}", posted.text());
        assert_eq!(sub.text().await, "posted via nginx");
        sub.send_text("sent via nginx").await;
        assert_eq!(sub.text().await, "sent via nginx");

        let mut creator = ws::connect(nginx.addr, "/v1/ws/").await;
        let hello: serde_json::Value = serde_json::from_str(&creator.text().await).unwrap();
        let id = hello["channelid"]
            .as_str()
            .expect("a channel id")
            .to_owned();
        let mut joiner = ws::connect(nginx.addr, &format!("/v1/ws/{id}")).await;
        let _ = joiner.text().await;
        joiner.send_text("paired via nginx").await;
        let got: serde_json::Value = serde_json::from_str(&creator.text().await).unwrap();
        assert_eq!(got["message"], "paired via nginx");
        // The console answers too, through the same location.
        assert_eq!(http::get(nginx.addr, "/").await.status, 200);
    });
    assert!(
        !nginx.error_log().contains("[error]"),
        "{}",
        nginx.error_log()
    );
}

#[test]
fn the_pinghub_nginx_sample_carries_websockets_and_posts() {
    let Some(nginx_bin) = require_command("nginx", INSTALL) else {
        return;
    };
    let server = ServerProcess::start(["pinghub", "-addr=127.0.0.1:0", "-mport=0"]);
    let nginx = Nginx::start(&nginx_bin, &sample("nginx/pinghub.conf"), server.addr());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut sub = ws::connect(nginx.addr, "/chan").await;
        assert_eq!(http::post(nginx.addr, "/chan", b"hi").await.status, 200);
        assert_eq!(sub.text().await, "hi");
    });
}

#[test]
fn the_meetingserver_nginx_sample_carries_a_members_websocket() {
    let Some(nginx_bin) = require_command("nginx", INSTALL) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(db) = rt.block_on(switchboard_testkit::pgeu::PgeuDb::create()) else {
        return;
    };
    let (meeting, key) = rt.block_on(async {
        let meeting = db.meeting("AGM", 0).await;
        let alice = db.member("Alice").await;
        let key = format!("N{}", "n".repeat(53));
        db.key(meeting, alice, &key, None).await;
        (meeting, key)
    });
    let server = ServerProcess::start([
        "meetingserver",
        "-origin=*",
        "-behindproxy",
        "-dburl",
        db.url(),
        "-listen",
        "127.0.0.1:0",
    ]);
    let nginx = Nginx::start(
        &nginx_bin,
        &sample("nginx/meetingserver.conf"),
        server.addr(),
    );
    rt.block_on(async {
        let path = format!("/ws/meeting/{meeting}/{key}/0");
        let mut alice = crate::meetings_common::Meet::connect(nginx.addr, &path).await;
        let j = alice.joined("Alice").await;
        assert_eq!(j.status["isopen"], false);
        alice.say("through nginx").await;
        assert_eq!(alice.line("through nginx").await["fromname"], "Alice");
        // The status report stays off the public site.
        assert_eq!(http::get(nginx.addr, "/__meetingstatus").await.status, 404);
    });
    assert!(
        !nginx.error_log().contains("[error]"),
        "{}",
        nginx.error_log()
    );
}
