//! [`NatsRecords`]: [`Records`] in NATS KV buckets, one per space
//! (`<P>_<space>`), with compare-and-set from the bucket's revisions.
//!
//! The buckets' streams are made here rather than through async-nats's KV
//! helper, whose create request Debian's nats-server 2.9 rejects; the layout
//! is the standard KV one (`KV_<bucket>`, subjects `$KV.<bucket>.>`, one value
//! per key, rollups allowed, file storage so a NATS restart keeps them). They
//! are (re)declared on every (re)connect. Keys are stored base64url-encoded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use switchboard_core::bus::BusFuture;
use switchboard_core::records::{Record, Records, RecordsError, Revision, Space, check_key};

use super::conn::NatsConn;
use super::subject::Subjects;

/// Records in NATS KV. See the module docs.
#[derive(Debug)]
pub struct NatsRecords {
    conn: Arc<NatsConn>,
    spaces: Vec<Space>,
    /// Bucket handles, valid for one connection generation.
    stores: Mutex<(u64, HashMap<&'static str, kv::Store>)>,
}

fn unavailable(e: impl std::fmt::Display) -> RecordsError {
    RecordsError::Unavailable(e.to_string())
}

impl NatsRecords {
    /// Records in `spaces` on `conn`.
    pub fn new(conn: Arc<NatsConn>, spaces: &[Space]) -> Arc<Self> {
        Arc::new(NatsRecords {
            conn,
            spaces: spaces.to_vec(),
            stores: Mutex::new((0, HashMap::new())),
        })
    }

    /// The bucket of `space`, declaring the buckets first after a (re)connect.
    async fn store(&self, space: &str) -> Result<kv::Store, RecordsError> {
        let Some(decl) = self.spaces.iter().find(|s| s.name == space) else {
            return Err(RecordsError::UnknownSpace(space.to_owned()));
        };
        let generation = *self.conn.generation().borrow();
        {
            let stores = self.stores.lock().unwrap_or_else(|e| e.into_inner());
            if stores.0 == generation
                && let Some(s) = stores.1.get(decl.name)
            {
                return Ok(s.clone());
            }
        }
        let timeout = self.conn.options().request_timeout;
        let client = self
            .conn
            .client_within(timeout)
            .await
            .map_err(unavailable)?;
        let js = jetstream::new(client);
        let mut fresh = HashMap::new();
        for s in &self.spaces {
            let bucket = self.conn.subjects().name(s.name);
            declare(&js, &bucket, s.max_age).await?;
            let store = js.get_key_value(&bucket).await.map_err(unavailable)?;
            fresh.insert(s.name, store);
        }
        let store = fresh.get(decl.name).cloned();
        *self.stores.lock().unwrap_or_else(|e| e.into_inner()) = (generation, fresh);
        store.ok_or_else(|| RecordsError::UnknownSpace(space.to_owned()))
    }
}

/// Creates (or updates) the stream behind a KV bucket.
async fn declare(
    js: &jetstream::Context,
    bucket: &str,
    max_age: Option<Duration>,
) -> Result<(), RecordsError> {
    let config = stream::Config {
        name: format!("KV_{bucket}"),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: 1,
        max_age: max_age.unwrap_or_default(),
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        discard: stream::DiscardPolicy::New,
        allow_direct: true,
        ..Default::default()
    };
    match js.update_stream(&config).await {
        Ok(_) => Ok(()),
        Err(_) => js
            .create_stream(config)
            .await
            .map(|_| ())
            .map_err(unavailable),
    }
}

impl Records for NatsRecords {
    fn get<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
    ) -> BusFuture<'a, Result<Option<Record>, RecordsError>> {
        Box::pin(async move {
            check_key(key)?;
            let store = self.store(space).await?;
            let entry = store
                .entry(Subjects::kv_key(key))
                .await
                .map_err(unavailable)?;
            Ok(entry
                .filter(|e| e.operation == Operation::Put)
                .map(|e| Record {
                    value: e.value,
                    revision: e.revision,
                }))
        })
    }

    fn create<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        value: Bytes,
    ) -> BusFuture<'a, Result<Revision, RecordsError>> {
        Box::pin(async move {
            check_key(key)?;
            let store = self.store(space).await?;
            store
                .create(Subjects::kv_key(key), value)
                .await
                .map_err(|e| match e.kind() {
                    kv::CreateErrorKind::AlreadyExists => RecordsError::Exists,
                    _ => unavailable(e),
                })
        })
    }

    fn update<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        value: Bytes,
        expected: Revision,
    ) -> BusFuture<'a, Result<Revision, RecordsError>> {
        Box::pin(async move {
            check_key(key)?;
            let store = self.store(space).await?;
            store
                .update(Subjects::kv_key(key), value, expected)
                .await
                .map_err(|e| match e.kind() {
                    kv::UpdateErrorKind::WrongLastRevision => RecordsError::Conflict,
                    _ => unavailable(e),
                })
        })
    }

    fn delete<'a>(
        &'a self,
        space: &'a str,
        key: &'a str,
        expected: Option<Revision>,
    ) -> BusFuture<'a, Result<(), RecordsError>> {
        Box::pin(async move {
            check_key(key)?;
            let store = self.store(space).await?;
            let k = Subjects::kv_key(key);
            if expected.is_none()
                && store
                    .entry(k.clone())
                    .await
                    .map_err(unavailable)?
                    .is_none_or(|e| e.operation != Operation::Put)
            {
                return Ok(());
            }
            store
                .delete_expect_revision(k, expected)
                .await
                .map_err(|e| match e.kind() {
                    kv::DeleteErrorKind::WrongLastRevision => RecordsError::Conflict,
                    _ => unavailable(e),
                })
        })
    }

    fn keys<'a>(&'a self, space: &'a str) -> BusFuture<'a, Result<Vec<String>, RecordsError>> {
        Box::pin(async move {
            let store = self.store(space).await?;
            let mut keys = match store.keys().await {
                Ok(k) => k,
                Err(e) => {
                    // An empty bucket has nothing to list on some servers.
                    return if e.to_string().contains("no keys") {
                        Ok(Vec::new())
                    } else {
                        Err(unavailable(e))
                    };
                }
            };
            let mut out = Vec::new();
            while let Some(k) = keys.next().await {
                let k = k.map_err(unavailable)?;
                if let Some(key) = Subjects::record_key(&k) {
                    out.push(key);
                }
            }
            Ok(out)
        })
    }
}
