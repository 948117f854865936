//! Alerting: telling people what happened, through the channels they already use: Slack, a generic webhook
//! (HemoStat's JSON or Alertmanager's payload), Alertmanager, Discord, Microsoft Teams, ntfy, Gotify and
//! email.
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
//! - **Per-sink filters** ([`filter`]): `<SINK>_EVENTS`, `<SINK>_MIN_SEVERITY`, `<SINK>_NODES`.
//!
//! What is left goes onto one bounded queue per sink (`ALERT_QUEUE_CAPACITY`; when full the oldest is dropped
//! and counted), drained by that sink's own task ([`sender`]), so a slow or failing Slack never delays the
//! webhook, and none ever delays remediation. Each sink ([`sink::Sink`], one module each in [`sinks`]) only
//! formats notifications into its service's requests and reads the answers; the rest is shared:
//!
//! - **Grouping** ([`grouping`], for sinks read by people): notifications arriving within
//!   `ALERT_GROUP_WINDOW_SECONDS` (2 s) of each other are taken together (for at most five windows, at most
//!   50). One or two of them are sent as their own messages; three or more become **one** message listing
//!   them (a burst: a crashed dependency, a storm). So every notification waits up to one window before it
//!   is sent. The generic webhook takes each event alone, at once.
//! - **Delivery** ([`delivery`], [`transport`]): a timeout per request, exponential backoff on 5xx and
//!   network errors, the service's wait honoured on 429, a bounded number of attempts. What fails is logged
//!   and counted ([`Notifier::failed`]); the event stays in the log.
//! - **Conditions** ([`alerts`], [`conditions`]): Alertmanager, and the webhook in Alertmanager's format,
//!   get alerts that fire and resolve, and take every event that starts or ends one (a success ends a
//!   failure even when successes are quiet or deduplicated).
//! - **Context** ([`context`], [`links`]): every notification names the host, the container's Compose
//!   project and service, and links to the event in the dashboard and the container in the Docker UI.
//! - **Test** ([`probe`]): `hemostat notify test` sends a test through each sink and reports its answer.

pub mod alerts;
pub mod conditions;
pub mod config;
pub mod context;
pub mod decisions;
pub mod dedupe;
pub mod delivery;
pub mod escape;
pub mod filter;
pub mod grouping;
pub mod links;
pub mod notification;
pub mod notifier;
pub mod probe;
pub mod queue;
pub mod selection;
pub mod sender;
pub mod sink;
pub mod sinks;
pub mod transport;

pub use config::{AlertingArgs, AlertingConfig, AlertingSettings};
pub use notifier::{Notifier, NotifierError};
