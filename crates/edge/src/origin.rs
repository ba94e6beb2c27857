//! The Origin policy for WebSocket upgrades.
//!
//! `*` (or an empty list) allows every origin. Otherwise a request is allowed
//! when its `Origin` header is missing, equals an allowed origin exactly, or has
//! the same scheme and `host[:port]` (compared case-sensitively, userinfo and
//! path ignored) as an allowed origin. This is Pinghub's rule, extended to a list.

/// Which browser origins may open WebSockets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

/// An origin split into the parts the policy compares.
fn scheme_and_host(origin: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = origin.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() || host.is_empty() {
        return None;
    }
    Some((scheme, host))
}

impl OriginPolicy {
    /// A policy from a list of origins; `*` anywhere (or an empty list) allows all.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(origins: I) -> Self {
        let allowed: Vec<String> = origins
            .into_iter()
            .map(Into::into)
            .filter(|s| !s.is_empty())
            .collect();
        if allowed.iter().any(|o| o == "*") {
            OriginPolicy::default()
        } else {
            OriginPolicy { allowed }
        }
    }

    /// Whether every origin is allowed.
    pub fn allows_all(&self) -> bool {
        self.allowed.is_empty()
    }

    /// Whether a request with this `Origin` header value may upgrade.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let Some(origin) = origin else { return true };
        if self.allows_all() {
            return true;
        }
        let theirs = scheme_and_host(origin);
        self.allowed
            .iter()
            .any(|a| a == origin || (theirs.is_some() && scheme_and_host(a) == theirs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_origin_matches_pinghub_observations() {
        let p = OriginPolicy::new(["https://example.com"]);
        for ok in [
            None,
            Some("https://example.com"),
            Some("https://example.com/"),
            Some("https://example.com/some/path?x"),
            Some("https://user@example.com"),
        ] {
            assert!(p.allows(ok), "{ok:?} should pass");
        }
        for bad in [
            "https://example.com:443",
            "https://EXAMPLE.com",
            "http://example.com",
            "https://example.net",
            "null",
            "garbage",
        ] {
            assert!(!p.allows(Some(bad)), "{bad} should be refused");
        }
    }

    #[test]
    fn star_or_empty_allows_everything() {
        assert!(OriginPolicy::new(["*"]).allows(Some("null")));
        assert!(OriginPolicy::new(Vec::<String>::new()).allows(Some("http://x")));
    }

    #[test]
    fn a_list_allows_any_member() {
        let p = OriginPolicy::new(["https://a.example", "http://b.example:8080"]);
        assert!(p.allows(Some("http://b.example:8080/x")));
        assert!(!p.allows(Some("http://b.example")));
    }
}
