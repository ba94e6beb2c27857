//! Which IP address a request really comes from, behind trusted reverse proxies.
//!
//! This module owns the trusted-proxy set ([`TrustedProxies`]) and the
//! `X-Forwarded-For` walk ([`TrustedProxies::resolve`]) shared by every service.
//! The rule: a peer that is not a trusted proxy is the client, whatever headers
//! it sends. A trusted peer's `X-Forwarded-For` is read right to left, skipping
//! trusted proxies (and, if asked, loopback addresses); the first other address
//! is the client. Anything doubtful yields [`Resolved::Unknown`] and the caller
//! decides what that means (pairing omits `remote`).
//!
//! Differences from channelserver's `get_remote`, on purpose: a bare IPv6 address
//! in the trusted list means a single host (/128, not an invalid `/32`),
//! IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as the IPv4 address
//! they carry, `host:port` and `[v6]:port` entries are understood, and
//! [`TrustedProxies::resolve_headers`] walks *all* `X-Forwarded-For` header lines
//! (a proxy may append its own line after a client-forged one).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use http::HeaderMap;
use http::header::HeaderName;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The `X-Forwarded-For` header name.
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A trusted-proxy entry could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustedProxyError {
    /// The entry is neither an IP address nor a CIDR network.
    #[error(
        "invalid trusted proxy entry {entry:?}: expected an IP address or a CIDR like 10.0.0.0/8 or fd00::/8"
    )]
    InvalidEntry {
        /// The offending entry, as given (trimmed).
        entry: String,
    },
}

/// A set of networks whose requests may name the real client in `X-Forwarded-For`.
///
/// Empty by default: then every peer is taken as the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// The client address behind a request, as far as it can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// The TCP peer is not a trusted proxy, so it is the client.
    Peer(IpAddr),
    /// The peer is a trusted proxy and this address was found in `X-Forwarded-For`.
    Forwarded(IpAddr),
    /// The peer is a trusted proxy but no client address could be established.
    Unknown(Unresolved),
}

/// Why a trusted proxy's request gave no client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unresolved {
    /// No `X-Forwarded-For` header, or one without entries.
    MissingHeader,
    /// An entry reached in the walk is not an IP address (or the header is not text).
    Unparsable,
    /// Every entry is a trusted proxy (or a skipped loopback address).
    OnlyProxies,
}

impl Resolved {
    /// The client address, if one was established.
    pub fn ip(&self) -> Option<IpAddr> {
        match *self {
            Self::Peer(ip) | Self::Forwarded(ip) => Some(ip),
            Self::Unknown(_) => None,
        }
    }
}

