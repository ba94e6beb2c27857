//! Sender metadata and the relay envelope of the pairing protocol.
//!
//! This module owns the exact bytes a pairing peer receives for each relayed text
//! frame: `{"message":"<trimmed text>","sender":{…}}`. The `sender` object carries
//! a subset of `city`, `country`, `region`, `remote`, `ua`, keys in that
//! (alphabetical) order, string values only, absent or empty ones omitted, never
//! `null` (the FxA client validates it against exactly that schema).
//!
//! The sender object is serialized once per connection, at upgrade time, into a
//! [`SenderJson`]; every relayed message then only escapes its own text.

use std::fmt;
use std::fmt::Write as _;

use serde::{Serialize, Serializer};

use super::geo::GeoInfo;

/// Longest accepted part of an `X-Client-Geo-Location` value, in bytes.
const MAX_GEO_HEADER_PART: usize = 256;

/// What one pairing participant tells the others about itself.
///
/// Computed from the sender's own request (so localisation follows the sender's
/// `Accept-Language`). `None` and empty strings are omitted on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SenderData {
    /// Localized city name.
    #[serde(skip_serializing_if = "is_absent", serialize_with = "present")]
    pub city: Option<String>,
    /// Localized country name.
    #[serde(skip_serializing_if = "is_absent", serialize_with = "present")]
    pub country: Option<String>,
    /// Localized name of the first subdivision.
    #[serde(skip_serializing_if = "is_absent", serialize_with = "present")]
    pub region: Option<String>,
    /// The client's IP address as text.
    #[serde(skip_serializing_if = "is_absent", serialize_with = "present")]
    pub remote: Option<String>,
    /// The client's raw `User-Agent`.
    #[serde(skip_serializing_if = "is_absent", serialize_with = "present")]
    pub ua: Option<String>,
}

// Field order above is the wire order; serde emits fields in declaration order.

// serde's skip_serializing_if passes `&Option<String>`.
fn is_absent(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(str::is_empty)
}

fn present<S: Serializer>(value: &Option<String>, serializer: S) -> Result<S::Ok, S::Error> {
    // Only reached when `is_absent` is false; "" keeps the output a string regardless.
    serializer.serialize_str(value.as_deref().unwrap_or_default())
}

impl SenderData {
    /// Builds sender data from a resolved client address, the raw `User-Agent`
    /// and a GeoIP result.
    pub fn new(remote: Option<std::net::IpAddr>, ua: Option<&str>, geo: GeoInfo) -> Self {
        Self {
            city: geo.city,
            country: geo.country,
            region: geo.region,
            remote: remote.map(|ip| ip.to_canonical().to_string()),
            ua: ua.map(str::to_owned),
        }
    }

    /// Applies an `X-Client-Geo-Location: <region>,<city>` value (set by Google Cloud
    /// load balancers) when the city is still unknown. It overwrites `region` with
    /// the header's region so the pair stays consistent, and returns whether it applied.
    ///
    /// The caller must only pass this header when the peer is a trusted proxy (the
    /// original accepted it from anyone). Values without a comma, with an empty
    /// city, or with an overly long part are ignored.
    pub fn apply_client_geo_location(&mut self, header_value: &str) -> bool {
        if !is_absent(&self.city) {
            return false;
        }
        let Some((region, city)) = header_value.split_once(',') else {
            return false;
        };
        let (region, city) = (region.trim(), city.trim());
        if city.is_empty() || city.len() > MAX_GEO_HEADER_PART || region.len() > MAX_GEO_HEADER_PART
        {
            return false;
        }
        self.city = Some(city.to_owned());
        self.region = (!region.is_empty()).then(|| region.to_owned());
        true
    }

    /// Serializes the sender object once, for every message of this connection.
    pub fn to_json(&self) -> SenderJson {
        let mut out = String::with_capacity(128);
        out.push('{');
        let fields = [
            ("city", &self.city),
            ("country", &self.country),
            ("region", &self.region),
            ("remote", &self.remote),
            ("ua", &self.ua),
        ];
        let mut first = true;
        for (key, value) in fields {
            let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
                continue;
            };
            if !first {
                out.push(',');
            }
            first = false;
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            push_json_string(&mut out, value);
        }
        out.push('}');
        SenderJson(out.into_boxed_str())
    }
}

