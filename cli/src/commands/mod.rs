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

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use hemostat_model::Named;
use hemostat_proto::v1::fleet_service_client::FleetServiceClient;
use serde::Serialize;
use tonic::transport::Channel;

use crate::model::{Container, ContainerRef, ContainerTarget};
use crate::render::{self, Format};
use crate::terminal;

/// The container `target` names: as written when it names its node, else the one container of the fleet
/// with that name (asked of the coordinator); none, or more than one, is an error listing the candidates.
async fn resolve(client: &mut FleetServiceClient<Channel>, target: &ContainerRef) -> anyhow::Result<ContainerTarget> {
    if target.node.is_none() {
        let fleet: Vec<Container> =
            fleet::list_containers(client, None, None).await?.0.into_iter().map(Container::from).collect();
        return target.resolve_in(&fleet).map_err(anyhow::Error::msg);
    }
    target.resolve_in(&[]).map_err(anyhow::Error::msg)
}

/// The parser of a flag whose values are the names of `T` (`restart`, `health_alert`, ...), any case, with
/// `-` for `_`; `--help` lists them, with what each means when `described`.
fn named<T: Named>(described: bool) -> impl TypedValueParser<Value = T> {
    let values = T::all().iter().map(move |value| {
        let name = value.name();
        let mut possible = PossibleValue::new(name);
        if described {
            possible = possible.help(value.description().split_whitespace().collect::<Vec<_>>().join(" "));
        }
        if name.contains('_') { possible.alias(name.replace('_', "-")) } else { possible }
    });
    PossibleValuesParser::new(values).try_map(|name: String| name.to_ascii_lowercase().replace('-', "_").parse::<T>())
}

/// Prints `value` as `format` says: the `table` rendering for people, or JSON.
fn show<T: Serialize>(format: Format, value: &T, table: impl FnOnce(&T) -> String) -> anyhow::Result<()> {
    let text = match format {
        Format::Table => table(value),
        Format::Json => render::json(value),
    };
    terminal::emit(&text)?;
    Ok(())
}
