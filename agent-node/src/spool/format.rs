//! The spool log's format, made to survive damage. The file starts with [`FILE_HEADER`] (a magic and the
//! format's version); each record is
//!
//! ```text
//! RECORD_MAGIC (4 bytes) | length (u32 LE) | CRC-32 of length and payload (u32 LE) | payload (length bytes)
//! ```
//!
//! [`RecordReader`] returns every intact record and skips damage: a record whose magic, length or checksum
//! is wrong is passed over byte by byte until the next intact record (it resynchronises on the next magic
//! whose length and checksum agree), and each damaged stretch is reported once, with its offset and size.
//! A length is checked against the maximum before anything is allocated, so a damaged length cannot make
//! the reader allocate more than one maximal record.
//!
//! The format before this one (version 1: no file header, each record a u32 LE length then the payload) is
//! read by [`read_version_1`], so a spool left by an older node is converted once.
//!
//! A limitation: a payload is untrusted text (log lines) and could itself hold a well-formed record; the
//! reader can only find it when it is resynchronising inside a damaged record, never while records are
//! intact.

use std::io::Read;

/// The first bytes of a spool log: `HMSP` and the format version (2) as u32 LE.
pub const FILE_HEADER: [u8; 8] = *b"HMSP\x02\0\0\0";
/// The first bytes of every record.
pub const RECORD_MAGIC: [u8; 4] = [0xA7, b'H', b'R', 0x5A];
/// Bytes before a record's payload: magic, length, checksum.
pub const RECORD_HEADER: usize = 12;
/// The longest payload read back; a longer length is damage.
pub const MAX_RECORD_BYTES: usize = 16 << 20;

/// Bytes read from the file at a time.
const CHUNK: usize = 64 * 1024;

/// One record, framed for the log.
pub fn encode_record(payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(payload);
    let mut record = Vec::with_capacity(RECORD_HEADER + payload.len());
    record.extend_from_slice(&RECORD_MAGIC);
    record.extend_from_slice(&len);
    record.extend_from_slice(&crc.finalize().to_le_bytes());
    record.extend_from_slice(payload);
    record
}

/// What the reader found next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// An intact record's payload.
    Record(Vec<u8>),
    /// A damaged stretch that was skipped.
    Damaged {
        /// Where it starts, from the start of the records (after the file header).
        offset: u64,
        /// How many bytes were skipped.
        bytes: u64,
    },
}

/// Reads the records after the file header, skipping damage (see the module's documentation).
pub struct RecordReader<R> {
    inner: R,
    max: usize,
    buf: Vec<u8>,
    /// Where the unread bytes start in `buf`.
    start: usize,
    /// The offset of `buf[start]` in the stream.
    offset: u64,
    eof: bool,
    /// The damaged stretch being skipped: its offset and length.
    damage: Option<(u64, u64)>,
    /// An intact record found right after a damaged stretch, returned after that stretch.
    pending: Option<Vec<u8>>,
    peak: usize,
}

impl<R: Read> RecordReader<R> {
    /// A reader of records of at most [`MAX_RECORD_BYTES`].
    pub fn new(inner: R) -> Self {
        Self::with_max(inner, MAX_RECORD_BYTES)
    }

    /// A reader of records of at most `max` bytes.
    pub fn with_max(inner: R, max: usize) -> Self {
        RecordReader {
            inner,
            max,
            buf: Vec::new(),
            start: 0,
            offset: 0,
            eof: false,
            damage: None,
            pending: None,
            peak: 0,
        }
    }

    /// The most bytes the reader has held at once: at most a maximal record, its header and one read.
    pub fn peak_buffer(&self) -> usize {
        self.peak
    }

    /// The most bytes a reader of records of at most `max` bytes holds at once.
    pub fn buffer_bound(max: usize) -> usize {
        RECORD_HEADER + max + CHUNK
    }

