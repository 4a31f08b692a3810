#![allow(missing_docs)]
//! Two event types with one name in one binary are refused at start-up, naming both.

use edri::prelude::*;

mod a {
    use edri::prelude::*;

    #[event(notification, name = "orders.created")]
    pub struct Created;
}

mod b {
    use edri::prelude::*;

    #[event(notification, name = "orders.created")]
    pub struct Created {
        pub id: u64,
    }
}

#[derive(Default)]
pub struct Sink;

#[manager]
impl Sink {
    #[solve]
    fn a(&mut self, _: &a::Created) {}
}

#[tokio::test]
async fn duplicate_event_names_are_a_start_error_naming_both() {
    let err = Edri::builder().start().await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("orders.created"), "{text}");
    assert!(
        text.contains("duplicate_names::a::Created")
            && text.contains("duplicate_names::b::Created"),
        "{text}"
    );
    assert_eq!(text.matches("duplicate_names.rs:").count(), 2, "{text}");
}
