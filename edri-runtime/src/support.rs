//! What the macros' expansions call besides the traits: the probe that finds out whether a
//! manager type has `Default`, the runtime of `#[edri::main]`, and small helpers. Reached only
//! through [`crate::__private`].

use crate::envelope::Envelope;
use crate::manager::{ErasedManager, Manager, ManagerDescriptor};
use core::any::TypeId;
use core::marker::PhantomData;

/// `#[edri::main]`'s choice: install the default `tracing` subscriber when the router starts
/// (or when this process serves as a worker), unless one is set by then.
pub fn logs_at_start(on: bool) {
    crate::logging::set_at_start(on);
}

/// An envelope whose handler index is unknown to the manager: a runtime bug, logged.
#[cold]
pub fn unknown_handler(descriptor: &ManagerDescriptor, envelope: &Envelope) {
    tracing::error!(manager = descriptor.name, handler = envelope.handler(), "no such handler");
}

/// Probes whether `M: Default` at the expansion site (autoref specialisation).
pub struct DefaultProbe<M>(PhantomData<fn() -> M>);

impl<M> DefaultProbe<M> {
    /// A probe.
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<M> Default for DefaultProbe<M> {
    fn default() -> Self {
        Self::new()
    }
}

/// Picked when `M: Default`.
pub trait ViaDefault {
    /// A default instance.
    fn edri_default(&self) -> Option<Box<dyn ErasedManager>>;
}

impl<M: Manager + Default> ViaDefault for &DefaultProbe<M> {
    fn edri_default(&self) -> Option<Box<dyn ErasedManager>> {
        Some(Box::new(M::default()))
    }
}

/// Picked otherwise.
pub trait ViaNoDefault {
    /// No instance.
    fn edri_default(&self) -> Option<Box<dyn ErasedManager>>;
}

impl<M: Manager> ViaNoDefault for DefaultProbe<M> {
    fn edri_default(&self) -> Option<Box<dyn ErasedManager>> {
        None
    }
}

/// `TypeId::of::<M>` as a function pointer.
pub fn type_id_of<M: 'static>() -> TypeId {
    TypeId::of::<M>()
}

/// The runtime a `#[edri::main]` function runs on.
///
/// # Panics
/// When the operating system refuses to create the runtime's threads or I/O driver.
pub fn build_runtime(current_thread: bool, workers: Option<usize>) -> tokio::runtime::Runtime {
    let mut builder = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if let Some(n) = workers {
            b.worker_threads(n);
        }
        b
    };
    builder.enable_all().build().expect("edri: cannot build the tokio runtime")
}
