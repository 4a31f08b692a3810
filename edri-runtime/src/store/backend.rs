//! Where the store keeps its entries: a `BTreeMap` in memory, or a redb file (feature
//! `durable`).
//!
//! In a file, the entries of store format `N` live in the table `edri.store/N` (format 1, from
//! before values carried their type, used the table `edri.store`). A file is opened only when
//! it holds no store table of another format, so an entry is never read as another format.

use super::value::StoredValue;
use crate::Failure;
#[cfg(feature = "durable")]
use redb::{ReadableTableMetadata, TableHandle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
#[cfg(feature = "durable")]
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The format of the durable store that this version writes and reads: the table its entries
/// live in is `edri.store/2`.
///
/// Format 1 (table `edri.store`) kept bare postcard bytes, without their type; format 2 keeps
/// each value as a [`StoredValue`] (type name, shape, bytes) and its expiry.
#[cfg(feature = "durable")]
pub const FORMAT: u32 = 2;

#[cfg(feature = "durable")]
const TABLE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("edri.store/2");

/// The table of format 1.
#[cfg(feature = "durable")]
const FORMAT_1: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("edri.store");

/// One stored value, with its type, and, with a TTL, when it expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) value: StoredValue,
    /// Milliseconds since the Unix epoch (wall clock, so that expiry survives restarts).
    pub(crate) expires_at_ms: Option<u64>,
}

impl Entry {
    pub(crate) fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms.is_none_or(|t| t > now_ms)
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) enum Backend {
    Memory(BTreeMap<String, Entry>),
    #[cfg(feature = "durable")]
    Durable(redb::Database),
}

#[cfg(feature = "durable")]
fn storage(e: impl std::fmt::Display) -> Failure {
    Failure::failed(format!("store: {e}"))
}

impl Backend {
    /// Opens (or creates) a redb file; refuses one that holds a store of another format.
    #[cfg(feature = "durable")]
    pub(crate) fn durable(path: &Path) -> Result<Self, Failure> {
        let db = redb::Database::create(path).map_err(storage)?;
        let tx = db.begin_write().map_err(storage)?;
        let names: Vec<String> =
            tx.list_tables().map_err(storage)?.map(|t| t.name().to_owned()).collect();
        for name in names {
            let Some(found) = other_format(&name) else { continue };
            // An empty table of format 1 holds nothing to misread: it goes.
            if name == FORMAT_1.name()
                && tx.open_table(FORMAT_1).map_err(storage)?.is_empty().map_err(storage)?
            {
                tx.delete_table(FORMAT_1).map_err(storage)?;
                continue;
            }
            return Err(Failure::failed(found));
        }
        tx.open_table(TABLE).map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(Self::Durable(db))
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Entry>, Failure> {
        match self {
            Self::Memory(map) => Ok(map.get(key).cloned()),
            #[cfg(feature = "durable")]
            Self::Durable(db) => {
                let tx = db.begin_read().map_err(storage)?;
                let table = tx.open_table(TABLE).map_err(storage)?;
                let Some(bytes) = table.get(key).map_err(storage)? else { return Ok(None) };
                decode(bytes.value()).map(Some)
            }
        }
    }

    /// Writes (or, with `None`, removes) one key; on a durable store the write is committed
    /// (fsynced) before this returns.
    pub(crate) fn put(&mut self, key: &str, entry: Option<&Entry>) -> Result<(), Failure> {
        match self {
            Self::Memory(map) => {
                match entry {
                    Some(e) => map.insert(key.to_owned(), e.clone()),
                    None => map.remove(key),
                };
                Ok(())
            }
            #[cfg(feature = "durable")]
            Self::Durable(db) => {
                let tx = db.begin_write().map_err(storage)?;
                {
                    let mut table = tx.open_table(TABLE).map_err(storage)?;
                    match entry {
                        Some(e) => {
                            let bytes = postcard::to_stdvec(e).map_err(storage)?;
                            table.insert(key, bytes.as_slice()).map_err(storage)?;
                        }
                        None => {
                            table.remove(key).map_err(storage)?;
                        }
                    }
                }
                tx.commit().map_err(storage)
            }
        }
    }

    /// Every entry whose key starts with `prefix`, in key order.
    pub(crate) fn scan(&self, prefix: &str) -> Result<Vec<(String, Entry)>, Failure> {
        match self {
            Self::Memory(map) => Ok(map
                .range::<str, _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect()),
            #[cfg(feature = "durable")]
            Self::Durable(db) => {
                let tx = db.begin_read().map_err(storage)?;
                let table = tx.open_table(TABLE).map_err(storage)?;
                let mut out = Vec::new();
                for item in table.range(prefix..).map_err(storage)? {
                    let (key, value) = item.map_err(storage)?;
                    if !key.value().starts_with(prefix) {
                        break;
                    }
                    out.push((key.value().to_owned(), decode(value.value())?));
                }
                Ok(out)
            }
        }
    }
}

/// What is wrong with a file that has the table `name`: a store of another format.
#[cfg(feature = "durable")]
fn other_format(name: &str) -> Option<String> {
    let format = if name == FORMAT_1.name() {
        1
    } else {
        let n = name.strip_prefix("edri.store/")?;
        match n.parse::<u32>() {
            Ok(n) if n == FORMAT => return None,
            Ok(n) => n,
            Err(_) => return Some(format!("holds an unknown store table `{name}`")),
        }
    };
    let why = match format {
        1 => {
            "written before stored values carried their type, so they cannot be read without guessing it; \
              keep using the edri version that wrote it, or start from a new file and write the values again"
        }
        n if n > FORMAT => "written by a newer edri",
        _ => "written by an older edri",
    };
    Some(format!(
        "holds store format {format} (table `{name}`), {why}; this edri reads format {FORMAT}"
    ))
}

#[cfg(feature = "durable")]
fn decode(bytes: &[u8]) -> Result<Entry, Failure> {
    postcard::from_bytes(bytes).map_err(|e| Failure::failed(format!("store: a corrupt entry: {e}")))
}
