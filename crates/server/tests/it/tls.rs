//! Native TLS on the listeners, with certificates the test makes (rcgen):
//! `https://`/`wss://` in the banner, WebSockets over TLS, and rotation on
//! SIGHUP without dropping the connections that are open; a broken file on
//! reload keeps the certificate in use.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};
use tokio_websockets::{ClientBuilder, Message, WebSocketStream};

use crate::support::{ServerProcess, TempDir};

const WAIT: Duration = Duration::from_secs(10);

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM, cert DER).
fn certificate() -> (String, String, CertificateDer<'static>) {
    let c = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("rcgen");
    (
        c.cert.pem(),
        c.signing_key.serialize_pem(),
        c.cert.der().clone(),
    )
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

/// Opens `wss://{addr}{path}` trusting only `root`.
async fn wss(
    addr: std::net::SocketAddr,
    path: &str,
    root: &CertificateDer<'static>,
) -> Result<Wss, String> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).map_err(|e| e.to_string())?;
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::from(addr.ip());
    let tls = tokio::time::timeout(
        WAIT,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|_| "tls handshake timed out".to_owned())?
    .map_err(|e| format!("tls: {e}"))?;
    let (ws, _) = ClientBuilder::new()
        .uri(&format!("wss://{addr}{path}"))
        .map_err(|e| e.to_string())?
        .connect_on(tls)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

async fn next_text(ws: &mut Wss) -> String {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Some(t) = m.as_text() {
            return t.to_owned();
        }
    }
}

#[test]
fn tls_listeners_serve_wss_and_rotate_certificates_on_sighup_without_dropping_connections() {
    let dir = TempDir::new("tls");
    let (a_cert, a_key, a_der) = certificate();
    let cert = dir.write("cert.pem", &a_cert);
    let key = dir.write("key.pem", &a_key);
    let server = ServerProcess::serve_config(
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
             [ops]\nenabled = false\n[rtc]\nenabled = false\n",
            cert.display(),
            key.display()
        ),
        1,
    );
    let addr = server.addr();
    let pubsub = server
        .wait_for_line("pubsub   wss://", WAIT)
        .expect("the banner shows wss:// URLs");
    assert!(
        pubsub.contains(&format!("wss://{addr}/pubsub/<channel>")),
        "{pubsub}"
    );
    assert!(
        server
            .output(20)
            .contains(&format!("listening on https://{addr}")),
        "{}",
        server.output(20)
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut old = wss(addr, "/pubsub/rotation", &a_der)
            .await
            .expect("wss with A");
        old.send(Message::text("before".to_owned())).await.unwrap();
        assert_eq!(next_text(&mut old).await, "before");

        // Rotate to B.
        let (b_cert, b_key, b_der) = certificate();
        dir.write("cert.pem", &b_cert);
        dir.write("key.pem", &b_key);
        server.signal("HUP");
        server
            .wait_for_line("reload: changed", WAIT)
            .expect("the reload is logged");
        let refused = wss(addr, "/pubsub/rotation", &a_der).await;
        assert!(
            refused.is_err(),
            "new handshakes use B, which A's root does not sign"
        );
        let mut new = wss(addr, "/pubsub/rotation", &b_der)
            .await
            .expect("wss with B");
        new.send(Message::text("after".to_owned())).await.unwrap();
        assert_eq!(next_text(&mut new).await, "after");
        assert_eq!(
            next_text(&mut old).await,
            "after",
            "the connection made before the rotation is still open and served"
        );

        // A broken certificate file: the reload fails and B stays in use.
        dir.write("cert.pem", "not a certificate");
        server.signal("HUP");
        let failed = server
            .wait_for_line("reload failed", WAIT)
            .expect("the failed reload is logged");
        assert!(failed.contains("keeping the previous value"), "{failed}");
        let mut again = wss(addr, "/pubsub/rotation", &b_der)
            .await
            .expect("B still served");
        again.send(Message::text("still".to_owned())).await.unwrap();
        assert_eq!(next_text(&mut old).await, "still");
    });
}

#[test]
fn a_tls_key_that_does_not_match_is_refused_before_anything_listens() {
    let dir = TempDir::new("tls-bad");
    let (a_cert, _, _) = certificate();
    let (_, b_key, _) = certificate();
    let cert = dir.write("cert.pem", &a_cert);
    let key = dir.write("key.pem", &b_key);
    let config = dir.write(
        "sb.toml",
        &format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n[ops]\nenabled = false\n",
            cert.display(),
            key.display()
        ),
    );
    let out = crate::support::run_with_timeout(
        std::process::Command::new(crate::support::server_binary()).args([
            "config",
            "check",
            config.to_str().unwrap(),
        ]),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{out:?}");
    let err = out.stderr.join("\n");
    assert!(
        err.contains("server.tls_cert") && err.contains("cannot be used together"),
        "{err}"
    );
}
