//! The outbox: every message for the coordinator gets the next sequence number and stays here until the
//! coordinator acknowledges it, so a broken connection loses nothing: a new session sends again everything
//! not yet acknowledged, and the coordinator drops what it already processed.
//!
//! With a spool folder, the outbox is also kept on disk ([`Spool`]), so a node restart loses nothing either:
//! the stream id and the unacknowledged messages are read back at start-up and sent again.
//!
//! The outbox is bounded. When full it drops, oldest first, a metrics report, else a container snapshot
//! (a newer one follows), and only when it holds nothing else an alert or result; every drop is counted
//! and logged, and the count travels to the coordinator in heartbeats.
//!
//! Every message is put within its bounds as it is queued ([`crate::bounds`]): nothing queued here can
//! exceed what the coordinator accepts, so no message can block the ones behind it.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use hemostat_proto::v1 as pb;
use hemostat_proto::v1::session_request::Body;
use tokio::sync::Notify;

use crate::bounds::{self, Cut, MessageBounds};
use crate::recent::RecentSet;
pub use crate::spool::SpoolError;
use crate::spool::{Damage, Opened, Spool};

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
    acked: u64,
    unacked: VecDeque<Sequenced>,
    dropped: u64,
    spool: Option<Spool>,
}

/// The bounded queue of messages awaiting acknowledgement.
pub struct Outbox {
    state: Mutex<State>,
    capacity: usize,
    stream_id: String,
    changed: Notify,
    bounds: MessageBounds,
    /// (container id, field) of the cuts already said to the coordinator, oldest first.
    noticed: Mutex<RecentSet<(String, &'static str)>>,
}

/// How many (container, field) cuts are remembered, so each is said to the coordinator once.
const REMEMBERED_CUTS: usize = 4096;

impl Outbox {
    /// An in-memory outbox holding at most `capacity` messages, with a new stream id.
    pub fn new(capacity: usize) -> Self {
        Self::build(capacity, new_stream_id(), 1, 0, VecDeque::new(), None)
    }

    /// An outbox kept in `dir` as well: opens what an earlier run left there (stream id, unacknowledged
    /// messages), or starts a new stream.
    pub fn open(dir: &Path, capacity: usize) -> Result<Self, SpoolError> {
        let Opened { spool, stream_id, acked, mut unacked, damaged, new_stream } = Spool::open(dir)?;
        // An earlier node may have spooled messages over today's bounds: bound them; one still too large (a
        // snapshot or metrics report of thousands of containers) is left out, as a newer one follows.
        let bounds = MessageBounds::default();
        unacked.retain_mut(|message| {
            bounds::bound(&mut message.body, &bounds);
            let fits = bounds::message_size(&message.body) <= bounds.message_bytes;
            if !fits {
                tracing::warn!(seq = message.seq, "left out a spooled message too large to send");
                crate::instruments::global().message_cut("message", 1);
            }
            fits
        });
        let resent = unacked.len() as u64;
        let mut dropped = 0;
        while unacked.len() > capacity.max(1) {
            make_room(&mut unacked);
            dropped += 1;
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                capacity,
                "the spool of an earlier run holds more than the capacity: dropped the oldest metrics first"
            );
        }
        let next_seq = unacked.back().map_or(acked + 1, |m| m.seq + 1);
        if !unacked.is_empty() {
            tracing::info!(messages = unacked.len(), dir = %dir.display(), "resuming the spool of an earlier run");
        }
        let outbox = Self::build(capacity, stream_id, next_seq, acked, unacked, Some(spool));
        if let Some(Damage { records, bytes }) = damaged {
            crate::instruments::global().spool_damaged(records);
            outbox.push(notice(
                pb::NoticeKind::SpoolDamaged,
                records,
                format!(
                    "the node skipped {records} damaged records ({}) when it read its spool at start; every \
                     intact record before and after them is kept",
                    crate::bounds::human_bytes(bytes as usize)
                ),
            ));
        }
        if let Some(why) = new_stream {
            outbox.push(notice(
                pb::NoticeKind::NewStream,
                resent,
                format!(
                    "{why}: the node started a new message stream ({}) and sends its {resent} spooled messages \
                     again, so none is dropped as a duplicate (some may repeat ones already recorded)",
                    outbox.stream_id
                ),
            ));
        }
        Ok(outbox)
    }

