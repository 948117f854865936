//! Bounds on what the node puts in a message for the coordinator, so that no message exceeds what the
//! coordinator accepts (tonic's 4 MiB per message) and none blocks the ones behind it. Every message
//! queued for the coordinator passes [`bound`], then [`split`]:
//!
//! | what | bound (defaults, [`MessageBounds`]) | when over it |
//! |---|---|---|
//! | a message | 1 MiB | anything but a snapshot or a metrics report cannot exceed it once bounded |
//! | a snapshot or a metrics report | 16 KiB | sent in parts of at most that (a part holds at least one container, so one with 32 KiB of labels goes alone): the coordinator's decode buffer for a session grows to its largest message and keeps that size for the session's life |
//! | container name | 256 B | cut, with the marker |
//! | image | 512 B | cut, with the marker |
//! | label key | 256 B | the label is left out |
//! | label value | 4 KiB | cut, with the marker |
//! | labels of one container | 32 KiB (keys and values) | labels left out, Compose, Swarm and `hemostat.` ones last; a label `hemostat.truncated` says how many |
//! | log tail of an alert | 64 KiB | the oldest lines left out, a first line with the marker |
//! | health outputs of an alert | 8 KiB | the oldest left out, a first entry with the marker |
//! | command result detail, notice detail | 4 KiB | cut, with the marker |
//! | exec output | 16 KiB | cut, with the marker ([`crate::actions::exec::MAX_OUTPUT`]) |
//!
//! The marker says how much was cut: `…[truncated 4.3 MB]`. What is cut is counted in the node's
//! `/metrics` (`hemostat_node_message_cuts_total{field}`) and said to the coordinator in a notice, which it
//! records as a `node_notice` event.

use std::collections::HashMap;

use hemostat_proto::v1 as pb;
use hemostat_proto::v1::session_request::Body;
use prost::Message;

/// The label that says which labels were left out of a container's report.
pub const TRUNCATED_LABEL: &str = "hemostat.truncated";

/// The longest marker: `…[truncated 1000.0 KB]`.
const MARKER_MAX: usize = 24;

/// What the node puts in one message at most. The defaults are documented in the module's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageBounds {
    /// One message, encoded.
    pub message_bytes: usize,
    /// One part of a snapshot or of a metrics report, encoded (larger ones are split).
    pub part_bytes: usize,
    /// A container's name.
    pub name_bytes: usize,
    /// A container's image.
    pub image_bytes: usize,
    /// One label key.
    pub label_key_bytes: usize,
    /// One label value.
    pub label_value_bytes: usize,
    /// Every label of one container, keys and values.
    pub labels_bytes: usize,
    /// An alert's log tail, all lines.
    pub log_tail_bytes: usize,
    /// An alert's health outputs, all of them.
    pub health_output_bytes: usize,
    /// A command result's or a notice's detail.
    pub detail_bytes: usize,
    /// An exec's output.
    pub output_bytes: usize,
}

impl Default for MessageBounds {
    fn default() -> Self {
        MessageBounds {
            message_bytes: 1 << 20,
            part_bytes: 16 << 10,
            name_bytes: 256,
            image_bytes: 512,
            label_key_bytes: 256,
            label_value_bytes: 4 << 10,
            labels_bytes: 32 << 10,
            log_tail_bytes: 64 << 10,
            health_output_bytes: 8 << 10,
            detail_bytes: 4 << 10,
            output_bytes: crate::actions::exec::MAX_OUTPUT,
        }
    }
}

/// Something cut from a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    /// The container it is about, if any.
    pub container_id: String,
    /// That container's name (as sent, so bounded).
    pub container_name: String,
    /// Which field: `name`, `image`, `label_key`, `label_value`, `labels`, `log_tail`, `health_outputs`,
    /// `detail`, `output`.
    pub field: &'static str,
    /// How many values were cut or left out.
    pub count: u64,
    /// What was cut, for people.
    pub what: String,
}

