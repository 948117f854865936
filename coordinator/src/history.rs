//! A container's recent samples as the registry keeps them for the dashboard's charts and `GetContainer`:
//! [`POINTS`] compact points, each merging up to [`SAMPLES_PER_POINT`] consecutive samples, so they span the
//! same [`SPAN_SAMPLES`] samples the registry used to keep one by one.
//!
//! A point is the state at its last sample (its time, memory, process count and counters, exactly or to
//! the stated precision) with the mean CPU of its samples. Counters are kept as differences from the
//! previous point, so the rates the charts draw between two points are the exact mean rates over them.
//! Precision: CPU to 0.01 %, memory to the KiB, memory % to 0.01, process and restart counts up to 65,535;
//! a counter's rise between two points up to 2 GiB (beyond that it saturates). The memory limit is the
//! latest one for every point. Samples without a time are not kept (the charts cannot place them).
//!
//! Storage: the oldest point and the newest (the one still merging samples) are kept whole; the points
//! between them are encoded, each as its difference from the one before in variable-length integers
//! (LEB128; memory, memory %, processes and restarts zigzag-encoded). A steady container's point takes
//! about 12 bytes that way instead of 36, so a full history is about 0.8 KiB on the heap instead of 2.1 KiB.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::container::Metrics;

/// Points kept per container.
pub const POINTS: usize = 60;
/// Consecutive samples merged into one point.
pub const SAMPLES_PER_POINT: u8 = 4;
/// Samples the points span when full.
pub const SPAN_SAMPLES: usize = POINTS * SAMPLES_PER_POINT as usize;

/// A counter slot: the rise since the previous point, or (top bit set) the counter went down (the
/// container restarted) and this is its value.
const RESET: u32 = 1 << 31;
/// The largest rise or value a slot holds.
const SLOT_MAX: u32 = RESET - 1;
/// No CPU figure in the point's samples.
const NO_CPU: u32 = u32::MAX;

/// One point: 36 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Point {
    /// Milliseconds since the previous point's last sample (0 for the oldest point).
    dt_ms: u32,
    /// Mean CPU of its samples, hundredths of a percent; [`NO_CPU`] for none.
    cpu_centi: u32,
    /// Memory in use at its last sample, KiB.
    memory_kib: u32,
    /// Network received, sent, block read, written: see [`RESET`].
    counters: [u32; 4],
    /// Memory % at its last sample, hundredths.
    memory_percent_centi: u16,
    /// Processes at its last sample.
    pids: u16,
    /// Restarts in the node's window at its last sample.
    restarts: u16,
    /// Samples merged into it.
    samples: u8,
    /// Of those, samples with a CPU figure.
    cpu_samples: u8,
}

/// A container's recent samples, compactly.
#[derive(Clone, Debug, Default)]
pub struct History {
    /// The oldest point, whole; `None` until a second point starts.
    oldest: Option<Point>,
    /// The points after the oldest and before the newest, each encoded against the one before it.
    encoded: Vec<u8>,
    /// How many points `encoded` holds.
    encoded_points: usize,
    /// The point `encoded` ends with (the oldest when it holds none), whole: what the next is encoded against.
    last_closed: Point,
    /// The newest point, merging samples until it holds [`SAMPLES_PER_POINT`]; `None` before any sample.
    newest: Option<Point>,
    /// Time of the oldest point's last sample, Unix ms.
    first_ms: u64,
    /// Counter values at the oldest point's last sample.
    first_counters: [u64; 4],
    /// Time and counters of the newest sample.
    last_ms: u64,
    last_counters: [u64; 4],
    /// The latest memory limit.
    memory_limit: u64,
}

impl Default for Point {
    fn default() -> Self {
        Point {
            dt_ms: 0,
            cpu_centi: NO_CPU,
            memory_kib: 0,
            counters: [0; 4],
            memory_percent_centi: 0,
            pids: 0,
            restarts: 0,
            samples: 0,
            cpu_samples: 0,
        }
    }
}

