//! An in-process Switchboard for integration tests: binds 127.0.0.1:0, serves
//! the configured services, and shuts down cleanly.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use switchboard::{App, Config};

/// A running in-process server.
pub(crate) struct Harness {
    /// Its TCP address.
    pub(crate) addr: SocketAddr,
    /// Its ops listener's address, when the config enables it.
    pub(crate) ops: Option<SocketAddr>,
    /// Its services.
    pub(crate) app: App,
    join: JoinHandle<()>,
}

/// A config with only the given adjustments on top of the defaults, listening on an ephemeral port.
pub(crate) fn config(adjust: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::default();
    c.server.listen = vec!["127.0.0.1:0".into()];
    c.ops.enabled = false;
    // Private to the test, gone when it ends (a test that needs a file sets its own).
    c.store.url = "sqlite::memory:".into();
    adjust(&mut c);
    c.validate().expect("test config is valid");
    c
}

/// Starts a server with `cfg`.
pub(crate) async fn start(cfg: Config) -> Harness {
    let (listeners, ops) = switchboard::app::bind(&cfg).await.expect("bind");
    let addr = listeners[0].local_addr().expect("tcp listener");
    let ops_addr = ops.as_ref().and_then(|o| o.local_addr());
    let app = App::new(cfg, CancellationToken::new())
        .await
        .expect("build the app");
    let join = tokio::spawn(switchboard::run(app.clone(), listeners, ops));
    Harness {
        addr,
        ops: ops_addr,
        app,
        join,
    }
}

impl Harness {
    /// Cancels and waits for the server to finish.
    pub(crate) async fn shutdown(self) {
        self.app.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.join)
            .await
            .expect("server did not stop in time")
            .expect("server task panicked");
    }

    /// Waits (bounded) until `cond` holds, checking after each scheduler turn
    /// and briefly pausing in between. For server-internal state with no event to await.
    pub(crate) async fn eventually(&self, what: &str, mut cond: impl FnMut(&App) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond(&self.app) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
