//! The fleet as operators see and steer it: the one application service under every front end.
//!
//! FleetService ([`crate::api`]) and the dashboard ([`crate::dashboard`]) are thin adapters over [`Fleet`]:
//! they turn their wire forms (protobuf, JSON) into the domain requests here and the answers back, and map
//! [`FleetError`] to their own statuses. Everything else is here, once:
//! - [`queries`]: nodes and containers of the whole fleet (this coordinator's and, through the fleet
//!   directory, every other's), a container's budget figures and silence, silences, dry-run, pending
//!   approvals;
//! - [`event_reads`]: the one event filter, pages of the event and audit logs, the newest events of a
//!   window, a period's events, the live tail; [`event_details`] and [`analytics`] are built on them;
//! - [`commands`]: silences, dry-run, manual actions, approvals, the end of a storm;
//! - [`validation`]: the checks every request passes.

pub mod analytics;
pub mod commands;
pub mod error;
pub mod event_details;
pub mod event_reads;
pub mod paging;
pub mod queries;
pub mod validation;

use std::sync::Arc;

use crate::directory::Directory;
use crate::registry::Registry;
use crate::remediation::Remediator;
use crate::remediation::journal::Journal;
use crate::remediation::settings::Settings;
use crate::store::{BudgetStore, StateStore};

pub use error::FleetError;

/// The application service: the fleet's queries and commands.
pub struct Fleet {
    registry: Arc<Registry>,
    directory: Arc<Directory>,
    budgets: Arc<dyn BudgetStore>,
    remediator: Arc<Remediator>,
}

impl Fleet {
    /// The fleet as this coordinator knows it (`registry`) and as the others publish it (`directory`), with
    /// budgets read from `store`, changed through `remediator`.
    pub fn new(
        registry: Arc<Registry>,
        directory: Arc<Directory>,
        store: Arc<dyn StateStore>,
        remediator: Arc<Remediator>,
    ) -> Self {
        Fleet { registry, directory, budgets: store, remediator }
    }

    fn journal(&self) -> &Arc<Journal> {
        self.remediator.journal()
    }

    fn settings(&self) -> &Arc<Settings> {
        self.remediator.settings()
    }
}