/// The most bytes one encoded point takes: seven varints of up to 5 bytes (all hold 32 bits or less), four
/// of up to 3 (16 bits), and the sample counts.
const MAX_ENCODED: usize = 7 * 5 + 3 * 3 + 1;
/// Bytes the encoded points grow by when they need room (so a full history holds a few dozen spare).
const GROWTH: usize = 64;

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&byte) = bytes.get(*at) else { break };
        *at += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    value
}

fn zigzag(delta: i64) -> u64 {
    ((delta << 1) ^ (delta >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

impl Point {
    /// Appends this point, as its difference from `before`, to `out`.
    fn encode(&self, before: &Point, out: &mut Vec<u8>) {
        put_varint(out, self.dt_ms as u64);
        put_varint(out, if self.cpu_centi == NO_CPU { 0 } else { self.cpu_centi as u64 + 1 });
        put_varint(out, zigzag(self.memory_kib as i64 - before.memory_kib as i64));
        for slot in self.counters {
            put_varint(out, slot as u64);
        }
        put_varint(out, zigzag(self.memory_percent_centi as i64 - before.memory_percent_centi as i64));
        put_varint(out, zigzag(self.pids as i64 - before.pids as i64));
        put_varint(out, zigzag(self.restarts as i64 - before.restarts as i64));
        out.push(self.samples | (self.cpu_samples << 4));
    }

    /// The point encoded at `bytes[*at..]` against `before`; moves `at` past it.
    fn decode(bytes: &[u8], at: &mut usize, before: &Point) -> Point {
        let dt_ms = varint(bytes, at) as u32;
        let cpu_centi = match varint(bytes, at) {
            0 => NO_CPU,
            cpu => (cpu - 1) as u32,
        };
        let memory_kib = (before.memory_kib as i64 + unzigzag(varint(bytes, at))) as u32;
        let counters = [0; 4].map(|_: u32| varint(bytes, at) as u32);
        let memory_percent_centi = (before.memory_percent_centi as i64 + unzigzag(varint(bytes, at))) as u16;
        let pids = (before.pids as i64 + unzigzag(varint(bytes, at))) as u16;
        let restarts = (before.restarts as i64 + unzigzag(varint(bytes, at))) as u16;
        let packed = bytes.get(*at).copied().unwrap_or(0);
        *at += 1;
        Point {
            dt_ms,
            cpu_centi,
            memory_kib,
            counters,
            memory_percent_centi,
            pids,
            restarts,
            samples: packed & 0x0f,
            cpu_samples: packed >> 4,
        }
    }
}

fn counters(m: &Metrics) -> [u64; 4] {
    [m.network_rx_bytes, m.network_tx_bytes, m.block_read_bytes, m.block_write_bytes]
}

fn saturate(value: u64) -> u32 {
    value.min(SLOT_MAX as u64) as u32
}

/// `slot` of a point that also covers a move of the counter from `from` to `to`.
fn merged_slot(slot: u32, from: u64, to: u64) -> u32 {
    match to.checked_sub(from) {
        Some(rise) => (slot & RESET) | saturate((slot & SLOT_MAX) as u64 + rise),
        None => RESET | saturate(to),
    }
}

/// The counter's value at a point, from its value at the previous one.
fn counter_after(previous: u64, slot: u32) -> u64 {
    if slot & RESET != 0 { (slot & SLOT_MAX) as u64 } else { previous + slot as u64 }
}

impl History {
    /// Adds the newest sample (a sample without a time is not kept).
    pub fn push(&mut self, sample: &Metrics) {
        let Some(at_ms) = sample.sampled_at.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) else { return };
        let at_ms = at_ms.as_millis() as u64;
        let now = counters(sample);
        let cpu = sample.cpu_percent.map(|c| (c.max(0.0) * 100.0).round().min((NO_CPU - 1) as f64) as u32);
        self.memory_limit = sample.memory_limit;
        let dt_ms = at_ms.saturating_sub(self.last_ms).min(u32::MAX as u64) as u32;
        let open = self.newest.as_mut().filter(|p| p.samples < SAMPLES_PER_POINT);
        match open {
            Some(point) => {
                point.dt_ms = point.dt_ms.saturating_add(dt_ms);
                for (i, slot) in point.counters.iter_mut().enumerate() {
                    *slot = merged_slot(*slot, self.last_counters[i], now[i]);
                }
                if let Some(cpu) = cpu {
                    let mean = if point.cpu_samples == 0 { 0 } else { point.cpu_centi as u64 };
                    let n = point.cpu_samples as u64;
                    point.cpu_centi = ((mean * n + cpu as u64) / (n + 1)) as u32;
                    point.cpu_samples += 1;
                }
                point.samples += 1;
                Self::set_state(point, sample);
            }
            None => {
                let first = self.newest.is_none();
                let mut point = Point {
                    dt_ms: if first { 0 } else { dt_ms },
                    cpu_centi: cpu.unwrap_or(NO_CPU),
                    samples: 1,
                    cpu_samples: cpu.is_some() as u8,
                    ..Point::default()
                };
                if !first {
                    for (i, slot) in point.counters.iter_mut().enumerate() {
                        *slot = merged_slot(0, self.last_counters[i], now[i]);
                    }
                }
                Self::set_state(&mut point, sample);
                if self.len() == POINTS {
                    self.drop_oldest();
                }
                if let Some(full) = self.newest.take() {
                    self.close(full);
                }
                self.newest = Some(point);
            }
        }
        // While there is one point, its last sample (this one) is the base.
        if self.len() == 1 {
            self.first_ms = at_ms;
            self.first_counters = now;
        }
        self.last_ms = at_ms;
        self.last_counters = now;
    }

    /// Keeps `point`, which merges no more samples: the oldest if there is none, else encoded.
    fn close(&mut self, point: Point) {
        if self.oldest.is_none() {
            self.oldest = Some(point);
        } else {
            if self.encoded.capacity() - self.encoded.len() < MAX_ENCODED {
                self.encoded.reserve_exact(GROWTH.max(MAX_ENCODED));
            }
            point.encode(&self.last_closed, &mut self.encoded);
            self.encoded_points += 1;
        }
        self.last_closed = point;
    }

    fn set_state(point: &mut Point, sample: &Metrics) {
        point.memory_kib = (sample.memory_used / 1024).min(u32::MAX as u64) as u32;
        point.memory_percent_centi = (sample.memory_percent.max(0.0) * 100.0).round().min(u16::MAX as f64) as u16;
        point.pids = sample.pids.min(u16::MAX as u64) as u16;
        point.restarts = sample.restarts_in_window.min(u16::MAX as u32) as u16;
    }

    /// Forgets the oldest point; the next one becomes the base.
    fn drop_oldest(&mut self) {
        let Some(oldest) = self.oldest.take() else { return };
        if self.encoded_points == 0 {
            // The newest is the only point left: it is the base.
            if let Some(mut newest) = self.newest.take() {
                self.rebase(&mut newest);
                self.newest = Some(newest);
            }
            return;
        }
        let mut at = 0;
        let mut next = Point::decode(&self.encoded, &mut at, &oldest);
        self.encoded.drain(..at);
        self.encoded_points -= 1;
        self.rebase(&mut next);
        if self.encoded_points == 0 {
            self.last_closed = next;
        }
        self.oldest = Some(next);
    }

    /// Makes `point`, the oldest now, the base: the time and counters at its last sample.
    fn rebase(&mut self, point: &mut Point) {
        self.first_ms += point.dt_ms as u64;
        for (i, slot) in point.counters.iter_mut().enumerate() {
            self.first_counters[i] = counter_after(self.first_counters[i], *slot);
            *slot = 0;
        }
        point.dt_ms = 0;
    }

    /// Every point, oldest first.
    fn points(&self) -> impl Iterator<Item = Point> + '_ {
        let mut at = 0;
        let mut before = self.oldest.unwrap_or_default();
        let encoded = (0..self.encoded_points).map(move |_| {
            let point = Point::decode(&self.encoded, &mut at, &before);
            before = point;
            point
        });
        self.oldest.into_iter().chain(encoded).chain(self.newest)
    }

    /// Points kept.
    pub fn len(&self) -> usize {
        usize::from(self.oldest.is_some()) + self.encoded_points + usize::from(self.newest.is_some())
    }

    /// Whether no sample was kept.
    pub fn is_empty(&self) -> bool {
        self.newest.is_none()
    }

    /// Bytes it takes on the heap.
    pub fn heap_bytes(&self) -> usize {
        self.encoded.capacity()
    }

    /// The points as samples, oldest first: each the state at its last sample, with the mean CPU.
    pub fn samples(&self) -> impl Iterator<Item = Metrics> + '_ {
        let mut at_ms = self.first_ms;
        let mut values = self.first_counters;
        self.points().enumerate().map(move |(index, point)| {
            if index > 0 {
                at_ms += point.dt_ms as u64;
                for (value, slot) in values.iter_mut().zip(point.counters) {
                    *value = counter_after(*value, slot);
                }
            }
            Metrics {
                sampled_at: Some(UNIX_EPOCH + Duration::from_millis(at_ms)),
                cpu_percent: (point.cpu_centi != NO_CPU).then(|| point.cpu_centi as f64 / 100.0),
                memory_used: point.memory_kib as u64 * 1024,
                memory_limit: self.memory_limit,
                memory_percent: point.memory_percent_centi as f64 / 100.0,
                network_rx_bytes: values[0],
                network_tx_bytes: values[1],
                block_read_bytes: values[2],
                block_write_bytes: values[3],
                pids: point.pids as u64,
                restarts_in_window: point.restarts as u32,
            }
        })
    }

    /// The time of the newest sample kept.
    pub fn newest(&self) -> Option<SystemTime> {
        (!self.is_empty()).then(|| UNIX_EPOCH + Duration::from_millis(self.last_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(second: u64, cpu: Option<f64>, rx: u64) -> Metrics {
        Metrics {
            sampled_at: Some(UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + second * 1000)),
            cpu_percent: cpu,
            memory_used: (100 << 20) + second * 1024,
            memory_limit: 512 << 20,
            memory_percent: second as f64 / 4.0,
            network_rx_bytes: rx,
            network_tx_bytes: rx / 2,
            block_read_bytes: 1 << 20,
            block_write_bytes: second * 4096,
            pids: 4,
            restarts_in_window: 0,
        }
    }

    #[test]
    fn a_full_history_takes_at_most_half_the_heap_of_whole_points() {
        assert_eq!(std::mem::size_of::<Point>(), 36);
        let mut history = History::default();
        for second in 0..1000 {
            history.push(&sample(second, Some(1.0), second * 100));
        }
        assert_eq!(history.len(), POINTS);
        // Every counter and the memory move at every sample here: about 17 bytes a point. 60 whole points
        // would take 2,160.
        assert!(history.heap_bytes() <= POINTS * 36 / 2, "{} bytes", history.heap_bytes());
    }

    #[test]
    fn extreme_values_read_back_as_they_were_kept() {
        let mut history = History::default();
        let wild = |second: u64, high: bool| Metrics {
            sampled_at: Some(UNIX_EPOCH + Duration::from_millis(1_800_000_000_000 + second * 30_000)),
            cpu_percent: Some(if high { 6_400.0 } else { 0.0 }),
            memory_used: if high { 4 << 40 } else { 0 },
            memory_limit: 8 << 40,
            memory_percent: if high { 100.0 } else { 0.0 },
            network_rx_bytes: if high { u64::MAX / 2 } else { 0 },
            network_tx_bytes: second << 20,
            block_read_bytes: 0,
            block_write_bytes: if high { 1 } else { 0 },
            pids: if high { 70_000 } else { 0 },
            restarts_in_window: if high { 9 } else { 0 },
        };
        let samples: Vec<Metrics> = (0..400).map(|s| wild(s, s % 8 < 4)).collect();
        for sample in &samples {
            history.push(sample);
        }
        let points: Vec<Metrics> = history.samples().collect();
        assert_eq!(points.len(), POINTS);
        for (i, point) in points.iter().enumerate() {
            // Point i ends at sample 400 - 4 * (POINTS - i) + 3; each merges samples of one kind (4 high, 4 low).
            let last = &samples[400 - 4 * (POINTS - i) + 3];
            let high = last.cpu_percent == Some(6_400.0);
            assert_eq!(point.sampled_at, last.sampled_at, "point {i}");
            assert_eq!(point.cpu_percent, last.cpu_percent, "point {i}");
            assert_eq!(point.memory_used, (last.memory_used / 1024).min(u32::MAX as u64) * 1024, "point {i}");
            assert_eq!(point.memory_percent, last.memory_percent, "point {i}");
            assert_eq!(point.pids, if high { 65_535 } else { 0 }, "point {i}");
            assert_eq!(point.restarts_in_window, last.restarts_in_window, "point {i}");
            assert_eq!(point.network_tx_bytes, last.network_tx_bytes, "point {i}");
            let rx = if high { SLOT_MAX as u64 } else { 0 };
            assert_eq!(point.network_rx_bytes, rx, "point {i}: a rise past 2 GiB saturates, a fall reads as the value");
        }
    }

    #[test]
    fn points_keep_the_last_samples_state_the_mean_cpu_and_exact_counters() {
        let mut history = History::default();
        for second in 0..10 {
            history.push(&sample(second, Some(second as f64), second * 1000));
        }
        let points: Vec<Metrics> = history.samples().collect();
        assert_eq!(points.len(), 3, "4 + 4 + 2 samples");
        assert_eq!(points[0], Metrics { cpu_percent: Some(1.5), ..sample(3, None, 3000) }, "mean of 0, 1, 2, 3");
        assert_eq!(points[1].cpu_percent, Some(5.5));
        assert_eq!(points[2].cpu_percent, Some(8.5), "the open point: mean of 8 and 9");
        assert_eq!(points[2].sampled_at, sample(9, None, 0).sampled_at);
        assert_eq!((points[2].network_rx_bytes, points[2].block_write_bytes), (9000, 9 * 4096));
        assert_eq!(points[2].memory_used, (100 << 20) + 9 * 1024);
        assert_eq!(points[2].memory_percent, 2.25);
    }

    #[test]
    fn a_full_ring_spans_the_last_240_samples_and_forgets_the_oldest_exactly() {
        let mut history = History::default();
        for second in 0..1000 {
            history.push(&sample(second, Some(2.0), second * second));
        }
        let points: Vec<Metrics> = history.samples().collect();
        assert_eq!(points.len(), POINTS);
        let at = |m: &Metrics| m.sampled_at.unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs() - 1_800_000_000;
        assert_eq!(at(&points[0]), 763, "the oldest point ends 237 samples before the newest");
        assert_eq!(at(&points[POINTS - 1]), 999);
        for point in &points {
            let second = at(point);
            assert_eq!(point.network_rx_bytes, second * second, "counter at second {second}");
        }
        assert_eq!(history.newest(), sample(999, None, 0).sampled_at);
    }

    #[test]
    fn a_counter_that_goes_down_reads_as_its_new_value_and_a_missing_cpu_is_none() {
        let mut history = History::default();
        for (second, rx) in [(0, 5000), (1, 6000), (2, 7000), (3, 8000), (4, 9000), (5, 100), (6, 300), (7, 400)] {
            history.push(&sample(second, (second != 4).then_some(1.0), rx));
        }
        history.push(&sample(8, None, 500));
        history.push(&Metrics { sampled_at: None, ..sample(9, None, 7) });
        let points: Vec<Metrics> = history.samples().collect();
        assert_eq!(points.iter().map(|p| p.network_rx_bytes).collect::<Vec<_>>(), [8000, 400, 500]);
        assert_eq!(points[1].cpu_percent, Some(1.0), "the mean of the samples that had one");
        assert_eq!(points[2].cpu_percent, None);
        assert_eq!(history.newest(), sample(8, None, 0).sampled_at, "a sample without a time is not kept");
    }
}
