//! How results look: aligned tables and short sentences for people, one JSON document for scripts. Every
//! function here is pure (values in, text out), so the snapshot tests pin what operators see.

use std::time::SystemTime;

use serde::Serialize;

use crate::model::{
    Accepted, ActionReport, Anomaly, Budget, Container, ContainerDetail, DryRun, DryRunChange, Episode, Event, Metrics,
    Node, PolicyValue, Release, Silence, StormEnd, UtcTime,
};
use crate::table::{self, Table};
use crate::terminal::{json_safe, printable};

/// How results are printed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned tables and sentences for people.
    #[default]
    Table,
    /// One JSON document (for `events --follow`: one JSON object per line).
    Json,
}

/// `value` as one pretty-printed JSON document, newline-terminated.
pub fn json<T: Serialize>(value: &T) -> String {
    let text = serde_json::to_string_pretty(value).expect("the CLI's values always serialise");
    json_safe(&text) + "\n"
}

/// `value` as one line of JSON (for streams), newline-terminated.
pub fn json_line<T: Serialize>(value: &T) -> String {
    let text = serde_json::to_string(value).expect("the CLI's values always serialise");
    json_safe(&text) + "\n"
}

fn time(t: &Option<UtcTime>) -> String {
    t.map(|t| t.to_string()).unwrap_or_default()
}

fn or_blank(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

/// A number without a fraction when it has none (`85`, `1`), else with one decimal (`85.5`).
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x:.1}") }
}

/// Bytes in binary units, one decimal: `512 B`, `45.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `high_cpu (high): 95.5, threshold 85`.
fn anomaly(a: &Anomaly) -> String {
    format!(
        "{} ({}): {}, threshold {}",
        a.kind.as_deref().unwrap_or("unknown"),
        a.severity.as_deref().unwrap_or("unknown"),
        number(a.actual),
        number(a.threshold)
    )
}

fn anomalies(list: &[Anomaly]) -> String {
    list.iter().map(anomaly).collect::<Vec<_>>().join("; ")
}

/// The nodes table of `hemostat nodes`.
pub fn nodes_table(nodes: &[Node]) -> String {
    let mut table = Table::new(&["NODE", "CONNECTED", "LAST SEEN", "ADDRESS", "VERSION", "SPOOL", "HOST"]);
    for n in nodes {
        let spool = match n.spool_dropped {
            0 => n.spool_depth.to_string(),
            dropped => format!("{} ({dropped} dropped)", n.spool_depth),
        };
        table.row(vec![
            n.name.clone(),
            if n.connected { "yes" } else { "no" }.into(),
            time(&n.last_seen),
            or_blank(&n.address),
            or_blank(&n.version),
            spool,
            or_blank(&n.hostname),
        ]);
    }
    table.render()
}

/// `running`, `exited (1)`.
fn status(c: &Container) -> String {
    match c.status.as_deref() {
        Some(status @ ("exited" | "dead")) => format!("{status} ({})", c.exit_code),
        status => status.unwrap_or("unknown").to_owned(),
    }
}

fn cpu(m: Option<&Metrics>) -> String {
    m.and_then(|m| m.figures.cpu_percent).map(|p| format!("{p:.1}%")).unwrap_or_default()
}

fn memory(m: Option<&Metrics>) -> String {
    m.map(|m| format!("{} ({:.1}%)", bytes(m.figures.memory_used), m.figures.memory_percent)).unwrap_or_default()
}

/// The containers table of `hemostat containers`, at `now`: HELD says what holds an automatic action back
/// (cooldown, circuit breaker, attempts, silence), so a container left down by one is seen at a glance.
pub fn containers_table(containers: &[Container], now: SystemTime) -> String {
    let mut table =
        Table::new(&["NODE", "CONTAINER", "STATUS", "HELD", "HEALTH", "CPU", "MEMORY", "ANOMALIES", "IMAGE"]);
    for c in containers {
        table.row(vec![
            c.node.clone(),
            c.name.clone(),
            status(c),
            c.holds(now).join(", "),
            or_blank(&c.health),
            cpu(c.metrics.as_ref()),
            memory(c.metrics.as_ref()),
            c.anomalies.iter().map(|a| a.kind.clone().unwrap_or_default()).collect::<Vec<_>>().join(","),
            or_blank(&c.image),
        ]);
    }
    table.render()
}

