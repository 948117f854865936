//! A node's spool folder as the tests read it: the messages in it, read from a copy as the node would
//! after a restart, and edits that damage it the way a crash or a bad disk would.

use std::path::Path;

use hemostat_node::outbox::{Outbox, Sequenced};
use hemostat_proto::v1::session_request::Body;

/// The messages in a node's spool folder, read from a copy as the node would after a restart.
pub fn spooled(dir: &Path, capacity: usize) -> Result<Vec<Sequenced>, String> {
    let copy = tempfile::tempdir().map_err(|e| e.to_string())?;
    for file in ["stream", "acked", "spool.log"] {
        let _ = std::fs::copy(dir.join(file), copy.path().join(file));
    }
    Ok(Outbox::open(copy.path(), capacity).map_err(|e| e.to_string())?.after(0))
}

/// Whether a spooled message is the health alert of the container `name`.
pub fn is_alert_of(message: &Sequenced, name: &str) -> bool {
    matches!(&message.body, Body::HealthAlert(a) if a.container.as_ref().is_some_and(|c| c.name == name))
}

/// Damages the spool log in `dir` inside the first record that holds `text` (flips one of its bytes), as a
/// bad sector would; panics when no record holds it.
pub fn damage_record_holding(dir: &Path, text: &str) {
    let log = dir.join("spool.log");
    let mut bytes = std::fs::read(&log).expect("the spool log");
    let at = bytes.windows(text.len()).position(|w| w == text.as_bytes()).expect("a record holding the text");
    bytes[at] ^= 0x20;
    std::fs::write(&log, bytes).expect("write the spool log");
}

/// Damages, in the spool log in `dir`, the record of the health alert of the container `name` (flips a
/// byte in the middle of it), as a bad sector would; panics when the log holds no such alert.
pub fn damage_alert_of(dir: &Path, name: &str) {
    use hemostat_node::spool::format::{FILE_HEADER, RECORD_HEADER};
    use prost::Message;
    let log = dir.join("spool.log");
    let mut bytes = std::fs::read(&log).expect("the spool log");
    assert!(bytes.starts_with(&FILE_HEADER), "a spool log of the current format");
    let mut at = FILE_HEADER.len();
    while at + RECORD_HEADER <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let payload = &bytes[at + RECORD_HEADER..at + RECORD_HEADER + len];
        let request = hemostat_proto::v1::SessionRequest::decode(payload).expect("an intact record");
        if let Some(body) = request.body
            && is_alert_of(&Sequenced { seq: request.seq, body }, name)
        {
            bytes[at + RECORD_HEADER + len / 2] ^= 0x01;
            std::fs::write(&log, bytes).expect("write the spool log");
            return;
        }
        at += RECORD_HEADER + len;
    }
    panic!("no alert of {name} in {}", log.display());
}
