//! Who a connecting pairing client is, decided once from its upgrade request:
//! its address (behind trusted proxies only), its language preferences, and the
//! `sender` object every message it sends will carry.
//!
//! Rules (differences from the original are deliberate, see `docs/compatibility.md`):
//! - A peer that is not a trusted proxy is the client; its `X-Forwarded-For` and
//!   `X-Client-Geo-Location` are ignored. A unix-socket peer counts as a trusted
//!   proxy (only a local reverse proxy can reach it).
//! - A trusted proxy's `X-Forwarded-For` lines are walked right to left, skipping
//!   trusted and loopback entries; the first other address is `remote`.
//!   An unparsable entry refuses the connection ([`ClientError::BadForwardedFor`]);
//!   no header or only proxies leaves `remote` unknown, as in the original.
//! - GeoIP names follow the sender's `Accept-Language` (q-values honoured), then
//!   the default language, then English. No database: no geo fields.
//! - `X-Client-Geo-Location: <region>,<city>` fills the city (and region) when
//!   GeoIP found no city, and only when it came through a trusted proxy.

use std::net::{IpAddr, Ipv6Addr};

use http::HeaderMap;
use http::header::{ACCEPT_LANGUAGE, HeaderName, USER_AGENT};
use switchboard_edge::client_ip::{Resolved, TrustedProxies, Unresolved};

use super::geo::{GeoDb, GeoInfo};
use super::lang::{DefaultLanguage, LanguagePrefs};
use super::sender::{SenderData, SenderJson};

/// The header Google Cloud load balancers set to `<region>,<city>`.
pub static X_CLIENT_GEO_LOCATION: HeaderName = HeaderName::from_static("x-client-geo-location");

/// Longest `User-Agent` passed on to peers, in bytes (longer ones are cut at a char boundary).
pub const MAX_USER_AGENT: usize = 512;

/// The stand-in peer address for connections that arrive over a unix socket.
const UNIX_PEER: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// Why a client is refused before it joins anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// A trusted proxy sent an `X-Forwarded-For` entry that is not an address.
    #[error("unparsable X-Forwarded-For from a trusted proxy")]
    BadForwardedFor,
}

/// What the service knows about a connecting client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client's address, when established.
    pub remote: Option<IpAddr>,
    /// The `sender` object for its messages.
    pub sender: SenderJson,
    /// A trusted proxy named no client address (no header, or only proxies).
    pub remote_unknown: bool,
    /// An `Accept-Language` header was present but held no usable range.
    pub bad_accept_language: bool,
}

/// Everything needed to identify clients; built once per service.
#[derive(Debug)]
pub struct Identifier {
    trusted: TrustedProxies,
    /// `trusted` plus the unix-socket stand-in address.
    trusted_unix: TrustedProxies,
    default_lang: DefaultLanguage,
    geo: Option<GeoDb>,
}

impl Identifier {
    /// Identifies clients behind `trusted` proxies, localizing `geo` names with `default_lang` as fallback.
    pub fn new(trusted: TrustedProxies, default_lang: DefaultLanguage, geo: Option<GeoDb>) -> Self {
        let mut nets: Vec<String> = trusted.networks().iter().map(ToString::to_string).collect();
        nets.push(UNIX_PEER.to_string());
        // Every entry came from a valid network or is a literal address, so this parses.
        let trusted_unix = TrustedProxies::parse(&nets).unwrap_or_else(|_| trusted.clone());
        Identifier {
            trusted,
            trusted_unix,
            default_lang,
            geo,
        }
    }

    /// Whether a GeoIP database is loaded.
    pub fn has_geo(&self) -> bool {
        self.geo.is_some()
    }

