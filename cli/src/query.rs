//! Queries of a running coordinator over FleetService, with an operator certificate.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use hemostat_pki::TlsFiles;
use hemostat_proto::v1 as pb;
use hemostat_proto::v1::fleet_service_client::FleetServiceClient;
use serde_json::json;
use tonic::transport::{Channel, Endpoint};

use crate::output::{self, Format};

/// How to reach the coordinator.
#[derive(Debug, Args)]
pub struct Connection {
    /// The coordinator, `host:port` or `https://host:port`.
    #[arg(long, env = "HEMOSTAT_COORDINATOR", default_value = "localhost:50051")]
    coordinator: String,
    /// The name the coordinator's certificate carries [default: the coordinator's host].
    #[arg(long, env = "HEMOSTAT_COORDINATOR_NAME")]
    coordinator_name: Option<String>,
    /// Folder with ca.pem and the operator certificate.
    #[arg(long, env = "HEMOSTAT_CERTS_DIR", default_value_os_t = crate::default_certs_dir())]
    certs_dir: PathBuf,
    /// The operator certificate's file stem: <stem>.pem and <stem>-key.pem.
    #[arg(long, env = "HEMOSTAT_CERT_NAME", default_value = "operator")]
    cert_name: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    output: Format,
}

impl Connection {
    async fn client(&self) -> anyhow::Result<FleetServiceClient<Channel>> {
        let tls = TlsFiles::in_dir(&self.certs_dir, &self.cert_name).load()?;
        let (url, host) = hemostat_node::config::normalize_endpoint(&self.coordinator)?;
        let server_name = self.coordinator_name.clone().unwrap_or(host);
        let channel = Endpoint::from_shared(url.clone())?
            .tls_config(tls.client_config(&server_name))?
            .connect_timeout(std::time::Duration::from_secs(5))
            .connect()
            .await
            .with_context(|| format!("cannot connect to the coordinator at {url}"))?;
        Ok(FleetServiceClient::new(channel))
    }
}

#[derive(Debug, Args)]
pub struct ContainersArgs {
    #[command(flatten)]
    connection: Connection,
    /// Only this node's containers.
    #[arg(long)]
    node: Option<String>,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[command(flatten)]
    connection: Connection,
    /// Only events of this type (repeatable): health_alert, remediation_needed, false_alarm,
    /// remediation_complete, rejected.
    #[arg(long = "type", value_parser = parse_event_type)]
    types: Vec<pb::EventType>,
    /// Only this node's events.
    #[arg(long)]
    node: Option<String>,
    /// Only this container's events (by name).
    #[arg(long)]
    container: Option<String>,
    /// Only events after this event id.
    #[arg(long)]
    after: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Keep watching: print each new event as it is recorded (resume with --after <last id>).
    #[arg(long, short = 'f')]
    follow: bool,
}

fn parse_event_type(name: &str) -> Result<pb::EventType, String> {
    pb::EventType::from_str_name(&format!("EVENT_TYPE_{}", name.to_ascii_uppercase()))
        .filter(|t| *t != pb::EventType::Unspecified)
        .ok_or_else(|| format!("unknown event type {name:?}"))
}

/// The lower-case name of a wire enum value, e.g. `EVENT_TYPE_HEALTH_ALERT` → `health_alert`.
fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase()
}