/// The marker that ends text cut by `bytes` bytes: `…[truncated 4.3 MB]`.
pub fn marker(bytes: usize) -> String {
    format!("…[truncated {}]", human_bytes(bytes))
}

/// `bytes` in decimal units with one decimal: `512 B`, `1.5 KB`, `4.3 MB`.
pub fn human_bytes(bytes: usize) -> String {
    let b = bytes as f64;
    if bytes < 1000 {
        format!("{bytes} B")
    } else if b < 1e6 {
        format!("{:.1} KB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} GB", b / 1e9)
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary; returns how many bytes were cut.
pub fn cut_to(text: &mut String, max: usize) -> usize {
    if text.len() <= max {
        return 0;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    cut
}

/// Cuts `text` to at most `max` bytes, marker included (a `max` below the marker's length leaves the marker
/// alone), ending it with the marker when anything was cut; returns how many bytes of the original were cut.
pub fn truncate_marked(text: &mut String, max: usize) -> usize {
    if text.len() <= max {
        return 0;
    }
    let original = text.len();
    cut_to(text, max.saturating_sub(MARKER_MAX));
    let cut = original - text.len();
    text.push_str(&marker(cut));
    cut
}

/// Bounds every field of `body` (see the module's table) and returns what was cut.
pub fn bound(body: &mut Body, bounds: &MessageBounds) -> Vec<Cut> {
    let mut cuts = Vec::new();
    match body {
        Body::Snapshot(snapshot) => {
            for container in &mut snapshot.containers {
                bound_state(container, bounds, &mut cuts);
            }
        }
        Body::ContainerEvent(pb::ContainerEvent { container: Some(container), .. })
        | Body::Resolved(pb::AnomalyResolved { container: Some(container), .. }) => {
            bound_state(container, bounds, &mut cuts)
        }
        Body::HealthAlert(alert) => {
            let container = alert.container.get_or_insert_with(Default::default);
            bound_state(container, bounds, &mut cuts);
            let (id, name) = (container.id.clone(), container.name.clone());
            for (field, lines, max) in [
                ("log_tail", &mut alert.log_tail, bounds.log_tail_bytes),
                ("health_outputs", &mut alert.health_outputs, bounds.health_output_bytes),
            ] {
                if let Some(what) = keep_newest(lines, max) {
                    cuts.push(Cut { container_id: id.clone(), container_name: name.clone(), field, count: 1, what });
                }
            }
        }
        Body::CommandResult(result) => {
            for (field, text, max) in [
                ("detail", &mut result.detail, bounds.detail_bytes),
                ("output", &mut result.output, bounds.output_bytes),
            ] {
                let cut = truncate_marked(text, max);
                if cut > 0 {
                    let what = format!("the command result's {field} cut by {} (at most {max} B)", human_bytes(cut));
                    cuts.push(Cut {
                        container_id: result.container_id.clone(),
                        container_name: String::new(),
                        field,
                        count: 1,
                        what,
                    });
                }
            }
        }
        Body::Notice(notice) => {
            truncate_marked(&mut notice.container_name, bounds.name_bytes);
            truncate_marked(&mut notice.detail, bounds.detail_bytes);
        }
        Body::HostAlert(alert) => {
            truncate_marked(&mut alert.path, bounds.detail_bytes);
        }
        _ => {}
    }
    cuts
}

/// Bounds a container's name, image and labels.
fn bound_state(state: &mut pb::ContainerState, bounds: &MessageBounds, cuts: &mut Vec<Cut>) {
    let mut found = Vec::new();
    for (field, text, max) in
        [("name", &mut state.name, bounds.name_bytes), ("image", &mut state.image, bounds.image_bytes)]
    {
        let cut = truncate_marked(text, max);
        if cut > 0 {
            found.push((field, 1, format!("its {field} cut by {} (at most {max} B)", human_bytes(cut))));
        }
    }
    found.extend(bound_labels(&mut state.labels, bounds));
    cuts.extend(found.into_iter().map(|(field, count, what)| Cut {
        container_id: state.id.clone(),
        container_name: state.name.clone(),
        field,
        count,
        what,
    }));
}

/// Bounds one container's labels: (field, count, what) of each kind of cut.
fn bound_labels(labels: &mut HashMap<String, String>, bounds: &MessageBounds) -> Vec<(&'static str, u64, String)> {
    let mut found = Vec::new();
    let long_keys: Vec<String> = labels.keys().filter(|k| k.len() > bounds.label_key_bytes).cloned().collect();
    if !long_keys.is_empty() {
        for key in &long_keys {
            labels.remove(key);
        }
        found.push((
            "label_key",
            long_keys.len() as u64,
            format!("{} labels with keys over {} B left out", long_keys.len(), bounds.label_key_bytes),
        ));
    }
    let mut cut_values = Vec::new();
    for (key, value) in labels.iter_mut() {
        let cut = truncate_marked(value, bounds.label_value_bytes);
        if cut > 0 {
            cut_values.push(format!("label {}'s value cut by {}", shown(key), human_bytes(cut)));
        }
    }
    if !cut_values.is_empty() {
        cut_values.sort();
        found.push((
            "label_value",
            cut_values.len() as u64,
            format!("{} (label values at most {} B)", cut_values.join(", "), bounds.label_value_bytes),
        ));
    }
    let size = |labels: &HashMap<String, String>| labels.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    let total = size(labels);
    if total > bounds.labels_bytes {
        // Kept first: the labels HemoStat itself reads (Compose, Swarm, its own); then by key.
        let mut keys: Vec<String> = labels.keys().cloned().collect();
        keys.sort_by_key(|k| (!(k.starts_with("com.docker.") || k.starts_with("hemostat.")), k.clone()));
        let room = bounds.labels_bytes.saturating_sub(TRUNCATED_LABEL.len() + 64);
        let (mut kept, mut left_out, mut left_bytes) = (0, 0u64, 0);
        for key in keys {
            let len = key.len() + labels[&key].len();
            if kept + len <= room {
                kept += len;
            } else {
                left_bytes += len;
                left_out += 1;
                labels.remove(&key);
            }
        }
        let note = format!("{left_out} labels left out {}", marker(left_bytes));
        labels.insert(TRUNCATED_LABEL.to_owned(), note);
        found.push((
            "labels",
            left_out,
            format!(
                "{left_out} labels ({}) left out of {} (labels at most {} B per container)",
                human_bytes(left_bytes),
                human_bytes(total),
                bounds.labels_bytes
            ),
        ));
    }
    found
}

/// Leaves out the oldest entries of `lines` until they fit `max` bytes, with a first entry saying how much
/// was left out; `None` when they fit.
fn keep_newest(lines: &mut Vec<String>, max: usize) -> Option<String> {
    let total: usize = lines.iter().map(String::len).sum();
    if total <= max {
        return None;
    }
    let room = max.saturating_sub(MARKER_MAX + 32);
    let (mut kept, mut size) = (0, 0);
    for line in lines.iter().rev() {
        if size + line.len() > room {
            break;
        }
        size += line.len();
        kept += 1;
    }
    let dropped = lines.len() - kept;
    let note = format!("{dropped} older entries left out {}", marker(total - size));
    lines.drain(..dropped);
    lines.insert(0, note.clone());
    Some(format!("{note} (at most {max} B)"))
}

/// A label key as shown in a notice: escaped, at most 64 characters.
fn shown(key: &str) -> String {
    let short: String = key.chars().take(64).collect();
    format!("{:?}", short)
}

/// `body` as messages of at most `budget` bytes: a snapshot is split into parts (`part`, `more`), a
/// metrics report into several reports; any other message is returned whole.
pub fn split(body: Body, budget: usize) -> Vec<Body> {
    // Room for the message's own framing around the repeated field.
    let budget = budget.saturating_sub(64).max(1);
    if message_size(&body) <= budget {
        return vec![body];
    }
    match body {
        Body::Snapshot(snapshot) => {
            let parts = chunks(snapshot.containers, budget);
            let last = parts.len().saturating_sub(1);
            parts
                .into_iter()
                .enumerate()
                .map(|(i, containers)| {
                    Body::Snapshot(pb::ContainerSnapshot { containers, part: i as u32, more: i < last })
                })
                .collect()
        }
        Body::Metrics(report) => chunks(report.samples, budget)
            .into_iter()
            .map(|samples| Body::Metrics(pb::MetricsReport { samples }))
            .collect(),
        other => vec![other],
    }
}

/// Items grouped greedily, in order, into groups whose encoded size stays within `budget` (an item larger
/// than the budget alone makes a group).
fn chunks<T: Message>(items: Vec<T>, budget: usize) -> Vec<Vec<T>> {
    let mut groups = vec![Vec::new()];
    let mut size = 0;
    for item in items {
        // The field's tag and length prefix: at most 1 + 5 bytes.
        let len = item.encoded_len() + 6;
        if size + len > budget && !groups.last().expect("one group").is_empty() {
            groups.push(Vec::new());
            size = 0;
        }
        size += len;
        groups.last_mut().expect("one group").push(item);
    }
    groups
}

/// The encoded size of `body` as sent: in a `SessionRequest`, with room for the largest sequence number.
pub fn message_size(body: &Body) -> usize {
    body.encoded_len() + 11
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn state(name: &str, labels: &[(&str, String)]) -> pb::ContainerState {
        pb::ContainerState {
            id: "c1".into(),
            name: name.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_marker_says_how_much_was_cut() {
        assert_eq!(marker(4_300_000), "…[truncated 4.3 MB]");
        assert_eq!(marker(512), "…[truncated 512 B]");
        assert!(marker(999_999).len() <= MARKER_MAX, "{}", marker(999_999));
        let mut text = "é".repeat(100);
        let cut = truncate_marked(&mut text, 50);
        assert!(text.len() <= 50 && text.ends_with(']') && text.starts_with('é'), "{text}");
        assert_eq!(cut, 200 - text.find('…').unwrap());
        let mut short = "fits".to_owned();
        assert_eq!(truncate_marked(&mut short, 4), 0);
        assert_eq!(short, "fits");
    }

    #[test]
    fn a_huge_label_is_cut_with_a_marker_and_said() {
        let big = "x".repeat(4_500_000);
        let mut body = Body::Snapshot(pb::ContainerSnapshot {
            containers: vec![state("web", &[("big", big), ("com.docker.compose.service", "api".into())])],
            ..Default::default()
        });
        let cuts = bound(&mut body, &MessageBounds::default());
        let Body::Snapshot(snapshot) = &body else { unreachable!() };
        let value = &snapshot.containers[0].labels["big"];
        assert!(value.len() <= 4096 && value.ends_with("…[truncated 4.5 MB]"), "{}", &value[value.len() - 30..]);
        assert_eq!(snapshot.containers[0].labels["com.docker.compose.service"], "api");
        assert_eq!(cuts.len(), 1);
        assert_eq!((cuts[0].field, cuts[0].container_name.as_str()), ("label_value", "web"));
        assert!(cuts[0].what.contains("label \"big\"'s value cut by 4.5 MB"), "{}", cuts[0].what);
        assert!(message_size(&body) < 8 << 10);
    }

    #[test]
    fn too_many_labels_leave_out_the_least_important_and_say_so() {
        let labels: Vec<(String, String)> = (0..100).map(|i| (format!("k{i:03}"), "v".repeat(1000))).collect();
        let mut state = state("web", &[]);
        state.labels = labels.into_iter().collect();
        state.labels.insert("com.docker.compose.project".into(), "shop".into());
        state.labels.insert("x".repeat(300), "long key".into());
        let mut body = Body::ContainerEvent(pb::ContainerEvent { container: Some(state), ..Default::default() });
        let cuts = bound(&mut body, &MessageBounds::default());
        let Body::ContainerEvent(event) = &body else { unreachable!() };
        let labels = &event.container.as_ref().unwrap().labels;
        let size: usize = labels.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert!(size <= 32 << 10, "{size}");
        assert_eq!(labels["com.docker.compose.project"], "shop", "HemoStat's own labels are kept first");
        assert!(labels[TRUNCATED_LABEL].contains(" labels left out …[truncated"), "{}", labels[TRUNCATED_LABEL]);
        let fields: Vec<&str> = cuts.iter().map(|c| c.field).collect();
        assert_eq!(fields, ["label_key", "labels"]);
    }

    #[test]
    fn evidence_keeps_the_newest_lines() {
        let mut alert = pb::HealthAlert {
            container: Some(state("web", &[])),
            log_tail: (0..100).map(|i| format!("{i:04} {}", "y".repeat(995))).collect(),
            ..Default::default()
        };
        let mut body = Body::HealthAlert(alert.clone());
        let cuts = bound(&mut body, &MessageBounds::default());
        let Body::HealthAlert(bounded) = body else { unreachable!() };
        assert!(bounded.log_tail.iter().map(String::len).sum::<usize>() <= 64 << 10);
        assert!(bounded.log_tail[0].contains("older entries left out …[truncated"), "{}", bounded.log_tail[0]);
        assert_eq!(bounded.log_tail.last(), alert.log_tail.last(), "the newest line is kept");
        assert_eq!(cuts[0].field, "log_tail");
        alert.log_tail.truncate(10);
        let mut small = Body::HealthAlert(alert);
        assert!(bound(&mut small, &MessageBounds::default()).is_empty(), "fitting evidence is left as it is");
    }

    #[test]
    fn a_large_snapshot_is_split_into_ordered_parts_within_the_budget() {
        let containers: Vec<pb::ContainerState> =
            (0..500).map(|i| state(&format!("c{i:03}"), &[("v", "z".repeat(900))])).collect();
        let parts = split(
            Body::Snapshot(pb::ContainerSnapshot { containers: containers.clone(), ..Default::default() }),
            64 << 10,
        );
        assert!(parts.len() > 1);
        let mut seen = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            assert!(message_size(part) <= 64 << 10);
            let Body::Snapshot(snapshot) = part else { panic!("{part:?}") };
            assert_eq!((snapshot.part as usize, snapshot.more), (i, i + 1 < parts.len()));
            seen.extend(snapshot.containers.clone());
        }
        assert_eq!(seen, containers, "every container once, in order");
        let one = split(
            Body::Snapshot(pb::ContainerSnapshot { containers: containers[..3].to_vec(), ..Default::default() }),
            64 << 10,
        );
        assert!(matches!(&one[..], [Body::Snapshot(s)] if s.part == 0 && !s.more), "a small one stays whole");
    }

    /// Text of any length up to about 8 KB, with one-, two- and four-byte characters.
    fn text(max_repeats: usize) -> impl Strategy<Value = String> {
        ("[a-zé😀]{0,8}", 0..max_repeats).prop_map(|(unit, n)| unit.repeat(n))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_container_fits_its_bounds_once_bounded(
            name in text(100),
            labels in proptest::collection::hash_map(text(80), text(1000), 0..20),
        ) {
            let bounds = MessageBounds { labels_bytes: 8 << 10, ..MessageBounds::default() };
            let mut body = Body::Snapshot(pb::ContainerSnapshot {
                containers: vec![pb::ContainerState { name, labels, ..Default::default() }],
                ..Default::default()
            });
            bound(&mut body, &bounds);
            let Body::Snapshot(snapshot) = &body else { unreachable!() };
            let state = &snapshot.containers[0];
            prop_assert!(state.name.len() <= bounds.name_bytes);
            prop_assert!(state.labels.iter().all(|(k, v)| k.len() <= bounds.label_key_bytes.max(TRUNCATED_LABEL.len()) && v.len() <= bounds.label_value_bytes));
            prop_assert!(state.labels.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() <= bounds.labels_bytes);
        }
    }
}
