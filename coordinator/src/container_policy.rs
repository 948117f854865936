//! A container's effective remediation policy: the coordinator's settings, each overridden by the
//! container's policy label when it has a valid one ([`hemostat_model::policy`] lists them and their
//! bounds), every value with where it came from (default, a setting's environment variable, flag or file
//! key, a label, or the node's own setting).
//!
//! [`PolicyDefaults::effective`] is the one place that combines them. Dispatch takes the container's
//! [`Budget`] from it, the commands its stop timeout, the analysis its sustain window, and GetContainer
//! shows all of it (`hemostat container`: the POLICY section). A label whose value is not acceptable leaves
//! the setting's value, and is listed in [`ContainerPolicy::invalid`] (recorded once per container, label
//! and value by `remediation::labels`).
//!
//! The CPU and memory thresholds are the node's (it raises `high_cpu` and `high_memory`, applying the labels
//! itself with the same rules); the coordinator shows a label's value, or that the node's setting applies.

use std::collections::BTreeMap;
use std::time::Duration;

use hemostat_model::policy::{InvalidLabel, Origin, PolicyLabel, PolicyValue, Spacing};
use hemostat_settings::{Source, Sourced};

use crate::policy::{Backoff, Budget, RestartPolicy};

/// Where each coordinator setting a label can override came from (all defaults unless configured).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettingOrigins {
    /// `RESPONDER_COOLDOWN_SECONDS`.
    pub cooldown: Origin,
    /// `RESPONDER_MAX_RETRIES_PER_HOUR`.
    pub max_per_hour: Origin,
    /// `RESPONDER_RESTART_POLICY`.
    pub restart_policy: Origin,
    /// `RESPONDER_STOP_TIMEOUT_SECONDS`.
    pub stop_timeout: Origin,
    /// `ANALYZER_SUSTAIN_SECONDS`.
    pub sustain: Origin,
}

impl Default for SettingOrigins {
    fn default() -> Self {
        SettingOrigins {
            cooldown: Origin::Default,
            max_per_hour: Origin::Default,
            restart_policy: Origin::Default,
            stop_timeout: Origin::Default,
            sustain: Origin::Default,
        }
    }
}

/// Where a resolved setting's value came from, as a policy [`Origin`].
pub fn origin_of<T>(setting: &Sourced<T>) -> Origin {
    match setting.source {
        Source::Default => Origin::Default,
        Source::Env(var) => Origin::Environment(var),
        Source::Flag(_) => Origin::Flag(setting.setting.key),
        Source::File { key, .. } => Origin::File(key),
    }
}

/// The coordinator's side of every container's policy: its settings and where each came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyDefaults {
    /// The budget every container without labels is held to.
    pub budget: Budget,
    /// The backoff curve, for a container whose `hemostat.restart_policy=backoff` (the settings' curve, also
    /// when the fleet's policy is `cooldown`).
    pub backoff: Backoff,
    /// How long a restart waits for a graceful stop.
    pub stop_timeout: Duration,
    /// How long a value must stay above its threshold to be sustained.
    pub sustain: Duration,
    /// Where each of these came from.
    pub origins: SettingOrigins,
}

impl Default for PolicyDefaults {
    fn default() -> Self {
        PolicyDefaults {
            budget: Budget::DEFAULT,
            backoff: Backoff::DEFAULT,
            stop_timeout: Duration::from_secs(10),
            sustain: Duration::from_secs(60),
            origins: SettingOrigins::default(),
        }
    }
}

/// One value of a container's policy, and where it came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Chosen<T> {
    /// The value.
    pub value: T,
    /// Where it came from.
    pub origin: Origin,
}

/// A container's effective remediation policy.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerPolicy {
    /// The least time between two actions (under the cooldown policy).
    pub cooldown: Chosen<Duration>,
    /// The most attempts per rolling hour, and failed verifications in a row, before the breaker opens.
    pub max_per_hour: Chosen<u32>,
    /// How actions are spaced.
    pub restart_policy: Chosen<RestartPolicy>,
    /// How long a restart waits for a graceful stop.
    pub stop_timeout: Chosen<Duration>,
    /// How long a value must stay above its threshold to be sustained.
    pub sustain: Chosen<Duration>,
    /// The node's `high_cpu` threshold, when a label sets it (else the node's setting applies).
    pub cpu_threshold: Chosen<Option<f64>>,
    /// The node's `high_memory` threshold, when a label sets it.
    pub memory_threshold: Chosen<Option<f64>>,
    /// The breaker's window (an hour; no label changes it).
    pub window: Duration,
    /// The policy labels whose values were not acceptable (their settings' values apply).
    pub invalid: Vec<InvalidLabel>,
}

