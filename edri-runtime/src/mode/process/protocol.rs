//! The messages between a router and its worker processes, framed by [`crate::wire`].

use crate::Failure;
use crate::trace::TraceContext;
use crate::tunnel::remote::Message;
use serde::{Deserialize, Serialize};

/// Version of the parent/worker protocol, checked when a worker starts.
pub(crate) const PROTOCOL: u32 = 4;

/// Parent to worker. `trace` is the trace link of the handler call ([`crate::trace`]).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    /// Run `manager::method` on this serialized event.
    Call { manager: String, method: String, payload: Vec<u8>, trace: Option<TraceContext> },
    /// The answer to the worker's notify/request `id`.
    Reply { id: u64, result: Result<Vec<u8>, Failure> },
    /// Run acceptor `manager::method` on this serialized tunnel event; its tunnel is `call`.
    Accept {
        manager: String,
        method: String,
        payload: Vec<u8>,
        window: u32,
        call: u64,
        trace: Option<TraceContext>,
    },
    /// A message of the tunnel of call `call`, from the opener's side.
    Tunnel { call: u64, message: Message },
}

/// Worker to parent. `trace` is the trace link of the handler that sent the event.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToParent {
    /// First frame of every worker.
    Ready { protocol: u32 },
    /// The result of the current call: the serialized output, or a failure.
    Done { result: Result<Vec<u8>, Failure> },
    /// `ctx.notify` in the worker.
    Notify { id: u64, event: String, payload: Vec<u8>, trace: Option<TraceContext> },
    /// `ctx.request` in the worker.
    Request {
        id: u64,
        event: String,
        payload: Vec<u8>,
        timeout_ms: u64,
        trace: Option<TraceContext>,
    },
    /// `ctx.try_notify` in the worker: the parent delivers it now or refuses it at once.
    TryNotify { id: u64, event: String, payload: Vec<u8>, trace: Option<TraceContext> },
    /// `ctx.request_all` in the worker; the reply is the postcard of
    /// `Vec<Result<Vec<u8>, Failure>>`, one answer per responder.
    RequestAll {
        id: u64,
        event: String,
        payload: Vec<u8>,
        timeout_ms: u64,
        trace: Option<TraceContext>,
    },
    /// A message of the current call's tunnel, from the acceptor's side.
    Tunnel { message: Message },
}