/// A serialized `sender` object: always a valid compact JSON object. Only
/// [`SenderData::to_json`] makes one.
#[derive(Clone, PartialEq, Eq)]
pub struct SenderJson(Box<str>);

impl SenderJson {
    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SenderJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SenderJson").field(&&*self.0).finish()
    }
}

impl fmt::Display for SenderJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The frame text relayed to the other participants:
/// `{"message":"<message trimmed, JSON-escaped>","sender":<sender>}`, compact.
///
/// Its length is what `max_data` counts.
pub fn relay_envelope(message: &str, sender: &SenderJson) -> String {
    let message = message.trim();
    let mut out = String::with_capacity(message.len() + sender.0.len() + 32);
    out.push_str("{\"message\":");
    push_json_string(&mut out, message);
    out.push_str(",\"sender\":");
    out.push_str(&sender.0);
    out.push('}');
    out
}

/// Appends `value` as a JSON string literal, escaping exactly what serde_json
/// escapes: `"`, `\` and the C0 controls (short forms where JSON has them).
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    let mut start = 0;
    for (i, byte) in value.bytes().enumerate() {
        let short = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Escaped bytes are ASCII, so `start..i` always lies on char boundaries.
        out.push_str(&value[start..i]);
        if short.is_empty() {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&value[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_sender() -> SenderJson {
        SenderData {
            remote: Some("127.0.0.1".into()),
            ua: Some("cs-probe/1.0".into()),
            ..Default::default()
        }
        .to_json()
    }

    #[test]
    fn envelope_matches_original_bytes() {
        assert_eq!(
            relay_envelope("  aGVsbG8gZnJvbSBB  ", &probe_sender()),
            r#"{"message":"aGVsbG8gZnJvbSBB","sender":{"remote":"127.0.0.1","ua":"cs-probe/1.0"}}"#
        );
    }

    #[test]
    fn envelope_table() {
        let full = SenderData {
            city: Some("Londres".into()),
            country: Some("Royaume-Uni".into()),
            region: Some("Angleterre".into()),
            remote: Some("81.2.69.142".into()),
            ua: Some("Python/3.11 websockets/17.4".into()),
        }
        .to_json();
        let empty = SenderData::default().to_json();
        let cases: &[(&str, &SenderJson, &str)] = &[
            (
                "eA",
                &full,
                r#"{"message":"eA","sender":{"city":"Londres","country":"Royaume-Uni","region":"Angleterre","remote":"81.2.69.142","ua":"Python/3.11 websockets/17.4"}}"#,
            ),
            ("", &empty, r#"{"message":"","sender":{}}"#),
            ("\t\r\n x \n", &empty, r#"{"message":"x","sender":{}}"#),
            ("a b", &empty, r#"{"message":"a b","sender":{}}"#),
            (
                "q\"b\\s/\u{1}\u{8}\u{c}\u{1f}\u{7f}",
                &empty,
                "{\"message\":\"q\\\"b\\\\s/\\u0001\\b\\f\\u001f\u{7f}\",\"sender\":{}}",
            ),
            ("a\nb", &empty, r#"{"message":"a\nb","sender":{}}"#),
            (
                "Линчёпинг ✓",
                &empty,
                r#"{"message":"Линчёпинг ✓","sender":{}}"#,
            ),
            (
                "FAMDAAEB=",
                &empty,
                r#"{"message":"FAMDAAEB=","sender":{}}"#,
            ),
        ];
        for (message, sender, expected) in cases {
            assert_eq!(relay_envelope(message, sender), *expected, "{message:?}");
        }
    }

    #[test]
    fn escaping_agrees_with_serde_json() {
        let mut all: String = (0u32..0x80).filter_map(char::from_u32).collect();
        all.push_str("é€😀\u{2028}\u{2029}\u{fffd}");
        for s in [all.as_str(), "", "\"", "\\\\", "plain", "\u{0}end"] {
            let mut ours = String::new();
            push_json_string(&mut ours, s);
            let theirs = serde_json::to_string(s).expect("serialize");
            assert_eq!(ours, theirs, "{s:?}");
            let back: String = serde_json::from_str(&ours).expect("valid JSON");
            assert_eq!(back, s);
        }
    }

    #[test]
    fn sender_json_omits_absent_and_empty() {
        let cases: &[(SenderData, &str)] = &[
            (SenderData::default(), "{}"),
            (
                SenderData {
                    ua: Some(String::new()),
                    remote: Some("::1".into()),
                    ..Default::default()
                },
                r#"{"remote":"::1"}"#,
            ),
            (
                SenderData {
                    country: Some("Bhutan".into()),
                    remote: Some("67.43.156.1".into()),
                    ua: Some("ua".into()),
                    ..Default::default()
                },
                r#"{"country":"Bhutan","remote":"67.43.156.1","ua":"ua"}"#,
            ),
            (
                SenderData {
                    city: Some(String::new()),
                    ua: Some("say \"hi\"".into()),
                    ..Default::default()
                },
                r#"{"ua":"say \"hi\""}"#,
            ),
        ];
        for (data, expected) in cases {
            let json = data.to_json();
            assert_eq!(json.as_str(), *expected);
            // The serde impl (for callers that embed SenderData) agrees byte for byte.
            assert_eq!(serde_json::to_string(data).expect("serialize"), *expected);
            assert!(serde_json::from_str::<serde_json::Value>(json.as_str()).is_ok());
        }
    }

    #[test]
    fn new_from_parts() {
        let geo = GeoInfo {
            city: None,
            country: Some("United States".into()),
            region: Some("California".into()),
        };
        let ip = "::ffff:214.78.124.1".parse().expect("ip");
        let data = SenderData::new(Some(ip), Some("node"), geo);
        assert_eq!(
            data.to_json().to_string(),
            r#"{"country":"United States","region":"California","remote":"214.78.124.1","ua":"node"}"#
        );
        let v6 = SenderData::new(
            Some("2001:480:10::1".parse().expect("ip")),
            None,
            GeoInfo::default(),
        );
        assert_eq!(v6.to_json().as_str(), r#"{"remote":"2001:480:10::1"}"#);
        let none = SenderData::new(None, Some(""), GeoInfo::default());
        assert_eq!(none.to_json().as_str(), "{}");
    }

    #[test]
    fn client_geo_location_table() {
        let no_city = || SenderData {
            country: Some("Germany".into()),
            region: Some("Hesse".into()),
            remote: Some("1.2.3.4".into()),
            ..Default::default()
        };
        let with_city = || SenderData {
            city: Some("London".into()),
            region: Some("England".into()),
            ..Default::default()
        };
        /// (start, header, applied, expected city, expected region)
        type Case<'a> = (SenderData, &'a str, bool, Option<&'a str>, Option<&'a str>);
        let long = "x".repeat(MAX_GEO_HEADER_PART + 1);
        let long_header = format!("Bavaria,{long}");
        let cases: Vec<Case<'_>> = vec![
            (
                no_city(),
                "Bavaria,Munich",
                true,
                Some("Munich"),
                Some("Bavaria"),
            ),
            (
                no_city(),
                " Bavaria , Munich ",
                true,
                Some("Munich"),
                Some("Bavaria"),
            ),
            (no_city(), ",Munich", true, Some("Munich"), None),
            (
                no_city(),
                "Bavaria,Bad Tölz, Town",
                true,
                Some("Bad Tölz, Town"),
                Some("Bavaria"),
            ),
            (no_city(), "Bavaria", false, None, Some("Hesse")),
            (no_city(), "Bavaria,", false, None, Some("Hesse")),
            (no_city(), "", false, None, Some("Hesse")),
            (no_city(), &long_header, false, None, Some("Hesse")),
            (
                SenderData::default(),
                "Bavaria,Munich",
                true,
                Some("Munich"),
                Some("Bavaria"),
            ),
            (
                SenderData {
                    city: Some(String::new()),
                    ..Default::default()
                },
                "Bavaria,Munich",
                true,
                Some("Munich"),
                Some("Bavaria"),
            ),
            // A known city is never replaced.
            (
                with_city(),
                "Bavaria,Munich",
                false,
                Some("London"),
                Some("England"),
            ),
        ];
        for (mut data, header, applied, city, region) in cases {
            assert_eq!(
                data.apply_client_geo_location(header),
                applied,
                "{header:?}"
            );
            assert_eq!(data.city.as_deref(), city, "{header:?}");
            assert_eq!(data.region.as_deref(), region, "{header:?}");
        }
        let mut d = no_city();
        d.apply_client_geo_location("Bavaria,Munich");
        assert_eq!(
            d.to_json().as_str(),
            r#"{"city":"Munich","country":"Germany","region":"Bavaria","remote":"1.2.3.4"}"#
        );
    }
}
