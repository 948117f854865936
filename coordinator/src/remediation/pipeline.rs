//! The decision pipeline: from a node's health alert to a recorded decision and, when one is needed, an
//! action handed to dispatch.
//!
//! For each alert: assess an exit once (a requested or clean exit, or an opted-out container, records
//! nothing); record the `health_alert`; count a restart the node made on its own; keep the alert in the
//! container's history; then
//! - an exit is decided at once by the [`Analyzer`] with the container's alert history;
//! - a condition (high CPU or memory, a failing health check, too many restarts) opens or joins the
//!   container's [episode](crate::analysis::episode), which is evaluated again on every metrics sample
//!   while it lasts and decided once: when the table first calls for more than "not yet", or, if it clears
//!   while the container runs, with its last verdict (one `transient_spike` for a short spike).
//!
//! A decision is recorded (`false_alarm` or `remediation_needed`, with its evidence), then a silence or
//! dry-run holds it, it is parked for an admin's approval when approvals are required, or it is dispatched.
//! With an LLM configured the decision runs in the background (bounded by the LLM's own concurrency), so a
//! slow model never holds up the node's other reports; for a condition the model is asked once, when the
//! rules find its episode conclusive. An exit waiting for its analysis is kept in the state store first
//! (at most [`PENDING_PER_NODE`] per node; beyond that the alert is decided before it is acknowledged, so a
//! flood slows the node down instead of growing a queue), and removed once decided: a coordinator that dies
//! in between leaves it there, and whichever coordinator holds the node's next session takes it over and
//! decides it ([`Pipeline::resume_analyses`]); a decision reached by a coordinator whose alert another took
//! over is dropped, so it is recorded once. (A condition needs no such care: the node re-asserts its
//! standing conditions on every new session, and the episode is decided again.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::Target;
use super::dispatch::Dispatcher;
use super::journal::Journal;
use super::manual::park_for_approval;
use super::node_commands::{NodeCommands, new_command_id};
use crate::analysis::episode::{Episode, timeline};
use crate::analysis::evidence::EpisodeEvidence;
use crate::analysis::exit::Assessed;
use crate::analysis::patterns::Sample;
use crate::analysis::rules::RuleDecision;
use crate::analysis::{Analyzer, HistoryEntry, Inputs, Verdict, alert_samples};
use crate::container::{AlertReport, AnomalyKind, ContainerFacts, HostReport, Metrics, Status};
use crate::events::{Action, EventKind, EventRecord, unix_ms};
use crate::registry::Registry;
use crate::store::{HistoryStore, SettingsStore, StoreError};
use hemostat_proto::v1 as pb;
use prost::Message;

/// (node, container id).
type EpisodeKey = (String, String);

/// Exits of one node kept waiting for a slow analysis at most; beyond, an alert is decided before it is
/// acknowledged.
pub const PENDING_PER_NODE: usize = 100;

/// Alerts in, decisions out.
pub struct Pipeline {
    analyzer: Analyzer,
    history: Arc<dyn HistoryStore>,
    approvals: Arc<dyn SettingsStore>,
    journal: Arc<Journal>,
    dispatcher: Arc<Dispatcher>,
    commands: Arc<NodeCommands>,
    registry: Arc<Registry>,
    /// `RESPONDER_REQUIRE_APPROVAL`: how long decisions wait for an admin; `None` acts at once.
    approval_ttl: Option<Duration>,
    /// The running episodes of the nodes connected here.
    episodes: Mutex<HashMap<EpisodeKey, Episode>>,
}

/// A decision to make about an episode, taken out of the episodes' lock.
struct Conclusion {
    node: String,
    case: Assessed,
    rule: RuleDecision,
    samples: Vec<Sample>,
    history: Vec<HistoryEntry>,
    episode: EpisodeEvidence,
    /// Ask the LLM (an episode being decided), or record the rules' last verdict (an episode that ended).
    consult: bool,
}

