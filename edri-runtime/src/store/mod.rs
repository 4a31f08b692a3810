//! The key-value store: a manager (`edri.store`) that every router runs, reached by events so
//! that any manager, worker or remote router can use it, and a typed handle,
//! `ctx.store()`.
//!
//! Values are any serde type, kept as postcard bytes. In memory by default; durable with
//! `Store::durable(path)` (a redb file: a `set` is committed to disk before it is
//! acknowledged). Every request answers. `Watch { prefix }` makes later changes under the
//! prefix arrive at the watching manager as [`Changed`] notifications, in order.
//!
//! ```ignore
//! ctx.store().set("prices/eur", &1.08_f64).await?;
//! let eur: Option<f64> = ctx.store().get("prices/eur").await?;
//! let n = ctx.store().increment("visits", 1).await?;
//! ctx.store().watch("prices/").await?;          // then: #[solve] fn changed(&mut self, ev: &Changed)
//! ```

mod backend;

use crate::{Ctx, Failure};
use backend::{Backend, Entry, now_ms};
use edri_macros::{event, manager, solve};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where a router keeps its store: `Edri::builder().store(Store::durable("data.redb")?)`.
pub struct Store {
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Durable(_) => "durable",
        };
        f.debug_struct("Store").field("backend", &kind).finish()
    }
}

impl Store {
    /// In memory: gone when the process ends (the default).
    pub fn memory() -> Self {
        Self { backend: Backend::Memory(BTreeMap::new()) }
    }

    /// In a redb file at `path` (created if missing). Each change is committed to disk before
    /// it is acknowledged, so an acknowledged value survives a crash of the process.
    ///
    /// # Errors
    /// When the file cannot be opened or created, or is not a store.
    pub fn durable(path: impl AsRef<Path>) -> Result<Self, crate::Error> {
        let path = path.as_ref();
        let backend = Backend::durable(path).map_err(|e| {
            crate::Error::Io(std::io::Error::other(format!("store {}: {e}", path.display())))
        })?;
        Ok(Self { backend })
    }
}

/// Reads a key: its postcard bytes, `None` when absent or expired.
#[event(request, name = "edri.store.Get", crate = crate)]
#[derive(Debug, Clone)]
pub struct Get {
    /// The key.
    pub key: String,
    /// The value's bytes.
    #[response]
    pub value: Option<Vec<u8>>,
}

/// Writes a key, optionally with a time to live.
#[event(request, name = "edri.store.Set", crate = crate)]
#[derive(Debug, Clone)]
pub struct Set {
    /// The key.
    pub key: String,
    /// The value's postcard bytes.
    pub value: Vec<u8>,
    /// Milliseconds until the key expires; `None`: never.
    pub ttl_ms: Option<u64>,
    /// Whether a live value was replaced.
    #[response]
    pub replaced: bool,
}

/// Removes a key.
#[event(request, name = "edri.store.Delete", crate = crate)]
#[derive(Debug, Clone)]
pub struct Delete {
    /// The key.
    pub key: String,
    /// Whether a live value was removed.
    #[response]
    pub existed: bool,
}

/// Every live entry whose key starts with `prefix`, in key order.
#[event(request, name = "edri.store.List", crate = crate)]
#[derive(Debug, Clone)]
pub struct List {
    /// The prefix (`""` for everything).
    pub prefix: String,
    /// `(key, bytes)` pairs.
    #[response]
    pub entries: Vec<(String, Vec<u8>)>,
}

/// Writes `new` (or removes the key, with `None`) only if the current value is `expected`
/// (`None`: absent).
#[event(request, name = "edri.store.CompareAndSet", crate = crate)]
#[derive(Debug, Clone)]
pub struct CompareAndSet {
    /// The key.
    pub key: String,
    /// The bytes the value must have now; `None`: the key must be absent.
    pub expected: Option<Vec<u8>>,
    /// The bytes to write; `None`: remove the key.
    pub new: Option<Vec<u8>>,
    /// Whether the value was written.
    #[response]
    pub swapped: bool,
    /// The value after the request.
    #[response]
    pub current: Option<Vec<u8>>,
}

/// Adds `by` to an `i64` counter (absent counts as 0) and answers the new value.
#[event(request, name = "edri.store.Increment", crate = crate)]
#[derive(Debug, Clone)]
pub struct Increment {
    /// The key.
    pub key: String,
    /// The amount.
    pub by: i64,
    /// The counter after the increment.
    #[response]
    pub value: i64,
}

/// Makes later changes of keys under `prefix` arrive at manager `watcher` as [`Changed`].
#[event(request, name = "edri.store.Watch", crate = crate)]
#[derive(Debug, Clone)]
pub struct Watch {
    /// The prefix.
    pub prefix: String,
    /// The watching manager's name.
    pub watcher: String,
}

