use super::*;

#[test]
fn lanes_serve_lower_first_and_fifo_within() {
    let mut lanes = Lanes::new(100);
    let order = [(3, 0), (1, 1), (3, 2), (0, 3), (1, 4), (0, 5)];
    for (priority, handler) in order {
        let mut e = Envelope::stop();
        e.priority = priority;
        e.handler = handler;
        lanes.push(e);
    }
    let out: Vec<(u8, u16)> =
        std::iter::from_fn(|| lanes.pop()).map(|e| (e.priority, e.handler)).collect();
    assert_eq!(out, [(0, 3), (0, 5), (1, 1), (1, 4), (3, 0), (3, 2)]);
    assert!(lanes.pop().is_none());
}

#[tokio::test]
async fn a_closed_mailbox_refuses_new_events_and_counts_what_it_drops() {
    for priority in [false, true] {
        let (tx, rx) = channel(8);
        let mut mailbox = Mailbox::new(rx, priority);
        assert_eq!((tx.capacity(), tx.max_capacity()), (8, 8), "no channel yet");
        tx.send(Envelope::single(0, 0, 1u32)).await.unwrap();
        tx.send(Envelope::stop()).await.unwrap();
        tx.send(Envelope::single(0, 0, 2u32)).await.unwrap();
        mailbox.close();
        assert!(tx.try_send(Envelope::single(0, 0, 3u32)).is_err(), "closed");
        assert!(mailbox.next().await.is_some());
        assert_eq!(mailbox.discard(), 1, "one event left besides the stop envelope");
        assert!(mailbox.next().await.is_none());
    }
    // Never sent anything: closing creates the channel only to refuse senders.
    let (tx, rx) = channel(8);
    let mut mailbox = Mailbox::new(rx, false);
    assert_eq!(mailbox.discard(), 0);
    assert!(tx.try_send(Envelope::single(0, 0, 1u32)).is_err(), "closed");
}

#[tokio::test]
async fn a_sender_waits_for_room_and_gets_the_freed_slot() {
    let (tx, rx) = channel(2);
    let mut mailbox = Mailbox::new(rx, false);
    tx.try_send(Envelope::single(0, 0, 1u32)).unwrap();
    tx.try_send(Envelope::single(0, 0, 2u32)).unwrap();
    assert!(matches!(tx.try_send(Envelope::single(0, 0, 3u32)), Err(TrySendError::Full(_))));
    assert_eq!(tx.capacity(), 0);
    let waiting = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(Envelope::single(7, 0, 3u32)).await.is_ok() }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "full: the sender waits");
    let first = mailbox.next().await.unwrap();
    assert_eq!(first.handler, 0);
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(10), waiting).await.unwrap().unwrap()
    );
    mailbox.next().await.unwrap();
    assert_eq!(mailbox.next().await.unwrap().handler, 7, "the waiting sender's envelope came last");
    assert_eq!(tx.capacity(), 2);
}

#[tokio::test]
async fn closing_wakes_the_waiting_senders_with_an_error() {
    let (tx, rx) = channel(1);
    let mut mailbox = Mailbox::new(rx, false);
    tx.try_send(Envelope::single(0, 0, 1u32)).unwrap();
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(Envelope::single(0, 0, 2u32)).await.is_err() })
        })
        .collect();
    tokio::task::yield_now().await;
    mailbox.close();
    for waiter in waiters {
        let refused = tokio::time::timeout(std::time::Duration::from_secs(10), waiter);
        assert!(refused.await.unwrap().unwrap(), "refused once closed");
    }
    assert!(mailbox.next().await.is_some(), "what was queued before is still handed out");
    assert!(mailbox.next().await.is_none());
}

#[tokio::test]
async fn a_dropped_mailbox_refuses_senders() {
    let (tx, rx) = channel(1);
    tx.try_send(Envelope::single(0, 0, 1u32)).unwrap();
    let waiter = tokio::spawn({
        let tx = tx.clone();
        async move { tx.send(Envelope::single(0, 0, 2u32)).await.is_err() }
    });
    tokio::task::yield_now().await;
    drop(Mailbox::new(rx, false));
    let refused = tokio::time::timeout(std::time::Duration::from_secs(10), waiter);
    assert!(refused.await.unwrap().unwrap());
    assert!(matches!(tx.try_send(Envelope::single(0, 0, 3u32)), Err(TrySendError::Closed(_))));
    assert_eq!(tx.lost(), 1, "the envelope queued when the mailbox was dropped is counted");
}

#[tokio::test]
async fn reservations_take_room_and_give_it_back_unused() {
    let (tx, rx) = channel(2);
    let mut mailbox = Mailbox::new(rx, false);
    let a = tx.try_reserve().unwrap();
    let b = tx.try_reserve().unwrap();
    assert!(matches!(tx.try_reserve(), Err(TrySendError::Full(()))));
    drop(a);
    assert_eq!(tx.capacity(), 1);
    b.send(Envelope::single(5, 0, 1u32));
    assert_eq!(mailbox.next().await.unwrap().handler, 5);
    assert_eq!(tx.capacity(), 2);
    // A reservation filled after the manager's task is gone is counted, not silently dropped.
    let late = tx.try_reserve().unwrap();
    drop(mailbox);
    late.send(Envelope::single(0, 0, 2u32));
    assert_eq!(tx.lost(), 1);
}

/// Many senders on several threads into a small mailbox: nothing is lost, nothing waits
/// forever, and the mailbox never holds more than its capacity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_never_overfill_and_all_get_through() {
    const SENDERS: u32 = 8;
    const EACH: u32 = 2_000;
    let (tx, rx) = channel(4);
    let mut mailbox = Mailbox::new(rx, false);
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let tx = tx.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    let envelope = Envelope::single(s as u16, 0, i);
                    if i % 3 == 0 {
                        // Some through reservations, as `try_notify` does.
                        loop {
                            if let Ok(permit) = tx.try_reserve() {
                                permit.send(envelope);
                                break;
                            }
                            tokio::task::yield_now().await;
                        }
                    } else {
                        tx.send(envelope).await.unwrap();
                    }
                }
            })
        })
        .collect();
    let mut next = vec![0u32; SENDERS as usize];
    let deadline = std::time::Duration::from_secs(60);
    for _ in 0..SENDERS * EACH {
        assert!(tx.0.taken() <= 4, "{} slots taken", tx.0.taken());
        let envelope = tokio::time::timeout(deadline, mailbox.next()).await.unwrap().unwrap();
        next[usize::from(envelope.handler)] += 1;
    }
    for sender in senders {
        sender.await.unwrap();
    }
    assert_eq!(next, vec![EACH; SENDERS as usize]);
    assert_eq!(tx.capacity(), 4);
}