pub async fn nodes(connection: Connection) -> anyhow::Result<()> {
    let nodes = connection.client().await?.list_nodes(pb::ListNodesRequest {}).await?.into_inner().nodes;
    match connection.output {
        Format::Json => {
            let list: Vec<_> = nodes
                .iter()
                .map(|n| {
                    json!({"name": n.name, "connected": n.connected, "address": n.address, "version": n.version,
                           "hostname": n.hostname, "connected_at": output::time(n.connected_at.as_ref()),
                           "last_seen": output::time(n.last_seen.as_ref())})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Format::Table => output::table(
            &["NODE", "CONNECTED", "LAST SEEN", "ADDRESS", "VERSION", "HOST"],
            &nodes
                .iter()
                .map(|n| {
                    vec![
                        n.name.clone(),
                        if n.connected { "yes" } else { "no" }.into(),
                        output::ago(n.last_seen.as_ref()),
                        n.address.clone(),
                        n.version.clone(),
                        n.hostname.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(())
}

pub async fn containers(args: ContainersArgs) -> anyhow::Result<()> {
    let request = pb::ListContainersRequest { node: args.node.clone().unwrap_or_default() };
    let containers = args.connection.client().await?.list_containers(request).await?.into_inner().containers;
    let rows: Vec<(String, pb::ContainerState)> =
        containers.into_iter().map(|c| (c.node, c.state.unwrap_or_default())).collect();
    match args.connection.output {
        Format::Json => {
            let list: Vec<_> = rows
                .iter()
                .map(|(node, s)| {
                    json!({"node": node, "id": s.id, "name": s.name, "image": s.image,
                           "status": short(s.status().as_str_name(), "CONTAINER_STATUS_"),
                           "health": short(s.health().as_str_name(), "HEALTH_STATUS_"), "exit_code": s.exit_code})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Format::Table => output::table(
            &["NODE", "CONTAINER", "STATUS", "HEALTH", "EXIT", "IMAGE"],
            &rows
                .iter()
                .map(|(node, s)| {
                    vec![
                        node.clone(),
                        s.name.clone(),
                        short(s.status().as_str_name(), "CONTAINER_STATUS_"),
                        short(s.health().as_str_name(), "HEALTH_STATUS_"),
                        s.exit_code.to_string(),
                        s.image.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(())
}

/// Prints events as they are recorded, one line (or one JSON object) each, until interrupted.
async fn follow(args: EventsArgs) -> anyhow::Result<()> {
    let request = pb::WatchEventsRequest {
        after_id: args.after.clone().unwrap_or_default(),
        types: args.types.iter().map(|t| *t as i32).collect(),
        node: args.node.clone().unwrap_or_default(),
        container: args.container.clone().unwrap_or_default(),
    };
    let mut stream = args.connection.client().await?.watch_events(request).await?.into_inner();
    while let Some(message) = stream.message().await? {
        let Some(e) = message.event else { continue };
        match args.connection.output {
            Format::Json => println!("{}", serde_json::to_string(&event_json(&e))?),
            Format::Table => println!(
                "{}  {}  {}  {}  {}",
                output::time(e.time.as_ref()),
                short(e.r#type().as_str_name(), "EVENT_TYPE_"),
                output::printable(&e.node),
                output::printable(&e.container_name),
                output::printable(&detail(&e))
            ),
        }
    }
    Ok(())
}

pub async fn events(args: EventsArgs) -> anyhow::Result<()> {
    if args.follow {
        return follow(args).await;
    }
    let request = pb::ListEventsRequest {
        types: args.types.iter().map(|t| *t as i32).collect(),
        node: args.node.clone().unwrap_or_default(),
        container: args.container.clone().unwrap_or_default(),
        page_size: args.limit,
        page_token: args.after.clone().unwrap_or_default(),
    };
    let events = args.connection.client().await?.list_events(request).await?.into_inner().events;
    match args.connection.output {
        Format::Json => {
            let list: Vec<_> = events.iter().map(event_json).collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Format::Table => output::table(
            &["TIME", "TYPE", "NODE", "CONTAINER", "ACTION", "DETAIL"],
            &events
                .iter()
                .map(|e| {
                    vec![
                        output::time(e.time.as_ref()),
                        short(e.r#type().as_str_name(), "EVENT_TYPE_"),
                        e.node.clone(),
                        e.container_name.clone(),
                        match e.action() {
                            pb::Action::Unspecified => String::new(),
                            action => short(action.as_str_name(), "ACTION_"),
                        },
                        detail(e),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    }
    Ok(())
}

/// The one-line summary of an event for the table.
fn detail(e: &pb::Event) -> String {
    match e.r#type() {
        pb::EventType::RemediationComplete => format!("{}: {}", short(e.outcome().as_str_name(), "OUTCOME_"), e.reason),
        pb::EventType::Rejected => format!("{}: {}", e.rejection, e.reason),
        pb::EventType::RemediationNeeded | pb::EventType::FalseAlarm => {
            format!("{} (confidence {:.2}, {})", e.reason, e.confidence, e.analysis_method)
        }
        _ => e.reason.clone(),
    }
}

fn event_json(e: &pb::Event) -> serde_json::Value {
    json!({
        "id": e.id,
        "time": output::time(e.time.as_ref()),
        "type": short(e.r#type().as_str_name(), "EVENT_TYPE_"),
        "node": e.node,
        "container_id": e.container_id,
        "container": e.container_name,
        "action": short(e.action().as_str_name(), "ACTION_"),
        "reason": e.reason,
        "outcome": short(e.outcome().as_str_name(), "OUTCOME_"),
        "rejection": e.rejection,
        "confidence": e.confidence,
        "analysis_method": e.analysis_method,
        "command_id": e.command_id,
        "exit_code": e.exit_code,
    })
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    connection: Connection,
    /// The approval's id (the command id of the `awaiting_approval` event).
    id: String,
}

pub async fn approve(args: ApproveArgs) -> anyhow::Result<()> {
    let request = pb::ApproveActionRequest { approval_id: args.id.clone() };
    let response = args.connection.client().await?.approve_action(request).await?.into_inner();
    match args.connection.output {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json!({"command_id": response.command_id, "detail": response.detail}))?
        ),
        Format::Table => println!("{}", output::printable(&response.detail)),
    }
    Ok(())
}