    /// Identifies the client of a request from TCP peer `peer` (`None`: a unix socket).
    pub fn identify(
        &self,
        peer: Option<IpAddr>,
        headers: &HeaderMap,
    ) -> Result<Client, ClientError> {
        let resolved = match peer {
            Some(ip) => self.trusted.resolve_headers(ip, headers, true),
            None => self.trusted_unix.resolve_headers(UNIX_PEER, headers, true),
        };
        let via_proxy = !matches!(resolved, Resolved::Peer(_));
        let remote_unknown = match resolved {
            Resolved::Unknown(Unresolved::Unparsable) => return Err(ClientError::BadForwardedFor),
            Resolved::Unknown(_) => true,
            Resolved::Peer(_) | Resolved::Forwarded(_) => false,
        };
        let remote = resolved.ip();

        let accept_language = headers
            .get(ACCEPT_LANGUAGE)
            .map(|v| std::str::from_utf8(v.as_bytes()));
        let prefs = LanguagePrefs::parse(accept_language.and_then(Result::ok), &self.default_lang);
        let bad_accept_language = match accept_language {
            None => false,
            Some(Err(_)) => true,
            Some(Ok(text)) => !text.trim().is_empty() && prefs.ranges().next().is_none(),
        };

        let geo = match (&self.geo, remote) {
            (Some(db), Some(ip)) => db.lookup(ip, &prefs),
            _ => GeoInfo::default(),
        };
        let ua = headers
            .get(USER_AGENT)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .map(|ua| truncate(ua, MAX_USER_AGENT));
        let mut data = SenderData::new(remote, ua, geo);
        if via_proxy
            && let Some(loc) = headers
                .get(&X_CLIENT_GEO_LOCATION)
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        {
            data.apply_client_geo_location(loc);
        }
        Ok(Client {
            remote,
            sender: data.to_json(),
            remote_unknown,
            bad_accept_language,
        })
    }
}

