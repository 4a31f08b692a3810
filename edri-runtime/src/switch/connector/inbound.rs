//! What this router knows of another router's stream to it: which run of that router (its
//! epoch) and the next event expected. It decides what to do with each `Data` frame.
//!
//! Within a run, events are taken in order exactly once: a frame ahead of the next expected
//! event is a gap (one resend request per gap), events already taken are duplicates. A newer
//! run starts a new stream (at the frame's `base`); frames of an older run are stale. `base`
//! above the next expected event means the sender gave events up (beyond its outage window):
//! the stream goes on from there.
//!
//! No I/O and no clock here.

/// The numbering of one `Data` frame: the sender's run, everything below `base` acknowledged
/// or given up by the sender, and items `first..first + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Numbers {
    pub(super) epoch: u64,
    pub(super) base: u64,
    pub(super) first: u64,
    pub(super) count: u64,
}

/// What to do with a frame's items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// The items are new from item `skip` on, whose sequence is `seq`: deliver them.
    Deliver { skip: u64, seq: u64 },
    /// The frame starts beyond the next expected event: drop it; `ask` is where the sender
    /// should send again from, once per gap.
    Gap { ask: Option<u64> },
    /// Every item was taken before: the acknowledgement may have been lost, say it again.
    Duplicate,
    /// From an older run of the sender: drop it.
    Stale,
    /// New items, but this router is too far behind delivering: drop them, the sender sends
    /// them again.
    Overloaded,
}

/// The decision on one frame, and what else it told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Verdict {
    pub(super) decision: Decision,
    /// Items of the frame taken before.
    pub(super) duplicates: u64,
    /// The first frame of a run of the sender: its stream starts at the frame's `base`.
    pub(super) new_run: bool,
    /// A new run, and an older one was seen: the sender restarted.
    pub(super) restarted: bool,
    /// The sender gave up events this router had not taken.
    pub(super) given_up: bool,
}

/// One other router's stream to this router.
#[derive(Debug, Default)]
pub(super) struct Inbound {
    /// The sender's run (0 before the first frame).
    epoch: u64,
    /// The next sequence to take (`None` until the first frame of a run: then its `base`).
    expected: Option<u64>,
    /// The gap already reported, so that one gap asks for one resend.
    nacked: Option<u64>,
}

