//! Property-based fuzzing of every parser that takes outside bytes, on the stable toolchain
//! (proptest; no nightly, no libFuzzer). Each target feeds arbitrary input and input shaped
//! like the real thing, and checks three properties: the parser never panics, garbage gets a
//! typed error (never a silently wrong value), and what a writer produced parses back.
//!
//! `FUZZ_CASES` sets the cases per target (default 256, a few seconds each in a debug
//! build; CI runs the default). A longer run: `FUZZ_CASES=100000 cargo test --release -p
//! switchboard --test it -- fuzz::` (results in docs/security.md).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use switchboard::persona::{channelserver, goflag, meetingserver, pinghub};
use switchboard_edge::client_ip::{Resolved, TrustedProxies};
use switchboard_services::meetings::{self, wire as meetings_wire};
use switchboard_services::pairing::ChannelId;
use switchboard_services::pairing::lang::{DefaultLanguage, LanguagePrefs, MAX_LANGUAGE_ENTRIES};
use switchboard_services::pubsub::channel_of;
use switchboard_services::rtc::identity::{CookieSigner, Identities, check_name};
use switchboard_services::rtc::wire as rtc_wire;

use crate::support::TempDir;

fn cases() -> ProptestConfig {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        // Failures are printed with their minimal input; nothing is written to the tree.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Bytes, and text from a small alphabet rich in the characters the parsers care about.
fn text(alphabet: &'static str, max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = alphabet.chars().collect();
    proptest::collection::vec(proptest::sample::select(chars), 0..max)
        .prop_map(|v| v.into_iter().collect())
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        Just(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        any::<[u8; 4]>().prop_map(|b| IpAddr::V6(Ipv4Addr::from(b).to_ipv6_mapped())),
    ]
}

/// Everything but the unreserved characters, so any string survives the round trip.
const PATH_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

proptest! {
    #![proptest_config(cases())]

    // pubsub: the channel of a raw request path.
    #[test]
    fn pubsub_channel_of_any_path(path in prop_oneof![
        any::<String>(),
        text("/%0123456789abcdefABCDEF€xyz", 300),
    ]) {
        if let Ok(ch) = channel_of(&path, "/pubsub") {
            prop_assert!(ch.starts_with('/'));
            prop_assert!((1..=256).contains(&ch.chars().count()));
        }
    }

    #[test]
    fn pubsub_channel_round_trips_through_percent_encoding(name in "[^\u{0}]{0,255}") {
        let channel = format!("/{name}");
        prop_assume!(channel.chars().count() <= 256);
        let raw = format!("/pubsub{}", utf8_percent_encode(&channel, PATH_ESCAPES));
        prop_assert_eq!(channel_of(&raw, "/pubsub").unwrap(), channel);
    }

    // pairing: channel ids.
    #[test]
    fn pairing_channel_id_parses_garbage_to_a_typed_error(s in prop_oneof![
        any::<String>(),
        text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/", 40),
    ]) {
        if let Ok(id) = ChannelId::parse(&s) {
            // Accepted means canonical: printing gives the input without padding.
            prop_assert_eq!(id.to_string(), s.trim_end_matches('='));
        }
    }

    #[test]
    fn pairing_channel_id_round_trips(bytes in any::<[u8; 16]>(), pad in 0usize..3) {
        let id = ChannelId::from_bytes(bytes);
        let text = format!("{id}{}", "=".repeat(pad));
        prop_assert_eq!(ChannelId::parse(&text).unwrap(), id);
    }

    // pairing: Accept-Language.
    #[test]
    fn accept_language_never_panics_and_stays_bounded(header in prop_oneof![
        any::<String>(),
        text("en-USfrde,;q=0.123456789 *-", 400),
    ]) {
        let default = DefaultLanguage::new("en").unwrap();
        let prefs = LanguagePrefs::parse(Some(&header), &default);
        let ranges: Vec<&str> = prefs.ranges().collect();
        prop_assert!(ranges.len() <= MAX_LANGUAGE_ENTRIES);
        for (i, r) in ranges.iter().enumerate() {
            prop_assert_eq!(r.to_ascii_lowercase(), *r);
            prop_assert!(!ranges[..i].contains(r), "duplicate {r}");
        }
    }

    // Trusted proxies: entries and X-Forwarded-For.
    #[test]
    fn trusted_proxy_entries_parse_or_fail_typed(list in prop_oneof![
        any::<String>(),
        text("0123456789abcdef.:/[], ", 80),
    ]) {
        let _ = TrustedProxies::parse_comma_list(&list);
    }

    #[test]
    fn x_forwarded_for_walk_never_panics(
        peer in ip(),
        xff in prop_oneof![any::<String>(), text("0123456789abcdef.:[], unknown", 120)],
        lines in proptest::collection::vec(text("0123456789.:, ", 40), 0..4),
        trust_peer in any::<bool>(),
    ) {
        let proxies = if trust_peer {
            TrustedProxies::parse([peer.to_string()]).unwrap()
        } else {
            TrustedProxies::none()
        };
        let resolved = proxies.resolve(peer, Some(&xff), false);
        if !trust_peer {
            prop_assert_eq!(resolved, Resolved::Peer(peer.to_canonical()));
        }
        let mut headers = HeaderMap::new();
        for l in &lines {
            if let Ok(v) = HeaderValue::from_str(l) {
                headers.append("x-forwarded-for", v);
            }
        }
        let _ = proxies.resolve_headers(peer, &headers, true);
        let _ = proxies.is_local(Some(peer), &headers);
    }

    // rtc: inbound envelopes.
    #[test]
    fn rtc_envelope_never_panics(frame in prop_oneof![
        any::<Vec<u8>>(),
        text("{}[]\":,targetypayload nul0123", 200).prop_map(String::into_bytes),
    ]) {
        if let Ok(m) = rtc_wire::parse(&frame) {
            // Whatever parsed can be forwarded as valid JSON.
            let out = rtc_wire::forward("someone", &m, true);
            let v: serde_json::Value = serde_json::from_slice(out.payload()).unwrap();
            prop_assert_eq!(v["target"].as_str().unwrap_or(""), m.target.as_str());
        }
    }

    #[test]
    fn rtc_envelope_round_trips(target in any::<String>(), kind in any::<String>(), n in any::<i64>()) {
        let frame = serde_json::json!({"target": target, "type": kind, "payload": {"n": n}}).to_string();
        let m = rtc_wire::parse(frame.as_bytes()).unwrap();
        prop_assert_eq!(&m.target, &target);
        prop_assert_eq!(&m.kind, &kind);
        let out = rtc_wire::forward("from", &m, false);
        let v: serde_json::Value = serde_json::from_slice(out.payload()).unwrap();
        prop_assert_eq!(&v["payload"]["n"], &serde_json::json!(n));
        prop_assert_eq!(v["target"].as_str().unwrap(), target.as_str());
    }

    // rtc: cookies, bare and signed.
    #[test]
    fn rtc_cookie_header_never_panics(cookie in prop_oneof![
        any::<Vec<u8>>(),
        text("user_username=.;\" abcXYZ09-_", 120).prop_map(String::into_bytes),
    ]) {
        let Ok(value) = HeaderValue::from_bytes(&cookie) else { return Ok(()) };
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, value);
        for ids in [Identities::unsigned(), Identities::signed(b"fuzzing secret 0123456789").unwrap()] {
            if let Ok(name) = ids.name_of(&headers) {
                prop_assert!(check_name(name).is_ok());
            }
        }
    }

    #[test]
    fn rtc_signed_cookie_round_trips_and_tampering_fails(name in "[!#-+--:<-\\[\\]-~]{1,40}", flip in any::<prop::sample::Index>()) {
        prop_assume!(check_name(&name).is_ok());
        let signer = CookieSigner::new(b"fuzzing secret 0123456789").unwrap();
        let value = signer.sign(&name);
        prop_assert_eq!(signer.verify(&value).unwrap(), name.as_str());
        let mut bytes = value.into_bytes();
        let i = flip.index(bytes.len());
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        if tampered != signer.sign(tampered.rsplit_once('.').map_or("", |p| p.0)) {
            prop_assert!(signer.verify(&tampered).is_err());
        }
    }

    // Personas: Go flags, Pinghub and pgeu-meetingserver command lines, PAIR_* variables.
    #[test]
    fn go_flags_and_persona_command_lines_never_panic(args in proptest::collection::vec(prop_oneof![
        any::<String>(),
        text("-=addrorignmpotlgdbu:0123456789./*", 24),
        Just("-origin".to_owned()),
        Just("-addr".to_owned()),
        Just("--".to_owned()),
        Just("-h".to_owned()),
    ], 0..8)) {
        let spec = [("addr", goflag::Kind::Value), ("v", goflag::Kind::Bool)];
        let _ = goflag::parse(&args, &spec);
        let _ = pinghub::config(&args);
        let _ = meetingserver::config(&args);
    }

    #[test]
    fn pair_variables_never_panic(vars in proptest::collection::vec((
        prop_oneof![
            Just("PAIR_PORT"), Just("PAIR_HOSTNAME"), Just("PAIR_MAX_EXCHANGES"),
            Just("PAIR_MAX_DATA"), Just("PAIR_CONN_LIFESPAN"), Just("PAIR_CLIENT_TIMEOUT"),
            Just("PAIR_HEARTBEAT_INTERVAL"), Just("PAIR_MAX_CHANNEL_CONNECTIONS"),
            Just("PAIR_TRUSTED_PROXY_LIST"), Just("PAIR_DEFAULT_LANG"), Just("PAIR_HUMAN_LOGS"),
            Just("PAIR_STATSD_HOST"), Just("PAIR_METRIC_NAME"), Just("PAIR_MMDB_LOC"),
            Just("PAIR_DOCKERFLOW"), Just("PAIR_WHATEVER"), Just("RUN_MODE"),
        ],
        prop_oneof![any::<String>(), text("0123456789-.:,/ truefalse", 30)],
    ), 0..6), args in proptest::collection::vec(text("-=portmax_exchanges0123456789", 20), 0..3)) {
        let dir = TempDir::new("fuzz-pair");
        let env = vars.into_iter().map(|(k, v)| (k.to_owned(), v));
        let _ = channelserver::config(&args, env, dir.path());
    }

    // Meetings: client commands and the socket path.
    #[test]
    fn meetings_commands_never_panic(bytes in prop_oneof![
        any::<Vec<u8>>(),
        text("{}[]\":,typemessagvoquinkcrj 0123456789.-e", 200).prop_map(String::into_bytes),
    ]) {
        let _ = meetings_wire::parse(&bytes);
        let _ = meetings_wire::admin_command_type(&bytes);
    }

    #[test]
    fn meetings_command_fields_of_any_type_never_panic(
        kind in prop_oneof![Just("message"), Just("vote"), Just("newpoll"), Just("kick"), Just("open")],
        field in prop_oneof![Just("message"), Just("question"), Just("vote"), Just("answers"), Just("minutes"), Just("user"), Just("canrejoin")],
        value in prop_oneof![
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            any::<String>().prop_map(|s| serde_json::json!(s)),
            proptest::collection::vec(any::<String>(), 0..8).prop_map(|v| serde_json::json!(v)),
            any::<bool>().prop_map(|b| serde_json::json!(b)),
        ],
    ) {
        let mut obj = serde_json::json!({"type": kind, "message": "hi", "question": "q", "vote": 1, "answers": ["a", "b"], "minutes": 1, "user": 1, "canrejoin": true});
        obj[field] = value;
        let _ = meetings_wire::parse(obj.to_string().as_bytes());
    }

    #[test]
    fn meetings_path_never_panics_and_round_trips(
        path in any::<String>(),
        id in 0i64..i64::MAX,
        key in "[A-Za-z0-9_-]{54}",
        seen in 0i64..i64::MAX,
    ) {
        let _ = meetings::parse_path(&path);
        let good = format!("/ws/meeting/{id}/{key}/{seen}");
        prop_assert_eq!(meetings::parse_path(&good), Some((id, key.as_str(), seen)));
    }
}

