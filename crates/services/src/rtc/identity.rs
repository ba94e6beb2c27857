//! Who a request is: the `user_username` cookie, the rule for names that may
//! go into it, and the optional signed mode.
//!
//! The original trusts an unsigned cookie holding the bare name, so anyone can
//! claim to be anyone. That stays the default, for compatibility. With a
//! secret configured the cookie value becomes `name.signature`, where the
//! signature is the unpadded base64url HMAC-SHA256 of the name under the
//! secret; a cookie without a valid signature is then refused like an unknown
//! user. Names are restricted to RFC 6265 cookie-octets (printable ASCII other
//! than space, `"`, `,`, `;` and `\`), so a name never needs escaping in a
//! header and never splits one. Logs show a name only as its [`log_tag`].

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit as _, Mac as _};
use http::{HeaderMap, HeaderValue, header};
use sha2::Sha256;

/// The cookie that carries the identity, as the original names it.
pub const COOKIE: &str = "user_username";

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// Why a name cannot be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty (the original's only check, with this message).
    #[error("username cannot be empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("username cannot be longer than 256 bytes")]
    TooLong,
    /// The name holds a byte that is not a cookie-octet.
    #[error(
        "username may only contain printable ASCII characters other than space, double quote, comma, semicolon and backslash"
    )]
    Character,
}

/// Whether `b` may appear in a cookie value unquoted (RFC 6265 §4.1.1 cookie-octet).
pub fn is_cookie_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Checks that `name` can be registered and carried in the cookie.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.len() > MAX_NAME_LEN {
        Err(NameError::TooLong)
    } else if !name.bytes().all(is_cookie_octet) {
        Err(NameError::Character)
    } else {
        Ok(())
    }
}

/// Why a cookie does not name anyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// There is no `user_username` cookie.
    #[error("no user_username cookie")]
    Missing,
    /// The value is not a possible name (bad bytes, empty, too long).
    #[error("the user_username cookie is not a valid name")]
    Garbled,
    /// Signed mode: the signature is missing or does not match.
    #[error("the user_username cookie has no valid signature")]
    Forged,
}

/// Signs and verifies cookie values with HMAC-SHA256 under a secret.
#[derive(Clone)]
pub struct CookieSigner {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key material.
        f.write_str("CookieSigner(..)")
    }
}

/// Bytes prepended to the name before signing, so a signature made for this
/// purpose cannot be replayed as any other HMAC under the same secret.
const SIGNING_CONTEXT: &[u8] = b"switchboard rtc user_username\0";

/// The shortest secret accepted for signed cookies, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

/// Why a cookie secret was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Shorter than [`MIN_SECRET_LEN`] bytes: too easy to guess.
    #[error("the cookie secret must be at least 16 bytes long")]
    TooShort,
    /// The MAC refused the key (HMAC takes any length, so this is not expected).
    #[error("the cookie secret is not a usable HMAC key")]
    Key,
}

impl CookieSigner {
    /// A signer for `secret`, at least [`MIN_SECRET_LEN`] bytes.
    pub fn new(secret: &[u8]) -> Result<Self, SecretError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort);
        }
        let mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SecretError::Key)?;
        Ok(CookieSigner { mac })
    }

    fn tag(&self, name: &str) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(SIGNING_CONTEXT);
        mac.update(name.as_bytes());
        mac
    }

    /// The cookie value for `name`: `name.signature`.
    pub fn sign(&self, name: &str) -> String {
        let sig = self.tag(name).finalize().into_bytes();
        format!("{name}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// The name in a signed cookie value, if its signature is valid.
    pub fn verify<'a>(&self, value: &'a str) -> Result<&'a str, CookieError> {
        let (name, sig) = value.rsplit_once('.').ok_or(CookieError::Forged)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| CookieError::Forged)?;
        // Constant-time comparison.
        self.tag(name)
            .verify_slice(&sig)
            .map_err(|_| CookieError::Forged)?;
        Ok(name)
    }
}

/// How identities are carried: the bare name (the original) or a signed one.
#[derive(Debug, Clone, Default)]
pub struct Identities {
    signer: Option<CookieSigner>,
}

impl Identities {
    /// Unsigned cookies holding the bare name, as the original.
    pub fn unsigned() -> Self {
        Identities { signer: None }
    }

    /// Signed cookies under `secret` (at least [`MIN_SECRET_LEN`] bytes).
    pub fn signed(secret: &[u8]) -> Result<Self, SecretError> {
        Ok(Identities {
            signer: Some(CookieSigner::new(secret)?),
        })
    }

    /// Whether cookies are signed.
    pub fn is_signed(&self) -> bool {
        self.signer.is_some()
    }

    /// The cookie value that identifies `name` (a name that passed [`check_name`]).
    pub fn cookie_value(&self, name: &str) -> String {
        match &self.signer {
            Some(s) => s.sign(name),
            None => name.to_owned(),
        }
    }

    /// The `Set-Cookie` header for `name`: readable from JavaScript (no
    /// HttpOnly; the original's pages read `document.cookie`), `Path=/` so the
    /// WebSocket handshake carries it, `SameSite=Lax`.
    pub fn set_cookie(&self, name: &str) -> Option<HeaderValue> {
        let value = self.cookie_value(name);
        HeaderValue::from_str(&format!("{COOKIE}={value}; Path=/; SameSite=Lax")).ok()
    }

