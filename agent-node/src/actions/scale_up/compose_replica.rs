//! The next replica of a Compose service: the same configuration, labels, volumes and networks as the
//! target, the next replica number, and no host port bindings (the first replica holds them); refused
//! when the service's running replicas are at its cap.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, EndpointSettings, NetworkConnectRequest, NetworkingConfig,
};
use bollard::query_parameters::CreateContainerOptions;
use hemostat_proto::v1 as pb;

use super::ReplicaCap;
use crate::actions::compose::{self, ComposeService};
use crate::actions::{ActionContext, ActionOutcome, Target};

/// Starts the next replica of `service`, of which `target` is one.
pub async fn start_next(context: &ActionContext, target: &Target, service: &ComposeService) -> ActionOutcome {
    let docker = &context.docker;
    let labels = target.labels();
    let cap = match ReplicaCap::from_labels(&labels, None, context.policy.scale_up_max_replicas) {
        Ok(cap) => cap,
        Err(why) => return ActionOutcome::refused(why),
    };
    let replicas = match service.containers(docker, HashMap::new()).await {
        Ok(listed) => listed,
        Err(error) => return ActionOutcome::failed(format!("cannot list the service's containers: {error}")),
    };
    let live = replicas
        .iter()
        .filter(|c| !matches!(c.state, Some(ContainerSummaryStateEnum::EXITED | ContainerSummaryStateEnum::DEAD)))
        .count() as u64;
    if let Some(why) = cap.refusal(&format!("Compose service {service}"), live) {
        return ActionOutcome::refused(why);
    }
    let next = replicas.iter().filter_map(|c| compose::replica_number(c.labels.as_ref()?)).max().unwrap_or(0) + 1;
    // The inspect document's config has the create body's field names.
    let mut body = match serde_json::to_value(target.inspect.config.clone().unwrap_or_default())
        .and_then(serde_json::from_value::<ContainerCreateBody>)
    {
        Ok(body) => body,
        Err(e) => return ActionOutcome::failed(format!("cannot copy the container's configuration: {e}")),
    };
    body.hostname = None;
    let mut labels = labels;
    labels.insert(compose::NUMBER_LABEL.into(), next.to_string());
    body.labels = Some(labels);
    let mut host_config = target.inspect.host_config.clone().unwrap_or_default();
    host_config.port_bindings = None;
    body.host_config = Some(host_config);
    let networks: Vec<String> = target
        .inspect
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    let endpoint = || EndpointSettings { aliases: Some(vec![service.service.clone()]), ..Default::default() };
    body.networking_config = networks
        .first()
        .map(|first| NetworkingConfig { endpoints_config: Some(HashMap::from([(first.clone(), endpoint())])) });
    let name = format!("{}_{}_{next}", service.project, service.service);
    let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
    let created = match docker.create_container(Some(options), body).await {
        Ok(created) => created,
        Err(error) => return ActionOutcome::failed(format!("cannot create replica {next}: {error}")),
    };
    for network in networks.iter().skip(1) {
        let request = NetworkConnectRequest { container: created.id.clone(), endpoint_config: Some(endpoint()) };
        if let Err(error) = docker.connect_network(network, request).await {
            return ActionOutcome::failed(format!("created {name}, but cannot connect it to {network}: {error}"));
        }
    }
    if let Err(error) = docker.start_container(&created.id, None).await {
        return ActionOutcome::failed(format!("created {name}, but it does not start: {error}"));
    }
    ActionOutcome::new(pb::Outcome::Success, format!("started {name}, replica {next} of {service}"))
}