/// The TOML configuration: arbitrary text, and files made of real sections and keys with
/// values of every type, through the same loader `serve --config` uses.
mod config {
    use super::*;
    use switchboard::Config;

    const KEYS: &[(&str, &[&str])] = &[
        (
            "server",
            &[
                "listen",
                "trusted_proxies",
                "shutdown_timeout_secs",
                "hub_shards",
                "tls_cert",
            ],
        ),
        ("ops", &["enabled", "listen", "profiling"]),
        ("log", &["level", "format", "file"]),
        (
            "pubsub",
            &[
                "enabled",
                "prefix",
                "origins",
                "max_message",
                "outbox_messages",
            ],
        ),
        (
            "pairing",
            &[
                "max_exchanges",
                "conn_lifespan",
                "trusted_proxies",
                "default_lang",
            ],
        ),
        (
            "rtc",
            &[
                "cookie_secret",
                "admin_token",
                "register_per_minute",
                "idle_timeout_secs",
            ],
        ),
        (
            "meetings",
            &["schema", "pgeu_url", "origin", "queue", "admin_token"],
        ),
        ("store", &["url", "max_connections", "op_timeout_secs"]),
        (
            "cluster",
            &[
                "nats_url",
                "heartbeat_ms",
                "node_timeout_ms",
                "subject_prefix",
            ],
        ),
        ("nosuch", &["key"]),
    ];

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<bool>().prop_map(|b| b.to_string()),
            any::<String>().prop_map(|s| toml::Value::String(s).to_string()),
            text("0123456789.:[]/ab", 24).prop_map(|s| format!("\"{s}\"")),
            proptest::collection::vec(text("0123456789./:", 16), 0..3)
                .prop_map(|v| toml::Value::from(v).to_string()),
            Just("\"off\"".to_owned()),
            Just("1e400".to_owned()),
        ]
    }

    fn file() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            (
                proptest::sample::select(KEYS),
                any::<prop::sample::Index>(),
                value(),
            ),
            0..6,
        )
        .prop_map(|entries| {
            let mut out = String::new();
            for ((section, keys), i, v) in entries {
                out.push_str(&format!(
                    "[{section}]\n{} = {v}\n",
                    keys[i.index(keys.len())]
                ));
            }
            out
        })
    }

    proptest! {
        #![proptest_config(cases())]

        #[test]
        fn config_files_load_or_fail_with_a_typed_error(
            text in prop_oneof![any::<String>(), file(), text("[]=\"\n abc.019", 200)],
            env in proptest::collection::vec(
                (
                    prop_oneof![
                        Just("SWITCHBOARD_SERVER_LISTEN"),
                        Just("SWITCHBOARD_PUBSUB_MAX_MESSAGE"),
                        Just("SWITCHBOARD_RTC_ADMIN_TOKEN"),
                        Just("SWITCHBOARD_NOSUCH_KEY"),
                        Just("SWITCHBOARD_SERVER_NOSUCH"),
                    ],
                    text("0123456789.:,/ab", 20),
                ),
                0..3,
            ),
        ) {
            let dir = TempDir::new("fuzz-config");
            let path = dir.write("switchboard.toml", &text);
            let env = env.into_iter().map(|(k, v)| (k.to_owned(), v));
            if let Ok(cfg) = Config::load(Some(&path), env) {
                // What loaded is valid by the same rules.
                prop_assert!(cfg.validate().is_ok());
            }
        }
    }
}