impl Conclusion {
    /// What to decide of `episode` on `node`: the rule it came to, with its evidence.
    fn of(node: &str, episode: &Episode, rule: RuleDecision, evidence: EpisodeEvidence, consult: bool) -> Self {
        Conclusion {
            node: node.to_owned(),
            case: episode.case().clone(),
            rule,
            samples: episode.samples().to_vec(),
            history: episode.history().to_vec(),
            episode: evidence,
            consult,
        }
    }
}

impl Pipeline {
    /// A pipeline deciding with `analyzer` and the history in `history`, parking decisions for approval in
    /// `approvals` for `approval_ttl` (when set), recording in `journal`, acting through `dispatcher`, and
    /// showing running episodes in `registry`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        analyzer: Analyzer,
        history: Arc<dyn HistoryStore>,
        approvals: Arc<dyn SettingsStore>,
        journal: Arc<Journal>,
        dispatcher: Arc<Dispatcher>,
        commands: Arc<NodeCommands>,
        registry: Arc<Registry>,
        approval_ttl: Option<Duration>,
    ) -> Self {
        Pipeline {
            analyzer,
            history,
            approvals,
            journal,
            dispatcher,
            commands,
            registry,
            approval_ttl,
            episodes: Mutex::new(HashMap::new()),
        }
    }

    /// Handles a node's health alert: records it, then decides and acts within the policy.
    pub async fn on_alert(self: &Arc<Self>, node: &str, alert: AlertReport) -> Result<(), StoreError> {
        let case = Assessed::new(alert);
        if let Some(reason) = case.ignored() {
            tracing::debug!(node, container = ?case.alert.container.name, reason, "exit needs no action");
            return Ok(());
        }
        let alert = &case.alert;
        let container = &alert.container;
        let mut record =
            EventRecord::new(EventKind::HealthAlert, node, &container.id, &container.name, alert.summary());
        record.anomalies = alert.anomalies.clone();
        record.exit_code = alert.exit.map(|e| e.exit_code);
        record.observed_ms = alert.observed_at.map(unix_ms);
        self.journal.append(&record).await?;
        if let Some(command_id) = &alert.local_restart {
            return self.on_local_restart(node, alert, command_id).await;
        }
        if alert.exit.is_none() {
            return self.on_condition(node, case).await;
        }
        if !self.analyzer.is_slow() {
            return self.decide(node, &case, None).await;
        }
        let id = new_command_id();
        let encoded = pb::HealthAlert::from(&case.alert).encode_to_vec();
        if !self.approvals.put_pending_analysis(node, &id, &encoded, PENDING_PER_NODE).await? {
            tracing::warn!(node, "{PENDING_PER_NODE} alerts of this node wait for analysis: deciding this one first");
            return self.decide(node, &case, None).await;
        }
        self.decide_in_background(node, case, id, false);
        Ok(())
    }

    /// Decides the exit `case` of `node`, kept in the store as pending analysis `id`, in the background.
    fn decide_in_background(self: &Arc<Self>, node: &str, case: Assessed, id: String, resumed: bool) {
        let (this, node) = (self.clone(), node.to_owned());
        tokio::spawn(async move {
            if let Err(error) = this.decide(&node, &case, Some((&id, resumed))).await {
                tracing::error!(node, %error, "could not record a decision; no action was taken");
            }
        });
    }

    /// Takes over the exits of `node` left waiting for analysis (by a coordinator that stopped before deciding
    /// them) and decides them in the background; returns how many.
    pub async fn resume_analyses(self: &Arc<Self>, node: &str) -> Result<usize, StoreError> {
        let taken = self.approvals.take_pending_analyses(node).await?;
        let count = taken.len();
        for (id, raw) in taken {
            let decoded = pb::HealthAlert::decode(raw.as_slice()).map_err(|e| e.to_string());
            let alert = match decoded.and_then(|wire| AlertReport::try_from(&wire).map_err(|e| e.to_string())) {
                Ok(alert) => alert,
                Err(error) => {
                    tracing::warn!(node, %error, "dropped an unreadable alert left waiting for analysis");
                    continue;
                }
            };
            tracing::info!(node, container = ?alert.container.name, "took over an alert left waiting for analysis");
            // Kept again, now as this coordinator's, in case it stops too.
            self.approvals.put_pending_analysis(node, &id, &raw, PENDING_PER_NODE).await?;
            self.decide_in_background(node, Assessed::new(alert), id, true);
        }
        Ok(count)
    }

    /// Analyzes an exit with the container's history, keeps the alert in it, and acts on the verdict. For an
    /// alert kept as pending analysis (`pending`: its id, and whether this coordinator took it over from
    /// another, which kept it in the history already), the decision is recorded only if it is still waiting.
    async fn decide(&self, node: &str, case: &Assessed, pending: Option<(&str, bool)>) -> Result<(), StoreError> {
        let container = &case.alert.container;
        let now = unix_ms(SystemTime::now());
        let history = match pending {
            Some((_, true)) => {
                let key = container.budget_key(node);
                self.history.history(&key, now, self.analyzer.config().history_ttl).await?
            }
            _ => self.remember(node, &case.alert, now).await?,
        };
        let verdict = self.analyzer.analyze(case, &history, now, &self.registry.abilities(node)).await;
        if let Some((id, _)) = pending
            && !self.approvals.finish_pending_analysis(node, id).await?
        {
            tracing::info!(node, container = ?container.name, "another coordinator took this alert over and decides it");
            return Ok(());
        }
        match verdict {
            Some(verdict) => self.act(node, container, verdict).await,
            None => Ok(()),
        }
    }

    /// The container's alert history (before this alert), and this alert kept in it.
    async fn remember(&self, node: &str, alert: &AlertReport, now: u64) -> Result<Vec<HistoryEntry>, StoreError> {
        let key = alert.container.budget_key(node);
        let config = self.analyzer.config();
        let history = self.history.history(&key, now, config.history_ttl).await?;
        let entry = HistoryEntry { time_ms: now, anomalies: alert.anomalies.clone(), samples: alert_samples(alert) };
        self.history.append_history(&key, &entry, config.history_size, config.history_ttl).await?;
        Ok(history)
    }

    /// A condition's alert: opens the container's episode or joins it, and evaluates it.
    async fn on_condition(self: &Arc<Self>, node: &str, case: Assessed) -> Result<(), StoreError> {
        let now = unix_ms(SystemTime::now());
        let history = self.remember(node, &case.alert, now).await?;
        let key = (node.to_owned(), case.alert.container.id.clone());
        let conclusion = {
            let mut episodes = self.episodes.lock().expect("episodes lock");
            let patterns = &self.analyzer.patterns_for(&case.alert.container);
            let episode = match episodes.entry(key) {
                std::collections::hash_map::Entry::Occupied(entry) => {
                    let episode = entry.into_mut();
                    episode.alerted(case.alert);
                    episode
                }
                std::collections::hash_map::Entry::Vacant(entry) => {
                    entry.insert(Episode::begin(case.alert, history, now, Episode::keep_for(patterns)))
                }
            };
            self.step(node, episode, now)
        };
        self.conclude(conclusion).await
    }

    /// A poll's samples of a node's containers: each running episode among them is evaluated again.
    pub async fn on_metrics(self: &Arc<Self>, node: &str, samples: &[(String, Metrics)]) -> Result<(), StoreError> {
        let now = unix_ms(SystemTime::now());
        let conclusions: Vec<Conclusion> = {
            let mut episodes = self.episodes.lock().expect("episodes lock");
            if episodes.is_empty() {
                return Ok(());
            }
            samples
                .iter()
                .filter_map(|(id, metrics)| {
                    let episode = episodes.get_mut(&(node.to_owned(), id.clone()))?;
                    if !episode.sampled(metrics) {
                        return None;
                    }
                    self.step(node, episode, now)
                })
                .collect()
        };
        for conclusion in conclusions {
            self.conclude(Some(conclusion)).await?;
        }
        Ok(())
    }

    /// Conditions of a container cleared: an episode left with none is over; if it was never decided and
    /// the container still runs, its last verdict is recorded as its decision.
    pub async fn on_cleared(
        self: &Arc<Self>,
        node: &str,
        container: &ContainerFacts,
        cleared: &[AnomalyKind],
    ) -> Result<(), StoreError> {
        let now = unix_ms(SystemTime::now());
        let conclusion = {
            let mut episodes = self.episodes.lock().expect("episodes lock");
            let key = (node.to_owned(), container.id.clone());
            let Some(episode) = episodes.get_mut(&key) else { return Ok(()) };
            if !episode.cleared(cleared) {
                self.registry.set_episode(
                    node,
                    &container.id,
                    Some(episode.view(&self.analyzer.patterns_for(container))),
                );
                return Ok(());
            }
            let episode = episodes.remove(&key).expect("present");
            self.registry.set_episode(node, &container.id, None);
            match (episode.decided(), episode.latest()) {
                (None, Some(latest)) if container.status == Status::Running => {
                    let patterns = &self.analyzer.patterns_for(container);
                    let evidence = episode.evidence(patterns, now);
                    let lasted = Duration::from_millis(now.saturating_sub(episode.first_seen_ms()));
                    let mut rule = latest.clone();
                    rule.reason =
                        format!("{}; cleared after {}s ({})", rule.reason, lasted.as_secs(), timeline(&evidence));
                    Some(Conclusion::of(node, &episode, rule, evidence, false))
                }
                _ => None,
            }
        };
        self.conclude(conclusion).await
    }

    /// Evaluates an episode (under the episodes' lock): shows it, and, when the table calls it, marks it
    /// decided and returns what to decide.
    fn step(&self, node: &str, episode: &mut Episode, now: u64) -> Option<Conclusion> {
        let patterns = &self.analyzer.patterns_for(&episode.case().alert.container);
        let container_id = episode.case().alert.container.id.clone();
        let conclusion = match episode.decided() {
            Some(_) => None,
            None => episode.evaluate(patterns).filter(|rule| !rule.waits()).map(|mut rule| {
                let evidence = episode.evidence(patterns, now);
                episode.decide(now, rule.rule, rule.action, rule.reason.clone());
                rule.reason = format!("{} ({})", rule.reason, timeline(&evidence));
                Conclusion::of(node, episode, rule, evidence, true)
            }),
        };
        self.registry.set_episode(node, &container_id, Some(episode.view(patterns)));
        conclusion
    }

    /// Makes the decision about an episode and acts on it (in the background with an LLM).
    async fn conclude(self: &Arc<Self>, conclusion: Option<Conclusion>) -> Result<(), StoreError> {
        let Some(conclusion) = conclusion else { return Ok(()) };
        if self.analyzer.is_slow() && conclusion.consult {
            let this = self.clone();
            tokio::spawn(async move {
                let node = conclusion.node.clone();
                if let Err(error) = this.conclude_now(conclusion).await {
                    tracing::error!(node, %error, "could not record a decision; no action was taken");
                }
            });
            Ok(())
        } else {
            self.conclude_now(conclusion).await
        }
    }

    async fn conclude_now(&self, conclusion: Conclusion) -> Result<(), StoreError> {
        let Conclusion { node, case, rule, samples, history, episode, consult } = conclusion;
        let rule_name = rule.rule;
        let abilities = self.registry.abilities(&node);
        let inputs = Inputs {
            case: &case,
            samples: &samples,
            history: &history,
            episode: Some(episode),
            now_ms: episode.decided_ms,
            node: &abilities,
        };
        let verdict = self.analyzer.conclude(&inputs, rule, consult).await;
        let container = &case.alert.container;
        if let Some(open) = self.episodes.lock().expect("episodes lock").get_mut(&(node.clone(), container.id.clone()))
            && open.decided().is_some()
        {
            open.decide(episode.decided_ms, rule_name, verdict.action, verdict.reason.clone());
            self.registry.set_episode(&node, &container.id, Some(open.view(&self.analyzer.patterns_for(container))));
        }
        self.act(&node, container, verdict).await
    }

    /// Records a restart the node made on its own while cut off, and counts it in the container's budget.
    async fn on_local_restart(&self, node: &str, alert: &AlertReport, command_id: &str) -> Result<(), StoreError> {
        let container = &alert.container;
        let key = container.budget_key(node);
        let at = alert.observed_at.map_or_else(|| unix_ms(SystemTime::now()), unix_ms);
        self.dispatcher.count_local_action(&key, &container.labels, at).await?;
        let reason = "the node restarted it on its own local policy, cut off from every coordinator".to_owned();
        let mut record = EventRecord::new(EventKind::RemediationNeeded, node, &container.id, &container.name, reason);
        record.action = Some(Action::Restart);
        record.analysis_method = Some("local".into());
        record.decided_by = Some("node_local_policy".into());
        record.command_id = Some(command_id.to_owned());
        self.journal.append(&record).await?;
        self.commands.expect_result(node, command_id, container, Action::Restart, key);
        Ok(())
    }

    /// A node's report of a condition of its host: recorded (`health_alert` when it begins or is re-asserted,
    /// `resolved` when it ends), and, while it lasts, decided by the rules alone (the host's `low_disk` calls
    /// for a cleanup of the host) and acted on within the policy, on the host's own budget.
    pub async fn on_host_alert(&self, node: &str, report: HostReport) -> Result<(), StoreError> {
        let kind = if report.cleared { EventKind::Resolved } else { EventKind::HealthAlert };
        let mut record = EventRecord::new(kind, node, "", "", report.summary());
        record.observed_ms = report.observed_at.map(unix_ms);
        self.journal.append(&record).await?;
        if report.cleared {
            return Ok(());
        }
        let verdict = self.analyzer.on_host(&report);
        self.act_on(&Target::host(node), verdict).await
    }

    /// Records a decision about `container` and, for an action, holds, parks or dispatches it.
    async fn act(&self, node: &str, container: &ContainerFacts, verdict: Verdict) -> Result<(), StoreError> {
        self.act_on(&Target::of(node, container), verdict).await
    }

    /// Records a decision about `target` and, for an action, holds, parks or dispatches it.
    async fn act_on(&self, target: &Target, verdict: Verdict) -> Result<(), StoreError> {
        let mut decision = EventRecord::new(
            EventKind::FalseAlarm,
            &target.node,
            &target.container_id,
            &target.container_name,
            verdict.reason,
        );
        decision.confidence = Some(verdict.confidence);
        decision.analysis_method = Some(verdict.method.to_owned());
        decision.decided_by = Some(verdict.decided_by);
        decision.evidence = Some(verdict.evidence);
        let Some(action) = verdict.action else {
            self.journal.append(&decision).await?;
            return Ok(());
        };
        let mut needed = EventRecord { kind: EventKind::RemediationNeeded, action: Some(action), ..decision };
        let command_id = new_command_id();
        needed.command_id = Some(command_id.clone());
        needed.arguments = self.commands.arguments(action, &verdict.argv, &target.labels);
        self.journal.append(&needed).await?;

        if action == Action::ScaleUp {
            self.commands.fall_back(&command_id, Action::Restart);
        }
        if self.dispatcher.hold(target, action, &command_id).await?.is_some() {
            return Ok(());
        }
        if let Some(ttl) = self.approval_ttl {
            let (approvals, dispatcher) = (self.approvals.as_ref(), self.dispatcher.as_ref());
            return park_for_approval(approvals, dispatcher, target, (action, verdict.argv), command_id, ttl).await;
        }
        self.dispatcher.dispatch_or_retry(target, action, verdict.argv, command_id).await.map(|_| ())
    }
}
