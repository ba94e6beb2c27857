//! Pairing metrics: the original channelserver's statsd counters and timer, and
//! the same events as Prometheus counters.
//!
//! statsd lines use the original's names under a configurable prefix (default
//! `channelserver`) with DogStatsD bare tag values, e.g.
//! `channelserver.conn.request:1|c|#new` and `channelserver.conn.length:3000|ms`.
//! They leave through `cadence`'s [`QueuingMetricSink`]: a socket task only
//! pushes onto a bounded queue, and a background thread sends one UDP datagram
//! per metric. A full queue drops the metric (counted in
//! `switchboard_pairing_statsd_dropped_total`); nothing ever waits on the network.
//!
//! Prometheus gets every [`Event`] as `switchboard_pairing_events_total{event=…}`
//! (the statsd name as the label), requests as
//! `switchboard_pairing_requests_total{kind=new|existing|error}`, and connection
//! lengths as the `switchboard_pairing_connection_seconds` histogram.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use cadence::prelude::*;
use cadence::{MetricError, QueuingMetricSink, StatsdClient, UdpMetricSink};
use metrics::{counter, histogram};

/// Where statsd lines go when the port is omitted (the usual statsd port).
pub const DEFAULT_STATSD_PORT: u16 = 8125;

/// Most metrics waiting for the sender thread; more are dropped.
const QUEUE_CAPACITY: usize = 8192;

/// What a connection attempt asked for: the tag of `conn.request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `GET /v1/ws/`: create a channel.
    New,
    /// `GET /v1/ws/{id}` with a well-formed id: join one.
    Existing,
    /// A malformed id (answered 400).
    Error,
}

impl RequestKind {
    /// The tag value.
    pub fn tag(self) -> &'static str {
        match self {
            RequestKind::New => "new",
            RequestKind::Existing => "existing",
            RequestKind::Error => "error",
        }
    }
}

/// Something worth counting. The first six are the original's statsd counters;
/// the rest are Prometheus-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A connection was accepted into a channel (creator or joiner).
    Create,
    /// A join was refused: the channel is full.
    MaxConn,
    /// A channel ended on `max_exchanges`.
    MaxMsg,
    /// A channel ended on `max_data`.
    MaxData,
    /// A connection ended on `client_timeout` (no ping, pong or text in time).
    Expired,
    /// A connection ended on `conn_lifespan`.
    Timeout,
    /// A join was refused: no such channel.
    UnknownChannel,
    /// A join was refused: the joiner's address matches no member.
    ForeignAddress,
    /// A connection was refused: a trusted proxy sent an unparsable `X-Forwarded-For`.
    BadForwardedFor,
    /// A trusted proxy named no client (no `X-Forwarded-For`, or proxies only): no `remote`.
    RemoteUnknown,
    /// An `Accept-Language` header had no usable language range; the default applies.
    BadAcceptLanguage,
    /// A binary frame was dropped.
    BinaryIgnored,
}

impl Event {
    /// The metric name: the statsd key for the original's events, the Prometheus label for all.
    pub fn name(self) -> &'static str {
        match self {
            Event::Create => "conn.create",
            Event::MaxConn => "conn.max.conn",
            Event::MaxMsg => "conn.max.msg",
            Event::MaxData => "conn.max.data",
            Event::Expired => "conn.expired",
            Event::Timeout => "conn.timeout",
            Event::UnknownChannel => "conn.unknown_channel",
            Event::ForeignAddress => "conn.foreign_address",
            Event::BadForwardedFor => "conn.bad_forwarded_for",
            Event::RemoteUnknown => "conn.remote_unknown",
            Event::BadAcceptLanguage => "conn.bad_accept_language",
            Event::BinaryIgnored => "msg.binary_ignored",
        }
    }

    /// Whether the original channelserver sent this to statsd.
    pub fn is_statsd(self) -> bool {
        matches!(
            self,
            Event::Create
                | Event::MaxConn
                | Event::MaxMsg
                | Event::MaxData
                | Event::Expired
                | Event::Timeout
        )
    }
}

