//! Hot-path cost: a fixed number of notifications and sequential requests through one router
//! on a current-thread runtime (for `perf stat -e instructions:u`, steady under load).

use edri::prelude::*;
use std::time::Instant;

/// Counted by [`Counter`].
#[event(notification)]
pub struct Hit(pub u64);

/// Answered by [`Counter`].
#[event(request)]
pub struct Ask {
    /// Added to the sum.
    pub n: u64,
    /// `n` plus the sum.
    #[response]
    pub back: u64,
}

/// Sums [`Hit`]s, answers [`Ask`].
#[derive(Default)]
pub struct Counter {
    sum: u64,
}

#[manager]
impl Counter {
    #[solve]
    fn hit(&mut self, ev: &Hit) {
        self.sum = self.sum.wrapping_add(ev.0);
    }

    #[solve]
    fn ask(&mut self, ev: &Ask) -> AskResponse {
        AskResponse { back: ev.n + self.sum }
    }
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let only = std::env::args().nth(2).unwrap_or_default();
    let (notifies, requests) = match only.as_str() {
        "notify" => (n, 0),
        "request" => (0, n),
        _ => (n, n / 4),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let running =
            Edri::builder().only_explicit().manager(Counter::default()).start().await.unwrap();
        let ctx = running.ctx().clone();
        let t = Instant::now();
        for i in 0..notifies {
            ctx.notify(Hit(i)).await.unwrap();
        }
        ctx.request(Ask { n: 0 }).await.unwrap();
        let notify = t.elapsed();
        let t = Instant::now();
        for i in 0..requests {
            ctx.request(Ask { n: i }).await.unwrap();
        }
        let request = t.elapsed();
        println!(
            "notify {:.1} ns/op, request {:.1} ns/op",
            notify.as_nanos() as f64 / notifies.max(1) as f64,
            request.as_nanos() as f64 / requests.max(1) as f64
        );
        running.shutdown().await.unwrap();
    });
}
