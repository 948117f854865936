//! A container's own remediation policy: the labels with which it overrides the fleet's settings for itself,
//! their validation (the same rules on the node and the coordinator), and where each value of an effective
//! policy came from ([`Origin`]).
//!
//! | label | overrides | accepts |
//! |---|---|---|
//! | `hemostat.cooldown` | `RESPONDER_COOLDOWN_SECONDS` | a duration, 0 to 7 days |
//! | `hemostat.max_per_hour` | `RESPONDER_MAX_RETRIES_PER_HOUR` | 1 to 100 |
//! | `hemostat.restart_policy` | `RESPONDER_RESTART_POLICY` | `cooldown` or `backoff` |
//! | `hemostat.stop_timeout` | `RESPONDER_STOP_TIMEOUT_SECONDS` | a duration, 0 to 10 minutes |
//! | `hemostat.sustain` | `ANALYZER_SUSTAIN_SECONDS` | a duration, 1 s to 1 hour |
//! | `hemostat.cpu_threshold` | the node's `THRESHOLD_CPU_PERCENT` | a percentage, 1 to 100 |
//! | `hemostat.memory_threshold` | the node's `THRESHOLD_MEMORY_PERCENT` | a percentage, 1 to 100 |
//!
//! Durations are plain seconds (`30`) or humantime (`30s`, `5m`, `1h 30m`); percentages may end in `%`;
//! names are case-insensitive. A value that is not acceptable is an [`InvalidLabel`] naming the label, its
//! value and what it accepts: the default applies.

use std::time::Duration;

use hemostat_proto::v1 as pb;

named_enum! {
    /// A label with which a container sets one value of its own remediation policy.
    pub enum PolicyLabel("policy label") {
        /// The least time between two actions, under the cooldown policy.
        Cooldown => "hemostat.cooldown",
        /// The most actions in any rolling hour (and failed verifications in a row) before the breaker opens.
        MaxPerHour => "hemostat.max_per_hour",
        /// How actions are spaced: `cooldown` or `backoff`.
        RestartPolicy => "hemostat.restart_policy",
        /// How long a restart waits for a graceful stop.
        StopTimeout => "hemostat.stop_timeout",
        /// How long a value must stay above its threshold to be sustained.
        Sustain => "hemostat.sustain",
        /// The CPU percentage above which the node raises `high_cpu`.
        CpuThreshold => "hemostat.cpu_threshold",
        /// The memory percentage above which the node raises `high_memory`.
        MemoryThreshold => "hemostat.memory_threshold",
    }
}

/// The longest `hemostat.cooldown`: 7 days.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(7 * 24 * 3600);
/// The longest `hemostat.stop_timeout`: 10 minutes.
pub const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(600);
/// The shortest and longest `hemostat.sustain`: 1 s to 1 hour.
pub const SUSTAIN_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
/// The most `hemostat.max_per_hour`.
pub const MAX_PER_HOUR: u32 = 100;

/// How a container's actions are spaced (`hemostat.restart_policy`): the coordinator's backoff curve
/// applies under `backoff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spacing {
    /// The fixed cooldown.
    Cooldown,
    /// The growing backoff.
    Backoff,
}

/// A policy label whose value is not acceptable; the default applies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("label {label}={value:?} is not valid: expected {}; the default applies", label.accepts())]
pub struct InvalidLabel {
    /// The label.
    pub label: PolicyLabel,
    /// Its value (untrusted text, at most 64 characters of it).
    pub value: String,
}

