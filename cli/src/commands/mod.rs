//! The commands that talk to a running coordinator over FleetService, one module per concept: the fleet
//! (`nodes`, `containers`, `container`), the logs (`events`, `audit`), silences, dry-run, and actions
//! (`action`, `approve`, `end-storm`), the notification test (`notify test`); and `health`, over the gRPC
//! health service.

pub mod actions;
pub mod dry_run;
pub mod events;
pub mod fleet;
pub mod health;
pub mod notify;
pub mod silences;

use serde::Serialize;

use crate::render::{self, Format};
use crate::terminal;

/// Prints `value` as `format` says: the `table` rendering for people, or JSON.
fn show<T: Serialize>(format: Format, value: &T, table: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
    let text = match format {
        Format::Table => table(value),
        Format::Json => render::json(value),
    };
    terminal::emit(&text)?;
    Ok(())
}