impl PolicyDefaults {
    /// The effective policy of a container with `labels`.
    pub fn effective(&self, labels: &BTreeMap<String, String>) -> ContainerPolicy {
        let mut invalid = Vec::new();
        let o = self.origins;
        let labelled = |label: PolicyLabel| Origin::Label(label);
        let read = |label: PolicyLabel| -> Option<&str> { labels.get(label.name()).map(String::as_str) };
        macro_rules! overridden {
            ($label:expr, $parse:ident, $default:expr, $origin:expr) => {{
                match read($label).map(|v| $label.$parse(v)) {
                    Some(Ok(value)) => Chosen { value, origin: labelled($label) },
                    Some(Err(error)) => {
                        invalid.push(error);
                        Chosen { value: $default, origin: $origin }
                    }
                    None => Chosen { value: $default, origin: $origin },
                }
            }};
        }
        let cooldown = overridden!(PolicyLabel::Cooldown, duration, self.budget.cooldown, o.cooldown);
        let max_per_hour = overridden!(PolicyLabel::MaxPerHour, count, self.budget.max_attempts, o.max_per_hour);
        let stop_timeout = overridden!(PolicyLabel::StopTimeout, duration, self.stop_timeout, o.stop_timeout);
        let sustain = overridden!(PolicyLabel::Sustain, duration, self.sustain, o.sustain);
        let spacing =
            overridden!(PolicyLabel::RestartPolicy, spacing, spacing_of(self.budget.policy), o.restart_policy);
        let restart_policy = Chosen {
            value: match (spacing.value, self.budget.policy) {
                (Spacing::Cooldown, _) => RestartPolicy::Cooldown,
                (Spacing::Backoff, RestartPolicy::Backoff(curve)) => RestartPolicy::Backoff(curve),
                (Spacing::Backoff, RestartPolicy::Cooldown) => RestartPolicy::Backoff(self.backoff),
            },
            origin: spacing.origin,
        };
        let threshold = |label: PolicyLabel, setting: &'static str, invalid: &mut Vec<InvalidLabel>| match read(label)
            .map(|v| label.percent(v))
        {
            Some(Ok(value)) => Chosen { value: Some(value), origin: labelled(label) },
            Some(Err(error)) => {
                invalid.push(error);
                Chosen { value: None, origin: Origin::Node(setting) }
            }
            None => Chosen { value: None, origin: Origin::Node(setting) },
        };
        let cpu_threshold = threshold(PolicyLabel::CpuThreshold, "THRESHOLD_CPU_PERCENT", &mut invalid);
        let memory_threshold = threshold(PolicyLabel::MemoryThreshold, "THRESHOLD_MEMORY_PERCENT", &mut invalid);
        ContainerPolicy {
            cooldown,
            max_per_hour,
            restart_policy,
            stop_timeout,
            sustain,
            cpu_threshold,
            memory_threshold,
            window: self.budget.window,
            invalid,
        }
    }
}

fn spacing_of(policy: RestartPolicy) -> Spacing {
    match policy {
        RestartPolicy::Cooldown => Spacing::Cooldown,
        RestartPolicy::Backoff(_) => Spacing::Backoff,
    }
}

impl ContainerPolicy {
    /// The budget the container is held to.
    pub fn budget(&self) -> Budget {
        Budget {
            cooldown: self.cooldown.value,
            max_attempts: self.max_per_hour.value,
            window: self.window,
            policy: self.restart_policy.value,
        }
    }