impl TrustedProxies {
    /// No trusted proxies.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses entries that are each a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a bare
    /// address (a single host: /32 for IPv4, /128 for IPv6). Surrounding whitespace
    /// is ignored; an empty entry is an error. Host bits in a CIDR are cleared.
    pub fn parse<I, S>(entries: I) -> Result<Self, TrustedProxyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut proxies = Self::default();
        for entry in entries {
            proxies.push(parse_entry(entry.as_ref().trim())?);
        }
        Ok(proxies)
    }

    /// Parses a comma-separated list (e.g. `PAIR_TRUSTED_PROXY_LIST`); empty
    /// elements are skipped, so `""` means no proxies.
    pub fn parse_comma_list(list: &str) -> Result<Self, TrustedProxyError> {
        Self::parse(list.split(',').map(str::trim).filter(|e| !e.is_empty()))
    }

    /// Adds the private ranges 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16 and
    /// fc00::/7 (the channelserver persona trusts these by default).
    pub fn with_private_ranges(mut self) -> Self {
        let private = [
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8)),
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12)),
            IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16)),
            IpNet::V6(Ipv6Net::new_assert(
                Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0),
                7,
            )),
        ];
        for net in private {
            self.push(net);
        }
        self
    }

    fn push(&mut self, net: IpNet) {
        if !self.nets.contains(&net) {
            self.nets.push(net);
        }
    }

    /// The trusted networks, in the order given.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    /// True when no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` (IPv4-mapped IPv6 counts as IPv4) is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Finds the client of a request from TCP peer `peer` with `xff`, the (first)
    /// `X-Forwarded-For` value. With `skip_loopback`, loopback entries in the header
    /// are passed over like trusted proxies; a loopback *peer* is still only trusted
    /// if it is in the set.
    pub fn resolve(&self, peer: IpAddr, xff: Option<&str>, skip_loopback: bool) -> Resolved {
        self.walk(peer, xff.into_iter().map(Some), skip_loopback)
    }

    /// Like [`TrustedProxies::resolve`], reading every `X-Forwarded-For` line of
    /// `headers` as one list (lines in order). A line that is not visible ASCII makes
    /// the result [`Unresolved::Unparsable`] if the walk reaches it.
    pub fn resolve_headers(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
        skip_loopback: bool,
    ) -> Resolved {
        let lines = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .map(|value| value.to_str().ok());
        self.walk(peer, lines, skip_loopback)
    }

    /// Whether a request from `peer` (`None`: a unix socket) with `headers` comes from this
    /// host, for the privileges some services grant local clients (rtc's kick, the meetings
    /// setup API). The resolved client must be loopback (a unix socket counts), and a peer
    /// that is not a trusted proxy must send no `X-Forwarded-For`: such a header from an
    /// untrusted local peer means a proxy on this host that nobody named in the trusted
    /// list, and every client behind it would otherwise be local.
    pub fn is_local(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> bool {
        let forwarded = headers.contains_key(&X_FORWARDED_FOR);
        match peer {
            None => !forwarded,
            Some(peer) => match self.resolve_headers(peer, headers, false) {
                Resolved::Peer(ip) => ip.is_loopback() && !forwarded,
                Resolved::Forwarded(ip) => ip.is_loopback(),
                Resolved::Unknown(_) => false,
            },
        }
    }

    /// `lines` are header lines in order; `None` is a line that is not text.
    fn walk<'a, L>(&self, peer: IpAddr, lines: L, skip_loopback: bool) -> Resolved
    where
        L: DoubleEndedIterator<Item = Option<&'a str>>,
    {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return Resolved::Peer(peer);
        }
        let mut saw_entry = false;
        for line in lines.rev() {
            let Some(line) = line else {
                return Resolved::Unknown(Unresolved::Unparsable);
            };
            for entry in line.rsplit(',').map(str::trim).filter(|e| !e.is_empty()) {
                saw_entry = true;
                let Some(ip) = parse_forwarded_addr(entry) else {
                    return Resolved::Unknown(Unresolved::Unparsable);
                };
                if self.contains(ip) || (skip_loopback && ip.is_loopback()) {
                    continue;
                }
                return Resolved::Forwarded(ip);
            }
        }
        Resolved::Unknown(if saw_entry {
            Unresolved::OnlyProxies
        } else {
            Unresolved::MissingHeader
        })
    }
}

impl FromStr for TrustedProxies {
    type Err = TrustedProxyError;

    /// Same as [`TrustedProxies::parse_comma_list`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_comma_list(s)
    }
}

fn parse_entry(entry: &str) -> Result<IpNet, TrustedProxyError> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    entry
        .parse::<IpNet>()
        .map(|net| net.trunc())
        .map_err(|_| TrustedProxyError::InvalidEntry {
            entry: entry.to_owned(),
        })
}

/// One `X-Forwarded-For` entry: `a.b.c.d`, `a.b.c.d:port`, `v6`, `[v6]` or `[v6]:port`.
fn parse_forwarded_addr(entry: &str) -> Option<IpAddr> {
    let ip = if let Some(rest) = entry.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || is_port_suffix(after)) {
            return None;
        }
        IpAddr::V6(inside.parse::<Ipv6Addr>().ok()?)
    } else if let Ok(ip) = entry.parse::<IpAddr>() {
        ip
    } else {
        let (host, port) = entry.split_once(':')?;
        if !is_port_suffix(&entry[host.len()..]) || port.is_empty() {
            return None;
        }
        IpAddr::V4(host.parse::<Ipv4Addr>().ok()?)
    };
    Some(ip.to_canonical())
}

