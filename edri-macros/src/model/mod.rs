//! The macros' own model of what the user wrote, built from the syntax and checked before
//! anything is generated: one file per concept.

mod event;
mod fields;
mod manager;
mod solve;

pub(crate) use event::{EventDef, Kind};
pub(crate) use fields::{field_cfg, without_response_marks};
pub(crate) use manager::{ManagerDef, Mode, Queue};
pub(crate) use solve::SolveDef;