    fn available(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Makes at least `n` unread bytes available, unless the input ends first.
    fn fill(&mut self, n: usize) {
        while self.available() < n && !self.eof {
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let want = (n - self.available()).max(CHUNK).min(Self::buffer_bound(self.max) - self.buf.len());
            let old = self.buf.len();
            self.buf.reserve_exact(want);
            self.buf.resize(old + want, 0);
            let read = loop {
                match self.inner.read(&mut self.buf[old..]) {
                    Ok(read) => break read,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break 0,
                }
            };
            self.buf.truncate(old + read);
            self.peak = self.peak.max(self.buf.capacity());
            if read == 0 {
                self.eof = true;
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// Skips `n` damaged bytes.
    fn skip(&mut self, n: usize) {
        let offset = self.offset;
        let damage = self.damage.get_or_insert((offset, 0));
        damage.1 += n as u64;
        self.consume(n);
    }

    /// The intact record at the reading position, if there is one.
    fn record_here(&mut self) -> Option<usize> {
        let head = &self.buf[self.start..];
        if head.len() < RECORD_HEADER || head[..4] != RECORD_MAGIC {
            return None;
        }
        let len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        if len > self.max {
            return None;
        }
        self.fill(RECORD_HEADER + len);
        let head = &self.buf[self.start..];
        if head.len() < RECORD_HEADER + len {
            return None;
        }
        let expected = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes"));
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head[4..8]);
        crc.update(&head[RECORD_HEADER..RECORD_HEADER + len]);
        (crc.finalize() == expected).then_some(len)
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if let Some(record) = self.pending.take() {
            return Some(Item::Record(record));
        }
        loop {
            self.fill(RECORD_HEADER);
            if self.available() == 0 {
                return self.damage.take().map(|(offset, bytes)| Item::Damaged { offset, bytes });
            }
            if let Some(len) = self.record_here() {
                let payload = self.buf[self.start + RECORD_HEADER..self.start + RECORD_HEADER + len].to_vec();
                self.consume(RECORD_HEADER + len);
                return match self.damage.take() {
                    Some((offset, bytes)) => {
                        self.pending = Some(payload);
                        Some(Item::Damaged { offset, bytes })
                    }
                    None => Some(Item::Record(payload)),
                };
            }
            // Damage: pass over it up to the next magic (or all but a possible partial magic at the end).
            let unread = &self.buf[self.start..];
            let next = unread[1..].windows(4).position(|w| w == RECORD_MAGIC).map(|p| p + 1);
            let step = match next {
                Some(at) => at,
                None if self.eof => unread.len(),
                None => unread.len().saturating_sub(3).max(1),
            };
            self.skip(step);
        }
    }
}

/// Reads a version-1 log (records of a u32 LE length and the payload, no header, no checksum): its intact
/// records, and how many bytes from the first bad one on could not be read (version 1 cannot
/// resynchronise). A length above [`MAX_RECORD_BYTES`] is damage, checked before allocating.
pub fn read_version_1(mut input: impl Read) -> (Vec<Vec<u8>>, u64) {
    let mut records = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match read_full(&mut input, &mut len) {
            0 => return (records, 0),
            4 => {}
            partial => return (records, partial as u64),
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_RECORD_BYTES {
            return (records, 4 + drain(&mut input));
        }
        let mut payload = vec![0u8; len];
        let read = read_full(&mut input, &mut payload);
        if read < len {
            return (records, 4 + read as u64);
        }
        records.push(payload);
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    filled
}

/// Reads the rest of the input, counting it.
fn drain(input: &mut impl Read) -> u64 {
    std::io::copy(input, &mut std::io::sink()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn log(payloads: &[Vec<u8>]) -> (Vec<u8>, Vec<std::ops::Range<usize>>) {
        let mut bytes = Vec::new();
        let mut spans = Vec::new();
        for payload in payloads {
            let start = bytes.len();
            bytes.extend(encode_record(payload));
            spans.push(start..bytes.len());
        }
        (bytes, spans)
    }

    fn records(bytes: &[u8], max: usize) -> (Vec<Vec<u8>>, usize, usize) {
        let mut reader = RecordReader::with_max(bytes, max);
        let (mut records, mut damaged) = (Vec::new(), 0);
        for item in reader.by_ref() {
            match item {
                Item::Record(payload) => records.push(payload),
                Item::Damaged { .. } => damaged += 1,
            }
        }
        (records, damaged, reader.peak_buffer())
    }

    #[test]
    fn a_damaged_record_is_skipped_counted_and_reading_goes_on() {
        let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + i as usize]).collect();
        let (mut bytes, spans) = log(&payloads);
        bytes[spans[2].start + RECORD_HEADER + 3] ^= 0x40;
        let (read, damaged, _) = records(&bytes, MAX_RECORD_BYTES);
        assert_eq!(read, [&payloads[..2], &payloads[3..]].concat(), "all but the damaged one, in order");
        assert_eq!(damaged, 1);
        let mut reader = RecordReader::new(bytes.as_slice());
        let items: Vec<Item> = reader.by_ref().collect();
        assert_eq!(
            items[2],
            Item::Damaged { offset: spans[2].start as u64, bytes: spans[2].len() as u64 },
            "where, and how much"
        );
    }

    #[test]
    fn a_huge_length_is_refused_before_allocating() {
        let mut bytes = RECORD_MAGIC.to_vec();
        bytes.extend(u32::MAX.to_le_bytes());
        bytes.extend([0; 4]);
        bytes.extend(encode_record(b"after"));
        let (read, damaged, peak) = records(&bytes, MAX_RECORD_BYTES);
        assert_eq!((read, damaged), (vec![b"after".to_vec()], 1));
        assert!(peak <= CHUNK, "{peak}");
        let mut v1 = u32::MAX.to_le_bytes().to_vec();
        v1.extend([1, 2, 3]);
        assert_eq!(read_version_1(v1.as_slice()), (vec![], 7));
    }

    #[test]
    fn version_1_records_are_read_up_to_the_first_bad_one() {
        let mut v1 = Vec::new();
        for payload in [&b"one"[..], b"two"] {
            v1.extend((payload.len() as u32).to_le_bytes());
            v1.extend(payload);
        }
        v1.extend(10u32.to_le_bytes());
        v1.extend(b"torn");
        assert_eq!(read_version_1(v1.as_slice()), (vec![b"one".to_vec(), b"two".to_vec()], 8));
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic_nor_allocate_past_the_maximum(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let (_, _, peak) = records(&bytes, 256);
            prop_assert!(peak <= RecordReader::<&[u8]>::buffer_bound(256));
            let _ = read_version_1(bytes.as_slice());
        }

        #[test]
        fn a_bit_flip_loses_only_the_record_it_hits(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..12),
            position in any::<prop::sample::Index>(),
            bit in 0..8u8,
        ) {
            let (mut bytes, spans) = log(&payloads);
            let at = position.index(bytes.len());
            bytes[at] ^= 1 << bit;
            let hit = spans.iter().position(|s| s.contains(&at)).unwrap();
            let (read, damaged, peak) = records(&bytes, 256);
            let expected: Vec<Vec<u8>> =
                payloads.iter().enumerate().filter(|(i, _)| *i != hit).map(|(_, p)| p.clone()).collect();
            prop_assert_eq!(read, expected);
            prop_assert_eq!(damaged, 1);
            prop_assert!(peak <= RecordReader::<&[u8]>::buffer_bound(256));
        }

        #[test]
        fn a_truncated_log_gives_every_complete_record(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..12),
            cut in any::<prop::sample::Index>(),
        ) {
            let (bytes, spans) = log(&payloads);
            let end = cut.index(bytes.len() + 1);
            let (read, damaged, _) = records(&bytes[..end], 256);
            let complete = spans.iter().filter(|s| s.end <= end).count();
            prop_assert_eq!(read, payloads[..complete].to_vec());
            prop_assert_eq!(damaged, usize::from(spans.iter().any(|s| s.start < end && end < s.end)));
        }
    }
}
