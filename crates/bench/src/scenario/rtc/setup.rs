//! Setting up an `rtc` user: registering it over plain HTTP (for its
//! cookie) and opening its signaling WebSocket with that cookie.

use std::time::Duration;

use http::{HeaderValue, Uri, header};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_websockets::{ClientBuilder, Limits};

use super::RtcError;
use crate::net::{Dialer, NetError, WsConn};

/// Registers `name`; returns the `user_username=…` cookie pair.
pub(super) async fn register(
    dialer: &Dialer,
    authority: &str,
    prefix: &str,
    name: &str,
) -> Result<String, RtcError> {
    let fail = |reason: String| RtcError::Register {
        name: name.to_owned(),
        reason,
    };
    let body = format!("username={name}");
    let request = format!(
        "POST {prefix}/v1/register HTTP/1.1\r\nHost: {authority}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut tcp = dialer.tcp().await?;
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut reply = Vec::new();
        tcp.read_to_end(&mut reply)
            .await
            .map_err(|e| fail(e.to_string()))?;
        Ok::<_, RtcError>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| fail("timed out".into()))??;
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    let head_len = match parsed.parse(&reply) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Err(fail("unreadable reply".into())),
    };
    let body = String::from_utf8_lossy(&reply[head_len..]);
    if parsed.code != Some(200) || !body.contains("\"SUCCESS\"") {
        return Err(fail(format!("{:?} {body}", parsed.code)));
    }
    parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("set-cookie"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| fail("no Set-Cookie".into()))
}

/// Opens the signaling WebSocket with `cookie`.
pub(super) async fn connect(dialer: &Dialer, uri: &Uri, cookie: &str) -> Result<WsConn, NetError> {
    let dial = async {
        let tcp = dialer.tcp().await?;
        let value = HeaderValue::from_str(cookie).map_err(|_| NetError::InvalidUrl {
            url: uri.to_string(),
            reason: "the cookie is not a header value".into(),
        })?;
        let builder = ClientBuilder::from_uri(uri.clone())
            .limits(Limits::unlimited())
            .add_header(header::COOKIE, value)
            .map_err(NetError::Handshake)?;
        match builder.connect_on(tcp).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_websockets::Error::Upgrade(
                tokio_websockets::upgrade::Error::DidNotSwitchProtocols(code),
            )) => Err(NetError::Status(code)),
            Err(e) => Err(NetError::Handshake(e)),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), dial)
        .await
        .map_err(|_| NetError::Timeout("connect"))?
}
