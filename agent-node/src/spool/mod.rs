//! The outbox on disk, in one folder: `stream` (the stream id), `acked` (the highest acknowledged sequence
//! number) and `spool.log` (the messages, in the damage-surviving [`format`](mod@format)).
//!
//! - Every record reaches the file as it is queued; alerts, results and lifecycle events also reach the
//!   disk (fsync) before they are sent. The log is rewritten with only the unacknowledged messages once
//!   everything is acknowledged or enough was appended.
//! - `stream` and `acked` are written atomically and durably: a temporary file, fsync, rename, fsync of
//!   the folder. `acked` is written at every rewrite of the log, otherwise at most once a second and when the
//!   node stops: a value that lags (after a crash) only makes the node send again messages the coordinator then drops as duplicates.
//! - At start the node trusts `acked` only when it holds a number. Missing while the stream has messages,
//!   empty, unreadable or not a number, it is not trusted: the node then starts a NEW stream id (the
//!   coordinator would drop reused sequence numbers of the old one as duplicates) and sends every spooled
//!   message again under it.
//! - A damaged record is skipped, counted and reported; reading goes on after it. A spool of the format
//!   before (version 1) is read once and rewritten in this one.

pub mod format;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hemostat_proto::v1::SessionRequest;
use hemostat_proto::v1::session_request::Body;
use prost::Message;

use crate::outbox::Sequenced;

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

/// Rewrite the log once this many bytes were appended since the last rewrite.
const COMPACT_AFTER_BYTES: u64 = 4 << 20;
/// `acked` is written at most this often between rewrites of the log.
const ACKED_EVERY: Duration = Duration::from_secs(1);

/// What [`Spool::open`] found in the folder.
pub struct Opened {
    /// The spool, ready for appending.
    pub spool: Spool,
    /// The stream id to use: the one found, or a new one.
    pub stream_id: String,
    /// The highest acknowledged sequence number of that stream.
    pub acked: u64,
    /// The messages to send again, oldest first.
    pub unacked: VecDeque<Sequenced>,
    /// The damaged records skipped, if any.
    pub damaged: Option<Damage>,
    /// Why a new stream was started instead of the one found, if it was.
    pub new_stream: Option<String>,
}

/// Damaged records skipped when the spool was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// How many damaged stretches (each counted as one record).
    pub records: u64,
    /// How many bytes they held.
    pub bytes: u64,
}

/// The outbox's files.
pub struct Spool {
    dir: PathBuf,
    log: BufWriter<File>,
    /// Bytes in the log.
    written: u64,
    /// Bytes in the log right after the last rewrite.
    base: u64,
    /// When `acked` was last written.
    acked_written: Instant,
    /// An acknowledgement not yet written to `acked` (written at the latest when the spool is dropped).
    acked_pending: Option<u64>,
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(acked) = self.acked_pending.take()
            && let Err(error) = write_synced(&self.dir.join("acked"), acked.to_string().as_bytes())
        {
            tracing::error!(%error, dir = %self.dir.display(), "cannot update the spool");
        }
    }
}

/// What the `acked` file says.
#[derive(Debug, PartialEq, Eq)]
enum AckState {
    /// A number.
    Number(u64),
    /// No file.
    Missing,
    /// A file that cannot be trusted, and why.
    Untrusted(String),
}

fn read_acked(path: &Path) -> AckState {
    match std::fs::read(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => AckState::Missing,
        Err(error) => AckState::Untrusted(format!("unreadable ({error})")),
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => AckState::Untrusted("empty".into()),
        Ok(bytes) => match std::str::from_utf8(&bytes).ok().and_then(|text| text.trim().parse().ok()) {
            Some(acked) => AckState::Number(acked),
            None => AckState::Untrusted("not a number".into()),
        },
    }
}

