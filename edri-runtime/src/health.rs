//! `HealthCheck`: every router answers it with the vitals of its managers.

use crate::Ctx;
use crate::manager::ManagerVitals;
use edri_macros::{event, manager, solve};

/// Asks a router for its health; answered by the built-in `edri.health` manager that every
/// router runs (leave it out with `Edri::builder().without::<Health>()`).
///
/// # Examples
///
/// ```
/// # use edri::prelude::*;
/// use edri::HealthCheck;
/// # async fn f(ctx: &Ctx) -> Result<(), Failure> {
/// let health = ctx.request(HealthCheck::default()).await?;
/// for m in &health.managers {
///     println!("{} processed {}, {} in its mailbox", m.name, m.processed, m.queued);
/// }
/// # Ok(()) }
/// ```
#[event(request, name = "edri.HealthCheck", crate = crate)]
#[derive(Debug, Clone, Default)]
pub struct HealthCheck {
    /// The answering process.
    #[response]
    pub pid: u32,
    /// Milliseconds since the router started.
    #[response]
    pub uptime_ms: u64,
    /// Every manager of the router, sorted by name.
    #[response]
    pub managers: Vec<ManagerVitals>,
}

/// The built-in manager that answers [`HealthCheck`].
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> edri::Result<()> {
/// // A router that does not answer `HealthCheck`:
/// let running = edri::Edri::builder().without::<edri::Health>().start().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct Health;

#[manager(manual, name = "edri.health", crate = crate)]
impl Health {
    #[solve]
    fn check(&self, _: &HealthCheck, ctx: &Ctx) -> HealthCheckResponse {
        let shared = ctx.shared();
        HealthCheckResponse {
            pid: std::process::id(),
            uptime_ms: u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            managers: shared.vitals(),
        }
    }
}