impl PolicyLabel {
    /// The policy value it sets, as `hemostat container` names it: the label without `hemostat.`.
    pub fn value_name(self) -> &'static str {
        self.name().trim_start_matches("hemostat.")
    }

    /// What it accepts, for people.
    pub fn accepts(self) -> &'static str {
        match self {
            PolicyLabel::Cooldown => "a duration from 0s to 7d (e.g. 30, 30s, 5m)",
            PolicyLabel::MaxPerHour => "a whole number from 1 to 100",
            PolicyLabel::RestartPolicy => "cooldown or backoff",
            PolicyLabel::StopTimeout => "a duration from 0s to 10m (e.g. 30, 30s)",
            PolicyLabel::Sustain => "a duration from 1s to 1h (e.g. 30, 30s, 2m)",
            PolicyLabel::CpuThreshold | PolicyLabel::MemoryThreshold => "a percentage from 1 to 100 (e.g. 90)",
        }
    }

    fn invalid(self, value: &str) -> InvalidLabel {
        InvalidLabel { label: self, value: value.chars().take(64).collect() }
    }

    /// Whether `value` is acceptable for this label.
    pub fn check(self, value: &str) -> Result<(), InvalidLabel> {
        match self {
            PolicyLabel::Cooldown | PolicyLabel::StopTimeout | PolicyLabel::Sustain => self.duration(value).map(drop),
            PolicyLabel::MaxPerHour => self.count(value).map(drop),
            PolicyLabel::RestartPolicy => self.spacing(value).map(drop),
            PolicyLabel::CpuThreshold | PolicyLabel::MemoryThreshold => self.percent(value).map(drop),
        }
    }

    /// `value` as this duration label's duration, within its bounds.
    pub fn duration(self, value: &str) -> Result<Duration, InvalidLabel> {
        let (least, most) = match self {
            PolicyLabel::Cooldown => (Duration::ZERO, MAX_COOLDOWN),
            PolicyLabel::StopTimeout => (Duration::ZERO, MAX_STOP_TIMEOUT),
            PolicyLabel::Sustain => SUSTAIN_RANGE,
            _ => return Err(self.invalid(value)),
        };
        parse_duration(value).filter(|d| (least..=most).contains(d)).ok_or_else(|| self.invalid(value))
    }

    /// `value` as `hemostat.max_per_hour`'s count, 1 to [`MAX_PER_HOUR`].
    pub fn count(self, value: &str) -> Result<u32, InvalidLabel> {
        match self {
            PolicyLabel::MaxPerHour => value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PER_HOUR).contains(n))
                .ok_or_else(|| self.invalid(value)),
            _ => Err(self.invalid(value)),
        }
    }

    /// `value` as this threshold label's percentage, 1 to 100 (a trailing `%` allowed).
    pub fn percent(self, value: &str) -> Result<f64, InvalidLabel> {
        match self {
            PolicyLabel::CpuThreshold | PolicyLabel::MemoryThreshold => value
                .trim()
                .trim_end_matches('%')
                .trim_end()
                .parse::<f64>()
                .ok()
                .filter(|p| (1.0..=100.0).contains(p))
                .ok_or_else(|| self.invalid(value)),
            _ => Err(self.invalid(value)),
        }
    }

    /// `value` as `hemostat.restart_policy`'s spacing.
    pub fn spacing(self, value: &str) -> Result<Spacing, InvalidLabel> {
        match (self, value.trim().to_ascii_lowercase().as_str()) {
            (PolicyLabel::RestartPolicy, "cooldown") => Ok(Spacing::Cooldown),
            (PolicyLabel::RestartPolicy, "backoff") => Ok(Spacing::Backoff),
            _ => Err(self.invalid(value)),
        }
    }
}

/// Every policy label among `labels` whose value is not acceptable, in the order of [`PolicyLabel::ALL`].
pub fn invalid_labels<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Vec<InvalidLabel> {
    PolicyLabel::ALL.into_iter().filter_map(|label| label.check(get(label.name())?).err()).collect()
}

/// A duration from plain seconds (`30`) or humantime (`30s`, `2m`, `1h`, `1m 30s`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    humantime::parse_duration(text).ok()
}

/// Where one value of a container's effective policy came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// A coordinator setting's environment variable (named).
    Environment(&'static str),
    /// A coordinator setting's flag (its file key, the flag with underscores).
    Flag(&'static str),
    /// A key of the coordinator's configuration file.
    File(&'static str),
    /// A label on the container.
    Label(PolicyLabel),
    /// The node's own setting (named), whose value the coordinator does not know.
    Node(&'static str),
}

impl std::fmt::Display for Origin {
    /// `default`, `environment RESPONDER_COOLDOWN_SECONDS`, `flag --cooldown-seconds`, `file key
    /// cooldown_seconds`, `label hemostat.cooldown`, `node setting THRESHOLD_CPU_PERCENT`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::Environment(var) => write!(f, "environment {var}"),
            Origin::Flag(key) => write!(f, "flag --{}", key.replace('_', "-")),
            Origin::File(key) => write!(f, "file key {key}"),
            Origin::Label(label) => write!(f, "label {label}"),
            Origin::Node(setting) => write!(f, "node setting {setting}"),
        }
    }
}

/// One value of a container's effective policy, for people: its name, its value as text, where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyValue {
    /// `cooldown`, `max_per_hour`, … ([`PolicyLabel::value_name`]).
    pub name: &'static str,
    /// The value as text (`3600s`, `3`, `backoff`, `85%`); empty when only the node knows it.
    pub value: String,
    /// Where it came from.
    pub origin: Origin,
}

impl From<&PolicyValue> for pb::PolicyValue {
    fn from(value: &PolicyValue) -> Self {
        let (source, origin) = match value.origin {
            Origin::Default => (pb::PolicySource::Default, String::new()),
            Origin::Environment(var) => (pb::PolicySource::Environment, var.to_owned()),
            Origin::Flag(key) => (pb::PolicySource::Flag, key.to_owned()),
            Origin::File(key) => (pb::PolicySource::File, key.to_owned()),
            Origin::Label(label) => (pb::PolicySource::Label, label.name().to_owned()),
            Origin::Node(setting) => (pb::PolicySource::Node, setting.to_owned()),
        };
        pb::PolicyValue { name: value.name.to_owned(), value: value.value.clone(), source: source as i32, origin }
    }
}

