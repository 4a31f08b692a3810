//! The key-value store: a manager (`edri.store`) that every router runs, reached by events so
//! that any manager, worker or remote router can use it, and a typed handle,
//! `ctx.store()`.
//!
//! Values are any serde type, kept as postcard bytes together with their type
//! ([`StoredValue`]): a read, a list, a `Changed` or an increment through another type is
//! `Invalid`, naming both types, never a value decoded from another type's bytes. In memory by
//! default; durable with `Store::durable(path)` (feature `durable`, on by default: a redb
//! file, where a `set` is committed to disk before it is acknowledged). Every request answers. `Watch { prefix }` makes later changes
//! under the prefix arrive at the watching manager as [`Changed`] notifications, in order.
//!
//! # Examples
//!
//! ```
//! # use edri::prelude::*;
//! # async fn f(ctx: &Ctx) -> Result<(), Failure> {
//! ctx.store().set("prices/eur", &1.08_f64).await?;
//! let eur: Option<f64> = ctx.store().get("prices/eur").await?;
//! let n = ctx.store().increment("visits", 1).await?;
//! // From a handler: then `#[solve] fn changed(&mut self, ev: &edri::store::Changed)`.
//! ctx.store().watch("prices/").await?;
//! # Ok(()) }
//! ```
//!
//! The same through the store's events, for code that holds [`StoredValue`]s:
//!
//! ```
//! # use edri::prelude::*;
//! use edri::store::{Get, Set, StoredValue};
//! # async fn f(ctx: &Ctx) -> Result<(), Failure> {
//! let value = StoredValue::new(&1.08_f64)?;
//! ctx.request(Set { key: "prices/eur".into(), value, ttl_ms: None }).await?;
//! let got = ctx.request(Get { key: "prices/eur".into() }).await?.value;
//! let eur: Option<f64> = got.map(|v| v.read("prices/eur")).transpose()?;
//! # Ok(()) }
//! ```

mod backend;
mod handle;
mod manager;
mod shape;
mod value;

use crate::Failure;
use backend::Backend;
use edri_macros::event;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
#[cfg(feature = "durable")]
use std::path::Path;

#[cfg(feature = "durable")]
#[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
pub use backend::FORMAT;
pub use handle::StoreHandle;
pub use manager::StoreManager;
pub use value::StoredValue;

/// Where a router keeps its store: `Edri::builder().store(Store::durable("data.redb")?)`.
///
/// # Examples
///
/// ```no_run
/// use edri::{Edri, Store};
///
/// #[edri::main]
/// async fn main() -> edri::Result<()> {
///     Edri::builder().store(Store::durable("data.redb")?).run().await
/// }
/// ```
pub struct Store {
    backend: Backend,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.backend {
            Backend::Memory(_) => "memory",
            #[cfg(feature = "durable")]
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
    /// The file records its store format ([`FORMAT`]); a file of another format is refused
    /// here, with its format in the message, never read as this one. A file written before
    /// values carried their type (format 1) cannot be read: the type of its values is unknown.
    ///
    /// # Errors
    /// When the file cannot be opened or created, is not a store, or is a store of another
    /// format.
    #[cfg(feature = "durable")]
    #[cfg_attr(docsrs, doc(cfg(feature = "durable")))]
    pub fn durable(path: impl AsRef<Path>) -> Result<Self, crate::Error> {
        let path = path.as_ref();
        let backend = Backend::durable(path).map_err(|e| {
            crate::Error::Io(std::io::Error::other(format!(
                "store {}: {}",
                path.display(),
                e.message()
            )))
        })?;
        Ok(Self { backend })
    }
}

/// Reads a key: its value, `None` when absent or expired.
#[event(request, name = "edri.store.Get", crate = crate)]
#[derive(Debug, Clone)]
pub struct Get {
    /// The key.
    pub key: String,
    /// The value.
    #[response]
    pub value: Option<StoredValue>,
}

/// Writes a key, optionally with a time to live.
#[event(request, name = "edri.store.Set", crate = crate)]
#[derive(Debug, Clone)]
pub struct Set {
    /// The key.
    pub key: String,
    /// The value.
    pub value: StoredValue,
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
    /// `(key, value)` pairs.
    #[response]
    pub entries: Vec<(String, StoredValue)>,
}

/// Writes `new` (or removes the key, with `None`) only if the current value is `expected`
/// (`None`: absent). An `expected` with the bytes of the current value but another type is
/// `Invalid`, naming both types (the bytes alone would match).
#[event(request, name = "edri.store.CompareAndSet", crate = crate)]
#[derive(Debug, Clone)]
pub struct CompareAndSet {
    /// The key.
    pub key: String,
    /// The value it must have now; `None`: the key must be absent.
    pub expected: Option<StoredValue>,
    /// The value to write; `None`: remove the key.
    pub new: Option<StoredValue>,
    /// Whether the value was written.
    #[response]
    pub swapped: bool,
    /// The value after the request.
    #[response]
    pub current: Option<StoredValue>,
}

/// Adds `by` to an `i64` counter (absent counts as 0) and answers the new value. A key that
/// holds another type is `Invalid`, naming it.
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

/// A key under a watched prefix changed: its new value, or `None` when it was removed.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
/// use edri::store::Changed;
///
/// #[derive(Default)]
/// pub struct PriceWatch { latest: std::collections::BTreeMap<String, u64> }
///
/// #[manager]
/// impl PriceWatch {
///     #[solve]
///     async fn started(&mut self, _ev: &Started, ctx: &Ctx) -> Result<(), Failure> {
///         ctx.store().watch("prices/").await
///     }
///
///     #[solve]
///     fn changed(&mut self, ev: &Changed) -> Result<(), Failure> {
///         match ev.value::<u64>()? {
///             Some(price) => self.latest.insert(ev.key.clone(), price),
///             None => self.latest.remove(&ev.key),
///         };
///         Ok(())
///     }
/// }
/// ```
#[event(notification, name = "edri.store.Changed", crate = crate)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// The key.
    pub key: String,
    /// The new value; `None`: removed.
    pub value: Option<StoredValue>,
}

impl Changed {
    /// The new value as a `T`; `Ok(None)` when the key was removed.
    ///
    /// # Errors
    /// `Invalid`, naming both types, when the value is not a `T`.
    pub fn value<T: Serialize + DeserializeOwned>(&self) -> Result<Option<T>, Failure> {
        self.value.as_ref().map(|v| v.read(&self.key)).transpose()
    }
}