/// Where to send statsd lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsdConfig {
    /// `host:port` (port optional, default 8125). Empty: no statsd.
    pub host: String,
    /// The prefix of every name (`channelserver` gives `channelserver.conn.create`).
    pub prefix: String,
}

impl Default for StatsdConfig {
    /// No statsd; prefix `channelserver`.
    fn default() -> Self {
        StatsdConfig {
            host: String::new(),
            prefix: "channelserver".into(),
        }
    }
}

/// Setting up the statsd sender failed.
#[derive(Debug, thiserror::Error)]
pub enum StatsdError {
    /// The host did not resolve to an address.
    #[error("cannot resolve statsd host {host:?}: {source}")]
    Resolve {
        /// The configured host.
        host: String,
        /// The resolver error.
        source: std::io::Error,
    },
    /// No local UDP socket could be opened.
    #[error("cannot open a UDP socket for statsd: {0}")]
    Socket(#[source] std::io::Error),
    /// cadence refused the sink.
    #[error("statsd sink: {0}")]
    Sink(#[source] MetricError),
}

/// Splits `host[:port]` (`[v6]:port` and bare IPv6 understood) into an address.
pub fn resolve_statsd_host(host: &str) -> Result<SocketAddr, StatsdError> {
    let resolve_err = |source| StatsdError::Resolve {
        host: host.to_owned(),
        source,
    };
    if let Ok(addr) = host.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_STATSD_PORT));
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (
            name,
            port.parse::<u16>().map_err(|e| {
                resolve_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
            })?,
        ),
        None => (host, DEFAULT_STATSD_PORT),
    };
    (name, port)
        .to_socket_addrs()
        .map_err(resolve_err)?
        .next()
        .ok_or_else(|| {
            resolve_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "no address",
            ))
        })
}

/// The pairing service's metrics. Cheap to call from socket tasks: never blocks.
#[derive(Debug, Default)]
pub struct PairingMetrics {
    statsd: Option<StatsdClient>,
}

impl PairingMetrics {
    /// Prometheus only.
    pub fn prometheus_only() -> Self {
        PairingMetrics { statsd: None }
    }

