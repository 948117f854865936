//! A container's running episode: one condition (high CPU or memory, a failing health check) from its
//! first alert until it clears, and what analysis has made of it so far. The coordinator keeps it; the CLI
//! and the dashboard show it.

use std::time::{Duration, SystemTime};

use hemostat_proto::timestamp;
use hemostat_proto::v1 as pb;

use crate::action::Action;
use crate::anomaly::AnomalyKind;

/// A running episode.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// When the coordinator received its first alert.
    pub first_seen: SystemTime,
    /// The conditions in it now.
    pub anomalies: Vec<AnomalyKind>,
    /// Since when the value has been above its threshold, per the samples.
    pub above_since: Option<SystemTime>,
    /// How long it must stay above to be sustained.
    pub sustain: Duration,
    /// When it was decided; `None` while it is still watched.
    pub decided_at: Option<SystemTime>,
    /// The rule that decided it, or that its latest evaluation came to.
    pub rule: String,
    /// That rule's reason.
    pub reason: String,
    /// The action decided, if any.
    pub action: Option<Action>,
}

impl From<&Episode> for pb::Episode {
    fn from(e: &Episode) -> Self {
        pb::Episode {
            first_seen: Some(timestamp::to_proto(e.first_seen)),
            anomalies: e.anomalies.iter().map(|k| pb::AnomalyType::from(*k) as i32).collect(),
            above_since: e.above_since.map(timestamp::to_proto),
            sustain_seconds: e.sustain.as_secs().min(u64::from(u32::MAX)) as u32,
            decided_at: e.decided_at.map(timestamp::to_proto),
            rule: e.rule.clone(),
            reason: e.reason.clone(),
            action: e.action.map_or(pb::Action::Unspecified, pb::Action::from) as i32,
        }
    }
}

impl From<&pb::Episode> for Episode {
    /// The episode; anomaly types and an action newer than this build are left out.
    fn from(e: &pb::Episode) -> Self {
        Episode {
            first_seen: e.first_seen.as_ref().map_or(SystemTime::UNIX_EPOCH, timestamp::from_proto),
            anomalies: e.anomalies.iter().filter_map(|t| AnomalyKind::try_from(*t).ok()).collect(),
            above_since: e.above_since.as_ref().map(timestamp::from_proto),
            sustain: Duration::from_secs(u64::from(e.sustain_seconds)),
            decided_at: e.decided_at.as_ref().map(timestamp::from_proto),
            rule: e.rule.clone(),
            reason: e.reason.clone(),
            action: pb::Action::try_from(e.action).ok().and_then(|a| Action::try_from(a).ok()),
        }
    }
}
