//! The outbox: every message for the coordinator gets the next sequence number and stays here until the
//! coordinator acknowledges it, so a broken connection loses nothing: a new session sends again everything
//! not yet acknowledged, and the coordinator drops what it already processed.
//!
//! The outbox is bounded; when full, it drops its oldest container snapshot first (a newer one follows) and
//! only then the oldest message, and counts and logs what it dropped.

use std::collections::VecDeque;
use std::sync::Mutex;

use hemostat_proto::v1::session_request::Body;
use tokio::sync::Notify;

/// Messages kept when the configuration does not say.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// A sequenced, unacknowledged message.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequenced {
    /// Its sequence number (from 1).
    pub seq: u64,
    /// The message.
    pub body: Body,
}

struct State {
    next_seq: u64,
    unacked: VecDeque<Sequenced>,
    dropped: u64,
}

/// The bounded queue of messages awaiting acknowledgement.
pub struct Outbox {
    state: Mutex<State>,
    capacity: usize,
    changed: Notify,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` messages (at least 1).
    pub fn new(capacity: usize) -> Self {
        Outbox {
            state: Mutex::new(State { next_seq: 1, unacked: VecDeque::new(), dropped: 0 }),
            capacity: capacity.max(1),
            changed: Notify::new(),
        }
    }

    /// Queues a message and returns its sequence number.
    pub fn push(&self, body: Body) -> u64 {
        let seq = {
            let mut state = self.state.lock().expect("outbox lock");
            if state.unacked.len() >= self.capacity {
                let victim = state.unacked.iter().position(|m| matches!(m.body, Body::Snapshot(_))).unwrap_or(0);
                let dropped = state.unacked.remove(victim).map(|m| m.seq);
                state.dropped += 1;
                tracing::warn!(
                    seq = dropped,
                    total_dropped = state.dropped,
                    capacity = self.capacity,
                    "outbox full: dropped an unacknowledged message"
                );
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            state.unacked.push_back(Sequenced { seq, body });
            seq
        };
        self.changed.notify_waiters();
        seq
    }

    /// Forgets every message up to and including `seq`.
    pub fn ack(&self, seq: u64) {
        let mut state = self.state.lock().expect("outbox lock");
        while state.unacked.front().is_some_and(|m| m.seq <= seq) {
            state.unacked.pop_front();
        }
    }

    /// The unacknowledged messages numbered above `seq`, oldest first.
    pub fn after(&self, seq: u64) -> Vec<Sequenced> {
        let state = self.state.lock().expect("outbox lock");
        state.unacked.iter().filter(|m| m.seq > seq).cloned().collect()
    }

    /// How many messages await acknowledgement.
    pub fn len(&self) -> usize {
        self.state.lock().expect("outbox lock").unacked.len()
    }

    /// Whether nothing awaits acknowledgement.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many messages were dropped because the outbox was full.
    pub fn dropped(&self) -> u64 {
        self.state.lock().expect("outbox lock").dropped
    }

    /// Completes after the next `push`. Create the future before checking for messages, so none is missed.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hemostat_proto::v1 as pb;

    fn heartbeat() -> Body {
        Body::Heartbeat(pb::Heartbeat::default())
    }

    fn snapshot() -> Body {
        Body::Snapshot(pb::ContainerSnapshot::default())
    }

    #[test]
    fn acknowledged_messages_leave_and_the_rest_replay_in_order() {
        let outbox = Outbox::new(10);
        for _ in 0..5 {
            outbox.push(heartbeat());
        }
        outbox.ack(2);
        assert_eq!(outbox.after(0).iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(outbox.after(4).iter().map(|m| m.seq).collect::<Vec<_>>(), [5]);
        outbox.ack(5);
        assert!(outbox.is_empty());
        assert_eq!(outbox.push(heartbeat()), 6, "sequence numbers never repeat");
    }

    #[test]
    fn a_full_outbox_drops_an_old_snapshot_before_anything_else() {
        let outbox = Outbox::new(3);
        outbox.push(heartbeat());
        outbox.push(snapshot());
        outbox.push(heartbeat());
        outbox.push(heartbeat());
        assert_eq!(outbox.after(0).iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 3, 4]);
        outbox.push(heartbeat());
        assert_eq!(outbox.after(0).iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 5]);
        assert_eq!(outbox.dropped(), 2);
    }
}
