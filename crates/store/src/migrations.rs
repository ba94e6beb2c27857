//! The schema migrations of each backend, embedded in the binary, and the
//! migrator that applies them when a store opens.
//!
//! The SQL lives in `crates/store/migrations/<backend>/<version>_<description>.sql`.
//! The files are listed here with `include_str!` rather than through
//! `sqlx::migrate!`: that macro pulls a second, host-side build of sqlx with
//! both drivers and bundled SQLite into every build. A test keeps this list and
//! the directories equal, and the version and description follow the
//! `sqlx migrate` file convention, so the recorded history is the same either way.
//!
//! Applied versions are recorded in `switchboard_migrations` (not sqlx's default
//! `_sqlx_migrations`), so Switchboard can share a PostgreSQL database with
//! another sqlx application.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// The table that records applied migrations, in every backend.
pub(crate) const MIGRATIONS_TABLE: &str = "switchboard_migrations";

/// One migration file, embedded.
#[derive(Debug)]
pub(crate) struct Embedded {
    /// The number before the first `_` of the file name.
    pub(crate) version: i64,
    /// The rest of the file name, `_` read as a space.
    pub(crate) description: &'static str,
    /// The file name, for the consistency test.
    #[cfg(test)]
    pub(crate) file: &'static str,
    /// The SQL.
    pub(crate) sql: &'static str,
}

macro_rules! embedded {
    ($backend:literal, $file:literal, $version:literal, $description:literal) => {
        Embedded {
            version: $version,
            description: $description,
            #[cfg(test)]
            file: $file,
            sql: include_str!(concat!("../migrations/", $backend, "/", $file)),
        }
    };
}

/// The SQLite migrations, oldest first.
pub(crate) const SQLITE: &[Embedded] = &[
    embedded!("sqlite", "0001_names.sql", 1, "names"),
    embedded!("sqlite", "0002_meetings.sql", 2, "meetings"),
    embedded!("sqlite", "0003_meeting_writers.sql", 3, "meeting writers"),
];

/// The PostgreSQL migrations, oldest first.
pub(crate) const POSTGRES: &[Embedded] = &[
    embedded!("postgres", "0001_names.sql", 1, "names"),
    embedded!("postgres", "0002_meetings.sql", 2, "meetings"),
    embedded!("postgres", "0003_meeting_writers.sql", 3, "meeting writers"),
];

/// The migrations of pgeu-system mode (PostgreSQL), oldest first: only
/// Switchboard's own tables, all in the `switchboard_meetings` schema.
pub(crate) const PGEU: &[Embedded] = &[
    embedded!("pgeu", "0001_polls.sql", 1, "polls"),
    embedded!("pgeu", "0002_writers.sql", 2, "writers"),
];

/// Where pgeu-system mode records its applied migrations: in its own schema.
pub(crate) const PGEU_MIGRATIONS_TABLE: &str = "switchboard_meetings.switchboard_migrations";

/// A migrator over `list` that records into [`MIGRATIONS_TABLE`].
///
/// Running it is idempotent; on PostgreSQL it holds an advisory lock, so nodes
/// starting together apply each migration once.
pub(crate) fn migrator(list: &[Embedded]) -> Migrator {
    migrator_into(list, MIGRATIONS_TABLE)
}

/// A migrator over `list` that records into `table`.
pub(crate) fn migrator_into(list: &[Embedded], table: &'static str) -> Migrator {
    let migrations = list
        .iter()
        .map(|m| {
            Migration::new(
                m.version,
                Cow::Borrowed(m.description),
                MigrationType::Simple,
                m.sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(table);
    migrator
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file in the backend's directory is embedded, in order, with the
    /// version and description its name gives.
    fn matches_directory(backend: &str, list: &[Embedded]) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("migrations dir")
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8 name")
            })
            .collect();
        files.sort();
        let embedded: Vec<&str> = list.iter().map(|m| m.file).collect();
        assert_eq!(
            files, embedded,
            "{backend}: directory and embedded list differ"
        );
        for m in list {
            let stem = m.file.strip_suffix(".sql").expect(".sql file");
            let (version, description) = stem.split_once('_').expect("<version>_<description>");
            assert_eq!(
                version.parse::<i64>().expect("numeric version"),
                m.version,
                "{}",
                m.file
            );
            assert_eq!(description.replace('_', " "), m.description, "{}", m.file);
        }
        let versions: Vec<i64> = list.iter().map(|m| m.version).collect();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "{backend}: versions not increasing"
        );
    }

    #[test]
    fn sqlite_list_matches_directory() {
        matches_directory("sqlite", SQLITE);
    }

    #[test]
    fn postgres_list_matches_directory() {
        matches_directory("postgres", POSTGRES);
    }

    #[test]
    fn pgeu_list_matches_directory() {
        matches_directory("pgeu", PGEU);
    }

    #[test]
    fn both_backends_have_the_same_versions() {
        let a: Vec<(i64, &str)> = SQLITE.iter().map(|m| (m.version, m.description)).collect();
        let b: Vec<(i64, &str)> = POSTGRES
            .iter()
            .map(|m| (m.version, m.description))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn migrator_records_into_our_table() {
        let m = migrator(SQLITE);
        assert_eq!(m.table_name, MIGRATIONS_TABLE);
        assert_eq!(m.iter().count(), SQLITE.len());
    }
}
