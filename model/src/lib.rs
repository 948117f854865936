//! HemoStat's domain vocabulary, shared by the node, the coordinator and the CLI: what a container is
//! ([`container`]), one metrics sample ([`metrics`]), anomalies ([`anomaly`]), the remediation actions
//! ([`action`]), how an action ended ([`outcome`]), the kinds of event in the event log ([`event_kind`]) and
//! a node's health alert ([`alert`]), a condition's running episode ([`episode`]), a condition of a host
//! itself ([`host`]) and the labels with which a container sets its own remediation policy ([`policy`]).
//!
//! Each enum's names are written once, in its `named_enum!` declaration, and everything else derives from them: `name()`,
//! `ALL`, `NAMES`, `FromStr`, `Display` and the serde form. Each type converts to and from its
//! `hemostat.v1` wire type here, with `From`/`TryFrom`, and nowhere else.

#[macro_use]
mod named;

pub mod action;
pub mod alert;
pub mod anomaly;
pub mod container;
pub mod episode;
pub mod event_kind;
pub mod host;
pub mod metrics;
pub mod outcome;
pub mod policy;

pub use action::Action;
pub use alert::AlertReport;
pub use anomaly::{Anomaly, AnomalyKind, Severity};
pub use container::{ContainerFacts, ExitReport, Health, OPT_OUT_LABEL, SCALE_UP_MAX_LABEL, Status};
pub use episode::Episode;
pub use event_kind::EventKind;
pub use host::{HostCondition, HostReport};
pub use metrics::Metrics;
pub use named::{Named, NoValue, UnknownName};
pub use outcome::Outcome;
pub use policy::{InvalidLabel, Origin, PolicyLabel, PolicyValue};

#[cfg(test)]
mod tests;
