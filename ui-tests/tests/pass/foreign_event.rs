// Events declared in another crate (`edri_ui_tests`, this package's library) handled by a
// manager here.

use edri::prelude::*;
use edri_ui_tests::{Counted, Summarize, Summary, Total, TotalResponse};

#[derive(Default)]
pub struct Tally {
    total: u64,
}

#[manager]
impl Tally {
    #[solve]
    fn counted(&mut self, ev: &Counted) {
        self.total += ev.by;
    }

    #[solve]
    fn total(&self, _: &edri_ui_tests::Total) -> TotalResponse {
        TotalResponse { total: self.total }
    }

    #[solve(thread)]
    fn summarize(ev: Summarize, ctx: Ctx) -> Result<Summary, Failure> {
        let _ = (ev, ctx);
        Ok(Summary { seen: 0 })
    }
}

#[edri::main(flavor = "current_thread")]
async fn main() -> edri::Result<()> {
    let running = Edri::builder().only_explicit().manager(Tally::default()).start().await?;
    let ctx = running.ctx();
    ctx.notify(Counted { by: 4 }).await.unwrap();
    ctx.notify(Counted { by: 5 }).await.unwrap();
    assert_eq!(ctx.request(Total {}).await.unwrap().total, 9);
    assert_eq!(ctx.request(Summarize).await.unwrap(), Summary { seen: 0 });
    assert_eq!(<Counted as Event>::META.name, "ui_tests.Counted");
    running.shutdown().await
}
