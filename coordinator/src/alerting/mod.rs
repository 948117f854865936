//! Alerting: telling people what happened, through Slack and a generic JSON webhook.
//!
//! The event log is the record; notifications are a best-effort copy of it that never blocks the pipeline.
//! Every event the coordinator stores goes through [`Notifier::notify`], which decides at once and without
//! waiting:
//!
//! - **Which events notify** ([`selection`]): `remediation_complete` (every outcome), `rejected`,
//!   `false_alarm`, `storm`, `node_lost`, `node_recovered`, `spool_overflow`. Not `health_alert`, `resolved`,
//!   `remediation_needed` or `operator_action`: every problem ends in a notified result, rejection or false
//!   alarm, so those would only double the noise (the event log has them). Events about a silenced
//!   container or node (marked `silenced` when stored) are not notified, storms excepted.
//! - **Deduplication** ([`dedupe`]): one notification per (event type, node, container name, outcome or
//!   rejection code) within `ALERT_DEDUPE_TTL` (60 s), counted from the last one sent. A storm and an
//!   exhausted budget (a `circuit_open` rejection) always notify, never deduplicated and never quiet.
//! - **Quiet success** (`ALERT_QUIET_SUCCESS`): a `remediation_complete` with outcome `success` (restarted
//!   and verified) is not notified.
//!
//! What is left goes onto one bounded queue per sink (`ALERT_QUEUE_CAPACITY`; when full the oldest is dropped
//! and counted), drained by that sink's own task, so a slow or failing Slack never delays the webhook, and
//! neither ever delays remediation:
//!
//! - **Grouping** ([`grouping`], Slack only): notifications arriving within `ALERT_GROUP_WINDOW_SECONDS`
//!   (2 s) of each other are taken together (for at most five windows, at most 50). One or two of them are
//!   sent as their own messages; three or more become **one** message listing them (a burst: a crashed
//!   dependency, a storm). So every notification waits up to one window before it is sent.
//! - **Slack** ([`slack`]): an incoming-webhook message with a coloured attachment per notification and the
//!   fields on-call needs, all untrusted text escaped.
//! - **Generic webhook** ([`webhook`]): one JSON POST per event, never grouped.
//! - **Delivery** ([`delivery`]): a timeout per request, exponential backoff on 5xx and network errors,
//!   `Retry-After` honoured on 429, a bounded number of attempts. What fails is logged and counted
//!   ([`Notifier::failed`]); the event stays in the log.

use std::time::Duration;

pub mod decisions;
pub mod dedupe;
pub mod delivery;
pub mod grouping;
pub mod notification;
pub mod notifier;
pub mod queue;
pub mod selection;
pub mod slack;
pub mod webhook;

pub use notifier::{Notifier, NotifierError, SinkKind};

/// Where and how notifications are sent (`ALERT_*`, `SLACK_WEBHOOK_URL`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertingConfig {
    /// `ALERT_ENABLED`: notifications on or off (the event log is kept either way).
    pub enabled: bool,
    /// `SLACK_WEBHOOK_URL`: a Slack incoming webhook.
    pub slack_webhook_url: Option<String>,
    /// `ALERT_WEBHOOK_URL`: a generic JSON webhook receiving the same events.
    pub webhook_url: Option<String>,
    /// `ALERT_DEDUPE_TTL`: one notification per (event type, node, container, outcome) within this time.
    pub dedupe_ttl: Duration,
    /// `ALERT_GROUP_WINDOW_SECONDS`: notifications within this window are sent as one message listing them.
    pub group_window: Duration,
    /// `ALERT_QUIET_SUCCESS`: remediated-and-verified issues are not notified (the event log keeps them).
    pub quiet_success: bool,
    /// `ALERT_QUEUE_CAPACITY`: notifications waiting to be sent; beyond it the oldest are dropped and counted.
    pub queue_capacity: usize,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            enabled: true,
            slack_webhook_url: None,
            webhook_url: None,
            dedupe_ttl: Duration::from_secs(60),
            group_window: Duration::from_secs(2),
            quiet_success: false,
            queue_capacity: 1000,
        }
    }
}
