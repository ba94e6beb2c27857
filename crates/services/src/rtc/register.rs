//! The body of `POST /v1/register`: where the user name is, by Content-Type,
//! as the original's body parser finds it.
//!
//! - `application/json…`: one JSON object; the `username` key matches
//!   case-insensitively, the last duplicate wins, `null` or missing is empty,
//!   any other type is an error. `null` as the whole body is an empty name.
//! - `application/x-www-form-urlencoded`: the first `username` field (any case).
//! - `multipart/form-data`: the first part named `username` (any case).
//!
//! Anything else (XML included, which the original also parsed) is
//! [`BodyError`], answered `400 invalid body`.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The largest registration body read, in bytes (larger: 413).
pub const MAX_BODY: usize = 64 * 1024;

/// The body does not hold a user name field in a form we read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid body")]
pub struct BodyError;

/// The user name in a registration body with `content_type`, as sent
/// (possibly empty; [`super::identity::check_name`] judges it).
pub fn username(content_type: Option<&[u8]>, body: &[u8]) -> Result<String, BodyError> {
    let ct = content_type
        .map(|c| String::from_utf8_lossy(c).trim().to_ascii_lowercase())
        .unwrap_or_default();
    if ct.starts_with("application/json") {
        serde_json::from_slice::<JsonBody>(body)
            .map(|b| b.0)
            .map_err(|_| BodyError)
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        Ok(form_field(body).unwrap_or_default())
    } else if ct.starts_with("multipart/form-data") {
        let boundary = param(&ct, content_type.unwrap_or_default(), "boundary").ok_or(BodyError)?;
        multipart_field(body, boundary.as_bytes()).map(Option::unwrap_or_default)
    } else {
        Err(BodyError)
    }
}

/// `{"username": …}` with the original's key matching.
struct JsonBody(String);

impl<'de> de::Deserialize<'de> for JsonBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonBodyVisitor)
    }
}

struct JsonBodyVisitor;

impl<'de> Visitor<'de> for JsonBodyVisitor {
    type Value = JsonBody;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with a username")
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonBody, E> {
        Ok(JsonBody(String::new()))
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<JsonBody, M::Error> {
        let mut name = String::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key.eq_ignore_ascii_case("username") {
                name = map.next_value::<Option<String>>()?.unwrap_or_default();
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(JsonBody(name))
    }
}

/// Decodes one `application/x-www-form-urlencoded` component.
fn form_decode(s: &[u8]) -> String {
    let plus: Vec<u8> = s
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

fn form_field(body: &[u8]) -> Option<String> {
    body.split(|&b| b == b'&').find_map(|pair| {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &[][..]),
        };
        form_decode(k)
            .eq_ignore_ascii_case("username")
            .then(|| form_decode(v))
    })
}

/// The value of parameter `name` in a header value; `lower` is the value
/// lowercased (to find it), `orig` the original (to take it, case kept).
fn param(lower: &str, orig: &[u8], name: &str) -> Option<String> {
    let orig = String::from_utf8_lossy(orig);
    let orig = orig.trim();
    let mut offset = 0;
    for part in lower.split(';') {
        let start = offset;
        offset += part.len() + 1;
        let Some((k, _)) = part.split_once('=') else {
            continue;
        };
        if k.trim() != name {
            continue;
        }
        let raw = orig.get(start..start + part.len())?;
        let v = raw.split_once('=')?.1.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        return (!v.is_empty()).then(|| v.to_owned());
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The first `username` part of a multipart body; an error if the body is not multipart.
fn multipart_field(body: &[u8], boundary: &[u8]) -> Result<Option<String>, BodyError> {
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(boundary);
    let mut rest = &body[find(body, &delim).ok_or(BodyError)? + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Ok(None);
        }
        let rest_part = rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
            .ok_or(BodyError)?;
        let head_end = find(rest_part, b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| find(rest_part, b"\n\n").map(|i| (i, 2)))
            .ok_or(BodyError)?;
        let head = String::from_utf8_lossy(&rest_part[..head_end.0]).to_ascii_lowercase();
        let content = &rest_part[head_end.0 + head_end.1..];
        let end = find(content, &delim).ok_or(BodyError)?;
        let mut value = &content[..end];
        value = value
            .strip_suffix(b"\r\n")
            .or_else(|| value.strip_suffix(b"\n"))
            .unwrap_or(value);
        let named = head.lines().any(|l| {
            l.trim_start().starts_with("content-disposition:")
                && l.split(';').any(|p| {
                    p.trim().strip_prefix("name=").map(|n| n.trim_matches('"')) == Some("username")
                })
        });
        if named {
            return Ok(Some(String::from_utf8_lossy(value).into_owned()));
        }
        rest = &content[end + delim.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_table() {
        let json = Some(&b"application/json"[..]);
        let form = Some(&b"application/x-www-form-urlencoded"[..]);
        // (Content-Type, body, the name found)
        type Case<'a> = (Option<&'a [u8]>, &'a str, Result<&'a str, BodyError>);
        let cases: &[Case<'_>] = &[
            (json, r#"{"username":"alice"}"#, Ok("alice")),
            (
                Some(b"Application/JSON; charset=utf-8"),
                r#"{"USERNAME":"bob"}"#,
                Ok("bob"),
            ),
            (json, r#"{"username":"a","UserName":"b","x":[1]}"#, Ok("b")),
            (json, r#"{"username":null}"#, Ok("")),
            (json, r#"{}"#, Ok("")),
            (json, "null", Ok("")),
            // ASCII case folding only: Go would also fold the long s (U+017F).
            (json, "{\"u\u{17f}ername\":\"x\"}", Ok("")),
            (json, r#"{"username":5}"#, Err(BodyError)),
            (json, r#"{"username":"a"} x"#, Err(BodyError)),
            (json, "", Err(BodyError)),
            (json, "[]", Err(BodyError)),
            (form, "username=carol", Ok("carol")),
            (form, "x=1&Username=d%20e+f&username=g", Ok("d e f")),
            (form, "other=1", Ok("")),
            (Some(b"text/plain"), "username=x", Err(BodyError)),
            (
                Some(b"application/xml"),
                "<u><username>x</username></u>",
                Err(BodyError),
            ),
            (None, r#"{"username":"x"}"#, Err(BodyError)),
        ];
        for (ct, body, want) in cases {
            assert_eq!(
                username(*ct, body.as_bytes()).as_deref(),
                want.as_deref(),
                "{ct:?} {body}"
            );
        }
    }

    #[test]
    fn multipart_bodies() {
        let ct = b"multipart/form-data; boundary=XyZ";
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n1\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nerin\r\n--XyZ--\r\n";
        assert_eq!(username(Some(ct), body.as_bytes()).as_deref(), Ok("erin"));
        let none =
            "--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\n1\r\n--XyZ--\r\n";
        assert_eq!(username(Some(ct), none.as_bytes()).as_deref(), Ok(""));
        assert_eq!(username(Some(ct), b"garbage"), Err(BodyError));
        assert_eq!(
            username(Some(b"multipart/form-data"), body.as_bytes()),
            Err(BodyError),
            "no boundary"
        );
    }
}
