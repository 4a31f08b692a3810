//! `ctx.store()`: the typed view of the store, turning values into [`StoredValue`]s and back.

use super::value::StoredValue;
use super::{CompareAndSet, Delete, Get, Increment, List, Set, Watch};
use crate::{Ctx, Failure};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The typed view of the store: `ctx.store()`.
///
/// A value is read back through the type it was written from (or one with the same serde
/// shape, see [`StoredValue`]); through another, the read is `Invalid` and names both types.
/// Reads need `T: Serialize` as well as `DeserializeOwned`: the shape of what was read is
/// compared with the stored one.
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// # use std::time::Duration;
/// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
/// let store = ctx.store();
/// store.set_with_ttl("session/alice", "t0ken", Duration::from_secs(60)).await?;
/// let won = store.compare_and_set("lock", None, Some(&"worker-1")).await?;
/// for (key, price) in store.list::<u64>("prices/").await? {
///     println!("{key}: {price}");
/// }
/// store.delete("lock").await?;
/// // A `u32` read as an `i32` is refused, never reinterpreted:
/// store.set("count", &300_u32).await?;
/// assert_eq!(store.get::<i32>("count").await.unwrap_err().status(), Status::Invalid);
/// # let _ = won;
/// # Ok(()) }
/// ```
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
    /// `Invalid`, naming the stored type and `T`, when the stored value is not a `T`; the
    /// request's own failures otherwise.
    pub async fn get<T: Serialize + DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, Failure> {
        let value = self.ctx.request(Get { key: key.to_owned() }).await?.value;
        value.map(|v| v.read(key)).transpose()
    }

    /// Sets `key` to `value`; `true` when a live value was replaced.
    ///
    /// # Errors
    /// When the value cannot be serialized, or the request fails.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<bool, Failure> {
        let set = Set { key: key.to_owned(), value: StoredValue::new(value)?, ttl_ms: None };
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
        let set =
            Set { key: key.to_owned(), value: StoredValue::new(value)?, ttl_ms: Some(ttl_ms) };
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
    /// `Invalid`, naming the key and both types, when a value is not a `T`; the request's own
    /// failures otherwise.
    pub async fn list<T: Serialize + DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, T)>, Failure> {
        let entries = self.ctx.request(List { prefix: prefix.to_owned() }).await?.entries;
        entries.into_iter().map(|(k, v)| v.read(&k).map(|v| (k, v))).collect()
    }

    /// Writes `new` (removes the key with `None`) only if the value is `expected` now
    /// (`None`: absent); `true` when it was written.
    ///
    /// # Errors
    /// `Invalid` when `expected` has the bytes of the current value but another type (the
    /// `u32` 300 and the `i32` 150 have the same bytes); when a value cannot be serialized, or
    /// the request fails.
    pub async fn compare_and_set<T: Serialize>(
        &self,
        key: &str,
        expected: Option<&T>,
        new: Option<&T>,
    ) -> Result<bool, Failure> {
        let cas = CompareAndSet {
            key: key.to_owned(),
            expected: expected.map(StoredValue::new).transpose()?,
            new: new.map(StoredValue::new).transpose()?,
        };
        Ok(self.ctx.request(cas).await?.swapped)
    }

    /// Adds `by` to the `i64` counter at `key` (absent counts as 0); the new value.
    ///
    /// # Errors
    /// `Invalid` when `key` holds something else than an `i64` (naming its type) or the counter
    /// would overflow.
    pub async fn increment(&self, key: &str, by: i64) -> Result<i64, Failure> {
        Ok(self.ctx.request(Increment { key: key.to_owned(), by }).await?.value)
    }

    /// Makes later changes under `prefix` arrive at this manager as [`Changed`](super::Changed)
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