/// `:` followed by 1–5 digits.
fn is_port_suffix(s: &str) -> bool {
    s.strip_prefix(':').is_some_and(|digits| {
        (1..=5).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test ip")
    }

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(entries).expect("valid test entries")
    }

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            ("", Ok(&[])),
            (" , ,", Ok(&[])),
            ("127.0.0.1", Ok(&["127.0.0.1/32"])),
            ("::1", Ok(&["::1/128"])),
            ("2001:db8::1", Ok(&["2001:db8::1/128"])),
            ("::ffff:10.0.0.1", Ok(&["10.0.0.1/32"])),
            (" 10.0.0.0/8 , fd00::/8", Ok(&["10.0.0.0/8", "fd00::/8"])),
            ("10.1.2.3/8", Ok(&["10.0.0.0/8"])),
            ("2001:db8:1::5/48", Ok(&["2001:db8:1::/48"])),
            ("127.0.0.1,127.0.0.1", Ok(&["127.0.0.1/32"])),
            ("0.0.0.0/0", Ok(&["0.0.0.0/0"])),
            ("garbage", Err("garbage")),
            ("10.0.0.0/33", Err("10.0.0.0/33")),
            ("::1/129", Err("::1/129")),
            ("10.0.0.1, 10.0.0/8", Err("10.0.0/8")),
            ("1.2.3.4:80", Err("1.2.3.4:80")),
            ("[::1]", Err("[::1]")),
        ];
        for (list, expected) in cases {
            let got = TrustedProxies::parse_comma_list(list).map(|p| {
                p.networks()
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            });
            let expected = expected
                .map(|nets| nets.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .map_err(|entry| TrustedProxyError::InvalidEntry {
                    entry: entry.to_owned(),
                });
            assert_eq!(got, expected, "list {list:?}");
        }
        assert_eq!(
            TrustedProxies::parse([""]),
            Err(TrustedProxyError::InvalidEntry {
                entry: String::new()
            })
        );
        assert_eq!(
            "10.0.0.0/8"
                .parse::<TrustedProxies>()
                .map(|p| p.networks().len()),
            Ok(1)
        );
        let err = TrustedProxies::parse(["ok/1"]).expect_err("invalid");
        assert!(err.to_string().contains("\"ok/1\""), "{err}");
    }

    #[test]
    fn private_ranges() {
        let p = TrustedProxies::none().with_private_ranges();
        for addr in [
            "10.1.1.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "fd12::1",
            "fc00::1",
            "::ffff:10.9.9.9",
        ] {
            assert!(p.contains(ip(addr)), "{addr}");
        }
        for addr in [
            "172.32.0.1",
            "11.0.0.1",
            "127.0.0.1",
            "::1",
            "fe80::1",
            "81.2.69.142",
            "2001:db8::1",
        ] {
            assert!(!p.contains(ip(addr)), "{addr}");
        }
        let twice = p.clone().with_private_ranges();
        assert_eq!(twice, p);
        assert!(TrustedProxies::none().is_empty());
        assert!(!p.is_empty());
    }

    #[test]
    fn resolve_table() {
        use Resolved::*;
        use Unresolved::*;
        let lo = proxies(&["127.0.0.1"]).with_private_ranges();
        let v6 = proxies(&["2001:db8:100::/40", "::1"]);
        let none = TrustedProxies::none();
        // (trusted set, peer, xff, skip_loopback, expected)
        let cases: &[(&TrustedProxies, &str, Option<&str>, bool, Resolved)] = &[
            // Untrusted peers are the client; their XFF is ignored.
            (
                &none,
                "127.0.0.1",
                Some("81.2.69.142"),
                true,
                Peer(ip("127.0.0.1")),
            ),
            (
                &lo,
                "81.2.69.142",
                Some("1.1.1.1"),
                true,
                Peer(ip("81.2.69.142")),
            ),
            (
                &lo,
                "::ffff:81.2.69.142",
                None,
                true,
                Peer(ip("81.2.69.142")),
            ),
            (
                &v6,
                "2001:db8::1",
                Some("1.1.1.1"),
                true,
                Peer(ip("2001:db8::1")),
            ),
            // Trusted peer: right to left, skipping trusted entries.
            (
                &lo,
                "127.0.0.1",
                Some("10.1.1.1, 81.2.69.142, 192.168.1.1"),
                true,
                Forwarded(ip("81.2.69.142")),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("81.2.69.142"),
                false,
                Forwarded(ip("81.2.69.142")),
            ),
            (
                &lo,
                "::ffff:127.0.0.1",
                Some("81.2.69.142"),
                false,
                Forwarded(ip("81.2.69.142")),
            ),
            (
                &lo,
                "10.0.0.5",
                Some("1.1.1.1, 81.2.69.142"),
                true,
                Forwarded(ip("81.2.69.142")),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("  81.2.69.142  ,\t10.0.0.1 "),
                true,
                Forwarded(ip("81.2.69.142")),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("81.2.69.142,,10.0.0.1,"),
                true,
                Forwarded(ip("81.2.69.142")),
            ),
            // The spoofed left part is never reached.
            (
                &lo,
                "127.0.0.1",
                Some("garbage, 81.2.69.142"),
                true,
                Forwarded(ip("81.2.69.142")),
            ),
            // Ports and brackets.
            (
                &lo,
                "127.0.0.1",
                Some("81.2.69.142:4711"),
                true,
                Forwarded(ip("81.2.69.142")),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("[2001:480:10::1]:443"),
                true,
                Forwarded(ip("2001:480:10::1")),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("[2001:480:10::1]"),
                true,
                Forwarded(ip("2001:480:10::1")),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("2001:480:10::1"),
                true,
                Forwarded(ip("2001:480:10::1")),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("::ffff:81.2.69.142"),
                true,
                Forwarded(ip("81.2.69.142")),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("81.2.69.142, ::ffff:10.0.0.1"),
                true,
                Forwarded(ip("81.2.69.142")),
            ),
            // IPv6 CIDRs.
            (
                &v6,
                "::1",
                Some("2001:480:10::1, 2001:db8:1ff::9"),
                false,
                Forwarded(ip("2001:480:10::1")),
            ),
            (
                &v6,
                "2001:db8:100::7",
                Some("2001:db8:200::1"),
                false,
                Forwarded(ip("2001:db8:200::1")),
            ),
            (
                &v6,
                "2001:db8:1ff::7",
                Some("[2001:db8:100::1]:80"),
                false,
                Unknown(OnlyProxies),
            ),
            // Loopback skipping is optional.
            (
                &lo,
                "127.0.0.1",
                Some("81.2.69.142, 127.0.0.2, ::1"),
                true,
                Forwarded(ip("81.2.69.142")),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("81.2.69.142, 127.0.0.2"),
                false,
                Forwarded(ip("127.0.0.2")),
            ),
            // Unknown outcomes.
            (&lo, "127.0.0.1", Some("garbage"), true, Unknown(Unparsable)),
            (
                &lo,
                "127.0.0.1",
                Some("81.2.69.142, unknown"),
                true,
                Unknown(Unparsable),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("81.2.69.142:"),
                true,
                Unknown(Unparsable),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("81.2.69.142:123456"),
                true,
                Unknown(Unparsable),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("[2001:db8::1]x"),
                true,
                Unknown(Unparsable),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("[81.2.69.142]"),
                true,
                Unknown(Unparsable),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("fe80::1%eth0"),
                true,
                Unknown(Unparsable),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("10.1.1.1, 192.168.1.1"),
                true,
                Unknown(OnlyProxies),
            ),
            (
                &lo,
                "127.0.0.1",
                Some("127.0.0.1"),
                true,
                Unknown(OnlyProxies),
            ),
            (&lo, "127.0.0.1", None, true, Unknown(MissingHeader)),
            (&lo, "127.0.0.1", Some(""), true, Unknown(MissingHeader)),
            (&lo, "127.0.0.1", Some(" , "), true, Unknown(MissingHeader)),
        ];
        for (trusted, peer, xff, skip_loopback, expected) in cases {
            assert_eq!(
                trusted.resolve(ip(peer), *xff, *skip_loopback),
                *expected,
                "peer {peer} xff {xff:?} skip_loopback {skip_loopback}"
            );
        }
    }

    #[test]
    fn resolved_ip() {
        assert_eq!(Resolved::Peer(ip("1.2.3.4")).ip(), Some(ip("1.2.3.4")));
        assert_eq!(Resolved::Forwarded(ip("::1")).ip(), Some(ip("::1")));
        assert_eq!(Resolved::Unknown(Unresolved::Unparsable).ip(), None);
    }

    #[test]
    fn resolve_headers_walks_every_line() {
        let trusted = proxies(&["127.0.0.1"]).with_private_ranges();
        let peer = ip("127.0.0.1");
        let headers = |lines: &[&[u8]]| {
            let mut map = HeaderMap::new();
            for line in lines {
                map.append(
                    X_FORWARDED_FOR.clone(),
                    HeaderValue::from_bytes(line).expect("valid header bytes"),
                );
            }
            map
        };
        let cases: &[(&[&[u8]], Resolved)] = &[
            (&[], Resolved::Unknown(Unresolved::MissingHeader)),
            (&[b"81.2.69.142"], Resolved::Forwarded(ip("81.2.69.142"))),
            // A client-forged first line and the proxy's own appended line.
            (
                &[b"6.6.6.6", b"81.2.69.142, 10.0.0.1"],
                Resolved::Forwarded(ip("81.2.69.142")),
            ),
            (
                &[b"81.2.69.142", b"10.0.0.1"],
                Resolved::Forwarded(ip("81.2.69.142")),
            ),
            (
                &[b"81.2.69.142", b"\xff"],
                Resolved::Unknown(Unresolved::Unparsable),
            ),
            (
                &[b"\xff", b"81.2.69.142"],
                Resolved::Forwarded(ip("81.2.69.142")),
            ),
            (
                &[b"10.0.0.1", b"192.168.0.1"],
                Resolved::Unknown(Unresolved::OnlyProxies),
            ),
        ];
        for (lines, expected) in cases {
            assert_eq!(
                trusted.resolve_headers(peer, &headers(lines), true),
                *expected,
                "{lines:?}"
            );
        }
        let untrusted = headers(&[b"81.2.69.142"]);
        assert_eq!(
            trusted.resolve_headers(ip("8.8.8.8"), &untrusted, true),
            Resolved::Peer(ip("8.8.8.8"))
        );
    }

    #[test]
    fn local_means_loopback_and_not_forwarded_by_an_unnamed_proxy() {
        let none = TrustedProxies::none();
        let named: TrustedProxies = "127.0.0.1".parse().unwrap();
        let lo = Some(IpAddr::from(Ipv4Addr::LOCALHOST));
        let remote = Some(IpAddr::from(Ipv4Addr::new(192, 0, 2, 7)));
        let plain = HeaderMap::new();
        let mut xff = HeaderMap::new();
        xff.insert(&X_FORWARDED_FOR, "192.0.2.9".parse().unwrap());
        let mut xff_lo = HeaderMap::new();
        xff_lo.insert(&X_FORWARDED_FOR, "127.0.0.1".parse().unwrap());
        // No proxy: a loopback peer is local unless it forwards someone.
        assert!(none.is_local(lo, &plain));
        assert!(!none.is_local(lo, &xff));
        assert!(!none.is_local(lo, &xff_lo));
        assert!(!none.is_local(remote, &plain));
        assert!(!none.is_local(remote, &xff_lo));
        // A unix socket is local unless a proxy forwards someone over it.
        assert!(none.is_local(None, &plain));
        assert!(!none.is_local(None, &xff));
        // A named local proxy: the forwarded client decides; none known is not local
        // (loopback in the header is the proxy itself, so no client is known either).
        assert!(!named.is_local(lo, &plain));
        assert!(!named.is_local(lo, &xff));
        assert!(!named.is_local(lo, &xff_lo));
        // A named remote proxy forwarding a loopback client (a tunnel): local.
        let far: TrustedProxies = "192.0.2.7".parse().unwrap();
        assert!(far.is_local(remote, &xff_lo));
        assert!(!far.is_local(remote, &xff));
    }
}
