//! The HemoStat coordinator: node sessions, analysis, the safety policy, the event log and the fleet API.
//!
//! One module per concept: [`session`] speaks to nodes, [`analysis`] decides what a report means,
//! [`policy`] limits how often a container is acted on, [`remediation`] ties them into events and commands,
//! [`store`] keeps what must survive, [`fleet`] is what operators may ask and do (served over gRPC by
//! [`api`] and in a browser by [`dashboard`]), [`auth`] and [`tls`] decide who may talk. ARCHITECTURE.md at
//! the repository's root maps them.

pub mod alerting;
pub mod analysis;
pub mod api;
pub mod auth;
pub mod bounded;
pub mod config;
pub mod container;
pub mod container_policy;
pub mod dashboard;
pub mod directory;
pub mod events;
pub mod fleet;
pub mod history;
pub mod instruments;
pub mod intake;
pub mod liveness;
pub mod policy;
pub mod registry;
pub mod remediation;
pub mod routing;
pub mod server;
pub mod session;
pub mod silence;
pub mod store;
pub mod tls;

pub use config::{CoordinatorArgs, CoordinatorConfig};
pub use server::{Coordinator, CoordinatorError};
