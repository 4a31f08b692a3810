//! What the macros' expansions call. Not a public API: names and shapes change freely.
//!
//! Expansions reach an event only through qualified paths `<E as Event>::META` and
//! `<E as Dispatch>::…`, every one spanned at the user's event type: a non-event type
//! then raises the same obligation at the same place everywhere, which rustc reports once.
//! The values whose type names the event's output are spanned over the event type too, so a
//! non-event is not reported again elsewhere. The checks of the user's other types are calls
//! on those types, spanned over them (`<R as IntoReply<..>>::into_result`,
//! `<X as IntoFailure>::into_failure`, `<C as FromCtx<..>>::from_ctx`, and
//! `<<E as Event>::Kind as kind::Plain>::check`), not bounds of the functions here: an error
//! then carries no note naming them.

pub use crate::api::hooks::ApiHooks;
pub use crate::api::schema::{
    EventSchema, FieldSchema, SchemaGenerator, SchemaProbe, ViaJsonSchema, ViaNoSchema,
    object as object_schema,
};
pub use crate::ctx::FromCtx;
pub use crate::envelope::{Envelope, EventBox, Reply};
pub use crate::event::{
    Event, EventKind, EventMeta, FieldMeta, HttpRoute, IntoFailure, IntoReply, Location,
    Notification, Request, TunnelEvent, fingerprint, fingerprint_parts,
};
pub use crate::kind;
pub use crate::manager::{
    ErasedManager, HandlerDescriptor, Manager, ManagerDescriptor, ManagerOptions, Mode, ProcessFn,
    QueueKind,
};
pub use crate::mode::process::serve_if_worker;
pub use crate::mode::{Accept, Dispatch, WorkerStart};
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
