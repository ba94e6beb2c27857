//! The bench's own checks, end to end, against a tiny in-test relay that can
//! misbehave on purpose: a clean relay must pass, a relay that drops or
//! swaps a message must be caught.
//!
//! The relay speaks just enough of the Pinghub protocol (a WebSocket on a
//! path subscribes to it, every text frame goes to every subscriber of the
//! path, the sender included) and registers a subscriber before its 101, as
//! Switchboard does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use clap::Parser as _;
use futures_util::{SinkExt as _, StreamExt as _};
use switchboard_bench::cli::{Cli, Scenario};
use switchboard_bench::payload;
use switchboard_bench::report::Summary as _;
use switchboard_bench::scenario::{Ctx, churn, fanout, idle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_websockets::{Message, ServerBuilder};

/// What the relay does wrong, per connection (numbered in accept order).
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    /// Never deliver this sequence number to this connection.
    drop: Option<(usize, u32)>,
    /// Deliver this sequence number to this connection after the next one.
    swap: Option<(usize, u32)>,
}

type Channels = Arc<Mutex<HashMap<String, Vec<(usize, mpsc::UnboundedSender<Bytes>)>>>>;

async fn start_relay(faults: Faults) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let channels: Channels = Arc::default();
    tokio::spawn(async move {
        let mut next_id = 0;
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let id = next_id;
            next_id += 1;
            tokio::spawn(serve(stream, id, channels.clone(), faults));
        }
    });
    addr
}

/// Reads the upgrade request, subscribes, then answers 101.
async fn serve(mut stream: TcpStream, id: usize, channels: Channels, faults: Faults) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read_exact(&mut byte).await.is_err() {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).unwrap();
    let path = text.split(' ').nth(1).unwrap().to_owned();
    let key = text
        .lines()
        .find_map(|line| {
            line.strip_prefix("sec-websocket-key: ")
                .or_else(|| line.strip_prefix("Sec-WebSocket-Key: "))
        })
        .unwrap()
        .trim()
        .to_owned();
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let accept = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());

    let (tx, mut rx) = mpsc::unbounded_channel::<Bytes>();
    channels
        .lock()
        .unwrap()
        .entry(path.clone())
        .or_default()
        .push((id, tx));
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(reply.as_bytes()).await.unwrap();
    let ws = ServerBuilder::new().serve(stream);
    let (mut sink, mut frames) = ws.split();

    let writer = tokio::spawn(async move {
        let mut held: Option<Bytes> = None;
        while let Some(body) = rx.recv().await {
            let seq = payload::decode(&body).map(|s| s.seq).ok();
            if faults
                .drop
                .is_some_and(|(conn, n)| conn == id && seq == Some(n))
            {
                continue;
            }
            if faults
                .swap
                .is_some_and(|(conn, n)| conn == id && seq == Some(n))
            {
                held = Some(body);
                continue;
            }
            if sink.feed(Message::text(body)).await.is_err() {
                return;
            }
            let late_failed = match held.take() {
                Some(late) => sink.feed(Message::text(late)).await.is_err(),
                None => false,
            };
            if late_failed {
                return;
            }
            if rx.is_empty() && sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });

    while let Some(Ok(message)) = frames.next().await {
        if !message.is_text() || message.as_payload().is_empty() {
            continue;
        }
        let body = Bytes::copy_from_slice(message.as_payload());
        let subscribers = channels.lock().unwrap();
        for (_, tx) in subscribers.get(&path).into_iter().flatten() {
            let _ = tx.send(body.clone());
        }
    }
    if let Some(list) = channels.lock().unwrap().get_mut(&path) {
        list.retain(|(other, _)| *other != id);
    }
    let _ = writer.await;
}

