//! `hemostat nodes`, `hemostat containers [--node N]`, `hemostat container <node>/<name>`.

use clap::Args;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::fleet_service_client::FleetServiceClient;
use tonic::transport::Channel;

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
    /// Show at most this many (the first, by name); all by default, read a page at a time.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
}

/// Lists the nodes the coordinator knows, connected or not.
pub async fn nodes(args: NodesArgs) -> anyhow::Result<()> {
    let mut client = args.client.connection.settings()?.client().await?;
    let mut nodes: Vec<Node> = Vec::new();
    let mut page_token = String::new();
    loop {
        let page_size = page_size(args.limit, nodes.len());
        let request = pb::ListNodesRequest { page_size, page_token };
        let response = client.list_nodes(request).await.map_err(rpc("ListNodes"))?.into_inner();
        nodes.extend(response.nodes.into_iter().map(Node::from));
        page_token = response.next_page_token;
        if page_token.is_empty() || args.limit.is_some_and(|limit| nodes.len() >= limit as usize) {
            break;
        }
    }
    say_if_more("nodes", nodes.len(), &page_token);
    show(args.client.output, &nodes, |n| render::nodes_table(n))
}

/// Says on standard error that the list shown is the first `shown` of more (`next_page_token` is not
/// empty), so that `--limit` never hides that a list was cut.
fn say_if_more(what: &str, shown: usize, next_page_token: &str) {
    if !next_page_token.is_empty() {
        eprintln!("the first {shown} {what} only: there are more (a larger --limit, or none for all)");
    }
}

/// The page size that reads no more than `limit` when `so_far` are read: a whole page (the server's) without
/// a limit.
fn page_size(limit: Option<u32>, so_far: usize) -> u32 {
    limit.map_or(0, |limit| limit.saturating_sub(so_far as u32).min(PAGE_SIZE))
}

/// The page size asked for (the coordinator's largest).
const PAGE_SIZE: u32 = 1_000;

/// The containers of `node` (every node's when `None`), at most `limit` (all when `None`), read page by page,
/// and the token of the page after them (empty when they are all).
pub(crate) async fn list_containers(
    client: &mut FleetServiceClient<Channel>,
    node: Option<&str>,
    limit: Option<u32>,
) -> anyhow::Result<(Vec<pb::Container>, String)> {
    let mut containers = Vec::new();
    let mut page_token = String::new();
    loop {
        let page_size = page_size(limit, containers.len());
        let request = pb::ListContainersRequest { node: node.unwrap_or_default().to_owned(), page_size, page_token };
        let response = client.list_containers(request).await.map_err(rpc("ListContainers"))?.into_inner();
        containers.extend(response.containers);
        page_token = response.next_page_token;
        if page_token.is_empty() || limit.is_some_and(|limit| containers.len() >= limit as usize) {
            return Ok((containers, page_token));
        }
    }
}

/// Arguments of `hemostat containers`.
#[derive(Debug, Args)]
pub struct ContainersArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Only this node's containers.
    #[arg(long)]
    node: Option<String>,
    /// Show at most this many (the first, by node and name); all by default, read a page at a time.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
}

/// Lists the containers the nodes reported, with their latest state.
pub async fn containers(args: ContainersArgs) -> anyhow::Result<()> {
    let mut client = args.client.connection.settings()?.client().await?;
    let (listed, more) = list_containers(&mut client, args.node.as_deref(), args.limit).await?;
    say_if_more("containers", listed.len(), &more);
    let containers: Vec<Container> = listed.into_iter().map(Container::from).collect();
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
