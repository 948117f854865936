//! What the coordinator knows of a container: the facts a node reported, converted once from the wire. The
//! types are the shared vocabulary's ([`hemostat_model`]), re-exported here under their coordinator paths.

pub use hemostat_model::{
    AlertReport, Anomaly, AnomalyKind, ContainerFacts, Episode, ExitReport, Health, HostCondition, HostReport, Metrics,
    OPT_OUT_LABEL, SCALE_UP_MAX_LABEL, Severity, Status,
};
