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

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use hemostat_proto::v1::SessionRequest;
use hemostat_proto::v1::session_request::Body;
use prost::Message;
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

/// Why the spool cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Reading or writing the spool folder failed.
    #[error("spool {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
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
}

impl Outbox {
    /// An in-memory outbox holding at most `capacity` messages, with a new stream id.
    pub fn new(capacity: usize) -> Self {
        Self::build(capacity, new_stream_id(), 1, 0, VecDeque::new(), None)
    }

    /// An outbox kept in `dir` as well: opens what an earlier run left there (stream id, unacknowledged
    /// messages), or starts a new stream.
    pub fn open(dir: &Path, capacity: usize) -> Result<Self, SpoolError> {
        let (spool, stream_id, acked, mut unacked) = Spool::open(dir)?;
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
        Ok(Self::build(capacity, stream_id, next_seq, acked, unacked, Some(spool)))
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
        }
    }

    /// The id of this message stream: sequence numbers are unique within it.
    pub fn stream_id(&self) -> &str {
        &self.stream_id
    }

    /// Queues a message and returns its sequence number.
    pub fn push(&self, body: Body) -> u64 {
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

/// The outbox on disk: `stream` (the stream id), `acked` (the highest acknowledged sequence number) and
/// `spool.log` (length-prefixed protobuf `SessionRequest`s). Every record is written at once; alerts,
/// results and lifecycle events are also synced to disk before they are sent; the log is rewritten with only the unacknowledged messages once enough of it is
/// acknowledged.
pub struct Spool {
    dir: PathBuf,
    log: BufWriter<File>,
    /// Bytes in the log.
    written: u64,
    /// Bytes in the log right after the last rewrite.
    base: u64,
}

/// Rewrite the log once this many bytes were appended since the last rewrite.
const COMPACT_AFTER_BYTES: u64 = 4 << 20;

impl Spool {
    fn open(dir: &Path) -> Result<(Spool, String, u64, VecDeque<Sequenced>), SpoolError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SpoolError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let stream_path = dir.join("stream");
        let stream_id = match std::fs::read_to_string(&stream_path) {
            Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
            _ => {
                let id = new_stream_id();
                write_synced(&stream_path, id.as_bytes()).map_err(io(&stream_path))?;
                id
            }
        };
        let acked_path = dir.join("acked");
        let acked = std::fs::read_to_string(&acked_path).ok().and_then(|a| a.trim().parse().ok()).unwrap_or(0);
        let log_path = dir.join("spool.log");
        let mut unacked = VecDeque::new();
        if let Ok(file) = File::open(&log_path) {
            let mut reader = BufReader::new(file);
            loop {
                let mut len = [0u8; 4];
                if reader.read_exact(&mut len).is_err() {
                    break;
                }
                let mut buf = vec![0u8; u32::from_le_bytes(len) as usize];
                if reader.read_exact(&mut buf).is_err() {
                    tracing::warn!(path = %log_path.display(), "the spool ends in a torn record (a crash while writing); ignoring it");
                    break;
                }
                match SessionRequest::decode(buf.as_slice()) {
                    Ok(SessionRequest { seq, body: Some(body) }) if seq > acked => {
                        unacked.push_back(Sequenced { seq, body })
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(path = %log_path.display(), %error, "a damaged spool record; ignoring the rest");
                        break;
                    }
                }
            }
        }
        let (log, written) = rewrite(dir, acked, &unacked).map_err(io(&log_path))?;
        let spool = Spool { dir: dir.to_owned(), log, written, base: written };
        Ok((spool, stream_id, acked, unacked))
    }

    fn append(&mut self, message: &Sequenced) {
        let record = SessionRequest { seq: message.seq, body: Some(message.body.clone()) }.encode_to_vec();
        let durable = matches!(
            message.body,
            Body::HealthAlert(_) | Body::CommandResult(_) | Body::Resolved(_) | Body::ContainerEvent(_)
        );
        let result = (|| {
            self.log.write_all(&(record.len() as u32).to_le_bytes())?;
            self.log.write_all(&record)?;
            // Every record reaches the file (one write); alerts, results and lifecycle events also reach the
            // disk before they are sent.
            self.log.flush()?;
            if durable {
                self.log.get_ref().sync_data()?;
            }
            std::io::Result::Ok(())
        })();
        self.written += 4 + record.len() as u64;
        if let Err(error) = result {
            tracing::error!(%error, dir = %self.dir.display(), "cannot write the spool; a node restart may lose this message");
        }
    }

    fn acknowledged(&mut self, acked: u64, unacked: &VecDeque<Sequenced>) {
        let compact = (unacked.is_empty() && self.written > 0) || self.written >= self.base + COMPACT_AFTER_BYTES;
        let result = if compact {
            rewrite(&self.dir, acked, unacked).map(|(log, written)| {
                self.log = log;
                self.written = written;
                self.base = written;
            })
        } else {
            std::fs::write(self.dir.join("acked"), acked.to_string())
        };
        if let Err(error) = result {
            tracing::error!(%error, dir = %self.dir.display(), "cannot update the spool");
        }
    }
}

/// Replaces the log in `dir` with just `unacked`, atomically; returns the log opened for appending and its
/// size.
fn rewrite(dir: &Path, acked: u64, unacked: &VecDeque<Sequenced>) -> std::io::Result<(BufWriter<File>, u64)> {
    let tmp = dir.join("spool.tmp");
    let mut out = BufWriter::new(File::create(&tmp)?);
    let mut written = 0;
    for message in unacked {
        let record = SessionRequest { seq: message.seq, body: Some(message.body.clone()) }.encode_to_vec();
        out.write_all(&(record.len() as u32).to_le_bytes())?;
        out.write_all(&record)?;
        written += 4 + record.len() as u64;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    write_synced(&dir.join("acked"), acked.to_string().as_bytes())?;
    std::fs::rename(&tmp, dir.join("spool.log"))?;
    let log = OpenOptions::new().append(true).open(dir.join("spool.log"))?;
    Ok((BufWriter::new(log), written))
}

fn write_synced(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-write");
    let mut file = File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(tmp, path)
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
        let file = OpenOptions::new().write(true).open(&log).unwrap();
        file.set_len(len - 3).unwrap();
        assert_eq!(Outbox::open(dir.path(), 100).unwrap().after(0).len(), 1);
    }
}