impl Inbound {
    /// Decides on a frame numbered `n`; `overloaded` tells whether this router is too far
    /// behind to take new items now.
    pub(super) fn receive(&mut self, n: Numbers, overloaded: bool) -> Verdict {
        let mut verdict = Verdict {
            decision: Decision::Stale,
            duplicates: 0,
            new_run: false,
            restarted: false,
            given_up: false,
        };
        if n.epoch < self.epoch {
            return verdict;
        }
        if n.epoch > self.epoch {
            verdict.new_run = true;
            verdict.restarted = self.epoch != 0;
            *self = Self { epoch: n.epoch, expected: None, nacked: None };
        }
        let expected = *self.expected.get_or_insert(n.base);
        // Below `base` the sender gave up or was told it was delivered: never wait for it.
        verdict.given_up = n.base > expected;
        let expected = expected.max(n.base);
        self.expected = Some(expected);
        if n.first > expected {
            let ask = if self.nacked == Some(expected) {
                None
            } else {
                self.nacked = Some(expected);
                Some(expected)
            };
            verdict.decision = Decision::Gap { ask };
            return verdict;
        }
        let skip = (expected - n.first).min(n.count);
        verdict.duplicates = skip;
        verdict.decision = if skip == n.count {
            Decision::Duplicate
        } else if overloaded {
            Decision::Overloaded
        } else {
            self.expected = Some(n.first + n.count);
            self.nacked = None;
            Decision::Deliver { skip, seq: n.first + skip }
        };
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(epoch: u64, base: u64, first: u64, count: u64) -> Numbers {
        Numbers { epoch, base, first, count }
    }

    /// Only the decision, for frames that tell nothing else.
    fn decide(stream: &mut Inbound, n: Numbers) -> Decision {
        let verdict = stream.receive(n, false);
        assert!(!verdict.restarted && !verdict.given_up, "{verdict:?}");
        verdict.decision
    }

    fn deliver(skip: u64, seq: u64) -> Decision {
        Decision::Deliver { skip, seq }
    }

    #[test]
    fn the_first_frame_starts_the_stream_at_its_base() {
        let mut stream = Inbound::default();
        let verdict = stream.receive(frame(7, 40, 40, 3), false);
        let first = Verdict {
            decision: deliver(0, 40),
            duplicates: 0,
            new_run: true,
            restarted: false,
            given_up: false,
        };
        assert_eq!(verdict, first);
        assert_eq!(decide(&mut stream, frame(7, 40, 43, 2)), deliver(0, 43));
        assert_eq!(stream.expected, Some(45));
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let mut stream = Inbound::default();
        assert_eq!(decide(&mut stream, frame(1, 0, 0, 5)), deliver(0, 0));
        // Everything again: a duplicate, to be acknowledged again.
        let again = stream.receive(frame(1, 0, 0, 5), false);
        assert_eq!((again.decision, again.duplicates), (Decision::Duplicate, 5));
        // Overlapping: the new tail only.
        let overlap = stream.receive(frame(1, 0, 3, 4), false);
        assert_eq!((overlap.decision, overlap.duplicates), (deliver(2, 5), 2));
        assert_eq!(stream.expected, Some(7));
        let empty = stream.receive(frame(1, 7, 7, 0), false);
        assert_eq!((empty.decision, empty.duplicates), (Decision::Duplicate, 0));
    }

    #[test]
    fn a_gap_asks_for_one_resend_and_reordered_frames_wait_for_it() {
        let mut stream = Inbound::default();
        assert_eq!(decide(&mut stream, frame(1, 0, 0, 3)), deliver(0, 0));
        // 3..5 went missing; 5..7 and 7..9 arrive first.
        assert_eq!(decide(&mut stream, frame(1, 0, 5, 2)), Decision::Gap { ask: Some(3) });
        assert_eq!(decide(&mut stream, frame(1, 0, 7, 2)), Decision::Gap { ask: None });
        assert_eq!(stream.expected, Some(3), "nothing beyond the gap is taken");
        // The resend: 3.. in order, then the rest.
        assert_eq!(decide(&mut stream, frame(1, 0, 3, 4)), deliver(0, 3));
        assert_eq!(decide(&mut stream, frame(1, 0, 7, 2)), deliver(0, 7));
        // A new gap asks again, even from where the last one did.
        assert_eq!(decide(&mut stream, frame(1, 0, 10, 1)), Decision::Gap { ask: Some(9) });
        assert_eq!(decide(&mut stream, frame(1, 0, 9, 2)), deliver(0, 9));
        assert_eq!(decide(&mut stream, frame(1, 0, 12, 1)), Decision::Gap { ask: Some(11) });
    }

    #[test]
    fn a_new_run_restarts_the_stream_and_the_old_one_is_stale() {
        let mut stream = Inbound::default();
        assert_eq!(decide(&mut stream, frame(1, 0, 0, 4)), deliver(0, 0));
        let verdict = stream.receive(frame(2, 0, 0, 2), false);
        assert_eq!(verdict.decision, deliver(0, 0));
        assert!(verdict.new_run && verdict.restarted && !verdict.given_up);
        assert_eq!(verdict.duplicates, 0, "the new run's 0 is not the old run's 0");
        let old = stream.receive(frame(1, 0, 4, 1), false);
        assert_eq!(old.decision, Decision::Stale);
        assert_eq!(old.duplicates, 0);
        assert!(!old.new_run);
        assert_eq!(decide(&mut stream, frame(2, 0, 2, 1)), deliver(0, 2));
        // A gap reported in one run is asked for again in the next.
        assert_eq!(decide(&mut stream, frame(2, 0, 5, 1)), Decision::Gap { ask: Some(3) });
        let verdict = stream.receive(frame(3, 3, 5, 1), false);
        assert!(verdict.new_run && verdict.restarted);
        assert_eq!(verdict.decision, Decision::Gap { ask: Some(3) });
    }

    #[test]
    fn events_given_up_by_the_sender_are_skipped() {
        let mut stream = Inbound::default();
        assert_eq!(decide(&mut stream, frame(1, 0, 0, 3)), deliver(0, 0));
        // 3..7 were given up by the sender (beyond its outage window).
        let verdict = stream.receive(frame(1, 7, 7, 2), false);
        assert_eq!(verdict.decision, deliver(0, 7));
        assert!(verdict.given_up && !verdict.new_run);
        // Given up while a gap was open: the gap is gone too.
        assert_eq!(decide(&mut stream, frame(1, 9, 12, 1)), Decision::Gap { ask: Some(9) });
        let verdict = stream.receive(frame(1, 12, 12, 1), false);
        assert_eq!((verdict.decision, verdict.given_up), (deliver(0, 12), true));
    }

    #[test]
    fn an_overloaded_receiver_takes_nothing_new() {
        let mut stream = Inbound::default();
        assert_eq!(decide(&mut stream, frame(1, 0, 0, 2)), deliver(0, 0));
        let verdict = stream.receive(frame(1, 0, 1, 3), true);
        assert_eq!((verdict.decision, verdict.duplicates), (Decision::Overloaded, 1));
        assert_eq!(stream.expected, Some(2));
        // Duplicates are still recognised as such.
        assert_eq!(stream.receive(frame(1, 0, 0, 2), true).decision, Decision::Duplicate);
        assert_eq!(decide(&mut stream, frame(1, 0, 1, 3)), deliver(1, 2));
    }
}