    /// The name the request's cookie proves, before asking the store whether
    /// it is registered.
    pub fn name_of<'a>(&self, headers: &'a HeaderMap) -> Result<&'a str, CookieError> {
        let raw = find_cookie(headers).ok_or(CookieError::Missing)?;
        let value = std::str::from_utf8(raw).map_err(|_| CookieError::Garbled)?;
        let name = match &self.signer {
            Some(s) => {
                // A value that could never be a signed name is garbled, not forged.
                if !value.bytes().all(is_cookie_octet) {
                    return Err(CookieError::Garbled);
                }
                s.verify(value)?
            }
            None => value,
        };
        check_name(name).map_err(|_| CookieError::Garbled)?;
        Ok(name)
    }
}

/// The raw value of the first `user_username` cookie in any `Cookie` header.
pub fn find_cookie(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get_all(header::COOKIE).iter().find_map(|line| {
        line.as_bytes().split(|&b| b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            (pair[..eq].trim_ascii() == COOKIE.as_bytes()).then(|| {
                let v = pair[eq + 1..].trim_ascii();
                // RFC 6265 allows the value in double quotes.
                v.strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(v)
            })
        })
    })
}

/// What a log line may show of a user name: 8 hex digits of an HMAC of the name under a key
/// drawn at start. The lines of one user can be told apart within one run of the process,
/// and neither the name nor a guess at it can be checked against them (the key never
/// leaves memory). Names are what an attacker would need to reach a user, so logs never
/// carry them.
pub fn log_tag(name: &str) -> String {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(rand::random);
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(name.as_bytes());
    let tag = mac.finalize().into_bytes();
    tag[..4].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cookie_octets() {
        let cases: &[(&str, Result<(), NameError>)] = &[
            ("alice", Ok(())),
            ("a.b-c_d~e!#$%&'()*+/:<=>?@[]^`{|}", Ok(())),
            ("", Err(NameError::Empty)),
            ("sp;ace=x, Domain=evil", Err(NameError::Character)),
            ("a b", Err(NameError::Character)),
            ("a,b", Err(NameError::Character)),
            ("a\"b", Err(NameError::Character)),
            ("a\\b", Err(NameError::Character)),
            ("a\tb", Err(NameError::Character)),
            ("a\u{7f}", Err(NameError::Character)),
            ("zoë", Err(NameError::Character)),
        ];
        for (name, want) in cases {
            assert_eq!(check_name(name), *want, "{name:?}");
        }
        assert_eq!(check_name(&"x".repeat(MAX_NAME_LEN)), Ok(()));
        assert_eq!(
            check_name(&"x".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong)
        );
    }

    fn headers(cookies: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for c in cookies {
            h.append(header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        h
    }

    #[test]
    fn the_cookie_is_found_among_others_and_across_headers() {
        let ids = Identities::unsigned();
        let cases: &[(&[&str], Result<&str, CookieError>)] = &[
            (&["user_username=alice"], Ok("alice")),
            (&["a=1; user_username=bob; c=3"], Ok("bob")),
            (&["a=1", "user_username=carol"], Ok("carol")),
            (&["user_username=\"dave\""], Ok("dave")),
            (&["user_username=first; user_username=second"], Ok("first")),
            (&[], Err(CookieError::Missing)),
            (&["user_usernamex=eve"], Err(CookieError::Missing)),
            (&["user_username="], Err(CookieError::Garbled)),
            (&["user_username=a\"b"], Err(CookieError::Garbled)),
        ];
        for (cookies, want) in cases {
            assert_eq!(ids.name_of(&headers(cookies)), *want, "{cookies:?}");
        }
    }

    #[test]
    fn signed_cookies_verify_and_forgeries_do_not() {
        let ids = Identities::signed(b"0123456789abcdef0123456789abcdef").unwrap();
        let value = ids.cookie_value("alice.b");
        assert!(value.starts_with("alice.b."));
        assert!(value.bytes().all(is_cookie_octet));
        let ok = headers(&[&format!("user_username={value}")]);
        assert_eq!(ids.name_of(&ok), Ok("alice.b"));

        let other = Identities::signed(b"another secret, another signature").unwrap();
        let theirs = format!("user_username={}", other.cookie_value("alice"));
        let tampered = format!("user_username={}", value.replacen("alice", "alicf", 1));
        for forged in [
            "user_username=alice",
            theirs.as_str(),
            tampered.as_str(),
            "user_username=alice.",
            "user_username=alice.!!!",
        ] {
            assert_eq!(
                ids.name_of(&headers(&[forged])),
                Err(CookieError::Forged),
                "{forged}"
            );
        }
        assert_eq!(
            ids.name_of(&headers(&["user_username=a\"b.x"])),
            Err(CookieError::Garbled)
        );
    }

    #[test]
    fn set_cookie_is_readable_from_javascript_with_path_root() {
        let v = Identities::unsigned().set_cookie("alice").unwrap();
        assert_eq!(v, "user_username=alice; Path=/; SameSite=Lax");
        assert!(!v.to_str().unwrap().contains("HttpOnly"));
    }

    #[test]
    fn the_signer_never_prints_its_key() {
        let s = CookieSigner::new(b"super secret key material").unwrap();
        assert_eq!(format!("{s:?}"), "CookieSigner(..)");
        assert_eq!(
            CookieSigner::new(b"short").unwrap_err(),
            SecretError::TooShort
        );
    }

    #[test]
    fn a_log_tag_is_short_stable_and_not_the_name() {
        let tag = log_tag("alice");
        assert_eq!(tag.len(), 8);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(log_tag("alice"), tag);
        assert_ne!(log_tag("alice2"), tag);
        assert!(!tag.contains("alice"));
    }
}
