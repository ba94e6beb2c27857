//! Hello v2 tokens: the JWT a Talk client gets from Nextcloud and passes in
//! `hello.auth.params.token`, checked here with the public key Nextcloud
//! publishes in its capabilities (`spreed.config.signaling["hello-v2-token-key"]`).
//!
//! Contract of [`verify`]: the signature is checked first, with the algorithm
//! the key's type allows and nothing else (RS256/384/512 for an RSA key,
//! ES256/384/512 for a P-256/P-384/P-521 key, EdDSA for an Ed25519 key; HMAC
//! algorithms never, so a public key can not be used as an HMAC secret). Then
//! the claims: `iat` and `exp` must both be present; a token is accepted from
//! `iat - leeway` (and `nbf - leeway` when present) until before
//! `exp + leeway`, with the original's leeway of [`LEEWAY`]. `sub` is the user
//! id (absent or empty: a guest), `userdata` the user object, kept raw.
//!
//! Every failure maps to one of the spec's three codes ([`TokenError::code`]):
//! `token_not_valid_yet`, `token_expired`, or `invalid_token` for the rest.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use ed25519_dalek::Verifier as _;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Sha256, Sha384, Sha512};

/// Clock skew allowed on `iat`, `nbf` and `exp` (the original: 60 s).
pub const LEEWAY: Duration = Duration::from_secs(60);

/// A hello v2 public key, as read from a backend's capabilities.
#[derive(Debug, Clone)]
pub enum TokenKey {
    /// RSA: RS256, RS384 or RS512.
    Rsa(rsa::PublicKey),
    /// P-256: ES256.
    P256(p256::ecdsa::VerifyingKey),
    /// P-384: ES384.
    P384(p384::ecdsa::VerifyingKey),
    /// P-521: ES512.
    P521(p521::ecdsa::VerifyingKey),
    /// Ed25519: EdDSA.
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// Why a key from the capabilities can not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// PEM, but not a public key of a type we know (or a broken one).
    #[error("the PEM text is not an RSA, P-256, P-384, P-521 or Ed25519 public key")]
    UnsupportedPem,
    /// Not PEM and not 32 bytes of base64 (a raw Ed25519 key).
    #[error("the key is neither PEM nor a base64 Ed25519 key")]
    NotAKey,
}

impl TokenKey {
    /// Reads a key: PEM (`PUBLIC KEY`, or `RSA PUBLIC KEY`), or a raw Ed25519
    /// key in base64 (what Nextcloud publishes when it signs with EdDSA).
    pub fn parse(text: &str) -> Result<TokenKey, KeyError> {
        let text = text.trim();
        if text.starts_with("-----BEGIN") {
            return Self::parse_pem(text);
        }
        let raw = STANDARD
            .decode(text)
            .or_else(|_| STANDARD_NO_PAD.decode(text))
            .map_err(|_| KeyError::NotAKey)?;
        let bytes: [u8; 32] = raw.try_into().map_err(|_| KeyError::NotAKey)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(TokenKey::Ed25519)
            .map_err(|_| KeyError::NotAKey)
    }

    fn parse_pem(pem: &str) -> Result<TokenKey, KeyError> {
        use rsa::pkcs1::DecodeRsaPublicKey as _;
        if let Ok(k) = rsa::PublicKey::from_public_key_pem(pem) {
            return Ok(TokenKey::Rsa(k));
        }
        if let Ok(k) = rsa::PublicKey::from_pkcs1_pem(pem) {
            return Ok(TokenKey::Rsa(k));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(TokenKey::P256(k));
        }
        if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(TokenKey::P384(k));
        }
        if let Ok(k) = p521::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(TokenKey::P521(k));
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(TokenKey::Ed25519(k));
        }
        Err(KeyError::UnsupportedPem)
    }

    /// The key type's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenKey::Rsa(_) => "rsa",
            TokenKey::P256(_) => "p-256",
            TokenKey::P384(_) => "p-384",
            TokenKey::P521(_) => "p-521",
            TokenKey::Ed25519(_) => "ed25519",
        }
    }

    /// Whether `sig` over `signed` is valid for `alg` under this key. An
    /// algorithm the key's type does not allow is refused, valid or not.
    fn check(&self, alg: &str, signed: &[u8], sig: &[u8]) -> Result<(), TokenError> {
        let ok =
            match (self, alg) {
                (TokenKey::Rsa(k), "RS256") => rsa_check::<Sha256>(k, signed, sig),
                (TokenKey::Rsa(k), "RS384") => rsa_check::<Sha384>(k, signed, sig),
                (TokenKey::Rsa(k), "RS512") => rsa_check::<Sha512>(k, signed, sig),
                (TokenKey::P256(k), "ES256") => p256::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify(signed, &s).is_ok()),
                (TokenKey::P384(k), "ES384") => p384::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify(signed, &s).is_ok()),
                (TokenKey::P521(k), "ES512") => p521::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify(signed, &s).is_ok()),
                (TokenKey::Ed25519(k), "EdDSA") => ed25519_dalek::Signature::from_slice(sig)
                    .is_ok_and(|s| k.verify_strict(signed, &s).is_ok()),
                _ => return Err(TokenError::Algorithm(alg.to_owned())),
            };
        if ok {
            Ok(())
        } else {
            Err(TokenError::Signature)
        }
    }
}