    fn build(
        capacity: usize,
        stream_id: String,
        next_seq: u64,
        acked: u64,
        unacked: VecDeque<Sequenced>,
        spool: Option<Spool>,
    ) -> Self {
        Outbox {
            state: Mutex::new(State { next_seq, acked, unacked, dropped: 0, spool }),
            capacity: capacity.max(1),
            stream_id,
            changed: Notify::new(),
            bounds: MessageBounds::default(),
            noticed: Mutex::new(RecentSet::new(REMEMBERED_CUTS)),
        }
    }

    /// The id of this message stream: sequence numbers are unique within it.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// Queues a message, within its bounds ([`crate::bounds`]): cut where it is over them, in parts when it
    /// is too large for one message; what was cut is counted and said to the coordinator in a notice.
    /// Returns the sequence number of its last part.
    pub fn push(&self, mut body: Body) -> u64 {
        let instruments = crate::instruments::global();
        let cuts = bounds::bound(&mut body, &self.bounds);
        let parts = bounds::split(body, self.bounds.part_bytes.min(self.bounds.message_bytes));
        if parts.len() > 1 {
            instruments.message_split();
        }
        let mut seq = 0;
        for part in parts {
            let size = bounds::message_size(&part);
            if size > self.bounds.message_bytes {
                // Cannot happen once bounded; never let one message block the ones behind it.
                tracing::error!(size, "a message is too large to send even within its bounds; left out");
                instruments.message_cut("message", 1);
                continue;
            }
            seq = self.push_one(part);
        }
        for cut in &cuts {
            instruments.message_cut(cut.field, cut.count);
        }
        for notice in self.new_notices(cuts) {
            self.push_one(notice);
        }
        seq
    }

    /// The notices for `cuts` not said before: one per container.
    fn new_notices(&self, cuts: Vec<Cut>) -> Vec<Body> {
        if cuts.is_empty() {
            return Vec::new();
        }
        let mut noticed = self.noticed.lock().expect("noticed lock");
        let mut by_container: Vec<(String, String, Vec<Cut>)> = Vec::new();
        for cut in cuts {
            if !noticed.insert((cut.container_id.clone(), cut.field)) {
                continue;
            }
            match by_container.iter_mut().find(|(id, _, _)| *id == cut.container_id) {
                Some((_, _, cuts)) => cuts.push(cut),
                None => by_container.push((cut.container_id.clone(), cut.container_name.clone(), vec![cut])),
            }
        }
        by_container
            .into_iter()
            .map(|(container_id, container_name, cuts)| {
                let whats: Vec<&str> = cuts.iter().map(|c| c.what.as_str()).collect();
                let of =
                    if container_name.is_empty() { String::new() } else { format!(" of container {container_name}") };
                let detail = format!(
                    "the node cut what it reports{of} to keep every message within the coordinator's limit: {}",
                    whats.join("; ")
                );
                tracing::warn!(container = %container_name.escape_debug(), %detail, "cut a report to its bounds");
                Body::Notice(pb::NodeNotice {
                    kind: pb::NoticeKind::Truncated as i32,
                    container_id,
                    container_name,
                    detail,
                    count: cuts.iter().map(|c| c.count).sum(),
                })
            })
            .collect()
    }