async fn context(addr: SocketAddr, args: &[&str]) -> (Ctx, Scenario) {
    let url = format!("ws://{addr}/pubsub/test");
    let argv = [
        "switchboard-bench",
        "--json",
        "--sources",
        "2",
        "--url",
        &url,
    ]
    .into_iter()
    .chain(args.iter().copied());
    let cli = Cli::try_parse_from(argv).unwrap();
    (Ctx::new(cli.common).await.unwrap(), cli.scenario)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_passes_on_a_clean_relay() {
    let addr = start_relay(Faults::default()).await;
    let (ctx, scenario) =
        context(addr, &["fanout", "--subscribers", "5", "--messages", "300"]).await;
    let Scenario::Fanout(args) = scenario else {
        unreachable!()
    };
    let summary = fanout::run(&ctx, &args).await.unwrap();
    assert!(summary.failures().is_empty(), "{:?}", summary.failures());
    assert_eq!(summary.subscribers_connected, 5);
    assert_eq!(summary.published, 300);
    assert_eq!(summary.deliveries, 1500);
    assert_eq!(summary.order.received, 1500);
    assert_eq!(summary.echo.unwrap().received, 300);
    assert_eq!(summary.latency.count, 1500);
    assert!(summary.deliveries_per_sec > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_catches_loss_and_reordering() {
    // Connections 0-3 are subscribers (the publisher connects last).
    let faults = Faults {
        drop: Some((0, 7)),
        swap: Some((1, 20)),
    };
    let addr = start_relay(faults).await;
    let (ctx, scenario) = context(
        addr,
        &[
            "fanout",
            "--subscribers",
            "4",
            "--messages",
            "100",
            "--rate",
            "20000",
            "--drain-timeout",
            "0.5",
        ],
    )
    .await;
    let Scenario::Fanout(args) = scenario else {
        unreachable!()
    };
    let summary = fanout::run(&ctx, &args).await.unwrap();
    assert_eq!(summary.order.lost, 1);
    assert_eq!(summary.order.reorders, 1);
    assert_eq!(summary.incomplete_subscribers, 1);
    assert!(summary.drain_timed_out);
    assert_eq!(
        summary.failures(),
        vec![
            "1 deliveries lost".to_owned(),
            "1 deliveries reordered".to_owned()
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_verifies_every_connection() {
    let addr = start_relay(Faults::default()).await;
    for extra in [&["--channels", "3"][..], &["--distinct"][..]] {
        let mut args = vec!["idle", "--connections", "20", "--settle-timeout", "1"];
        args.extend_from_slice(extra);
        let (ctx, scenario) = context(addr, &args).await;
        let Scenario::Idle(args) = scenario else {
            unreachable!()
        };
        let summary = idle::run(&ctx, &args).await.unwrap();
        assert!(summary.failures().is_empty(), "{:?}", summary.failures());
        assert_eq!(
            (summary.connected, summary.verified, summary.alive_at_end),
            (20, 20, 20)
        );
        assert!(summary.bench_rss > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_completes_every_cycle() {
    let addr = start_relay(Faults::default()).await;
    let (ctx, scenario) = context(
        addr,
        &[
            "churn",
            "--rate",
            "100",
            "--duration",
            "0.5",
            "--hold-ms",
            "5",
        ],
    )
    .await;
    let Scenario::Churn(args) = scenario else {
        unreachable!()
    };
    let summary = churn::run(&ctx, &args).await.unwrap();
    assert!(summary.failures().is_empty(), "{:?}", summary.failures());
    assert_eq!(
        (summary.scheduled, summary.connected, summary.completed),
        (50, 50, 50)
    );
    assert_eq!(summary.echo_latency.count, 50);
}

/// Runs the bench binary with `args`; returns its exit code and stdout.
async fn bench(args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard-bench"))
        .args(args)
        .output()
        .await
        .expect("the bench binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("error:"), "{stderr}");
    (out.status.code(), stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_run_is_rerun_and_compared_figure_by_figure() {
    let addr = start_relay(Faults::default()).await;
    let url = format!("ws://{addr}/pubsub/compare");
    let dir = std::env::temp_dir().join(format!("sb-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("base.json");
    let file = file.to_str().unwrap();
    let (code, _) = bench(&[
        "fanout",
        "--url",
        &url,
        "--sources",
        "1",
        "--subscribers",
        "3",
        "--messages",
        "40",
        "--record",
        file,
    ])
    .await;
    assert_eq!(code, Some(0));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    assert_eq!(record["argv"][0], "fanout");
    assert!(!record["argv"].to_string().contains("--record"));
    assert_eq!(record["result"]["deliveries"], 120);

    // The same run again: every figure is listed with its ratio.
    let (code, out) = bench(&["compare", file, "--", "--timeout", "60"]).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("compared with the record"), "{out}");
    assert!(out.contains("deliveries_per_sec"), "{out}");
    assert!(out.contains("figures worse than recorded"), "{out}");

    // A record five orders of magnitude faster than any run: marked, and the
    // exit status still follows only the correctness checks.
    let mut fast = record.clone();
    fast["result"]["deliveries_per_sec"] = serde_json::json!(1e12);
    std::fs::write(file, fast.to_string()).unwrap();
    let (code, out) = bench(&["compare", file]).await;
    assert_eq!(code, Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("deliveries_per_sec"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.ends_with("WORSE"), "{line}");

    // Not a record: a clear error, exit status 2.
    std::fs::write(file, "{}").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard-bench"))
        .args(["compare", file])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a record"));
    std::fs::remove_dir_all(&dir).ok();
}
