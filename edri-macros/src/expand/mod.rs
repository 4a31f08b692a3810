//! Code generation, one module per macro.

pub(crate) mod event;
pub(crate) mod main;
pub(crate) mod manager;
