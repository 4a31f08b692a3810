//! What the macros' expansions call. Not a public API: names and shapes change freely.
//!
//! Expansions reach an event only through qualified paths `<E as Event>::META` and
//! `<E as Dispatch>::…`, every one spanned at the user's event type: a non-event type
//! then raises the same obligation at the same place everywhere, which rustc reports once.
//! No generated value has a type naming `E::Output` (such a type cannot be formed for a
//! non-event, and each value would repeat the error); the return check is the bound of
//! `Dispatch::__finish::<R>`, spanned at the user's return type.

pub use crate::api::hooks::ApiHooks;
pub use crate::api::schema::{
    EventSchema, FieldSchema, SchemaGenerator, SchemaProbe, ViaJsonSchema, ViaNoSchema,
    object as object_schema,
};
pub use crate::envelope::{Envelope, EventBox, Reply};
pub use crate::event::kind;
pub use crate::event::{
    Event, EventKind, EventMeta, FieldMeta, HttpRoute, IntoReply, Location, Notification, Request,
    TunnelEvent, fingerprint, fingerprint_parts,
};
pub use crate::manager::{
    ErasedManager, HandlerDescriptor, Manager, ManagerDescriptor, ManagerOptions, Mode, ProcessFn,
    QueueKind,
};
pub use crate::mode::process::serve_if_worker;
pub use crate::mode::{Dispatch, WorkerStart};
pub use crate::registry::{EventRegistration, ManagerRegistration};
pub use crate::support::{
    DefaultProbe, ViaDefault, ViaNoDefault, build_runtime, logs_at_start, type_id_of,
    unknown_handler,
};
pub use crate::tunnel::remote::accept_bytes;
pub use crate::{Ctx, Failure};
pub use core::any::TypeId;
pub use inventory;
pub use serde;
pub use tokio;
