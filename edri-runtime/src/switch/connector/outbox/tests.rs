//! Tests of the parent module.

use super::*;
use crate::framing::decode;
use crate::switch::frame::split_items;

const EPOCH: u64 = 77;
const OUTAGE: u64 = 60_000;

/// A frame as the switch would read it: data as (to, base, first, item bytes).
#[derive(Debug, PartialEq, Eq)]
enum Sent {
    Data(&'static str, u64, u64, Vec<u8>),
    Ack(&'static str, u64, u64),
    Resend(&'static str, u64, u64),
}

fn name(id: &str) -> &'static str {
    ["a", "b", "c"].into_iter().find(|n| *n == id).expect("a test router")
}

fn id(name: &str) -> Arc<str> {
    name.into()
}

/// An item that carries its number (as a response's call number).
fn item(n: u8) -> Item<'static> {
    Item::Response { call: u64::from(n), epoch: 0, result: Ok(&[]) }
}

/// The number of an item pushed with [`item`].
fn number(bytes: &[u8]) -> u8 {
    match decode::<Item<'_>>(bytes).unwrap() {
        Item::Response { call, .. } => u8::try_from(call).unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

/// What an [`item`] costs the buffer.
fn item_cost() -> usize {
    let mut bytes = Vec::new();
    write_item(&mut bytes, &item(0)).unwrap();
    cost(bytes.len())
}

fn outbox(window: u64) -> Outbox {
    Outbox::new(1 << 20, window, OUTAGE)
}

fn push(out: &mut Outbox, to: &str, items: std::ops::Range<u8>, now: u64) {
    for n in items {
        assert!(out.push(&[id(to)], &item(n), false, now).unwrap().is_some());
    }
}

/// What `fill` frames at `now`, decoded.
fn fill(out: &mut Outbox, now: u64) -> Vec<Sent> {
    let mut buf = Vec::new();
    out.fill(&mut buf, EPOCH, now, false).unwrap();
    let mut frames = Vec::new();
    let mut rest = &buf[..];
    while let Some((prefix, after)) = rest.split_first_chunk::<4>() {
        let (body, after) = after.split_at(u32::from_le_bytes(*prefix) as usize);
        frames.push(match decode::<ToSwitch<'_>>(body).unwrap() {
            ToSwitch::Data { to, epoch, base, first, count, items } => {
                assert_eq!(epoch, EPOCH);
                let ranges = split_items(items, count).unwrap();
                let numbers = ranges.into_iter().map(|r| number(&items[r])).collect();
                Sent::Data(name(to), base, first, numbers)
            }
            ToSwitch::Ack { to, epoch, next } => Sent::Ack(name(to), epoch, next),
            ToSwitch::Resend { to, epoch, from } => Sent::Resend(name(to), epoch, from),
            other => panic!("unexpected {other:?}"),
        });
        rest = after;
    }
    frames
}

/// An outbox that sent events `0..n` to the connected router `b` at time 0.
fn sent_to_b(n: u8) -> Outbox {
    let mut out = outbox(16);
    out.up(id("b"), 0);
    push(&mut out, "b", 0..n, 0);
    assert_eq!(fill(&mut out, 0), [Sent::Data("b", 0, 0, (0..n).collect())]);
    out
}

#[test]
fn sends_in_order_within_the_window_and_frees_what_is_acknowledged() {
    let mut out = outbox(2);
    out.up(id("b"), 0);
    push(&mut out, "b", 0..5, 0);
    assert_eq!(fill(&mut out, 0), [Sent::Data("b", 0, 0, vec![0, 1])]);
    assert_eq!(fill(&mut out, 0), [], "the window is full");
    assert!(out.acked("b", 1, 5));
    assert_eq!(fill(&mut out, 5), [Sent::Data("b", 1, 2, vec![2])]);
    assert!(!out.acked("b", 1, 6), "an old acknowledgement frees nothing");
    assert!(out.acked("b", 3, 6));
    assert_eq!(fill(&mut out, 6), [Sent::Data("b", 3, 3, vec![3, 4])]);
    // An acknowledgement beyond what was kept stops at the end of the stream.
    assert!(out.acked("b", 99, 7));
    assert_eq!((out.buffered(), out.bytes), (0, 0));
    push(&mut out, "b", 5..6, 8);
    assert_eq!(fill(&mut out, 8), [Sent::Data("b", 5, 5, vec![5])]);
}

#[test]
fn events_for_a_router_that_is_away_wait_for_it() {
    let mut out = outbox(16);
    assert_eq!(out.push(&[id("b")], &item(0), false, 0).unwrap(), Some(false));
    out.up(id("c"), 0);
    assert_eq!(out.push(&[id("b"), id("c")], &item(1), false, 0).unwrap(), Some(true));
    assert_eq!(fill(&mut out, 0), [Sent::Data("c", 0, 0, vec![1])]);
    assert_eq!(out.unacknowledged(), 1);
    assert_eq!(out.up(id("b"), 1), 0, "nothing was in flight");
    assert_eq!(fill(&mut out, 1), [Sent::Data("b", 0, 0, vec![0, 1])]);
    out.down("b");
    push(&mut out, "b", 2..3, 2);
    assert_eq!(fill(&mut out, 2), []);
}

#[test]
fn resends_everything_unacknowledged_after_a_reconnection() {
    let mut out = sent_to_b(4);
    assert!(out.acked("b", 2, 1));
    out.disconnected();
    push(&mut out, "b", 4..5, 2);
    assert_eq!(fill(&mut out, 2), []);
    assert_eq!(out.unacknowledged(), 0, "nothing is kept for a connected router");
    let known = [id("b"), id("c")];
    assert_eq!(out.rejoin(&known, |id| id == "b", 3), 2, "2 and 3 were in flight");
    assert_eq!(out.in_flight("b"), 0);
    assert_eq!(fill(&mut out, 3), [Sent::Data("b", 2, 2, vec![2, 3, 4])]);
    assert_eq!(out.in_flight("b"), 3);
    assert_eq!(out.in_flight("c"), 0);
}

#[test]
fn a_resend_request_goes_back_to_the_gap_only() {
    let mut out = sent_to_b(5);
    assert!(out.acked("b", 1, 0));
    assert_eq!(out.resend("b", 3, 1), 2);
    assert_eq!(fill(&mut out, 1), [Sent::Data("b", 1, 3, vec![3, 4])]);
    // Below what was acknowledged: from the first unacknowledged one.
    assert_eq!(out.resend("b", 0, 2), 4);
    assert_eq!(fill(&mut out, 2), [Sent::Data("b", 1, 1, vec![1, 2, 3, 4])]);
    assert_eq!(out.resend("b", 9, 3), 0, "beyond the stream");
    assert_eq!(out.resend("c", 0, 3), 0, "an unknown router");
    assert_eq!(fill(&mut out, 3), []);
}

#[test]
fn what_stays_unacknowledged_beyond_the_outage_window_is_lost_and_counted() {
    let mut out = outbox(16);
    push(&mut out, "b", 0..2, 0);
    push(&mut out, "b", 2..3, 30_000);
    push(&mut out, "c", 3..4, 1_000);
    let kept = out.bytes;
    assert_eq!(out.expire(OUTAGE), Expired::default(), "not beyond the window yet");
    let expired = out.expire(OUTAGE + 1);
    assert_eq!(expired, Expired { lost: vec![(id("b"), 2)], resent: 0 });
    assert_eq!(out.bytes, kept - 2 * item_cost());
    assert_eq!(out.buffered(), 2);
    // The receiver learns from `base` that 0 and 1 were given up.
    out.up(id("b"), OUTAGE + 2);
    assert_eq!(fill(&mut out, OUTAGE + 2), [Sent::Data("b", 2, 2, vec![2])]);
    let mut expired = out.expire(OUTAGE + 30_001);
    expired.lost.sort();
    assert_eq!(expired, Expired { lost: vec![(id("b"), 1), (id("c"), 1)], resent: 0 });
    assert_eq!((out.buffered(), out.bytes), (0, 0));
}

#[test]
fn in_flight_events_without_progress_are_sent_again() {
    let mut out = sent_to_b(2);
    assert_eq!(out.expire(RETRANSMIT_MS), Expired::default());
    assert!(out.acked("b", 1, 1_000));
    assert_eq!(out.expire(RETRANSMIT_MS + 1), Expired::default(), "progress at 1 s");
    assert_eq!(out.expire(1_000 + RETRANSMIT_MS + 1).resent, 1);
    assert_eq!(fill(&mut out, 4_002), [Sent::Data("b", 1, 1, vec![1])]);
}

#[test]
fn acknowledgements_keep_the_newest_of_a_run_and_ride_along_with_data() {
    let mut out = outbox(16);
    out.ack(&id("a"), 5, 10, 100);
    out.ack(&id("a"), 5, 7, 100);
    let mut buf = Vec::new();
    assert_eq!(out.fill(&mut buf, EPOCH, 100, false).unwrap(), Some(100 + ACK_DELAY_MS));
    assert!(buf.is_empty(), "waits for data to ride along with");
    assert_eq!(fill(&mut out, 101), [Sent::Ack("a", 5, 10)]);
    // A new run of the origin replaces the old one's acknowledgement, even lower.
    out.ack(&id("a"), 5, 12, 200);
    out.ack(&id("a"), 6, 2, 200);
    out.up(id("b"), 200);
    push(&mut out, "b", 0..1, 200);
    out.ask_resend(id("c"), 9, 4);
    let sent = fill(&mut out, 200);
    assert_eq!(
        sent,
        [Sent::Resend("c", 9, 4), Sent::Data("b", 0, 0, vec![0]), Sent::Ack("a", 6, 2)]
    );
    // Leaving: the acknowledgements go at once.
    out.ack(&id("a"), 6, 3, 300);
    buf.clear();
    assert_eq!(out.fill(&mut buf, EPOCH, 300, true).unwrap(), None);
    assert!(!buf.is_empty());
}

#[test]
fn a_full_buffer_refuses_unless_forced() {
    let mut out = Outbox::new(2 * item_cost(), 16, OUTAGE);
    assert_eq!(out.push(&[id("b")], &item(0), false, 0).unwrap(), Some(false));
    assert_eq!(out.push(&[id("b")], &item(1), false, 0).unwrap(), Some(false));
    assert_eq!(out.push(&[id("b")], &item(2), false, 0).unwrap(), None);
    assert_eq!(out.push(&[id("b"), id("c")], &item(2), true, 0).unwrap(), Some(false));
    assert_eq!(out.bytes, 4 * item_cost());
    out.up(id("b"), 0);
    fill(&mut out, 0);
    assert!(out.acked("b", 3, 1));
    assert_eq!(out.bytes, item_cost(), "c's copy is left");
    assert_eq!(out.push(&[id("b")], &item(3), false, 1).unwrap(), Some(true));
    // An empty outbox takes even an item above the whole buffer.
    let mut out = Outbox::new(1, 16, OUTAGE);
    assert_eq!(out.push(&[id("b")], &item(0), false, 0).unwrap(), Some(false));
}

#[test]
fn a_router_forgotten_loses_what_it_did_not_acknowledge() {
    let mut out = sent_to_b(3);
    assert!(out.acked("b", 1, 0));
    assert_eq!(out.in_flight("b"), 2);
    assert_eq!(out.remove("b"), Some(2));
    assert_eq!(out.remove("b"), None);
    assert_eq!((out.buffered(), out.bytes), (0, 0));
}
