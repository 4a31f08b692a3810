//! [`FromCtx`]: what a handler's context parameter may be.

use super::Ctx;

/// The context parameter of a `#[solve]` handler: `&Ctx` for an inline handler, `Ctx` for a
/// thread or process handler (which outlives the dispatch).
///
/// The `#[manager]` expansion passes the context through this trait, so a parameter of
/// another type is reported on that type with this message, not as a mismatch of the
/// expansion's argument.
///
/// # Examples
///
/// ```
/// use edri::prelude::*;
///
/// #[event(notification)]
/// pub struct Tick;
///
/// #[derive(Default)]
/// pub struct Clock;
///
/// #[manager]
/// impl Clock {
///     #[solve]
///     fn tick(&mut self, _: &Tick, ctx: &Ctx) { // inline: borrowed
///         let _ = ctx.manager_name();
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a handler's context",
    label = "expected `{C}`",
    note = "an inline handler takes `ctx: &Ctx`; a thread or process handler takes `ctx: Ctx`"
)]
pub trait FromCtx<C> {
    /// The parameter, from the context the dispatch holds.
    fn from_ctx(ctx: C) -> Self;
}

#[diagnostic::do_not_recommend]
impl<'a> FromCtx<&'a Ctx> for &'a Ctx {
    #[inline]
    fn from_ctx(ctx: &'a Ctx) -> Self {
        ctx
    }
}

#[diagnostic::do_not_recommend]
impl FromCtx<Ctx> for Ctx {
    #[inline]
    fn from_ctx(ctx: Ctx) -> Self {
        ctx
    }
}
