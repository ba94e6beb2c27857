//! Database URLs as Go's lib/pq reads them (pgeu-meetingserver's `-dburl`):
//! `postgres://[user[:password]@][host][:port][/dbname][?key=value…]`, with
//! `host=/socket/dir` (and `port`, `user`, `password`, `dbname`, `sslmode`,
//! `application_name`) in the query, or the `key=value key=value` form; any
//! other parameter is a run-time setting, as lib/pq sends it.
//!
//! Two deliberate differences from lib/pq: without a host the connection goes
//! to the local unix socket when one exists (`/var/run/postgresql`, `/tmp`;
//! lib/pq dials TCP 127.0.0.1 although pgeu-meetingserver's README promises a
//! socket), and without `sslmode` there is no TLS (lib/pq requires it; this
//! build has no TLS for PostgreSQL). Over a unix socket `sslmode` is ignored,
//! as libpq does.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use switchboard_core::store::StoreError;

/// The `application_name` the meetings service connects with (unless the URL sets one).
pub const APPLICATION_NAME: &str = "pgeu meeting server (switchboard)";

/// Connection options for a lib/pq-style URL. Errors never echo the URL,
/// which may hold a password.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, StoreError> {
    let mut o = PgConnectOptions::new_without_pgpass();
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"));
    if let Some(rest) = rest {
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main.split_once('/').unwrap_or((main, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if let Some(u) = userinfo {
            let (user, password) = match u.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (u, None),
            };
            if !user.is_empty() {
                o = o.username(&decode(user)?);
            }
            if let Some(p) = password {
                o = o.password(&decode(p)?);
            }
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => (h, Some(p)),
            _ => (hostport, None),
        };
        if !host.is_empty() {
            o = o.host(host.trim_start_matches('[').trim_end_matches(']'));
        }
        if let Some(p) = port.filter(|p| !p.is_empty()) {
            o = o.port(p.parse().map_err(|_| config("invalid PostgreSQL port"))?);
        }
        if !path.is_empty() {
            o = o.database(&decode(path)?);
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            o = apply(o, &decode(k)?, &decode(v)?)?;
        }
    } else {
        for pair in url.split_whitespace() {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(config(
                    "invalid PostgreSQL connection string: a part is not key=value",
                ));
            };
            o = apply(o, k, v)?;
        }
    }
    if o.get_socket().is_some() || o.get_host().starts_with('/') {
        o = o.ssl_mode(PgSslMode::Disable);
    }
    if o.get_application_name().is_none() {
        o = o.application_name(APPLICATION_NAME);
    }
    Ok(o)
}

fn config(message: &str) -> StoreError {
    StoreError::Config {
        message: message.to_owned(),
    }
}

fn decode(s: &str) -> Result<String, StoreError> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| config("invalid PostgreSQL URL: bad percent-encoding"))
}

/// Applies one connection parameter, as lib/pq names them.
fn apply(o: PgConnectOptions, k: &str, v: &str) -> Result<PgConnectOptions, StoreError> {
    Ok(match k {
        "host" if v.starts_with('/') => o.socket(v),
        "host" => o.host(v),
        "port" => o.port(v.parse().map_err(|_| config("invalid PostgreSQL port"))?),
        "user" => o.username(v),
        "password" => o.password(v),
        "dbname" => o.database(v),
        "application_name" | "fallback_application_name" => o.application_name(v),
        "sslmode" => {
            o.ssl_mode(PgSslMode::from_str(v).map_err(|_| config("invalid PostgreSQL sslmode"))?)
        }
        "connect_timeout" | "sslrootcert" | "sslcert" | "sslkey" | "statement-cache-capacity" => o,
        // As lib/pq: any other parameter is a run-time setting (`search_path`, …).
        _ if !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.') =>
        {
            o.options([(k, v)])
        }
        _ => return Err(config("invalid PostgreSQL connection parameter name")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lib_pq_urls_are_understood() {
        let o = connect_options("postgres://pgeu@/pgeu?host=/var/run/postgresql").unwrap();
        assert_eq!(o.get_username(), "pgeu");
        assert_eq!(o.get_database(), Some("pgeu"));
        assert_eq!(
            o.get_socket().map(|p| p.display().to_string()).as_deref(),
            Some("/var/run/postgresql")
        );
        assert_eq!(o.get_application_name(), Some(APPLICATION_NAME));

        let o = connect_options(
            "postgres://postgres@/postgresqleu?host=/tmp/pg&port=55432&sslmode=require",
        )
        .unwrap();
        assert_eq!(o.get_port(), 55432);
        assert!(
            matches!(o.get_ssl_mode(), PgSslMode::Disable),
            "no TLS on a socket"
        );

        let o = connect_options("postgres://u:pw@db.example:6543/x?application_name=mine").unwrap();
        assert_eq!((o.get_host(), o.get_port()), ("db.example", 6543));
        assert_eq!(o.get_application_name(), Some("mine"));

        let o = connect_options("host=/run/pg dbname=pgeu user=meet").unwrap();
        assert_eq!(o.get_database(), Some("pgeu"));
        assert_eq!(o.get_username(), "meet");
        assert!(o.get_socket().is_some());
    }

    #[test]
    fn bad_urls_are_config_errors_without_secrets() {
        for url in [
            "postgres://u:secret@h:notaport/db",
            "host=/x secret",
            "host=/x bo-gus=secret",
            "port=secret",
        ] {
            match connect_options(url) {
                Err(StoreError::Config { message }) => {
                    assert!(!message.contains("secret"), "{url}: {message}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