/// Labelled lines: `LABEL  value`, labels padded to the widest, values made printable (`-` for none).
fn fields(lines: &[(&str, String)]) -> String {
    let width = lines.iter().map(|(label, _)| label.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (label, value) in lines {
        let value = if value.is_empty() { "-".to_owned() } else { printable(value) };
        out.push_str(&table::line(&[(*label).to_owned(), value], &[width, 0]));
        out.push('\n');
    }
    out
}

fn budget_lines(b: &Budget, lines: &mut Vec<(&str, String)>) {
    lines.push(("BUDGET KEY", b.key.clone()));
    let last = b.last_action.map(|t| format!(" (last action {t})")).unwrap_or_default();
    lines.push((
        "COOLDOWN",
        match b.cooldown_remaining_seconds {
            0 => format!("none{last}"),
            s => format!("{s}s left{last}"),
        },
    ));
    lines.push(("ATTEMPTS", format!("{} of {} in the last hour", b.attempts_in_window, b.max_attempts)));
    let circuit = b.circuit.as_deref().unwrap_or("unknown");
    let retry = match (circuit, b.circuit_retry_seconds) {
        ("open", s) if s > 0 => format!(", trial allowed in {s}s"),
        _ => String::new(),
    };
    lines.push(("CIRCUIT", format!("{circuit}{retry} ({} failed verifications in a row)", b.consecutive_failures)));
    if let Some(policy) = &b.restart_policy {
        lines.push(("RESTART POLICY", policy.clone()));
    }
    if b.quarantined {
        lines.push(("QUARANTINED", "yes: no automatic action until `hemostat release` or the breaker's trial".into()));
    }
}

/// A container's effective policy, a value a line: `cooldown        5s (label hemostat.cooldown)`; a value only
/// the node knows is `the node's`.
fn policy_lines(policy: &[PolicyValue]) -> String {
    let lines: Vec<(&str, String)> = policy
        .iter()
        .map(|v| (v.name.as_str(), format!("{} ({})", v.value.as_deref().unwrap_or("the node's"), v.source)))
        .collect();
    fields(&lines)
}

/// `high_cpu since …, above the threshold since … (sustain window 60 s); watching: …` or `…; decided … by
/// sustained_high_cpu (restart): …`.
fn episode_line(e: &Episode) -> String {
    let above = e.above_since.map(|t| format!(", above the threshold since {t}")).unwrap_or_default();
    let rule = e.rule.as_deref().unwrap_or("not evaluated yet");
    let reason = e.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
    let verdict = match e.decided_at {
        Some(at) => {
            let action = e.action.as_deref().unwrap_or("no action");
            format!("decided {at} by {rule} ({action}){reason}")
        }
        None => format!("watching, {rule} so far{reason}"),
    };
    format!(
        "{} since {}{above} (sustain window {} s); {verdict}",
        e.anomalies.join(", "),
        time(&e.first_seen),
        e.sustain_seconds
    )
}

fn silence_line(s: &Silence) -> String {
    let by = s.created_by.as_deref().map(|by| format!(" by {by}")).unwrap_or_default();
    let scope = if s.container.is_some() { "" } else { " (whole node)" };
    format!("until {}{by}{scope}: {} (id {})", time(&s.expires_at), s.reason, s.id)
}

/// The page of `hemostat container <node>/<name>`: state, metrics, anomalies, budget, silence, then the
/// recent metrics and events as tables.
pub fn container_detail(d: &ContainerDetail) -> String {
    let c = &d.container;
    let m = c.metrics.as_ref();
    let mut lines: Vec<(&str, String)> = vec![
        ("NODE", c.node.clone()),
        ("CONTAINER", c.name.clone()),
        ("ID", c.id.clone()),
        ("IMAGE", or_blank(&c.image)),
        ("STATUS", status(c)),
        ("HEALTH", or_blank(&c.health)),
        ("RESTART POLICY", or_blank(&c.restart_policy)),
        ("STARTED", time(&c.started_at)),
        ("REPORTED", time(&c.updated_at)),
    ];
    if let Some(m) = m {
        let cpu_limit = c.cpu_limit.map(|l| format!(" (limit {} CPUs)", number(l))).unwrap_or_default();
        lines.push((
            "CPU",
            format!("{}{cpu_limit}", if m.figures.cpu_percent.is_some() { cpu(Some(m)) } else { "-".into() }),
        ));
        lines.push((
            "MEMORY",
            format!(
                "{} of {} ({:.1}%)",
                bytes(m.figures.memory_used),
                bytes(m.figures.memory_limit),
                m.figures.memory_percent
            ),
        ));
        lines.push(("PIDS", m.figures.pids.to_string()));
        lines.push(("RESTARTS", format!("{} in the node's window", m.figures.restarts_in_window)));
        lines.push(("SAMPLED", time(&m.figures.sampled_at.map(UtcTime))));
    } else {
        lines.push(("METRICS", "none reported yet".into()));
    }
    lines.push(("ANOMALIES", if c.anomalies.is_empty() { "none".into() } else { anomalies(&c.anomalies) }));
    lines.push(("EPISODE", c.episode.as_ref().map(episode_line).unwrap_or_else(|| "none".into())));
    match &d.budget {
        Some(b) => budget_lines(b, &mut lines),
        None => lines.push(("BUDGET", "unknown".into())),
    }
    lines.push(("SILENCE", d.silence.as_ref().map(silence_line).unwrap_or_else(|| "none".into())));
    let mut out = fields(&lines);
    if !d.policy.is_empty() {
        out.push_str("\nPOLICY\n");
        out.push_str(&policy_lines(&d.policy));
    }
    if !d.recent_metrics.is_empty() {
        let mut table = Table::new(&["SAMPLED", "CPU", "MEMORY", "PIDS", "STATUS", "HEALTH"]);
        for m in &d.recent_metrics {
            table.row(vec![
                time(&m.figures.sampled_at.map(UtcTime)),
                cpu(Some(m)),
                memory(Some(m)),
                m.figures.pids.to_string(),
                or_blank(&m.status),
                or_blank(&m.health),
            ]);
        }
        out.push_str("\nRECENT METRICS\n");
        out.push_str(&table.render());
    }
    out.push_str("\nRECENT EVENTS\n");
    if d.recent_events.is_empty() {
        out.push_str("none\n");
    } else {
        let mut table = Table::new(&["TIME", "TYPE", "ACTION", "DETAIL"]);
        for e in &d.recent_events {
            table.row(vec![time(&e.time), or_blank(&e.kind), action(e), event_detail(e)]);
        }
        out.push_str(&table.render());
    }
    out
}

fn action(e: &Event) -> String {
    match e.action.as_deref() {
        None => String::new(),
        Some(action) => action.to_owned(),
    }
}

/// The one-line summary of an event, for tables.
pub fn event_detail(e: &Event) -> String {
    let reason = e.reason.clone().unwrap_or_default();
    match e.kind.as_deref() {
        Some("remediation_complete") => {
            format!("{}: {reason}", e.outcome.as_deref().unwrap_or("unknown"))
        }
        Some("rejected") => match &e.rejection {
            Some(code) => format!("{code}: {reason}"),
            None => reason,
        },
        Some("remediation_needed" | "false_alarm") => match (&e.confidence, &e.analysis_method) {
            (Some(confidence), Some(method)) => format!("{reason} (confidence {confidence:.2}, {method})"),
            (Some(confidence), None) => format!("{reason} (confidence {confidence:.2})"),
            _ => reason,
        },
        Some("health_alert" | "resolved") if reason.is_empty() => anomalies(&e.anomalies),
        Some("operator_action") => match &e.decided_by {
            Some(by) if !reason.contains(by.as_str()) => format!("{reason} (by {by})"),
            _ => reason,
        },
        _ => reason,
    }
}

/// The events table of `hemostat events`.
pub fn events_table(events: &[Event]) -> String {
    let mut table = Table::new(&["TIME", "TYPE", "NODE", "CONTAINER", "ACTION", "DETAIL"]);
    for e in events {
        table.row(vec![
            time(&e.time),
            or_blank(&e.kind),
            or_blank(&e.node),
            or_blank(&e.container),
            action(e),
            event_detail(e),
        ]);
    }
    table.render()
}

/// The audit table of `hemostat audit`: the events table with who decided.
pub fn audit_table(events: &[Event]) -> String {
    let mut table = Table::new(&["TIME", "TYPE", "NODE", "CONTAINER", "ACTION", "BY", "DETAIL"]);
    for e in events {
        table.row(vec![
            time(&e.time),
            or_blank(&e.kind),
            or_blank(&e.node),
            or_blank(&e.container),
            action(e),
            or_blank(&e.decided_by),
            event_detail(e),
        ]);
    }
    table.render()
}

/// Column widths of `events --follow`, fixed because the rows to come are unknown.
const STREAM_WIDTHS: [usize; 6] = [20, 20, 12, 20, 8, 0];

/// The header line of `events --follow`.
pub fn event_stream_header() -> String {
    let headers = ["TIME", "TYPE", "NODE", "CONTAINER", "ACTION", "DETAIL"].map(str::to_owned);
    table::line(&headers, &STREAM_WIDTHS) + "\n"
}

/// One line of `events --follow`, in the columns of [`event_stream_header`].
pub fn event_stream_line(e: &Event) -> String {
    let cells =
        [time(&e.time), or_blank(&e.kind), or_blank(&e.node), or_blank(&e.container), action(e), event_detail(e)]
            .map(|cell| printable(&cell));
    table::line(&cells, &STREAM_WIDTHS) + "\n"
}

/// The silences table of `hemostat silence list`.
pub fn silences_table(silences: &[Silence]) -> String {
    let mut table = Table::new(&["ID", "TARGET", "EXPIRES", "BY", "REASON"]);
    for s in silences {
        let target = match &s.container {
            Some(container) => format!("{}/{container}", s.node),
            None => format!("{} (node)", s.node),
        };
        table.row(vec![s.id.clone(), target, time(&s.expires_at), or_blank(&s.created_by), s.reason.clone()]);
    }
    table.render()
}

fn silence_target(s: &Silence) -> String {
    match &s.container {
        Some(container) => format!("container {}/{container}", s.node),
        None => format!("node {} (all its containers)", s.node),
    }
}

/// What `hemostat silence add` says.
pub fn silence_created(s: &Silence) -> String {
    printable(&format!("silenced {} until {}: {} (id {})", silence_target(s), time(&s.expires_at), s.reason, s.id))
        + "\n"
}

/// What `hemostat silence rm` says.
pub fn silence_removed(s: &Silence) -> String {
    printable(&format!("ended the silence {} of {}", s.id, silence_target(s))) + "\n"
}

fn on_off(enabled: bool) -> &'static str {
    if enabled { "on" } else { "off" }
}

