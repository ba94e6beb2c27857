//! GeoIP lookups for pairing sender metadata: city, first region and country.
//!
//! [`GeoDb`] owns one MaxMind DB (City layout, e.g. GeoLite2-City) loaded into
//! memory and answers [`GeoDb::lookup`] with a [`GeoInfo`] whose three fields are
//! localized independently through [`lang::pick`]. The region is the record's
//! *first* subdivision only ("England", never "West Berkshire"), as in the original.
//!
//! Differences from the original channelserver, on purpose: IPv6 addresses are
//! looked up (the original cut them at the first `:`), IPv4-mapped IPv6 addresses
//! are looked up as IPv4, a failed open is a typed error instead of a panic, and a
//! failed lookup gives empty fields instead of `process::exit`.
//!
//! Records are decoded into a small private type whose `names` are maps, so the
//! database's own language keys decide which languages exist.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};

use super::lang::{self, LanguagePrefs};

/// Opening the GeoIP database failed, or a lookup hit a broken record.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read.
    #[error("cannot read GeoIP database {path}: {source}")]
    Read {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid MaxMind DB.
    #[error("invalid GeoIP database {path}: {source}")]
    Invalid {
        /// The configured path.
        path: PathBuf,
        /// What the reader rejected.
        #[source]
        source: maxminddb::MaxMindDbError,
    },
    /// A lookup failed (e.g. a corrupt data section).
    #[error("GeoIP lookup failed: {0}")]
    Lookup(#[source] maxminddb::MaxMindDbError),
}

/// Localized location of an address; each field is `None` when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeoInfo {
    /// City name.
    pub city: Option<String>,
    /// Country name.
    pub country: Option<String>,
    /// Name of the first (largest) subdivision, e.g. a state or "England".
    pub region: Option<String>,
}

impl GeoInfo {
    /// True when no field is known.
    pub fn is_empty(&self) -> bool {
        self.city.is_none() && self.country.is_none() && self.region.is_none()
    }
}

/// An in-memory MaxMind DB with City-layout records. Cheap to share behind an `Arc`;
/// lookups take `&self` and do not block on anything.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("database_type", &self.database_type())
            .finish_non_exhaustive()
    }
}

impl GeoDb {
    /// Reads and validates the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, GeoError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| GeoError::Read {
            path: path.to_owned(),
            source,
        })?;
        let reader = maxminddb::Reader::from_source(bytes).map_err(|source| GeoError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self { reader })
    }

    /// The database's `database_type` metadata, e.g. `GeoLite2-City` (for startup logs).
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// Looks `ip` up and localizes each field for `prefs`. Never fails: an address
    /// that is not in the database (loopback, private ranges) gives an empty
    /// [`GeoInfo`], and a lookup error is logged and also gives an empty one.
    pub fn lookup(&self, ip: IpAddr, prefs: &LanguagePrefs) -> GeoInfo {
        match self.try_lookup(ip, prefs) {
            Ok(info) => info,
            Err(error) => {
                tracing::warn!(%error, "GeoIP lookup failed; sender gets no location");
                GeoInfo::default()
            }
        }
    }

    /// Like [`GeoDb::lookup`], but reports lookup errors.
    pub fn try_lookup(&self, ip: IpAddr, prefs: &LanguagePrefs) -> Result<GeoInfo, GeoError> {
        let ip = ip.to_canonical();
        // An IPv4-only database simply knows nothing about IPv6; that is not an error.
        if ip.is_ipv6() && self.reader.metadata().ip_version == 4 {
            return Ok(GeoInfo::default());
        }
        let result = self.reader.lookup(ip).map_err(GeoError::Lookup)?;
        let Some(record) = result
            .decode::<CityRecord<'_>>()
            .map_err(GeoError::Lookup)?
        else {
            return Ok(GeoInfo::default());
        };
        let localize = |place: &Place<'_>| lang::pick(&place.names, prefs).map(str::to_owned);
        Ok(GeoInfo {
            city: localize(&record.city),
            country: localize(&record.country),
            region: record.first_subdivision.as_ref().and_then(localize),
        })
    }
}

/// The parts of a City record this module reads; other fields are skipped.
#[derive(Deserialize)]
struct CityRecord<'a> {
    #[serde(borrow, default)]
    city: Place<'a>,
    #[serde(borrow, default)]
    country: Place<'a>,
    #[serde(
        borrow,
        default,
        rename = "subdivisions",
        deserialize_with = "first_element"
    )]
    first_subdivision: Option<Place<'a>>,
}

/// A city, country or subdivision: only its localized names matter here.
#[derive(Deserialize, Default)]
struct Place<'a> {
    #[serde(borrow, default)]
    names: BTreeMap<&'a str, &'a str>,
}