impl Spool {
    /// Opens the spool in `dir` (made if missing): the stream, what is not acknowledged, and any damage.
    pub fn open(dir: &Path) -> Result<Opened, SpoolError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| SpoolError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (stream_path, acked_path, log_path) = (dir.join("stream"), dir.join("acked"), dir.join("spool.log"));
        let found_stream = std::fs::read_to_string(&stream_path)
            .ok()
            .map(|id| id.trim().to_owned())
            .filter(|id| !id.is_empty() && id.len() <= 64);
        let (records, damaged) = read_log(&log_path).map_err(io(&log_path))?;
        let (stream_id, acked, new_stream) = match (found_stream, read_acked(&acked_path)) {
            (Some(stream), AckState::Number(acked)) => (stream, acked, None),
            (Some(_), AckState::Missing) => {
                let also = if records.is_empty() { "" } else { " while the spool has messages" };
                (new_stream_id(), 0, Some(format!("the acknowledgement state is missing{also}")))
            }
            (Some(_), AckState::Untrusted(why)) => {
                (new_stream_id(), 0, Some(format!("the acknowledgement state is {why}")))
            }
            // A first start, or a lost stream file: a new stream in any case.
            (None, _) => (new_stream_id(), 0, None),
        };
        if let Some(why) = &new_stream {
            tracing::warn!(
                dir = %dir.display(),
                stream = %stream_id,
                messages = records.len(),
                "{why}: starting a new message stream and sending every spooled message again"
            );
        }
        // The stream first: acked=0 under the old stream would reuse its sequence numbers.
        write_synced(&stream_path, stream_id.as_bytes()).map_err(io(&stream_path))?;
        let unacked: VecDeque<Sequenced> = records.into_iter().filter(|m| m.seq > acked).collect();
        let (log, written) = rewrite(dir, acked, &unacked).map_err(io(&log_path))?;
        let spool = Spool {
            dir: dir.to_owned(),
            log,
            written,
            base: written,
            acked_written: Instant::now(),
            acked_pending: None,
        };
        Ok(Opened { spool, stream_id, acked, unacked, damaged, new_stream })
    }

    /// Appends one message.
    pub fn append(&mut self, message: &Sequenced) {
        let record = encode(message);
        let durable = matches!(
            message.body,
            Body::HealthAlert(_) | Body::CommandResult(_) | Body::Resolved(_) | Body::ContainerEvent(_)
        );
        let result = (|| {
            self.log.write_all(&record)?;
            // Every record reaches the file (one write); alerts, results and lifecycle events also reach the
            // disk before they are sent.
            self.log.flush()?;
            if durable {
                self.log.get_ref().sync_data()?;
            }
            std::io::Result::Ok(())
        })();
        self.written += record.len() as u64;
        if let Err(error) = result {
            tracing::error!(%error, dir = %self.dir.display(), "cannot write the spool; a node restart may lose this message");
        }
    }

    /// Records that everything up to `acked` is acknowledged, `unacked` being what is left.
    pub fn acknowledged(&mut self, acked: u64, unacked: &VecDeque<Sequenced>) {
        let has_records = self.written > format::FILE_HEADER.len() as u64;
        let compact = (unacked.is_empty() && has_records) || self.written >= self.base + COMPACT_AFTER_BYTES;
        let result = if compact {
            rewrite(&self.dir, acked, unacked).map(|(log, written)| {
                self.log = log;
                self.written = written;
                self.base = written;
                self.acked_written = Instant::now();
                self.acked_pending = None;
            })
        } else if self.acked_written.elapsed() >= ACKED_EVERY {
            self.acked_written = Instant::now();
            self.acked_pending = None;
            write_synced(&self.dir.join("acked"), acked.to_string().as_bytes())
        } else {
            self.acked_pending = Some(acked);
            Ok(())
        };
        if let Err(error) = result {
            tracing::error!(%error, dir = %self.dir.display(), "cannot update the spool");
        }
    }
}

fn new_stream_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn encode(message: &Sequenced) -> Vec<u8> {
    format::encode_record(&SessionRequest { seq: message.seq, body: Some(message.body.clone()) }.encode_to_vec())
}

/// The messages of the log at `path` (none if it does not exist), and the damaged records skipped.
fn read_log(path: &Path) -> std::io::Result<(Vec<Sequenced>, Option<Damage>)> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(error) => return Err(error),
    };
    let mut reader = BufReader::new(file);
    let mut header = [0u8; format::FILE_HEADER.len()];
    let read = reader.read(&mut header)?;
    let mut messages = Vec::new();
    let (mut stretches, mut bytes) = (0u64, 0u64);
    let mut decoded =
        |payload: Vec<u8>, stretches: &mut u64, bytes: &mut u64| match SessionRequest::decode(payload.as_slice()) {
            Ok(SessionRequest { seq, body: Some(body) }) => messages.push(Sequenced { seq, body }),
            Ok(_) => {}
            Err(_) => {
                *stretches += 1;
                *bytes += payload.len() as u64;
            }
        };
    if read == header.len() && header == format::FILE_HEADER {
        for item in format::RecordReader::new(reader) {
            match item {
                format::Item::Record(payload) => decoded(payload, &mut stretches, &mut bytes),
                format::Item::Damaged { offset, bytes: skipped } => {
                    tracing::warn!(
                        path = %path.display(),
                        offset = offset + format::FILE_HEADER.len() as u64,
                        bytes = skipped,
                        "skipped a damaged spool record; reading on"
                    );
                    stretches += 1;
                    bytes += skipped;
                }
            }
        }
    } else if read > 0 {
        tracing::info!(path = %path.display(), "converting a spool of the earlier format");
        let (payloads, unreadable) = format::read_version_1(header[..read].chain(reader));
        for payload in payloads {
            decoded(payload, &mut stretches, &mut bytes);
        }
        if unreadable > 0 {
            tracing::warn!(path = %path.display(), bytes = unreadable, "the earlier spool ends in a damaged or torn record");
            stretches += 1;
            bytes += unreadable;
        }
    }
    Ok((messages, (stretches > 0).then_some(Damage { records: stretches, bytes })))
}

/// Replaces the log in `dir` with just `unacked`, atomically, and writes `acked`; returns the log opened
/// for appending and its size.
fn rewrite(dir: &Path, acked: u64, unacked: &VecDeque<Sequenced>) -> std::io::Result<(BufWriter<File>, u64)> {
    let tmp = dir.join("spool.tmp");
    let mut out = BufWriter::new(File::create(&tmp)?);
    out.write_all(&format::FILE_HEADER)?;
    let mut written = format::FILE_HEADER.len() as u64;
    for message in unacked {
        let record = encode(message);
        out.write_all(&record)?;
        written += record.len() as u64;
    }
    out.flush()?;
    out.get_ref().sync_all()?;
    write_synced(&dir.join("acked"), acked.to_string().as_bytes())?;
    std::fs::rename(&tmp, dir.join("spool.log"))?;
    sync_dir(dir)?;
    let log = OpenOptions::new().append(true).open(dir.join("spool.log"))?;
    Ok((BufWriter::new(log), written))
}

/// Writes `contents` to `path` atomically and durably: a temporary file, fsync, rename, fsync the folder.
fn write_synced(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-write");
    let mut file = File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}