/// What `hemostat dry-run` says.
pub fn dry_run(d: &DryRun) -> String {
    let source = match d.source.as_deref() {
        Some("operator") => " (set by an operator)".to_owned(),
        Some("configuration") => " (from RESPONDER_DRY_RUN)".to_owned(),
        Some(other) => format!(" ({})", printable(other)),
        None => String::new(),
    };
    format!("dry-run: {}{source}\n", on_off(d.enabled))
}

/// What `hemostat dry-run on|off` says.
pub fn dry_run_change(d: &DryRunChange) -> String {
    if d.enabled == d.previous {
        format!("dry-run: {} (unchanged)\n", on_off(d.enabled))
    } else {
        format!("dry-run: {} (was {})\n", on_off(d.enabled), on_off(d.previous))
    }
}

/// What `hemostat approve` says.
pub fn accepted(a: &Accepted) -> String {
    let id = a.command_id.as_deref().map(|id| format!("command {id}: ")).unwrap_or_default();
    printable(&format!("{id}{}", a.detail)) + "\n"
}

/// What `hemostat action` says: the command's id, and with `--wait` how it ended (and a diagnostic
/// command's output, line by line).
pub fn action_report(r: &ActionReport) -> String {
    let mut out = accepted(&Accepted { command_id: r.command_id.clone(), detail: r.detail.clone() });
    if let Some(e) = &r.result {
        let took = e.duration_ms.map(|ms| format!(" (took {ms} ms)")).unwrap_or_default();
        let result = match e.kind.as_deref() {
            Some("remediation_complete") => format!("result: {}{took}", event_detail(e)),
            _ => format!("result: {}: {}", e.kind.as_deref().unwrap_or("unknown"), event_detail(e)),
        };
        out.push_str(&printable(&result));
        out.push('\n');
        if let Some(output) = &e.output {
            out.push_str("output:\n");
            for line in output.lines() {
                out.push_str("  ");
                out.push_str(&printable(line));
                out.push('\n');
            }
        }
    }
    out
}

/// What `hemostat end-storm` says.
pub fn storm_end(s: &StormEnd) -> String {
    if s.cleared.is_empty() {
        "no storm was in force; automatic actions go on\n".to_owned()
    } else {
        printable(&format!("automatic actions resume; cleared: {}", s.cleared.join(", "))) + "\n"
    }
}

/// The answer to `release`.
pub fn release(r: &Release) -> String {
    let what = if r.was_quarantined { "released from quarantine" } else { "was not quarantined; budget reset" };
    printable(&format!("{}: {what} ({})", r.key, r.detail)) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_and_numbers_read_well() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(47_185_920), "45.0 MiB");
        assert_eq!(bytes(1 << 30), "1.0 GiB");
        assert_eq!(number(85.0), "85");
        assert_eq!(number(95.5), "95.5");
    }
}
