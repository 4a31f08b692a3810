// The macros used from inside `macro_rules!`: one macro generates events (a `ty` fragment as a
// field type, a response through `#[response]`), another the manager, whose handler parameter
// types arrive as `ty` fragments (invisible-delimited groups for the proc macro).

use edri::prelude::*;

macro_rules! counter_events {
    ($add:ident, $total:ident, $n:ty) => {
        #[event(notification)]
        #[derive(Debug, Clone)]
        pub struct $add {
            pub by: $n,
        }

        #[event(request)]
        #[derive(Debug, Clone)]
        pub struct $total {
            #[response]
            pub total: $n,
        }
    };
}

macro_rules! counter_manager {
    ($manager:ident, $add:ty, $total:ty, $response:ident) => {
        #[derive(Default)]
        pub struct $manager {
            total: u64,
        }

        #[manager]
        impl $manager {
            #[solve]
            fn add(&mut self, ev: &$add) {
                self.total += ev.by;
            }

            #[solve]
            async fn total(&self, _: $total, ctx: &Ctx) -> Result<$response, Failure> {
                let _ = ctx;
                Ok($response { total: self.total })
            }
        }
    };
}

counter_events!(Add, Total, u64);
counter_manager!(Counter, Add, Total, TotalResponse);

mod inner {
    use edri::prelude::*;

    counter_events!(AddMore, TotalMore, u64);
    counter_manager!(CounterMore, self::AddMore, crate::inner::TotalMore, TotalMoreResponse);
}

#[edri::main(flavor = "current_thread")]
async fn main() -> edri::Result<()> {
    let running = Edri::builder()
        .only_explicit()
        .manager(Counter::default())
        .manager(inner::CounterMore::default())
        .start()
        .await?;
    let ctx = running.ctx();
    ctx.notify(Add { by: 2 }).await.unwrap();
    ctx.notify(Add { by: 3 }).await.unwrap();
    ctx.notify(inner::AddMore { by: 7 }).await.unwrap();
    assert_eq!(ctx.request(Total {}).await.unwrap().total, 5);
    assert_eq!(ctx.request(inner::TotalMore {}).await.unwrap().total, 7);
    assert_eq!(<Total as Event>::META.name, "Total");
    running.shutdown().await
}
