//! Which master of a Redis Cluster serves which keys: for reads of many keys grouped into one pipeline per
//! master.
//!
//! The redis crate's cluster client keeps a pipeline to one hash slot, and every container's budget has
//! its own slot, so through it a page of 1,000 budgets is 1,000 pipelines. Redis itself asks only that each
//! command of a pipeline be for a slot the server it reaches serves. [`key_slot`] (Redis's CRC16 of the
//! hash tag) and [`SlotMasters`] (from `CLUSTER SLOTS`) group such reads into one pipeline per master. A
//! map gone stale (slots moved, a replica promoted) shows as a `MOVED` reply or an unknown address; the
//! caller then reads key by key through the client, which follows the cluster, and asks for the map again.
//! (The redis crate computes slots too, `cluster_routing::Slot::for_key`, but does not give out the number,
//! nor its slot map.)

use redis::Value;

/// How many hash slots a Redis Cluster has.
pub const SLOTS: u16 = 16_384;

/// The hash slot of `key`, as Redis computes it: CRC16 (XMODEM) of its hash tag (what lies between the
/// first `{` and the first `}` after it, when that is not empty) or else of the whole key, modulo 16,384.
pub fn key_slot(key: &[u8]) -> u16 {
    let hashed = match key.iter().position(|&b| b == b'{') {
        Some(open) => match key[open + 1..].iter().position(|&b| b == b'}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        },
        None => key,
    };
    crc16_xmodem(hashed) % SLOTS
}

/// CRC16 as Redis Cluster uses it (XMODEM: polynomial 0x1021, initial value 0, no reflection).
fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in bytes {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// A master's address as the cluster announces it, which is how the cluster client names its connections.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MasterAddress {
    /// Its host (an IP address, or a name if the cluster announces names).
    pub host: String,
    /// Its port.
    pub port: u16,
}

/// The master of every slot range, as `CLUSTER SLOTS` answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotMasters {
    /// `(first slot, last slot, master)`, by first slot.
    ranges: Vec<(u16, u16, MasterAddress)>,
}

impl SlotMasters {
    /// The map from a `CLUSTER SLOTS` reply: an array of `[first, last, [host, port, id, …], replicas…]`.
    pub fn from_reply(reply: Value) -> Result<Self, String> {
        let Value::Array(ranges) = reply else { return Err(format!("CLUSTER SLOTS answered {reply:?}")) };
        let mut map = SlotMasters::default();
        for range in ranges {
            let Value::Array(fields) = range else { return Err("a slot range that is not an array".into()) };
            let slot = |value: Option<&Value>| match value {
                Some(Value::Int(n)) if (0..i64::from(SLOTS)).contains(n) => Ok(*n as u16),
                other => Err(format!("a slot range bound {other:?}")),
            };
            let (first, last) = (slot(fields.first())?, slot(fields.get(1))?);
            let Some(Value::Array(master)) = fields.get(2) else { return Err("a slot range without a master".into()) };
            let host = match master.first() {
                Some(Value::BulkString(host)) => String::from_utf8(host.clone()).map_err(|_| "a host not UTF-8")?,
                Some(Value::SimpleString(host)) => host.clone(),
                other => return Err(format!("a master's host {other:?}")),
            };
            let port = match master.get(1) {
                Some(Value::Int(port)) => u16::try_from(*port).map_err(|_| format!("a master's port {port}"))?,
                other => return Err(format!("a master's port {other:?}")),
            };
            if first > last {
                return Err(format!("the slot range {first}-{last}"));
            }
            map.ranges.push((first, last, MasterAddress { host, port }));
        }
        map.ranges.sort_by_key(|(first, ..)| *first);
        Ok(map)
    }

    /// The master serving `slot`, if the map has one.
    pub fn master_of(&self, slot: u16) -> Option<&MasterAddress> {
        let after = self.ranges.partition_point(|(first, ..)| *first <= slot);
        let (_, last, master) = self.ranges.get(after.checked_sub(1)?)?;
        (slot <= *last).then_some(master)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_own_for_plain_keys_tagged_keys_and_degenerate_tags() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT` (the conformance suite checks many
        // more against a real cluster).
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12_182);
        assert_eq!(key_slot(b"{foo}.bar"), key_slot(b"foo"));
        assert_eq!(key_slot(b"hemostat:{n/app}:budget"), key_slot(b"hemostat:{n/app}:attempts"));
        assert_eq!(key_slot(b"{}foo"), crc16_xmodem(b"{}foo") % SLOTS, "an empty tag hashes the whole key");
        assert_eq!(key_slot(b"foo{"), crc16_xmodem(b"foo{") % SLOTS, "an unclosed tag hashes the whole key");
        assert_eq!(key_slot(b"a{b}{c}"), key_slot(b"b"), "the first tag only");
        assert_eq!(key_slot(b"a{{b}"), key_slot(b"{b"), "the tag ends at the first closing brace");
        assert_eq!(key_slot(b""), 0);
    }

    fn range(first: i64, last: i64, port: i64) -> Value {
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ]),
            Value::Array(vec![Value::BulkString(b"127.0.0.1".to_vec()), Value::Int(port + 100)]),
        ])
    }

    #[test]
    fn the_map_finds_each_slots_master_and_refuses_a_reply_it_cannot_read() {
        let map = SlotMasters::from_reply(Value::Array(vec![
            range(10_923, 16_383, 7002),
            range(0, 5460, 7000),
            range(5461, 10_922, 7001),
        ]))
        .unwrap();
        let port = |slot| map.master_of(slot).map(|m| m.port);
        assert_eq!(
            [port(0), port(5460), port(5461), port(10_922), port(10_923), port(16_383)],
            [Some(7000), Some(7000), Some(7001), Some(7001), Some(7002), Some(7002)]
        );
        // A cluster with slots nobody serves (a master lost without a replica).
        let partial = SlotMasters::from_reply(Value::Array(vec![range(100, 200, 7000)])).unwrap();
        assert_eq!([partial.master_of(99), partial.master_of(201)], [None, None]);
        assert_eq!(partial.master_of(150).map(|m| m.port), Some(7000));
        assert!(SlotMasters::from_reply(Value::Nil).is_err());
        assert!(SlotMasters::from_reply(Value::Array(vec![range(0, 20_000, 7000)])).is_err());
        assert!(SlotMasters::from_reply(Value::Array(vec![range(5, 4, 7000)])).is_err());
        assert!(SlotMasters::from_reply(Value::Array(vec![range(0, 1, 70_000)])).is_err());
        assert!(SlotMasters::from_reply(Value::Array(vec![Value::Array(vec![Value::Int(0), Value::Int(1)])])).is_err());
        assert_eq!(SlotMasters::from_reply(Value::Array(vec![])).unwrap().master_of(0), None);
    }
}
