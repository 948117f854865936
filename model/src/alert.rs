//! A node's health alert about one container: what it saw, and the evidence it gathered.

use std::time::SystemTime;

use hemostat_proto::timestamp;
use hemostat_proto::v1 as pb;

use crate::anomaly::{Anomaly, AnomalyKind};
use crate::container::{ContainerFacts, ExitReport};
use crate::metrics::Metrics;
use crate::named::NoValue;

/// A node's health alert about one container.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertReport {
    /// The container.
    pub container: ContainerFacts,
    /// Every anomaly it has now.
    pub anomalies: Vec<Anomaly>,
    /// The latest sample, if the alert came from one.
    pub metrics: Option<Metrics>,
    /// For exit anomalies: how it exited.
    pub exit: Option<ExitReport>,
    /// When the node observed it.
    pub observed_at: Option<SystemTime>,
    /// Whether it only re-asserts standing anomalies.
    pub reasserted: bool,
    /// The node's recent samples, oldest first.
    pub recent: Vec<Metrics>,
    /// The last log lines, gathered at the failure (untrusted, secrets masked by the node).
    pub log_tail: Vec<String>,
    /// The last health check outputs (untrusted).
    pub health_outputs: Vec<String>,
    /// When the node, cut off, restarted the container on its own: its command id.
    pub local_restart: Option<String>,
}

impl AlertReport {
    /// The alert's one-line summary for people, e.g. `high_cpu High: 99.2 % (threshold 85 %)`.
    pub fn summary(&self) -> String {
        let parts: Vec<String> = self
            .anomalies
            .iter()
            .map(|a| match a.kind {
                AnomalyKind::NonZeroExit => format!("exited unexpectedly with code {}", a.actual),
                AnomalyKind::OomKilled => format!("killed by the OOM killer (exit code {})", a.actual),
                AnomalyKind::Unhealthy => "health check failing".to_owned(),
                AnomalyKind::ExcessiveRestarts => {
                    format!("{} restarts in the window (limit {})", a.actual, a.threshold)
                }
                kind => format!("{} {:?}: {:.1} % (threshold {} %)", kind.name(), a.severity, a.actual, a.threshold),
            })
            .collect();
        parts.join("; ")
    }
}

impl TryFrom<&pb::HealthAlert> for AlertReport {
    type Error = NoValue;

    /// The alert; an error without a container. Anomalies of unknown types are left out.
    fn try_from(alert: &pb::HealthAlert) -> Result<Self, Self::Error> {
        let container =
            alert.container.as_ref().ok_or(NoValue { what: "an alert", wire: "a HealthAlert without a container" })?;
        Ok(AlertReport {
            container: ContainerFacts::from(container),
            anomalies: alert.anomalies.iter().filter_map(|a| Anomaly::try_from(a).ok()).collect(),
            metrics: alert.metrics.as_ref().map(Metrics::from),
            exit: alert.exit.as_ref().map(ExitReport::from),
            observed_at: alert.observed_at.as_ref().map(timestamp::from_proto),
            reasserted: alert.reasserted,
            recent: alert.recent.iter().map(Metrics::from).collect(),
            log_tail: alert.log_tail.clone(),
            health_outputs: alert.health_outputs.clone(),
            local_restart: (alert.local_action() == pb::Action::Restart && !alert.local_command_id.is_empty())
                .then(|| alert.local_command_id.clone()),
        })
    }
}

impl From<&AlertReport> for pb::HealthAlert {
    /// The wire form, as the node sent it (kept in the state store while an alert waits for its analysis).
    fn from(alert: &AlertReport) -> Self {
        let container = pb::ContainerState::from(&alert.container);
        pb::HealthAlert {
            anomalies: alert.anomalies.iter().map(pb::Anomaly::from).collect(),
            metrics: alert.metrics.as_ref().map(|m| m.to_wire(&container)),
            exit: alert.exit.map(|e| pb::ExitDetails {
                exit_code: e.exit_code,
                oom_killed: e.oom_killed,
                stop_requested: e.stop_requested,
            }),
            observed_at: alert.observed_at.map(timestamp::to_proto),
            reasserted: alert.reasserted,
            recent: alert.recent.iter().map(|m| m.to_wire(&container)).collect(),
            log_tail: alert.log_tail.clone(),
            health_outputs: alert.health_outputs.clone(),
            local_action: match alert.local_restart {
                Some(_) => pb::Action::Restart,
                None => pb::Action::Unspecified,
            } as i32,
            local_command_id: alert.local_restart.clone().unwrap_or_default(),
            container: Some(container),
        }
    }
}
