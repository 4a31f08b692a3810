// The macros' expansions do not depend on what the user's scope calls `Result`, `Option`,
// `Box`, `Vec`, `String`, `Default`, `Send`, `Future`, `core`, `std`, ...: every name in
// them is a global path.

#![allow(dead_code, non_camel_case_types, unused_imports, unused_macros)]

mod app {
    use ::edri::prelude::*;
    // `Event`, `Failure`, `Ctx` come from the prelude; everything else is shadowed.

    pub struct Result<T, E>(T, E);
    pub struct Option<T>(T);
    pub struct Some;
    pub struct None;
    pub struct Ok;
    pub struct Err;
    pub struct Box;
    pub struct Vec;
    pub struct String;
    pub struct Arc;
    pub struct PhantomData;
    pub struct Pin;
    pub struct Context;
    pub struct Poll;
    pub struct Cow;
    pub trait Default {}
    pub trait Clone {}
    pub trait Copy {}
    pub trait Debug {}
    pub trait Send {}
    pub trait Sync {}
    pub trait Sized {}
    pub trait Unpin {}
    pub trait Future {}
    pub trait IntoFuture {}
    pub trait Fn {}
    pub trait FnOnce {}
    pub trait FnMut {}
    pub trait Drop {}
    pub trait Into {}
    pub trait From {}
    pub trait AsRef {}
    pub trait Iterator {}
    pub trait IntoIterator {}
    pub trait ToString {}
    pub trait ToOwned {}
    pub trait PartialEq {}
    pub trait Eq {}
    pub trait Any {}
    pub trait Serialize {}
    pub trait Deserialize {}
    pub mod core {}
    pub mod std {}
    pub mod alloc {}
    pub mod serde {}
    pub mod inventory {}
    pub mod tokio {}
    pub mod edri {}
    pub mod __private {}
    macro_rules! panic {
        () => {};
    }
    macro_rules! unreachable {
        () => {};
    }
    macro_rules! concat {
        () => {};
    }
    macro_rules! stringify {
        () => {};
    }
    macro_rules! env {
        () => {};
    }
    macro_rules! file {
        () => {};
    }
    macro_rules! line {
        () => {};
    }
    macro_rules! column {
        () => {};
    }
    macro_rules! module_path {
        () => {};
    }
    macro_rules! format {
        () => {};
    }
    macro_rules! vec {
        () => {};
    }

    /// The notification.
    #[event(notification, priority = 3)]
    #[derive(::core::fmt::Debug, ::core::clone::Clone)]
    pub struct Tick {
        pub n: u64,
        pub label: ::std::string::String,
    }

    /// The request with a generated response.
    #[event(request, http = "GET /ticks/{label}", ws)]
    #[derive(::core::fmt::Debug)]
    pub struct Count {
        pub label: ::std::string::String,
        #[response]
        pub ticks: u64,
        #[response]
        pub labels: ::std::vec::Vec<::std::string::String>,
    }

    /// A request with an existing response type.
    #[event(request, response = ::core::option::Option<u64>, local)]
    pub struct Find {
        pub n: u64,
    }

    /// A tunnel.
    #[event(tunnel, send = ::std::vec::Vec<u8>, receive = ::std::boxed::Box<str>)]
    pub struct Pipe;

    #[derive(::core::default::Default)]
    pub struct Clock {
        ticks: u64,
        labels: ::std::vec::Vec<::std::string::String>,
    }

    #[manager(queue = fifo, capacity = 4)]
    impl Clock {
        #[solve]
        async fn tick(&mut self, ev: &Tick, ctx: &Ctx) -> ::core::result::Result<(), Failure> {
            let _ = ctx;
            self.ticks += ev.n;
            self.labels.push(::core::clone::Clone::clone(&ev.label));
            ::core::result::Result::Ok(())
        }

        #[solve]
        fn count(&self, ev: Count) -> CountResponse {
            let _ = ev.label;
            CountResponse { ticks: self.ticks, labels: ::core::clone::Clone::clone(&self.labels) }
        }

        #[solve(thread, limit = 2)]
        fn find(
            ev: Find,
            ctx: Ctx,
        ) -> ::core::result::Result<::core::option::Option<u64>, Failure> {
            let _ = ctx;
            ::core::result::Result::Ok(::core::option::Option::Some(ev.n))
        }
    }
}

// The crate root shadows the same names for `#[edri::main]`.
pub struct Result<T, E>(T, E);
pub struct Option<T>(T);
pub struct Some;
pub struct None;
pub struct Ok;
pub struct Box;
pub struct Vec;
pub struct String;
pub trait Default {}
pub trait Send {}
pub trait Future {}
pub trait IntoFuture {}
pub mod core {}
pub mod std {}
pub mod tokio {}

#[edri::main(flavor = "current_thread")]
async fn main() -> ::edri::Result<()> {
    use ::edri::prelude::*;
    let running = Edri::builder()
        .only_explicit()
        .manager(<app::Clock as ::core::default::Default>::default())
        .start()
        .await?;
    let ctx = running.ctx();
    ctx.notify(app::Tick { n: 2, label: ::std::string::String::from("a") }).await.unwrap();
    let count = ctx.request(app::Count { label: ::std::string::String::from("a") }).await.unwrap();
    ::core::assert_eq!(count.ticks, 2);
    ::core::assert_eq!(count.labels.len(), 1);
    ::core::assert_eq!(
        ctx.request(app::Find { n: 9 }).await.unwrap(),
        ::core::option::Option::Some(9)
    );
    running.shutdown().await
}
