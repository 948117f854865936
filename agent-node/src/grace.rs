//! When a container's problems start to count: the start grace and the unhealthy duration, from the node's
//! settings and the container's labels.
//!
//! - **Start grace** (`NODE_START_GRACE_SECONDS`, default 0 = none; label `hemostat.grace` per container):
//!   for that long after a container starts, the node raises no actionable anomaly for it. The lifecycle
//!   events (started, exited, health changed) are still reported at once, so the coordinator's registry and
//!   `hemostat container` show a crash during grace; its health alert (`non_zero_exit`, `oom_killed`) is
//!   held until grace ends and sent then if the container is still down (started again meanwhile, by
//!   Docker's restart policy or by someone, it is dropped). An `unhealthy` verdict during grace is reported
//!   at its end if the container is still unhealthy; high CPU or memory is not reported until grace ends
//!   (the next sample after it). `excessive_restarts` is exempt: a container crash-looping under Docker's
//!   restart policy starts again and again, and would otherwise never leave its grace.
//! - **Unhealthy duration** (label `hemostat.unhealthy_for`, default 0): Docker's `unhealthy` must last
//!   that long before the node reports the `unhealthy` anomaly; a container healthy again before then is
//!   never reported.
//!
//! Durations are plain seconds (`30`) or humantime (`30s`, `2m`, `1m 30s`). A bad value is logged once,
//! naming the label and the container, and the default applies.

use std::collections::HashMap;
use std::time::Duration;

/// The label that overrides `NODE_START_GRACE_SECONDS` for one container.
pub const GRACE_LABEL: &str = "hemostat.grace";
/// The label saying how long Docker's `unhealthy` must last before it counts.
pub const UNHEALTHY_FOR_LABEL: &str = "hemostat.unhealthy_for";

/// A label whose value is not a duration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("label {label}={value:?} is not a duration (e.g. 30, 30s, 2m); the default applies")]
pub struct BadLabel {
    /// The label.
    pub label: &'static str,
    /// Its value.
    pub value: String,
}

/// How long one container's problems wait before they count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    /// No actionable anomaly this long after it starts.
    pub grace: Duration,
    /// Docker's `unhealthy` must last this long.
    pub unhealthy_for: Duration,
}

impl Timings {
    /// The container's timings from its labels, `default_grace` where it has no (valid) `hemostat.grace`.
    pub fn from_labels(labels: &HashMap<String, String>, default_grace: Duration) -> Self {
        let read = |label| labels.get(label).and_then(|v| parse_duration(v));
        Timings {
            grace: read(GRACE_LABEL).unwrap_or(default_grace),
            unhealthy_for: read(UNHEALTHY_FOR_LABEL).unwrap_or_default(),
        }
    }
}

/// The labels of these whose value is not a duration.
pub fn bad_labels(labels: &HashMap<String, String>) -> Vec<BadLabel> {
    [GRACE_LABEL, UNHEALTHY_FOR_LABEL]
        .into_iter()
        .filter_map(|label| {
            let value = labels.get(label)?;
            parse_duration(value).is_none().then(|| BadLabel { label, value: value.clone() })
        })
        .collect()
}

/// A duration from plain seconds (`30`) or humantime (`30s`, `2m`, `1h`, `1m 30s`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn durations_are_seconds_or_humantime() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration(" 2m "), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m 30s"), Some(Duration::from_secs(90)));
        for bad in ["soon", "", "-5", "5 parsecs"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn labels_override_the_default_and_a_bad_one_leaves_it() {
        let default = Duration::from_secs(7);
        assert_eq!(
            Timings::from_labels(&labels(&[]), default),
            Timings { grace: default, unhealthy_for: Duration::ZERO }
        );
        let set = labels(&[(GRACE_LABEL, "3s"), (UNHEALTHY_FOR_LABEL, "2m")]);
        assert_eq!(
            Timings::from_labels(&set, default),
            Timings { grace: Duration::from_secs(3), unhealthy_for: Duration::from_secs(120) }
        );
        assert!(bad_labels(&set).is_empty());
        let bad = labels(&[(GRACE_LABEL, "soon")]);
        assert_eq!(Timings::from_labels(&bad, default).grace, default);
        assert_eq!(bad_labels(&bad), [BadLabel { label: GRACE_LABEL, value: "soon".into() }]);
    }
}