fn rsa_check<D>(key: &rsa::PublicKey, signed: &[u8], sig: &[u8]) -> bool
where
    D: sha2::Digest + rsa::pkcs8::AssociatedOid,
{
    let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else {
        return false;
    };
    rsa::pkcs1v15::VerifyingKey::<D>::new(key.clone())
        .verify(signed, &sig)
        .is_ok()
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    #[error("malformed token")]
    Malformed,
    /// An algorithm this key does not allow (including every HMAC one).
    #[error("algorithm {0:?} not allowed for this key")]
    Algorithm(String),
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `iat` or `exp` missing (or not a number).
    #[error("claim {0} missing")]
    MissingClaim(&'static str),
    /// `iat` or `nbf` is in the future, beyond the leeway.
    #[error("token not valid yet")]
    NotValidYet,
    /// `exp` has passed, beyond the leeway.
    #[error("token expired")]
    Expired,
}

impl TokenError {
    /// The spec's error code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::NotValidYet => "token_not_valid_yet",
            TokenError::Expired => "token_expired",
            _ => "invalid_token",
        }
    }

    /// The spec's error message for [`Self::code`].
    pub fn message(&self) -> &'static str {
        match self {
            TokenError::NotValidYet => "The token is not valid yet.",
            TokenError::Expired => "The token is expired.",
            _ => "The passed token is invalid.",
        }
    }

    /// The metric label (finer than the code).
    pub fn label(&self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::Algorithm(_) => "algorithm",
            TokenError::Signature => "signature",
            TokenError::MissingClaim(_) => "missing_claim",
            TokenError::NotValidYet => "not_valid_yet",
            TokenError::Expired => "expired",
        }
    }
}

/// What a valid token says.
#[derive(Debug, Clone)]
pub struct HelloClaims {
    /// `sub`: the Nextcloud user id; empty for a guest.
    pub user_id: String,
    /// `userdata`: the user object (display name …), raw; `None` when absent.
    pub user_data: Option<Box<RawValue>>,
    /// `iat`, unix seconds.
    pub issued_at: i64,
    /// `exp`, unix seconds.
    pub expires_at: i64,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    userdata: Option<Box<RawValue>>,
    #[serde(default)]
    iat: Option<NumericDate>,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<NumericDate>,
}

/// A JWT NumericDate: seconds, possibly with a fraction (truncated).
#[derive(Clone, Copy)]
struct NumericDate(i64);

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = f64::deserialize(d)?;
        if !f.is_finite() {
            return Err(serde::de::Error::custom("not a finite number"));
        }
        // A saturating cast: absurd dates are simply far past or far future.
        #[allow(clippy::cast_possible_truncation)]
        Ok(NumericDate(f.floor() as i64))
    }
}