/// `s` cut to at most `max` bytes at a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::path::{Path, PathBuf};

    fn test_db() -> GeoDb {
        let dir = std::env::var_os("SWITCHBOARD_TESTDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
            });
        GeoDb::open(dir.join("GeoIP2-City-Test.mmdb")).expect("the GeoIP test database")
    }

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_bytes(v).expect("value"),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn identifier(trusted: &[&str], geo: bool) -> Identifier {
        Identifier::new(
            TrustedProxies::parse(trusted)
                .expect("trusted")
                .with_private_ranges(),
            DefaultLanguage::default(),
            geo.then(test_db),
        )
    }

    #[test]
    fn identify_table() {
        let with_proxy = identifier(&["127.0.0.1"], true);
        let no_proxy = identifier(&[], true);
        let no_geo = identifier(&["127.0.0.1"], false);
        // (identifier, peer, headers, expected sender JSON, remote_unknown, bad_accept_language)
        type Case<'a> = (
            &'a Identifier,
            Option<&'a str>,
            Vec<(&'a str, &'a [u8])>,
            &'a str,
            bool,
            bool,
        );
        let cases: Vec<Case<'_>> = vec![
            // Direct client: its own address, no geo for loopback.
            (
                &no_proxy,
                Some("127.0.0.1"),
                vec![("user-agent", b"cs-probe/1.0")],
                r#"{"remote":"127.0.0.1","ua":"cs-probe/1.0"}"#,
                false,
                false,
            ),
            // Untrusted peers' forwarding headers are ignored.
            (
                &no_proxy,
                Some("127.0.0.1"),
                vec![
                    ("x-forwarded-for", b"81.2.69.142"),
                    ("x-client-geo-location", b"Bavaria,Munich"),
                ],
                r#"{"remote":"127.0.0.1"}"#,
                false,
                false,
            ),
            // Trusted proxy: geo from the forwarded address, localized by the sender.
            (
                &with_proxy,
                Some("127.0.0.1"),
                vec![("x-forwarded-for", b"81.2.69.142")],
                r#"{"city":"London","country":"United Kingdom","region":"England","remote":"81.2.69.142"}"#,
                false,
                false,
            ),
            (
                &with_proxy,
                Some("127.0.0.1"),
                vec![
                    ("x-forwarded-for", b"10.1.1.1, 81.2.69.142, 192.168.1.1"),
                    ("accept-language", b"fr"),
                    ("user-agent", b"Python/3.11 websockets/17.4"),
                ],
                r#"{"city":"Londres","country":"Royaume-Uni","region":"Angleterre","remote":"81.2.69.142","ua":"Python/3.11 websockets/17.4"}"#,
                false,
                false,
            ),
            // England has no German name in the test database: the region takes
            // the next preference, French, while city and country are German.
            (
                &with_proxy,
                Some("127.0.0.1"),
                vec![
                    ("x-forwarded-for", b"81.2.69.142"),
                    ("accept-language", b"fr;q=0.5, de"),
                ],
                r#"{"city":"London","country":"Vereinigtes K\u00f6nigreich","region":"Angleterre","remote":"81.2.69.142"}"#,
                false,
                false,
            ),
            // IPv6 is looked up.
            (
                &with_proxy,
                Some("127.0.0.1"),
                vec![("x-forwarded-for", b"2001:480:10::1")],
                r#"{"city":"San Diego","country":"United States","region":"California","remote":"2001:480:10::1"}"#,
                false,
                false,
            ),
            // Private proxies are trusted by default.
            (
                &no_proxy,
                Some("10.0.0.7"),
                vec![("x-forwarded-for", b"67.43.156.1")],
                r#"{"country":"Bhutan","remote":"67.43.156.1"}"#,
                false,
                false,
            ),
            // The GCP header fills a missing city, through a trusted proxy only.
            (
                &with_proxy,
                Some("127.0.0.1"),
                vec![
                    ("x-forwarded-for", b"214.78.124.1"),
                    ("x-client-geo-location", b"Bavaria,Munich"),
                ],
                r#"{"city":"Munich","country":"United States","region":"Bavaria","remote":"214.78.124.1"}"#,
                false,
                false,
            ),
            // No header or only proxies: remote unknown, as in the original.
            (
                &with_proxy,
                Some("127.0.0.1"),
                vec![("user-agent", b"ua")],
                r#"{"ua":"ua"}"#,
                true,
                false,
            ),
            (
                &with_proxy,
                Some("127.0.0.1"),
                vec![("x-forwarded-for", b"10.0.0.1, 127.0.0.1")],
                "{}",
                true,
                false,
            ),
            // Garbage Accept-Language: default language, flagged.
            (
                &with_proxy,
                Some("127.0.0.1"),
                vec![
                    ("x-forwarded-for", b"81.2.69.142"),
                    ("accept-language", b";;;,q=abc"),
                ],
                r#"{"city":"London","country":"United Kingdom","region":"England","remote":"81.2.69.142"}"#,
                false,
                true,
            ),
            (
                &with_proxy,
                Some("127.0.0.1"),
                vec![("accept-language", b"\xff\xfe")],
                "{}",
                true,
                true,
            ),
            (
                &with_proxy,
                Some("127.0.0.1"),
                vec![("accept-language", b"  ")],
                "{}",
                true,
                false,
            ),
            // No database: no geo.
            (
                &no_geo,
                Some("127.0.0.1"),
                vec![("x-forwarded-for", b"81.2.69.142")],
                r#"{"remote":"81.2.69.142"}"#,
                false,
                false,
            ),
            // A unix-socket peer is a trusted proxy.
            (
                &no_proxy,
                None,
                vec![
                    ("x-forwarded-for", b"81.2.69.142"),
                    ("accept-language", b"ru-RU"),
                ],
                r#"{"city":"\u041b\u043e\u043d\u0434\u043e\u043d","country":"\u0412\u0435\u043b\u0438\u043a\u043e\u0431\u0440\u0438\u0442\u0430\u043d\u0438\u044f","region":"England","remote":"81.2.69.142"}"#,
                false,
                false,
            ),
        ];
        for (ident, peer, hdrs, want, remote_unknown, bad_lang) in cases {
            let h = headers(&hdrs);
            let got = ident.identify(peer.map(ip), &h).expect("identified");
            let want: serde_json::Value = serde_json::from_str(want).expect("json");
            let got_json: serde_json::Value =
                serde_json::from_str(got.sender.as_str()).expect("sender json");
            assert_eq!(got_json, want, "{peer:?} {hdrs:?}");
            assert_eq!(got.remote_unknown, remote_unknown, "{peer:?} {hdrs:?}");
            assert_eq!(got.bad_accept_language, bad_lang, "{peer:?} {hdrs:?}");
        }
    }

    #[test]
    fn garbage_forwarded_for_from_a_trusted_proxy_is_refused() {
        let ident = identifier(&["127.0.0.1"], false);
        for bad in [&b"garbage"[..], b"81.2.69.142, nope", b"[::1"] {
            let h = headers(&[("x-forwarded-for", bad)]);
            assert_eq!(
                ident.identify(Some(ip("127.0.0.1")), &h),
                Err(ClientError::BadForwardedFor),
                "{bad:?}"
            );
        }
        // From an untrusted peer the header is not even read.
        let h = headers(&[("x-forwarded-for", b"garbage")]);
        assert!(ident.identify(Some(ip("8.8.8.8")), &h).is_ok());
    }

    #[test]
    fn long_user_agents_are_cut_at_a_char_boundary() {
        let ident = identifier(&[], false);
        let ua = "é".repeat(MAX_USER_AGENT);
        let h = headers(&[("user-agent", ua.as_bytes())]);
        let got = ident.identify(Some(ip("127.0.0.1")), &h).expect("ok");
        let v: serde_json::Value = serde_json::from_str(got.sender.as_str()).expect("json");
        let sent = v["ua"].as_str().expect("ua");
        assert!(sent.len() <= MAX_USER_AGENT && sent.len() >= MAX_USER_AGENT - 1);
        assert_eq!(truncate("abc", 2), "ab");
    }
}