/// Where a wire policy value came from, for people (`default`, `environment RESPONDER_COOLDOWN_SECONDS`,
/// `label hemostat.cooldown`, …): the CLI's and the dashboard's one reading of [`pb::PolicyValue`].
pub fn describe_source(value: &pb::PolicyValue) -> String {
    let origin = &value.origin;
    match value.source() {
        pb::PolicySource::Default => "default".to_owned(),
        pb::PolicySource::Environment => format!("environment {origin}"),
        pb::PolicySource::Flag => format!("flag --{}", origin.replace('_', "-")),
        pb::PolicySource::File => format!("file key {origin}"),
        pb::PolicySource::Label => format!("label {origin}"),
        pb::PolicySource::Node => format!("node setting {origin}"),
        pb::PolicySource::Unspecified => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_label_takes_its_kind_of_value_within_its_bounds() {
        assert_eq!(PolicyLabel::Cooldown.duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(PolicyLabel::Cooldown.duration("0"), Ok(Duration::ZERO));
        assert_eq!(PolicyLabel::Cooldown.duration("7d"), Ok(MAX_COOLDOWN));
        assert!(PolicyLabel::Cooldown.duration("8d").is_err());
        assert!(PolicyLabel::Cooldown.duration("soon").is_err());
        assert_eq!(PolicyLabel::StopTimeout.duration(" 30 "), Ok(Duration::from_secs(30)));
        assert!(PolicyLabel::StopTimeout.duration("11m").is_err());
        assert!(PolicyLabel::Sustain.duration("0").is_err(), "sustain is at least 1 s");
        assert_eq!(PolicyLabel::Sustain.duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(PolicyLabel::Sustain.duration("2h").is_err());
        assert_eq!(PolicyLabel::MaxPerHour.count("1"), Ok(1));
        assert_eq!(PolicyLabel::MaxPerHour.count("100"), Ok(100));
        for bad in ["0", "101", "-1", "2.5", "many"] {
            assert!(PolicyLabel::MaxPerHour.count(bad).is_err(), "{bad}");
        }
        assert_eq!(PolicyLabel::CpuThreshold.percent("90"), Ok(90.0));
        assert_eq!(PolicyLabel::MemoryThreshold.percent("12.5 %"), Ok(12.5));
        for bad in ["0", "0.5", "101", "NaN", "high"] {
            assert!(PolicyLabel::CpuThreshold.percent(bad).is_err(), "{bad}");
        }
        assert_eq!(PolicyLabel::RestartPolicy.spacing("Backoff"), Ok(Spacing::Backoff));
        assert_eq!(PolicyLabel::RestartPolicy.spacing("cooldown"), Ok(Spacing::Cooldown));
        assert!(PolicyLabel::RestartPolicy.spacing("exponential").is_err());
    }

    #[test]
    fn an_invalid_label_names_the_label_its_value_and_what_it_accepts() {
        let error = PolicyLabel::Cooldown.check("soon").unwrap_err();
        assert_eq!(
            error.to_string(),
            "label hemostat.cooldown=\"soon\" is not valid: expected a duration from 0s to 7d (e.g. 30, 30s, 5m); \
             the default applies"
        );
        let long = "x".repeat(1000);
        assert_eq!(PolicyLabel::Sustain.check(&long).unwrap_err().value.len(), 64, "bounded");
    }

    #[test]
    fn the_invalid_labels_of_a_container_are_only_the_policy_labels_with_bad_values() {
        let labels = [("hemostat.cooldown", "soon"), ("hemostat.max_per_hour", "2"), ("other", "x")];
        let get = |k: &str| labels.iter().find(|(l, _)| *l == k).map(|(_, v)| *v);
        assert_eq!(invalid_labels(get), [InvalidLabel { label: PolicyLabel::Cooldown, value: "soon".into() }]);
    }

    #[test]
    fn origins_read_the_same_from_the_domain_and_the_wire() {
        for origin in [
            Origin::Default,
            Origin::Environment("RESPONDER_COOLDOWN_SECONDS"),
            Origin::Flag("cooldown_seconds"),
            Origin::File("cooldown_seconds"),
            Origin::Label(PolicyLabel::Cooldown),
            Origin::Node("THRESHOLD_CPU_PERCENT"),
        ] {
            let value = PolicyValue { name: "cooldown", value: "5s".into(), origin };
            assert_eq!(describe_source(&pb::PolicyValue::from(&value)), origin.to_string());
        }
        assert_eq!(Origin::Label(PolicyLabel::Cooldown).to_string(), "label hemostat.cooldown");
        assert_eq!(
            Origin::Environment("RESPONDER_COOLDOWN_SECONDS").to_string(),
            "environment RESPONDER_COOLDOWN_SECONDS"
        );
    }
}
