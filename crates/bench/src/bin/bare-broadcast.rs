//! `bare-broadcast`: the yardstick server for `switchboard-bench fanout
//! --bare-url` (see [`switchboard_bench::bare`]). Bench only.
//!
//! ```sh
//! bare-broadcast [--listen 127.0.0.1:8299] [--threads N]
//! ```

use std::net::SocketAddr;

use tokio::net::TcpListener;

fn usage() -> ! {
    eprintln!("usage: bare-broadcast [--listen ADDR] [--threads N]");
    std::process::exit(2)
}

fn main() {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 8299).into();
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = value.parse().unwrap_or_else(|_| usage()),
            "--threads" => threads = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("bare-broadcast: runtime: {e}");
            std::process::exit(2)
        });
    runtime.block_on(async move {
        let listener = match TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("bare-broadcast: bind {listen}: {e}");
                std::process::exit(2)
            }
        };
        eprintln!("bare-broadcast: listening on {listen}");
        switchboard_bench::bare::serve(listener).await;
    });
}
