//! The manager behind the store: one per router, serving the store's request events in order.

use super::backend::{Backend, Entry, now_ms};
use super::value::{StoredValue, mismatch};
use super::{
    Changed, CompareAndSet, CompareAndSetResponse, Delete, DeleteResponse, Get, GetResponse,
    Increment, IncrementResponse, List, ListResponse, Set, SetResponse, Store, Watch,
    WatchResponse,
};
use crate::{Ctx, Failure};
use edri_macros::{manager, solve};
use tokio::sync::mpsc;

/// The manager behind the store; every router runs one (leave it out with
/// `.without::<StoreManager>()`).
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> edri::Result<()> {
/// let running = edri::Edri::builder().without::<edri::StoreManager>().start().await?;
/// # Ok(()) }
/// ```
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
        let value = entry.map(|e| e.value);
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
        Ok(GetResponse { value: self.live(&ev.key)?.map(|e| e.value) })
    }

    #[solve]
    fn set(&mut self, ev: Set) -> Result<SetResponse, Failure> {
        let replaced = self.live(&ev.key)?.is_some();
        self.put(&ev.key, Some(Entry { value: ev.value, expires_at_ms: expiry(ev.ttl_ms) }))?;
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
                .map(|(k, e)| (k, e.value))
                .collect(),
        })
    }

    #[solve]
    fn compare_and_set(&mut self, ev: CompareAndSet) -> Result<CompareAndSetResponse, Failure> {
        let current = self.live(&ev.key)?.map(|e| e.value);
        let matches = match (&current, &ev.expected) {
            (None, None) => true,
            (Some(now), Some(expected)) if now.bytes == expected.bytes => {
                if now.shape != expected.shape {
                    return Err(mismatch(
                        &ev.key,
                        &now.type_name,
                        &expected.type_name,
                        "the expected value has the same bytes but another type",
                    ));
                }
                true
            }
            _ => false,
        };
        if !matches {
            return Ok(CompareAndSetResponse { swapped: false, current });
        }
        let entry = ev.new.clone().map(|value| Entry { value, expires_at_ms: None });
        self.put(&ev.key, entry)?;
        Ok(CompareAndSetResponse { swapped: true, current: ev.new })
    }

    #[solve]
    fn increment(&mut self, ev: &Increment) -> Result<IncrementResponse, Failure> {
        let entry = self.live(&ev.key)?;
        let current: i64 = match &entry {
            Some(e) => e.value.read(&ev.key).map_err(|f| {
                Failure::invalid(format!("an increment adds to an `i64` counter: {}", f.message()))
            })?,
            None => 0,
        };
        let value = current
            .checked_add(ev.by)
            .ok_or_else(|| Failure::invalid(format!("`{}` would overflow", ev.key)))?;
        let expires_at_ms = entry.and_then(|e| e.expires_at_ms);
        self.put(&ev.key, Some(Entry { value: StoredValue::new(&value)?, expires_at_ms }))?;
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
