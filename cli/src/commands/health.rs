//! `hemostat health`: asks a coordinator's `grpc.health.v1.Health` service whether it serves, for health
//! checks (Compose, systemd, load balancers). Exits 0 when it does, 1 otherwise.

use clap::Args;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::connection::ConnectionArgs;

/// Arguments of `hemostat health`.
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The service to check, e.g. hemostat.v1.AgentService; empty for the coordinator as a whole.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Where the coordinator is, and the certificate to connect with (any certificate of the fleet's CA).
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

/// Checks the coordinator's health; an error unless it serves.
pub async fn health(args: HealthArgs) -> anyhow::Result<()> {
    let channel = args.connection.settings()?.channel().await?;
    let mut client = HealthClient::new(channel);
    let answer = client
        .check(HealthCheckRequest { service: args.service.clone() })
        .await
        .map_err(|status| anyhow::anyhow!("Health/Check: {:?}: {}", status.code(), status.message()))?;
    match answer.into_inner().status() {
        ServingStatus::Serving => {
            // A coordinator that accepted a volatile store says so under a service of its own (older
            // coordinators do not know it: NOT_FOUND, nothing to say).
            let durable = HealthCheckRequest { service: hemostat_proto::DURABLE_STATE_HEALTH_SERVICE.to_owned() };
            let volatile = client
                .check(durable)
                .await
                .is_ok_and(|answer| answer.into_inner().status() == ServingStatus::NotServing);
            if volatile {
                println!(
                    "SERVING, on a volatile state store (REDIS_ALLOW_VOLATILE=true): a restart of Redis forgets \
                     cooldowns, budgets and the event log"
                );
            } else {
                println!("SERVING");
            }
            Ok(())
        }
        status => anyhow::bail!("the coordinator answers {}", status.as_str_name()),
    }
}
