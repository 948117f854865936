//! `hemostat notify test [--sink NAME]` (admins): the coordinator sends a test notification through each
//! configured sink (Slack, the webhook, Alertmanager, Discord, Teams, ntfy, Gotify, email), or the one
//! named, and this prints what each service answered. It fails (exit 1) when a sink did not take it.

use anyhow::bail;
use clap::{Args, Subcommand};
use hemostat_proto::v1 as pb;
use serde::Serialize;

use crate::commands::show;
use crate::connection::ClientArgs;
use crate::rpc_error::rpc;
use crate::table::Table;

/// Arguments of `hemostat notify`.
#[derive(Debug, Args)]
pub struct NotifyArgs {
    #[command(subcommand)]
    command: NotifyCommand,
}

#[derive(Debug, Subcommand)]
enum NotifyCommand {
    /// Send a test notification through each configured sink and print what each answered.
    Test(TestArgs),
}

#[derive(Debug, Args)]
struct TestArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Test only this sink (slack, webhook, alertmanager, discord, teams, ntfy, gotify, email).
    #[arg(long)]
    sink: Option<String>,
}

/// What one sink did with the test.
#[derive(Debug, Serialize)]
struct SinkTest {
    sink: String,
    delivered: bool,
    answer: String,
}

/// Runs `hemostat notify`.
pub async fn notify(args: NotifyArgs) -> anyhow::Result<()> {
    let NotifyCommand::Test(args) = args.command;
    let mut client = args.client.connection.settings()?.client().await?;
    let request = pb::TestNotificationsRequest { sink: args.sink.unwrap_or_default() };
    let response = client.test_notifications(request).await.map_err(rpc("TestNotifications"))?.into_inner();
    let results: Vec<SinkTest> = response
        .results
        .into_iter()
        .map(|r| SinkTest { sink: r.sink, delivered: r.delivered, answer: r.answer })
        .collect();
    show(args.client.output, &results, |results| table(results))?;
    let failed = results.iter().filter(|r| !r.delivered).count();
    if failed > 0 {
        bail!("{failed} of {} sinks did not take the test notification", results.len());
    }
    Ok(())
}

fn table(results: &[SinkTest]) -> String {
    let mut table = Table::new(&["SINK", "RESULT", "ANSWER"]);
    for r in results {
        let result = if r.delivered { "delivered" } else { "FAILED" };
        table.row(vec![r.sink.clone(), result.to_owned(), r.answer.clone()]);
    }
    table.render()
}