/// A key under a watched prefix changed: its new bytes, or `None` when it was removed.
#[event(notification, name = "edri.store.Changed", crate = crate)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The key.
    pub key: String,
    /// The new value's bytes; `None`: removed.
    pub value: Option<Vec<u8>>,
}

impl Changed {
    /// The new value as a `T`; `Ok(None)` when the key was removed.
    ///
    /// # Errors
    /// `Invalid` when the bytes are not a `T`.
    pub fn value<T: DeserializeOwned>(&self) -> Result<Option<T>, Failure> {
        self.value.as_deref().map(|bytes| decode(&self.key, bytes)).transpose()
    }
}

/// The value at `key` as a `T`. Postcard is not self-describing, so a wrong type is caught
/// when its bytes do not decode as a `T` or do not decode entirely (most mismatches); values
/// of look-alike types (say `u32` and `u64`) cannot be told apart.
fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Failure> {
    let wrong = |why: String| {
        Failure::invalid(format!("`{key}` does not hold a `{}`: {why}", std::any::type_name::<T>()))
    };
    match postcard::take_from_bytes(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(wrong(format!("{} bytes left over", rest.len()))),
        Err(e) => Err(wrong(e.to_string())),
    }
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Failure> {
    crate::ctx::encode(value)
}

/// The manager behind the store; every router runs one (leave it out with
/// `.without::<StoreManager>()`).
pub struct StoreManager {
    backend: Backend,
    /// `(prefix, forwarder)`: each watcher's changes go through its own ordered queue, so a
    /// slow watcher never blocks the store (its pending changes wait in memory).
    watchers: Vec<(String, String, mpsc::UnboundedSender<Changed>)>,
}

impl StoreManager {
    pub(crate) fn new(store: Store) -> Self {
        Self { backend: store.backend, watchers: Vec::new() }
    }

    fn live(&self, key: &str) -> Result<Option<Entry>, Failure> {
        Ok(self.backend.get(key)?.filter(|e| e.is_live(now_ms())))
    }

    /// Writes (or removes) `key` and tells the watchers of its prefix.
    fn put(&mut self, key: &str, entry: Option<Entry>) -> Result<(), Failure> {
        self.backend.put(key, entry.as_ref())?;
        let value = entry.map(|e| e.data);
        self.watchers.retain(|(prefix, _, forward)| {
            !key.starts_with(prefix.as_str())
                || forward.send(Changed { key: key.to_owned(), value: value.clone() }).is_ok()
        });
        Ok(())
    }
}

fn expiry(ttl_ms: Option<u64>) -> Option<u64> {
    ttl_ms.map(|ttl| now_ms().saturating_add(ttl))
}

#[manager(manual, name = "edri.store", crate = crate)]
impl StoreManager {
    #[solve]
    fn get(&mut self, ev: &Get) -> Result<GetResponse, Failure> {
        Ok(GetResponse { value: self.live(&ev.key)?.map(|e| e.data) })
    }

    #[solve]
    fn set(&mut self, ev: Set) -> Result<SetResponse, Failure> {
        let replaced = self.live(&ev.key)?.is_some();
        self.put(&ev.key, Some(Entry { data: ev.value, expires_at_ms: expiry(ev.ttl_ms) }))?;
        Ok(SetResponse { replaced })
    }

    #[solve]
    fn delete(&mut self, ev: &Delete) -> Result<DeleteResponse, Failure> {
        let existed = self.live(&ev.key)?.is_some();
        if self.backend.get(&ev.key)?.is_some() {
            self.put(&ev.key, None)?;
        }
        Ok(DeleteResponse { existed })
    }

    #[solve]
    fn list(&mut self, ev: &List) -> Result<ListResponse, Failure> {
        let now = now_ms();
        let entries = self.backend.scan(&ev.prefix)?;
        Ok(ListResponse {
            entries: entries
                .into_iter()
                .filter(|(_, e)| e.is_live(now))
                .map(|(k, e)| (k, e.data))
                .collect(),
        })
    }

    #[solve]
    fn compare_and_set(&mut self, ev: CompareAndSet) -> Result<CompareAndSetResponse, Failure> {
        let current = self.live(&ev.key)?.map(|e| e.data);
        if current != ev.expected {
            return Ok(CompareAndSetResponse { swapped: false, current });
        }
        let entry = ev.new.clone().map(|data| Entry { data, expires_at_ms: None });
        self.put(&ev.key, entry)?;
        Ok(CompareAndSetResponse { swapped: true, current: ev.new })
    }

    #[solve]
    fn increment(&mut self, ev: &Increment) -> Result<IncrementResponse, Failure> {
        let entry = self.live(&ev.key)?;
        let current: i64 = match &entry {
            Some(e) => decode(&ev.key, &e.data)?,
            None => 0,
        };
        let value = current
            .checked_add(ev.by)
            .ok_or_else(|| Failure::invalid(format!("`{}` would overflow", ev.key)))?;
        let expires_at_ms = entry.and_then(|e| e.expires_at_ms);
        self.put(&ev.key, Some(Entry { data: encode(&value)?, expires_at_ms }))?;
        Ok(IncrementResponse { value })
    }

    #[solve]
    fn watch(&mut self, ev: Watch, ctx: &Ctx) -> Result<WatchResponse, Failure> {
        if ev.watcher.is_empty() {
            return Err(Failure::invalid("a watch needs a watching manager"));
        }
        let (forward, mut changes) = mpsc::unbounded_channel::<Changed>();
        let (deliver, watcher) = (ctx.clone(), ev.watcher.clone());
        ctx.spawn(async move {
            while let Some(change) = changes.recv().await {
                if deliver.notify_manager(&watcher, change).await.is_err() {
                    break;
                }
            }
        });
        self.watchers.push((ev.prefix, ev.watcher, forward));
        Ok(WatchResponse)
    }
}

/// The typed view of the store: `ctx.store()`.
#[derive(Debug, Clone, Copy)]
pub struct StoreHandle<'a> {
    ctx: &'a Ctx,
}

