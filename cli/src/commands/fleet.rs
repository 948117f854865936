//! `hemostat nodes`, `hemostat containers [--node N]`, `hemostat container <node>/<name>`.

use clap::Args;
use hemostat_proto::v1 as pb;

use crate::commands::{resolve, show};
use crate::connection::ClientArgs;
use crate::model::{Container, ContainerDetail, ContainerRef, Node};
use crate::render;
use crate::rpc_error::rpc;

/// Arguments of `hemostat nodes`.
#[derive(Debug, Args)]
pub struct NodesArgs {
    #[command(flatten)]
    client: ClientArgs,
}

/// Lists the nodes the coordinator knows, connected or not.
pub async fn nodes(args: NodesArgs) -> anyhow::Result<()> {
    let mut client = args.client.connection.settings()?.client().await?;
    let response = client.list_nodes(pb::ListNodesRequest {}).await.map_err(rpc("ListNodes"))?.into_inner();
    let nodes: Vec<Node> = response.nodes.into_iter().map(Node::from).collect();
    show(args.client.output, &nodes, |n| render::nodes_table(n))
}

/// Arguments of `hemostat containers`.
#[derive(Debug, Args)]
pub struct ContainersArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only this node's containers.
    #[arg(long)]
    node: Option<String>,
}

/// Lists the containers the nodes reported, with their latest state.
pub async fn containers(args: ContainersArgs) -> anyhow::Result<()> {
    let mut client = args.client.connection.settings()?.client().await?;
    let request = pb::ListContainersRequest { node: args.node.unwrap_or_default() };
    let response = client.list_containers(request).await.map_err(rpc("ListContainers"))?.into_inner();
    let containers: Vec<Container> = response.containers.into_iter().map(Container::from).collect();
    show(args.client.output, &containers, |c| render::containers_table(c, std::time::SystemTime::now()))
}

/// Arguments of `hemostat container`.
#[derive(Debug, Args)]
pub struct ContainerArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The container: <node>/<name> (or <node>/<id>), or only its name when one node has it.
    target: ContainerRef,
    /// How many recent events to show (at most 200).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=200))]
    events: u32,
}

/// Tells everything about one container: state, health, metrics, anomalies, budget, silence, events.
pub async fn container(args: ContainerArgs) -> anyhow::Result<()> {
    let mut client = args.client.connection.settings()?.client().await?;
    let target = resolve(&mut client, &args.target).await?;
    let request = pb::GetContainerRequest {
        node: target.node.clone(),
        container: target.container.clone(),
        recent_events: args.events,
    };
    let response = client.get_container(request).await.map_err(rpc("GetContainer"))?.into_inner();
    let detail = ContainerDetail::from_proto(response, &target.node);
    show(args.client.output, &detail, render::container_detail)
}