/// Decodes the first element of a sequence and skips the rest without allocating,
/// so a record with many subdivisions costs no more than one with a single one.
fn first_element<'de, D>(deserializer: D) -> Result<Option<Place<'de>>, D::Error>
where
    D: Deserializer<'de>,
{
    struct FirstVisitor;

    impl<'de> Visitor<'de> for FirstVisitor {
        type Value = Option<Place<'de>>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a list of subdivisions")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let first = seq.next_element::<Place<'de>>()?;
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(first)
        }
    }

    deserializer.deserialize_seq(FirstVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairing::lang::DefaultLanguage;

    /// `SWITCHBOARD_TESTDATA` (a directory) if set, else the repository's `shared/testdata`.
    fn test_db_path() -> PathBuf {
        let dir = std::env::var_os("SWITCHBOARD_TESTDATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata")
            });
        dir.join("GeoIP2-City-Test.mmdb")
    }

    fn test_db() -> GeoDb {
        let path = test_db_path();
        match GeoDb::open(&path) {
            Ok(db) => db,
            Err(e) => panic!(
                "the GeoIP test database is required at {} (set SWITCHBOARD_TESTDATA to its directory): {e}",
                path.display()
            ),
        }
    }

    fn prefs(header: Option<&str>) -> LanguagePrefs {
        LanguagePrefs::parse(header, &DefaultLanguage::default())
    }

    fn info(city: Option<&str>, region: Option<&str>, country: Option<&str>) -> GeoInfo {
        GeoInfo {
            city: city.map(str::to_owned),
            country: country.map(str::to_owned),
            region: region.map(str::to_owned),
        }
    }

    #[test]
    fn lookup_table() {
        let db = test_db();
        assert_eq!(db.database_type(), "GeoIP2-City");
        let uk = Some("United Kingdom");
        let us = Some("United States");
        let cases: &[(&str, Option<&str>, GeoInfo)] = &[
            (
                "81.2.69.142",
                None,
                info(Some("London"), Some("England"), uk),
            ),
            (
                "81.2.69.142",
                Some("en-US,fr"),
                info(Some("London"), Some("England"), uk),
            ),
            (
                "81.2.69.142",
                Some("fr"),
                info(Some("Londres"), Some("Angleterre"), Some("Royaume-Uni")),
            ),
            (
                "81.2.69.142",
                Some("ru-RU"),
                // The test record has no Russian name for England: en per field.
                info(Some("Лондон"), Some("England"), Some("Великобритания")),
            ),
            (
                "89.160.20.112",
                Some("zh-CN"),
                info(Some("林雪平"), Some("Östergötland County"), Some("瑞典")),
            ),
            (
                "89.160.20.112",
                Some("de"),
                info(
                    Some("Linköping"),
                    Some("Östergötland County"),
                    Some("Schweden"),
                ),
            ),
            // First subdivision only.
            (
                "2.125.160.216",
                None,
                info(Some("Boxford"), Some("England"), uk),
            ),
            // City has only en: the other fields still localize on their own.
            (
                "2.125.160.216",
                Some("fr"),
                info(Some("Boxford"), Some("Angleterre"), Some("Royaume-Uni")),
            ),
            (
                "216.160.83.56",
                None,
                info(Some("Milton"), Some("Washington"), us),
            ),
            ("67.43.156.1", None, info(None, None, Some("Bhutan"))),
            ("214.78.124.1", None, info(None, Some("California"), us)),
            (
                "214.78.120.1",
                None,
                info(Some("San Diego"), Some("California"), us),
            ),
            // IPv6 works (the original never looked it up).
            (
                "2001:480:10::1",
                None,
                info(Some("San Diego"), Some("California"), us),
            ),
            ("2a02:cf40::1", None, info(None, None, Some("Norway"))),
            // IPv4-mapped IPv6 is looked up as IPv4.
            (
                "::ffff:81.2.69.142",
                None,
                info(Some("London"), Some("England"), uk),
            ),
            // Not in the database.
            ("127.0.0.1", None, GeoInfo::default()),
            ("10.1.1.1", None, GeoInfo::default()),
            ("192.168.1.1", None, GeoInfo::default()),
            ("::1", None, GeoInfo::default()),
        ];
        for (ip, header, expected) in cases {
            let ip: IpAddr = ip.parse().expect("test ip");
            let got = db.lookup(ip, &prefs(*header));
            assert_eq!(&got, expected, "ip {ip} accept-language {header:?}");
        }
        assert!(
            db.lookup("127.0.0.1".parse().expect("ip"), &prefs(None))
                .is_empty()
        );
    }

    #[test]
    fn open_errors_are_typed() {
        let missing = GeoDb::open("/nonexistent/switchboard/GeoLite2-City.mmdb");
        match missing {
            Err(GeoError::Read { path, source }) => {
                assert_eq!(
                    path,
                    Path::new("/nonexistent/switchboard/GeoLite2-City.mmdb")
                );
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("expected Read error, got {other:?}"),
        }

        // A file that exists but is not a MaxMind DB.
        let not_a_db = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        match GeoDb::open(&not_a_db) {
            Err(e @ GeoError::Invalid { .. }) => {
                assert!(e.to_string().contains("Cargo.toml"), "{e}");
            }
            other => panic!("expected Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn corrupt_records_give_empty_info_not_a_panic() {
        let mut bytes = std::fs::read(test_db_path()).expect("test database");
        let good = test_db();
        let meta = good.reader.metadata();
        let record_bytes = usize::from(meta.record_size) / 4;
        let data_start = usize::try_from(meta.node_count).expect("fits") * record_bytes + 16;
        let marker = b"\xab\xcd\xefMaxMind.com";
        let meta_start = bytes
            .windows(marker.len())
            .rposition(|w| w == marker)
            .expect("metadata marker");
        // Overwrite the whole data section with bytes that decode to nothing sensible.
        bytes[data_start..meta_start].fill(0xff);
        let dir = std::env::temp_dir().join(format!("switchboard-geo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("corrupt.mmdb");
        std::fs::write(&path, &bytes).expect("write corrupt db");
        let db = GeoDb::open(&path).expect("the tree and metadata are intact");
        let _ = std::fs::remove_dir_all(&dir);

        let london: IpAddr = "81.2.69.142".parse().expect("ip");
        assert!(matches!(
            db.try_lookup(london, &prefs(None)),
            Err(GeoError::Lookup(_))
        ));
        assert_eq!(db.lookup(london, &prefs(None)), GeoInfo::default());
    }

    #[test]
    fn debug_shows_database_type() {
        let db = test_db();
        assert!(format!("{db:?}").contains("GeoIP2-City"));
    }
}
