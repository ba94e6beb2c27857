//! [`LocalRecords`]: [`Records`] in memory, shared by the nodes of one process
//! (clone the `Arc` for each in-process node). Every call is one critical
//! section on a `std` mutex, so compare-and-set is trivially atomic. Records
//! never expire here: they are deleted explicitly, and a process that dies
//! takes them with it.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use bytes::Bytes;
use switchboard_core::bus::BusFuture;
use switchboard_core::records::{Record, Records, RecordsError, Revision, Space, check_key};

#[derive(Debug, Default)]
struct State {
    revision: Revision,
    records: HashMap<(String, String), Record>,
}

/// In-memory records. See the module docs.
#[derive(Debug)]
pub struct LocalRecords {
    spaces: HashSet<&'static str>,
    state: Mutex<State>,
}

impl LocalRecords {
    /// Records in the given spaces.
    pub fn new(spaces: &[Space]) -> Self {
        LocalRecords {
            spaces: spaces.iter().map(|s| s.name).collect(),
            state: Mutex::new(State::default()),
        }
    }

    fn with<T>(
        &self,
        space: &str,
        key: &str,
        f: impl FnOnce(&mut State, (String, String)) -> Result<T, RecordsError>,
    ) -> Result<T, RecordsError> {
        if !self.spaces.contains(space) {
            return Err(RecordsError::UnknownSpace(space.to_owned()));
        }
        check_key(key)?;
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut st, (space.to_owned(), key.to_owned()))
    }
}

fn ready<'a, T: Send + 'a>(v: T) -> BusFuture<'a, T> {
    Box::pin(std::future::ready(v))
}

impl Records for LocalRecords {
    fn get<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
    ) -> BusFuture<'a, Result<Option<Record>, RecordsError>> {
        ready(self.with(space, key, |st, k| Ok(st.records.get(&k).cloned())))
    }

    fn create<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        value: Bytes,
    ) -> BusFuture<'a, Result<Revision, RecordsError>> {
        ready(self.with(space, key, |st, k| {
            if st.records.contains_key(&k) {
                return Err(RecordsError::Exists);
            }
            st.revision += 1;
            let revision = st.revision;
            st.records.insert(k, Record { value, revision });
            Ok(revision)
        }))
    }

    fn update<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        value: Bytes,
        expected: Revision,
    ) -> BusFuture<'a, Result<Revision, RecordsError>> {
        ready(self.with(space, key, |st, k| {
            match st.records.get(&k) {
                Some(r) if r.revision == expected => {}
                _ => return Err(RecordsError::Conflict),
            }
            st.revision += 1;
            let revision = st.revision;
            st.records.insert(k, Record { value, revision });
            Ok(revision)
        }))
    }

    fn delete<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        expected: Option<Revision>,
    ) -> BusFuture<'a, Result<(), RecordsError>> {
        ready(self.with(space, key, |st, k| {
            match (st.records.get(&k), expected) {
                (None, None) => return Ok(()),
                (None, Some(_)) => return Err(RecordsError::Conflict),
                (Some(r), Some(e)) if r.revision != e => return Err(RecordsError::Conflict),
                _ => {}
            }
            st.records.remove(&k);
            Ok(())
        }))
    }

    fn keys<'a>(&'a self, space: &'a str) -> BusFuture<'a, Result<Vec<String>, RecordsError>> {
        let out = if self.spaces.contains(space) {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            Ok(st
                .records
                .keys()
                .filter(|(s, _)| s == space)
                .map(|(_, k)| k.clone())
                .collect())
        } else {
            Err(RecordsError::UnknownSpace(space.to_owned()))
        };
        ready(out)
    }
}