/// Checks `token` with `key` at `now` (unix seconds); see the module's contract.
pub fn verify(token: &str, key: &TokenKey, now: i64) -> Result<HelloClaims, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed)
    };
    let header: Header = serde_json::from_slice(&decode(h)?).map_err(|_| TokenError::Malformed)?;
    let sig = decode(s)?;
    let signed_len = h.len() + 1 + p.len();
    key.check(&header.alg, &token.as_bytes()[..signed_len], &sig)?;
    let claims: Claims = serde_json::from_slice(&decode(p)?).map_err(|_| TokenError::Malformed)?;
    let iat = claims.iat.ok_or(TokenError::MissingClaim("iat"))?.0;
    let exp = claims.exp.ok_or(TokenError::MissingClaim("exp"))?.0;
    let leeway = LEEWAY.as_secs() as i64;
    if now >= exp.saturating_add(leeway) {
        return Err(TokenError::Expired);
    }
    let starts = claims.nbf.map_or(iat, |n| n.0.max(iat));
    if now < starts.saturating_sub(leeway) {
        return Err(TokenError::NotValidYet);
    }
    Ok(HelloClaims {
        user_id: claims.sub.unwrap_or_default(),
        user_data: claims.userdata,
        issued_at: iat,
        expires_at: exp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer as _;
    use rsa::Generate as _;
    use rsa::pkcs8::EncodePublicKey as _;
    use rsa::signature::SignatureEncoding as _;

    const NOW: i64 = 1_800_000_000;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A token with this header algorithm and claims, signed by `sign`.
    fn token(alg: &str, claims: &serde_json::Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let head = b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
        let body = b64(claims.to_string().as_bytes());
        let signed = format!("{head}.{body}");
        let sig = sign(signed.as_bytes());
        format!("{signed}.{}", b64(&sig))
    }

    fn claims(iat: i64, exp: i64) -> serde_json::Value {
        serde_json::json!({
            "iss": "https://cloud.example.com/",
            "sub": "alice",
            "iat": iat,
            "exp": exp,
            "userdata": {"displayname": "Alice"},
        })
    }

    type SignFn = Box<dyn Fn(&[u8]) -> Vec<u8>>;

    /// One signer per algorithm, each with a freshly generated key, and the
    /// public key as Nextcloud would publish it.
    struct Signer {
        alg: &'static str,
        public: String,
        sign: SignFn,
    }

    /// RSA keys are slow to generate: two per test run, shared.
    fn rsa_key(which: usize) -> rsa::PrivateKey {
        static KEYS: std::sync::OnceLock<[rsa::PrivateKey; 2]> = std::sync::OnceLock::new();
        KEYS.get_or_init(|| [rsa::PrivateKey::generate(), rsa::PrivateKey::generate()])[which]
            .clone()
    }

    fn rsa_signers() -> Vec<Signer> {
        let private = rsa_key(0);
        let public = private
            .to_public_key()
            .to_public_key_pem(Default::default())
            .expect("pem");
        let k256 = rsa::pkcs1v15::SigningKey::<Sha256>::new(private.clone());
        let k384 = rsa::pkcs1v15::SigningKey::<Sha384>::new(private.clone());
        let k512 = rsa::pkcs1v15::SigningKey::<Sha512>::new(private);
        vec![
            Signer {
                alg: "RS256",
                public: public.clone(),
                sign: Box::new(move |m| k256.sign(m).to_vec()),
            },
            Signer {
                alg: "RS384",
                public: public.clone(),
                sign: Box::new(move |m| k384.sign(m).to_vec()),
            },
            Signer {
                alg: "RS512",
                public,
                sign: Box::new(move |m| k512.sign(m).to_vec()),
            },
        ]
    }

    fn ec_and_ed_signers() -> Vec<Signer> {
        let k256 = p256::ecdsa::SigningKey::generate();
        let k384 = p384::ecdsa::SigningKey::generate();
        let k521 = p521::ecdsa::SigningKey::generate();
        let ked = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        let pem = |k: &dyn Fn() -> String| k();
        vec![
            Signer {
                alg: "ES256",
                public: pem(&|| {
                    k256.verifying_key()
                        .to_public_key_pem(Default::default())
                        .expect("pem")
                }),
                sign: Box::new(move |m| {
                    let s: p256::ecdsa::Signature = k256.sign(m);
                    s.to_bytes().to_vec()
                }),
            },
            Signer {
                alg: "ES384",
                public: pem(&|| {
                    k384.verifying_key()
                        .to_public_key_pem(Default::default())
                        .expect("pem")
                }),
                sign: Box::new(move |m| {
                    let s: p384::ecdsa::Signature = k384.sign(m);
                    s.to_bytes().to_vec()
                }),
            },
            Signer {
                alg: "ES512",
                public: pem(&|| {
                    k521.verifying_key()
                        .to_public_key_pem(Default::default())
                        .expect("pem")
                }),
                sign: Box::new(move |m| {
                    let s: p521::ecdsa::Signature = k521.sign(m);
                    s.to_bytes().to_vec()
                }),
            },
            Signer {
                alg: "EdDSA",
                // Nextcloud publishes Ed25519 keys as raw base64.
                public: STANDARD.encode(ked.verifying_key().as_bytes()),
                sign: Box::new(move |m| ked.sign(m).to_vec()),
            },
        ]
    }

    #[test]
    fn every_algorithm_accepts_its_token_and_refuses_another_key() {
        let mut signers = rsa_signers();
        signers.extend(ec_and_ed_signers());
        let other_rsa = rsa_key(1);
        let other_rsa = TokenKey::Rsa(other_rsa.to_public_key());
        for s in &signers {
            let key = TokenKey::parse(&s.public).unwrap_or_else(|e| panic!("{}: {e}", s.alg));
            let t = token(s.alg, &claims(NOW - 10, NOW + 300), &s.sign);
            let c = verify(&t, &key, NOW).unwrap_or_else(|e| panic!("{}: {e}", s.alg));
            assert_eq!(c.user_id, "alice", "{}", s.alg);
            assert_eq!(
                c.user_data.map(|u| u.get().to_owned()).as_deref(),
                Some(r#"{"displayname":"Alice"}"#)
            );
            assert_eq!((c.issued_at, c.expires_at), (NOW - 10, NOW + 300));

            // A flipped bit in the signature.
            let mut bad = t.clone().into_bytes();
            let last = bad.len() - 3;
            bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(bad).expect("ascii");
            assert_eq!(
                verify(&bad, &key, NOW).unwrap_err().code(),
                "invalid_token",
                "{}",
                s.alg
            );

            // Changed claims under the old signature.
            let forged_body = b64(claims(NOW - 10, NOW + 99_999).to_string().as_bytes());
            let mut forged: Vec<&str> = t.split('.').collect();
            forged[1] = &forged_body;
            assert_eq!(
                verify(&forged.join("."), &key, NOW).unwrap_err(),
                TokenError::Signature
            );

            // Every other algorithm's key refuses it (wrong type or wrong key).
            for other in &signers {
                if other.public == s.public {
                    continue;
                }
                let k = TokenKey::parse(&other.public).expect("key");
                assert!(
                    verify(&t, &k, NOW).is_err(),
                    "{} under {}",
                    s.alg,
                    other.alg
                );
            }
            if s.alg.starts_with("RS") {
                assert_eq!(
                    verify(&t, &other_rsa, NOW).unwrap_err(),
                    TokenError::Signature
                );
            }
        }
    }

    #[test]
    fn keys_in_every_published_form_parse() {
        let private = rsa_key(0);
        let pkcs1 = rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_pem(
            &private.to_public_key(),
            Default::default(),
        )
        .expect("pem");
        assert_eq!(TokenKey::parse(&pkcs1).expect("pkcs1").kind(), "rsa");
        let ed = ed25519_dalek::SigningKey::from_bytes(&rand::random());
        let spki = ed
            .verifying_key()
            .to_public_key_pem(Default::default())
            .expect("pem");
        assert_eq!(
            TokenKey::parse(&spki).expect("ed25519 pem").kind(),
            "ed25519"
        );
        let raw = STANDARD_NO_PAD.encode(ed.verifying_key().as_bytes());
        assert_eq!(TokenKey::parse(&raw).expect("unpadded").kind(), "ed25519");
        assert_eq!(
            TokenKey::parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----")
                .unwrap_err(),
            KeyError::UnsupportedPem
        );
        assert_eq!(TokenKey::parse("not a key").unwrap_err(), KeyError::NotAKey);
        assert_eq!(
            TokenKey::parse(&STANDARD.encode([1u8; 31])).unwrap_err(),
            KeyError::NotAKey
        );
    }

    #[test]
    fn leeway_edges() {
        let s = ec_and_ed_signers().pop().expect("eddsa");
        let key = TokenKey::parse(&s.public).expect("key");
        let at = |iat: i64, exp: i64, now: i64| {
            verify(&token(s.alg, &claims(iat, exp), &s.sign), &key, now)
        };
        // exp: valid until before exp + 60 s.
        assert!(at(NOW - 100, NOW, NOW + 59).is_ok());
        assert_eq!(
            at(NOW - 100, NOW, NOW + 60).unwrap_err(),
            TokenError::Expired
        );
        assert_eq!(
            at(NOW - 100, NOW, NOW + 60).unwrap_err().code(),
            "token_expired"
        );
        // iat: valid from iat - 60 s.
        assert!(at(NOW + 60, NOW + 600, NOW).is_ok());
        let early = at(NOW + 61, NOW + 600, NOW).unwrap_err();
        assert_eq!(early, TokenError::NotValidYet);
        assert_eq!(
            (early.code(), early.message()),
            ("token_not_valid_yet", "The token is not valid yet.")
        );
        // nbf counts as well.
        let mut c = claims(NOW, NOW + 600);
        c["nbf"] = serde_json::json!(NOW + 61);
        assert_eq!(
            verify(&token(s.alg, &c, &s.sign), &key, NOW).unwrap_err(),
            TokenError::NotValidYet
        );
        c["nbf"] = serde_json::json!(NOW as f64 + 60.5);
        assert!(verify(&token(s.alg, &c, &s.sign), &key, NOW).is_ok());
    }

    #[test]
    fn required_claims_and_guests() {
        let s = ec_and_ed_signers().pop().expect("eddsa");
        let key = TokenKey::parse(&s.public).expect("key");
        let check = |c: serde_json::Value| verify(&token(s.alg, &c, &s.sign), &key, NOW);
        assert_eq!(
            check(serde_json::json!({"sub": "a", "exp": NOW + 9})).unwrap_err(),
            TokenError::MissingClaim("iat")
        );
        assert_eq!(
            check(serde_json::json!({"sub": "a", "iat": NOW})).unwrap_err(),
            TokenError::MissingClaim("exp")
        );
        assert_eq!(
            check(serde_json::json!({"sub": "a", "iat": "x", "exp": NOW + 9})).unwrap_err(),
            TokenError::Malformed
        );
        let guest = check(serde_json::json!({"iat": NOW, "exp": NOW + 9})).expect("guest");
        assert_eq!(guest.user_id, "");
        assert!(guest.user_data.is_none());
        let empty =
            check(serde_json::json!({"sub": "", "iat": NOW, "exp": NOW + 9})).expect("guest");
        assert_eq!(empty.user_id, "");
    }

    #[test]
    fn hmac_with_the_public_key_is_refused() {
        use hmac::{Hmac, KeyInit as _, Mac as _};
        for s in rsa_signers().into_iter().take(1).chain(ec_and_ed_signers()) {
            let key = TokenKey::parse(&s.public).expect("key");
            for (alg, secret) in [
                ("HS256", s.public.as_bytes()),
                ("HS256", s.public.trim().as_bytes()),
            ] {
                let t = token(alg, &claims(NOW, NOW + 60), |m| {
                    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac");
                    mac.update(m);
                    mac.finalize().into_bytes().to_vec()
                });
                let err = verify(&t, &key, NOW).unwrap_err();
                assert_eq!(err, TokenError::Algorithm("HS256".into()), "{}", s.alg);
                assert_eq!(err.code(), "invalid_token");
            }
            let none = token("none", &claims(NOW, NOW + 60), |_| Vec::new());
            assert_eq!(
                verify(&none, &key, NOW).unwrap_err(),
                TokenError::Algorithm("none".into())
            );
        }
    }

    #[test]
    fn malformed_tokens() {
        let s = ec_and_ed_signers().pop().expect("eddsa");
        let key = TokenKey::parse(&s.public).expect("key");
        let good = token(s.alg, &claims(NOW, NOW + 60), &s.sign);
        let (h, rest) = good.split_once('.').expect("dot");
        for bad in [
            String::new(),
            "abc".into(),
            "a.b".into(),
            format!("{good}.x"),
            format!("!!!.{rest}"),
            format!("{}.{rest}", b64(b"not json")),
            format!("{}.{rest}", b64(br#"{"typ":"JWT"}"#)),
            format!("{h}.{}", rest.replace('.', ".!")),
        ] {
            let err = verify(&bad, &key, NOW).unwrap_err();
            assert_eq!(err.code(), "invalid_token", "{bad:?}");
            assert_eq!(err.message(), "The passed token is invalid.");
        }
        // A signed body that is not JSON claims.
        let t = {
            let head = b64(br#"{"alg":"EdDSA"}"#);
            let body = b64(b"[1,2]");
            let signed = format!("{head}.{body}");
            format!("{signed}.{}", b64(&(s.sign)(signed.as_bytes())))
        };
        assert_eq!(verify(&t, &key, NOW).unwrap_err(), TokenError::Malformed);
    }
}