    /// Every value for people, in a fixed order: cooldown, max_per_hour, restart_policy, stop_timeout,
    /// sustain, cpu_threshold, memory_threshold.
    pub fn values(&self) -> Vec<PolicyValue> {
        let seconds = |d: Duration| format!("{}s", d.as_secs());
        let percent = |p: Option<f64>| p.map(|p| format!("{p}%")).unwrap_or_default();
        let value = |label: PolicyLabel, value: String, origin| PolicyValue { name: label.value_name(), value, origin };
        vec![
            value(PolicyLabel::Cooldown, seconds(self.cooldown.value), self.cooldown.origin),
            value(PolicyLabel::MaxPerHour, self.max_per_hour.value.to_string(), self.max_per_hour.origin),
            value(PolicyLabel::RestartPolicy, self.restart_policy.value.name().to_owned(), self.restart_policy.origin),
            value(PolicyLabel::StopTimeout, seconds(self.stop_timeout.value), self.stop_timeout.origin),
            value(PolicyLabel::Sustain, seconds(self.sustain.value), self.sustain.origin),
            value(PolicyLabel::CpuThreshold, percent(self.cpu_threshold.value), self.cpu_threshold.origin),
            value(PolicyLabel::MemoryThreshold, percent(self.memory_threshold.value), self.memory_threshold.origin),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn configured() -> PolicyDefaults {
        PolicyDefaults {
            budget: Budget { cooldown: Duration::from_secs(120), ..Budget::DEFAULT },
            origins: SettingOrigins {
                cooldown: Origin::Environment("RESPONDER_COOLDOWN_SECONDS"),
                ..SettingOrigins::default()
            },
            ..PolicyDefaults::default()
        }
    }

    #[test]
    fn without_labels_the_settings_apply_and_say_where_they_came_from() {
        let policy = configured().effective(&labels(&[("other", "x")]));
        assert_eq!(policy.budget(), Budget { cooldown: Duration::from_secs(120), ..Budget::DEFAULT });
        assert_eq!(policy.stop_timeout.value, Duration::from_secs(10));
        assert!(policy.invalid.is_empty());
        let shown: Vec<(String, String, String)> =
            policy.values().iter().map(|v| (v.name.to_owned(), v.value.clone(), v.origin.to_string())).collect();
        let row = |n: &str, v: &str, o: &str| (n.to_owned(), v.to_owned(), o.to_owned());
        assert_eq!(
            shown,
            [
                row("cooldown", "120s", "environment RESPONDER_COOLDOWN_SECONDS"),
                row("max_per_hour", "3", "default"),
                row("restart_policy", "cooldown", "default"),
                row("stop_timeout", "10s", "default"),
                row("sustain", "60s", "default"),
                row("cpu_threshold", "", "node setting THRESHOLD_CPU_PERCENT"),
                row("memory_threshold", "", "node setting THRESHOLD_MEMORY_PERCENT"),
            ]
        );
    }

    #[test]
    fn each_label_overrides_its_setting() {
        let policy = configured().effective(&labels(&[
            ("hemostat.cooldown", "5s"),
            ("hemostat.max_per_hour", "1"),
            ("hemostat.restart_policy", "backoff"),
            ("hemostat.stop_timeout", "30"),
            ("hemostat.sustain", "2m"),
            ("hemostat.cpu_threshold", "1"),
            ("hemostat.memory_threshold", "50%"),
        ]));
        assert!(policy.invalid.is_empty(), "{:?}", policy.invalid);
        assert_eq!(
            policy.budget(),
            Budget {
                cooldown: Duration::from_secs(5),
                max_attempts: 1,
                window: Budget::DEFAULT.window,
                policy: RestartPolicy::Backoff(Backoff::DEFAULT),
            }
        );
        assert_eq!(policy.stop_timeout.value, Duration::from_secs(30));
        assert_eq!(policy.sustain.value, Duration::from_secs(120));
        assert_eq!((policy.cpu_threshold.value, policy.memory_threshold.value), (Some(1.0), Some(50.0)));
        for value in policy.values() {
            assert_eq!(value.origin.to_string(), format!("label hemostat.{}", value.name), "{value:?}");
        }
    }

    #[test]
    fn a_label_can_choose_cooldown_under_a_backoff_fleet() {
        let fleet = PolicyDefaults {
            budget: Budget { policy: RestartPolicy::Backoff(Backoff::DEFAULT), ..Budget::DEFAULT },
            ..PolicyDefaults::default()
        };
        let policy = fleet.effective(&labels(&[("hemostat.restart_policy", "Cooldown")]));
        assert_eq!(policy.budget().policy, RestartPolicy::Cooldown);
        assert_eq!(fleet.effective(&labels(&[])).budget().policy, RestartPolicy::Backoff(Backoff::DEFAULT));
    }

    #[test]
    fn a_bad_or_out_of_bounds_value_is_listed_and_the_setting_applies() {
        let defaults = configured();
        let policy = defaults.effective(&labels(&[
            ("hemostat.cooldown", "soon"),
            ("hemostat.max_per_hour", "0"),
            ("hemostat.restart_policy", "sometimes"),
            ("hemostat.stop_timeout", "1h"),
            ("hemostat.sustain", "0"),
            ("hemostat.cpu_threshold", "101"),
            ("hemostat.memory_threshold", "lots"),
        ]));
        assert_eq!(policy.budget(), defaults.budget);
        assert_eq!(policy.cooldown.origin, Origin::Environment("RESPONDER_COOLDOWN_SECONDS"));
        assert_eq!(policy.stop_timeout, Chosen { value: Duration::from_secs(10), origin: Origin::Default });
        assert_eq!(policy.sustain.value, Duration::from_secs(60));
        assert_eq!(policy.cpu_threshold, Chosen { value: None, origin: Origin::Node("THRESHOLD_CPU_PERCENT") });
        let named: Vec<&str> = policy.invalid.iter().map(|i| i.label.name()).collect();
        assert_eq!(named.len(), 7, "{named:?}");
        assert!(policy.invalid[0].to_string().contains("hemostat.cooldown=\"soon\""), "{}", policy.invalid[0]);
    }

    #[test]
    fn the_bounds_themselves_are_accepted() {
        let policy = PolicyDefaults::default().effective(&labels(&[
            ("hemostat.cooldown", "7d"),
            ("hemostat.max_per_hour", "100"),
            ("hemostat.stop_timeout", "10m"),
            ("hemostat.sustain", "1s"),
        ]));
        assert!(policy.invalid.is_empty(), "{:?}", policy.invalid);
        assert_eq!(policy.budget().cooldown, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(policy.budget().max_attempts, 100);
    }
}