    /// Queues one message, within its bounds already, and returns its sequence number.
    fn push_one(&self, body: Body) -> u64 {
        crate::instruments::global().outgoing(&body);
        let seq = {
            let mut state = self.state.lock().expect("outbox lock");
            if state.unacked.len() >= self.capacity {
                let dropped = make_room(&mut state.unacked);
                state.dropped += 1;
                tracing::warn!(
                    seq = dropped,
                    total_dropped = state.dropped,
                    capacity = self.capacity,
                    "spool full: dropped an unacknowledged message (the coordinator has been unreachable too long)"
                );
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            let message = Sequenced { seq, body };
            if let Some(spool) = state.spool.as_mut() {
                spool.append(&message);
            }
            state.unacked.push_back(message);
            seq
        };
        self.changed.notify_waiters();
        seq
    }

    /// Forgets every message up to and including `seq`.
    pub fn ack(&self, seq: u64) {
        let mut state = self.state.lock().expect("outbox lock");
        // The coordinator repeats its latest acknowledgement with every heartbeat: nothing new to forget
        // or to write to the spool.
        if seq <= state.acked {
            return;
        }
        while state.unacked.front().is_some_and(|m| m.seq <= seq) {
            state.unacked.pop_front();
        }
        state.acked = state.acked.max(seq);
        let State { spool, unacked, acked, .. } = &mut *state;
        if let Some(spool) = spool.as_mut() {
            spool.acknowledged(*acked, unacked);
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

/// Drops one message to make room: the oldest metrics report, else the oldest snapshot, else the oldest
/// message. Returns the dropped sequence number.
fn make_room(unacked: &mut VecDeque<Sequenced>) -> Option<u64> {
    let position = |wanted: fn(&Body) -> bool| unacked.iter().position(|m| wanted(&m.body));
    let victim = position(|b| matches!(b, Body::Metrics(_)))
        .or_else(|| position(|b| matches!(b, Body::Snapshot(_))))
        .unwrap_or(0);
    unacked.remove(victim).map(|m| m.seq)
}

fn new_stream_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A notice about the node itself (no container).
fn notice(kind: pb::NoticeKind, count: u64, detail: String) -> Body {
    Body::Notice(pb::NodeNotice { kind: kind as i32, count, detail, ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hemostat_proto::v1::SessionRequest;
    use prost::Message;

    fn heartbeat() -> Body {
        Body::Heartbeat(pb::Heartbeat::default())
    }

    fn snapshot() -> Body {
        Body::Snapshot(pb::ContainerSnapshot::default())
    }

    fn metrics() -> Body {
        Body::Metrics(pb::MetricsReport::default())
    }

    fn alert(name: &str) -> Body {
        Body::HealthAlert(pb::HealthAlert {
            container: Some(pb::ContainerState { name: name.into(), ..Default::default() }),
            ..Default::default()
        })
    }

    fn seqs(outbox: &Outbox) -> Vec<u64> {
        outbox.after(0).iter().map(|m| m.seq).collect()
    }

    #[test]
    fn acknowledged_messages_leave_and_the_rest_replay_in_order() {
        let outbox = Outbox::new(10);
        for _ in 0..5 {
            outbox.push(heartbeat());
        }
        outbox.ack(2);
        assert_eq!(seqs(&outbox), [3, 4, 5]);
        assert_eq!(outbox.after(4).iter().map(|m| m.seq).collect::<Vec<_>>(), [5]);
        outbox.ack(5);
        assert!(outbox.is_empty());
        assert_eq!(outbox.push(heartbeat()), 6, "sequence numbers never repeat");
    }

    #[test]
    fn a_full_outbox_drops_metrics_then_snapshots_before_any_alert() {
        let outbox = Outbox::new(4);
        outbox.push(alert("a")); // 1
        outbox.push(snapshot()); // 2
        outbox.push(metrics()); // 3
        outbox.push(alert("b")); // 4
        outbox.push(alert("c")); // 5: drops the metrics (3)
        assert_eq!(seqs(&outbox), [1, 2, 4, 5]);
        outbox.push(alert("d")); // 6: drops the snapshot (2)
        assert_eq!(seqs(&outbox), [1, 4, 5, 6]);
        outbox.push(alert("e")); // 7: only alerts left: the oldest goes
        assert_eq!(seqs(&outbox), [4, 5, 6, 7]);
        assert_eq!(outbox.dropped(), 3);
    }

    #[test]
    fn the_spool_gives_back_the_stream_and_what_was_not_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let stream_id = {
            let outbox = Outbox::open(dir.path(), 100).unwrap();
            for name in ["a", "b", "c", "d"] {
                outbox.push(alert(name));
            }
            outbox.ack(2);
            outbox.stream_id().to_owned()
        };
        let reopened = Outbox::open(dir.path(), 100).unwrap();
        assert_eq!(reopened.stream_id(), stream_id, "the stream continues, so the coordinator can de-duplicate");
        let names: Vec<String> = reopened
            .after(0)
            .into_iter()
            .map(|m| match m.body {
                Body::HealthAlert(a) => a.container.unwrap().name,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["c", "d"]);
        assert_eq!(reopened.push(alert("e")), 5, "numbering continues after the last spooled message");
        reopened.ack(5);
        assert!(Outbox::open(dir.path(), 100).unwrap().is_empty(), "everything acknowledged");
    }

    #[test]
    fn a_torn_last_record_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        {
            let outbox = Outbox::open(dir.path(), 100).unwrap();
            outbox.push(alert("a"));
            outbox.push(alert("b"));
        }
        let log = dir.path().join("spool.log");
        let len = std::fs::metadata(&log).unwrap().len();
        let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        file.set_len(len - 3).unwrap();
        let reopened = Outbox::open(dir.path(), 100).unwrap().after(0);
        assert_eq!(reopened.iter().filter(|m| matches!(m.body, Body::HealthAlert(_))).count(), 1);
        assert!(
            matches!(&reopened[1].body, Body::Notice(n) if n.kind() == pb::NoticeKind::SpoolDamaged && n.count == 1),
            "the torn record is reported: {reopened:?}"
        );
    }

    fn names(messages: &[Sequenced]) -> Vec<String> {
        messages
            .iter()
            .filter_map(|m| match &m.body {
                Body::HealthAlert(a) => Some(a.container.clone().unwrap().name),
                _ => None,
            })
            .collect()
    }

    fn notices(messages: &[Sequenced]) -> Vec<pb::NodeNotice> {
        messages
            .iter()
            .filter_map(|m| match &m.body {
                Body::Notice(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_untrusted_acknowledgement_state_starts_a_new_stream_and_keeps_every_message() {
        for damage in ["", "  \n", "seven", "\u{0}\u{0}"] {
            let dir = tempfile::tempdir().unwrap();
            let old = {
                let outbox = Outbox::open(dir.path(), 100).unwrap();
                for name in ["a", "b", "c"] {
                    outbox.push(alert(name));
                }
                outbox.ack(1);
                outbox.stream_id().to_owned()
            };
            std::fs::write(dir.path().join("acked"), damage).unwrap();
            let reopened = Outbox::open(dir.path(), 100).unwrap();
            assert_ne!(reopened.stream_id(), old, "{damage:?}: a new stream, so no number is taken for a duplicate");
            let messages = reopened.after(0);
            assert_eq!(names(&messages), ["a", "b", "c"], "{damage:?}: everything spooled is sent again");
            let notice = &notices(&messages)[0];
            assert_eq!(notice.kind(), pb::NoticeKind::NewStream);
            assert!(notice.detail.contains("acknowledgement state is"), "{}", notice.detail);
            let next = reopened.push(alert("d"));
            assert!(next > messages.last().unwrap().seq, "numbers go on after the spooled ones");
            drop(reopened);
            assert_eq!(
                Outbox::open(dir.path(), 100).unwrap().stream_id(),
                Outbox::open(dir.path(), 100).unwrap().stream_id(),
                "the new stream is kept"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let old = {
            let outbox = Outbox::open(dir.path(), 100).unwrap();
            outbox.push(alert("a"));
            outbox.ack(1);
            outbox.stream_id().to_owned()
        };
        std::fs::remove_file(dir.path().join("acked")).unwrap();
        let reopened = Outbox::open(dir.path(), 100).unwrap();
        assert_ne!(reopened.stream_id(), old, "a missing acked file after everything was acknowledged");
        assert!(notices(&reopened.after(0))[0].detail.contains("missing"));
    }

    #[test]
    fn a_damaged_record_in_the_middle_loses_only_itself_and_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let stream = {
            let outbox = Outbox::open(dir.path(), 100).unwrap();
            for name in ["a", "b", "c", "d"] {
                outbox.push(alert(name));
            }
            outbox.stream_id().to_owned()
        };
        let log = dir.path().join("spool.log");
        let mut bytes = std::fs::read(&log).unwrap();
        // The name field of container b: tag 2, length 1, "b".
        let at = bytes.windows(3).position(|w| w == [0x12, 1, b'b']).unwrap() + 2;
        bytes[at] = b'B';
        std::fs::write(&log, &bytes).unwrap();
        let reopened = Outbox::open(dir.path(), 100).unwrap();
        assert_eq!(reopened.stream_id(), stream, "the acknowledgement state is intact: the stream goes on");
        let messages = reopened.after(0);
        assert_eq!(names(&messages), ["a", "c", "d"]);
        let notice = &notices(&messages)[0];
        assert_eq!((notice.kind(), notice.count), (pb::NoticeKind::SpoolDamaged, 1));
        assert!(notice.detail.contains("skipped 1 damaged records"), "{}", notice.detail);
    }

    #[test]
    fn a_spool_of_the_earlier_format_is_read_once_and_converted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stream"), "0123456789abcdef").unwrap();
        std::fs::write(dir.path().join("acked"), "1").unwrap();
        let mut v1 = Vec::new();
        for (seq, name) in [(1, "a"), (2, "b"), (3, "c")] {
            let record = SessionRequest { seq, body: Some(alert(name)) }.encode_to_vec();
            v1.extend((record.len() as u32).to_le_bytes());
            v1.extend(record);
        }
        std::fs::write(dir.path().join("spool.log"), v1).unwrap();
        let reopened = Outbox::open(dir.path(), 100).unwrap();
        assert_eq!(reopened.stream_id(), "0123456789abcdef");
        assert_eq!(names(&reopened.after(0)), ["b", "c"]);
        assert!(std::fs::read(dir.path().join("spool.log")).unwrap().starts_with(&crate::spool::format::FILE_HEADER));
        drop(reopened);
        assert_eq!(names(&Outbox::open(dir.path(), 100).unwrap().after(0)), ["b", "c"], "read back in the new format");
    }

    #[test]
    fn an_oversized_report_is_cut_or_split_and_the_cut_said_once() {
        // Room for both snapshots' parts (of at most 16 KiB: about 190 each).
        let outbox = Outbox::new(1_000);
        let big = pb::ContainerState {
            id: "big".into(),
            name: "big".into(),
            labels: [("blob".to_owned(), "x".repeat(4_500_000))].into(),
            ..Default::default()
        };
        let many: Vec<pb::ContainerState> = (0..3000)
            .map(|i| pb::ContainerState {
                id: format!("c{i}"),
                name: format!("c{i}"),
                labels: [("l".to_owned(), "v".repeat(1000))].into(),
                ..Default::default()
            })
            .collect();
        for _ in 0..2 {
            let containers = [vec![big.clone()], many.clone()].concat();
            outbox.push(Body::Snapshot(pb::ContainerSnapshot { containers, ..Default::default() }));
        }
        let messages = outbox.after(0);
        for message in &messages {
            assert!(crate::bounds::message_size(&message.body) <= 1 << 20);
        }
        let largest = messages.iter().map(|m| crate::bounds::message_size(&m.body)).max().unwrap();
        assert!(largest <= 16 << 10, "parts of at most 16 KiB: {largest}");
        let parts: Vec<&pb::ContainerSnapshot> =
            messages.iter().filter_map(|m| if let Body::Snapshot(s) = &m.body { Some(s) } else { None }).collect();
        assert!(parts.len() >= 6, "two snapshots of about 3 MB, in parts: {}", parts.len());
        assert_eq!(parts.iter().map(|p| p.containers.len()).sum::<usize>(), 2 * 3001);
        assert!(parts[0].containers[0].labels["blob"].ends_with("…[truncated 4.5 MB]"));
        let notices = notices(&messages);
        assert_eq!(notices.len(), 1, "said once, not at every snapshot");
        assert_eq!((notices[0].kind(), notices[0].container_name.as_str()), (pb::NoticeKind::Truncated, "big"));
        assert!(notices[0].detail.contains("label \"blob\"'s value cut by 4.5 MB"), "{}", notices[0].detail);
    }

    #[test]
    fn an_oversized_message_left_by_an_earlier_node_is_bounded_when_read_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stream"), "0123456789abcdef").unwrap();
        std::fs::write(dir.path().join("acked"), "0").unwrap();
        let state = pb::ContainerState {
            id: "big".into(),
            name: "big".into(),
            labels: [("blob".to_owned(), "x".repeat(4_500_000))].into(),
            ..Default::default()
        };
        let snapshot = Body::Snapshot(pb::ContainerSnapshot { containers: vec![state], ..Default::default() });
        let record = SessionRequest { seq: 1, body: Some(snapshot) }.encode_to_vec();
        let mut v1 = (record.len() as u32).to_le_bytes().to_vec();
        v1.extend(record);
        std::fs::write(dir.path().join("spool.log"), v1).unwrap();
        let messages = Outbox::open(dir.path(), 100).unwrap().after(0);
        let Body::Snapshot(snapshot) = &messages[0].body else { panic!("{:?}", messages[0]) };
        assert!(snapshot.containers[0].labels["blob"].ends_with("…[truncated 4.5 MB]"));
        assert!(crate::bounds::message_size(&messages[0].body) < 64 << 10);
    }
}