impl Ctx {
    /// The key-value store of this router, typed.
    pub fn store(&self) -> StoreHandle<'_> {
        StoreHandle { ctx: self }
    }
}

impl StoreHandle<'_> {
    /// The value of `key` as a `T`; `None` when absent or expired.
    ///
    /// # Errors
    /// `Invalid` when the stored value is not a `T`; the request's own failures otherwise.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Failure> {
        let bytes = self.ctx.request(Get { key: key.to_owned() }).await?.value;
        bytes.map(|b| decode(key, &b)).transpose()
    }

    /// Sets `key` to `value`; `true` when a live value was replaced.
    ///
    /// # Errors
    /// When the value cannot be serialized, or the request fails.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<bool, Failure> {
        let set = Set { key: key.to_owned(), value: encode(value)?, ttl_ms: None };
        Ok(self.ctx.request(set).await?.replaced)
    }

    /// Sets `key` to `value` for `ttl`, after which it reads as absent.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    pub async fn set_with_ttl<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<bool, Failure> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let set = Set { key: key.to_owned(), value: encode(value)?, ttl_ms: Some(ttl_ms) };
        Ok(self.ctx.request(set).await?.replaced)
    }

    /// Removes `key`; `true` when a live value was removed.
    ///
    /// # Errors
    /// When the request fails.
    pub async fn delete(&self, key: &str) -> Result<bool, Failure> {
        Ok(self.ctx.request(Delete { key: key.to_owned() }).await?.existed)
    }

    /// Every live `(key, value)` under `prefix`, in key order.
    ///
    /// # Errors
    /// `Invalid` when a value is not a `T`; the request's own failures otherwise.
    pub async fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, Failure> {
        let entries = self.ctx.request(List { prefix: prefix.to_owned() }).await?.entries;
        entries.into_iter().map(|(k, b)| decode(&k, &b).map(|v| (k, v))).collect()
    }

    /// Writes `new` (removes the key with `None`) only if the value is `expected` now
    /// (`None`: absent); `true` when it was written.
    ///
    /// # Errors
    /// When a value cannot be serialized, or the request fails.
    pub async fn compare_and_set<T: Serialize>(
        &self,
        key: &str,
        expected: Option<&T>,
        new: Option<&T>,
    ) -> Result<bool, Failure> {
        let cas = CompareAndSet {
            key: key.to_owned(),
            expected: expected.map(encode).transpose()?,
            new: new.map(encode).transpose()?,
        };
        Ok(self.ctx.request(cas).await?.swapped)
    }

    /// Adds `by` to the `i64` counter at `key` (absent counts as 0); the new value.
    ///
    /// # Errors
    /// `Invalid` when `key` holds something else or the counter would overflow.
    pub async fn increment(&self, key: &str, by: i64) -> Result<i64, Failure> {
        Ok(self.ctx.request(Increment { key: key.to_owned(), by }).await?.value)
    }

    /// Makes later changes under `prefix` arrive at this manager as [`Changed`]
    /// notifications (it needs a `#[solve]` handler for `Changed`).
    ///
    /// # Errors
    /// `Invalid` outside a manager (there is no mailbox to deliver to).
    pub async fn watch(&self, prefix: &str) -> Result<(), Failure> {
        let watcher = self.ctx.manager_name().ok_or_else(|| {
            Failure::invalid("`watch` delivers `Changed` to a manager: call it from a handler")
        })?;
        let watch = Watch { prefix: prefix.to_owned(), watcher: watcher.to_owned() };
        self.ctx.request(watch).await.map(drop)
    }
}