    /// Prometheus, and statsd as `cfg` says (nothing when `cfg.host` is empty).
    pub fn new(cfg: &StatsdConfig) -> Result<Self, StatsdError> {
        if cfg.host.trim().is_empty() {
            return Ok(Self::prometheus_only());
        }
        let target = resolve_statsd_host(cfg.host.trim())?;
        let local = if target.is_ipv6() {
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))
        } else {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        };
        let socket = UdpSocket::bind(local).map_err(StatsdError::Socket)?;
        // Only the queue's thread writes; if the kernel buffer is full it drops, never stalls.
        socket.set_nonblocking(true).map_err(StatsdError::Socket)?;
        let udp = UdpMetricSink::from(target, socket).map_err(StatsdError::Sink)?;
        let sink = QueuingMetricSink::with_capacity(udp, QUEUE_CAPACITY);
        let client = StatsdClient::builder(&cfg.prefix, sink)
            .with_error_handler(|_| {
                counter!("switchboard_pairing_statsd_dropped_total").increment(1);
            })
            .build();
        Ok(PairingMetrics {
            statsd: Some(client),
        })
    }

    /// Whether statsd lines are sent.
    pub fn has_statsd(&self) -> bool {
        self.statsd.is_some()
    }

    /// Counts a connection attempt (`conn.request` with a tag).
    pub fn request(&self, kind: RequestKind) {
        counter!("switchboard_pairing_requests_total", "kind" => kind.tag()).increment(1);
        if let Some(s) = &self.statsd {
            s.incr_with_tags("conn.request")
                .with_tag_value(kind.tag())
                .send();
        }
    }

    /// Counts `event`.
    pub fn event(&self, event: Event) {
        counter!("switchboard_pairing_events_total", "event" => event.name()).increment(1);
        if event.is_statsd()
            && let Some(s) = &self.statsd
        {
            s.incr_with_tags(event.name()).send();
        }
    }

    /// Records how long an accepted connection lasted (`conn.length`, in ms).
    pub fn conn_length(&self, length: Duration) {
        histogram!("switchboard_pairing_connection_seconds").record(length.as_secs_f64());
        if let Some(s) = &self.statsd {
            let ms = u64::try_from(length.as_millis()).unwrap_or(u64::MAX);
            s.time_with_tags("conn.length", ms).send();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (UdpSocket, String) {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr").to_string();
        (sock, addr)
    }

    fn recv(sock: &UdpSocket) -> String {
        let mut buf = [0u8; 1024];
        let n = sock.recv(&mut buf).expect("a statsd datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn statsd_lines_use_the_originals_names_and_bare_tags() {
        let (sock, addr) = listener();
        let m = PairingMetrics::new(&StatsdConfig {
            host: addr,
            prefix: "channelserver".into(),
        })
        .expect("metrics");
        assert!(m.has_statsd());
        m.request(RequestKind::New);
        assert_eq!(recv(&sock), "channelserver.conn.request:1|c|#new");
        m.request(RequestKind::Existing);
        assert_eq!(recv(&sock), "channelserver.conn.request:1|c|#existing");
        m.request(RequestKind::Error);
        assert_eq!(recv(&sock), "channelserver.conn.request:1|c|#error");
        // Prometheus-only events send nothing; the next datagram is conn.create.
        m.event(Event::UnknownChannel);
        m.event(Event::Create);
        assert_eq!(recv(&sock), "channelserver.conn.create:1|c");
        for (event, line) in [
            (Event::MaxConn, "channelserver.conn.max.conn:1|c"),
            (Event::MaxMsg, "channelserver.conn.max.msg:1|c"),
            (Event::MaxData, "channelserver.conn.max.data:1|c"),
            (Event::Expired, "channelserver.conn.expired:1|c"),
            (Event::Timeout, "channelserver.conn.timeout:1|c"),
        ] {
            m.event(event);
            assert_eq!(recv(&sock), line);
        }
        m.conn_length(Duration::from_millis(3000));
        assert_eq!(recv(&sock), "channelserver.conn.length:3000|ms");
    }

    #[test]
    fn the_prefix_is_configurable() {
        let (sock, addr) = listener();
        let m = PairingMetrics::new(&StatsdConfig {
            host: addr,
            prefix: "pairing.prod".into(),
        })
        .expect("metrics");
        m.event(Event::Create);
        assert_eq!(recv(&sock), "pairing.prod.conn.create:1|c");
    }

    #[test]
    fn empty_host_means_no_statsd() {
        let m = PairingMetrics::new(&StatsdConfig::default()).expect("metrics");
        assert!(!m.has_statsd());
        m.event(Event::Create);
        m.conn_length(Duration::from_secs(1));
    }

    #[test]
    fn host_parsing() {
        let cases: &[(&str, &str)] = &[
            ("127.0.0.1:9125", "127.0.0.1:9125"),
            ("127.0.0.1", "127.0.0.1:8125"),
            ("[::1]:9125", "[::1]:9125"),
            ("::1", "[::1]:8125"),
            ("[::1]", "[::1]:8125"),
            ("localhost:9125", ":9125"),
        ];
        for (host, want) in cases {
            let got = resolve_statsd_host(host).expect(host).to_string();
            assert!(got.ends_with(want), "{host}: {got}");
        }
        assert!(matches!(
            resolve_statsd_host("localhost:notaport"),
            Err(StatsdError::Resolve { .. })
        ));
    }

    #[test]
    fn names() {
        assert_eq!(Event::MaxMsg.name(), "conn.max.msg");
        assert!(Event::Timeout.is_statsd());
        assert!(!Event::BinaryIgnored.is_statsd());
        assert_eq!(RequestKind::Existing.tag(), "existing");
    }
}
