//! Analysis: what a health alert means, and what, if anything, to do about it.
//!
//! The [`Analyzer`] gathers the container's samples (the node's recent ones and those kept in the alert
//! history), applies the decision table of [`rules`], and, when an LLM is configured, asks it instead
//! ([`llm`]), falling back to the rules on any failure. A decision for an action below the confidence
//! threshold becomes a false alarm. Every decision carries its [`evidence`].
//!
//! An exit is one occurrence, decided at once ([`exit`]); a condition (high CPU or memory, a failing health
//! check) is an [`episode`], decided once, when the table first calls it, or when it clears.

pub mod episode;
pub mod evidence;
pub mod exit;
pub mod llm;
pub mod patterns;
pub mod rules;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::container::{AlertReport, Anomaly, ContainerFacts, HostReport, Metrics};
use crate::events::Action;
use crate::registry::NodeAbilities;
use evidence::{EpisodeEvidence, Evidence};
use exit::Assessed;
use hemostat_model::PolicyLabel;
use llm::{Choices, LlmClient, LlmConfig};
use patterns::{PatternConfig, Sample};
use rules::RuleDecision;

/// The label that narrows the actions allowed on a container, e.g. `hemostat.actions=restart` (or `none`).
pub const ACTIONS_LABEL: &str = "hemostat.actions";

/// One earlier alert of a container, as kept in the state store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When it was recorded, Unix milliseconds.
    pub time_ms: u64,
    /// Its anomalies.
    pub anomalies: Vec<Anomaly>,
    /// The samples it carried.
    pub samples: Vec<Sample>,
}

/// The analyzer's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalyzerConfig {
    /// `ANALYZER_CONFIDENCE_THRESHOLD`: below it, a decision is a false alarm.
    pub confidence_threshold: f64,
    /// Pattern windows.
    pub patterns: PatternConfig,
    /// `ANALYZER_HISTORY_SIZE`: alerts kept per container.
    pub history_size: usize,
    /// `ANALYZER_HISTORY_TTL`: how long they are kept.
    pub history_ttl: Duration,
    /// The LLM, if configured.
    pub llm: Option<LlmConfig>,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            confidence_threshold: 0.7,
            patterns: PatternConfig::default(),
            history_size: 10,
            history_ttl: Duration::from_secs(3600),
            llm: None,
        }
    }
}

/// A decision, ready to record.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    /// The action to take; `None` is a false alarm.
    pub action: Option<Action>,
    /// Why.
    pub reason: String,
    /// How sure, 0 to 1.
    pub confidence: f64,
    /// `rules` or `ai`.
    pub method: &'static str,
    /// The rule's name or the model's.
    pub decided_by: String,
    /// The evidence, JSON.
    pub evidence: String,
    /// For `exec`: the command's argument vector.
    pub argv: Vec<String>,
}

/// The analyzer.
pub struct Analyzer {
    config: AnalyzerConfig,
    llm: Option<LlmClient>,
}

impl Analyzer {
    /// An analyzer with `config`.
    pub fn new(config: AnalyzerConfig) -> Self {
        let llm = config.llm.clone().map(LlmClient::new);
        Analyzer { config, llm }
    }

    /// Its settings.
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// Whether decisions may take long (an LLM is configured).
    pub fn is_slow(&self) -> bool {
        self.llm.is_some()
    }

    /// Decides about an alert (its exit assessed), given the container's earlier alerts and what its node
    /// executes. `None` when the alert needs no record (a requested or clean exit).
    pub async fn analyze(
        &self,
        case: &Assessed,
        history: &[HistoryEntry],
        now_ms: u64,
        node: &NodeAbilities,
    ) -> Option<Verdict> {
        let samples = samples_of(&case.alert, history);
        let rule = self.rules(case, &samples)?;
        let inputs = Inputs { case, samples: &samples, history, episode: None, now_ms, node };
        Some(self.conclude(&inputs, rule, true).await)
    }

    /// The decision table's row for an alert and the container's samples; `None` for row 1.
    pub fn rules(&self, case: &Assessed, samples: &[Sample]) -> Option<RuleDecision> {
        rules::decide(case, samples, &self.patterns_for(&case.alert.container))
    }

    /// The pattern settings for `container`: its `hemostat.sustain` label, when valid, overrides
    /// `ANALYZER_SUSTAIN_SECONDS` (the same rule as [`crate::container_policy`]; a bad value is told there).
    pub fn patterns_for(&self, container: &ContainerFacts) -> PatternConfig {
        let label = PolicyLabel::Sustain;
        let sustain = container.labels.get(label.name()).and_then(|value| label.duration(value).ok());
        PatternConfig { sustain: sustain.unwrap_or(self.config.patterns.sustain), ..self.config.patterns }
    }

    /// The reason of a decision whose `confidence` is below `ANALYZER_CONFIDENCE_THRESHOLD` (it becomes a
    /// false alarm), or `None` when it is not.
    fn below_threshold(&self, confidence: f64, reason: &str) -> Option<String> {
        let threshold = self.config.confidence_threshold;
        (confidence < threshold)
            .then(|| format!("confidence {confidence:.2} is below the threshold {threshold:.2}: {reason}"))
    }

    /// Decides about a condition of a host (the rules only: no model is asked about a host), with the
    /// confidence threshold applied.
    pub fn on_host(&self, report: &HostReport) -> Verdict {
        let rule = rules::decide_host(report);
        let evidence = serde_json::json!({
            "host": {
                "condition": report.condition.name(),
                "path": report.path,
                "free_bytes": report.free_bytes,
                "total_bytes": report.total_bytes,
                "free_percent": report.free_percent(),
                "min_free_percent": report.min_free_percent,
            }
        });
        let (mut action, mut reason) = (rule.action, rule.reason);
        if let Some(held) = self.below_threshold(rule.confidence, &reason) {
            (action, reason) = (None, held);
        }
        Verdict {
            action,
            reason,
            confidence: rule.confidence,
            method: "rules",
            decided_by: rule.rule.to_owned(),
            evidence: evidence.to_string(),
            argv: Vec::new(),
        }
    }

    /// Turns the table's row into a decision: asks the LLM instead when one is configured and `consult` is
    /// set (it may choose any action the container's label and its node allow, and for `exec` one of the
    /// node's allowed commands), then applies the `hemostat.actions` label, the node's allowed actions and
    /// the confidence threshold. A `scale_up` the rules chose that the label or the node does not allow
    /// becomes a restart.
    pub async fn conclude(&self, inputs: &Inputs<'_>, rule: RuleDecision, consult: bool) -> Verdict {
        let alert = &inputs.case.alert;
        let mut evidence = Evidence::gather(alert, inputs.samples, inputs.history, inputs.now_ms);
        evidence.episode = inputs.episode;
        let allowed = allowed_actions(&alert.container, inputs.node);
        let choices = Choices { actions: &allowed, commands: &inputs.node.exec_allowlist };
        let llm = self.llm.as_ref().filter(|_| consult);
        let mut command = None;
        let (mut action, mut reason, confidence, method, decided_by) = match llm {
            Some(llm) => match llm.decide(&evidence.fenced(), &choices).await {
                Ok(d) => {
                    command = d.command;
                    (d.action, d.reason, d.confidence, "ai", llm.model().to_owned())
                }
                Err(error) => {
                    tracing::warn!(%error, container = ?alert.container.name, "AI analysis failed; using the rules");
                    (
                        rule.action,
                        format!("{} (AI not used: {error})", rule.reason),
                        rule.confidence,
                        "rules",
                        rule.rule.to_owned(),
                    )
                }
            },
            None => (rule.action, rule.reason, rule.confidence, "rules", rule.rule.to_owned()),
        };
        if action == Some(Action::ScaleUp) && !allowed.contains(&Action::ScaleUp) && allowed.contains(&Action::Restart)
        {
            reason = format!("{reason}; restarting instead: {}", not_allowed(Action::ScaleUp, inputs.node));
            action = Some(Action::Restart);
        }
        if let Some(a) = action {
            if !allowed.contains(&a) {
                reason = format!("{reason}; but {}", not_allowed(a, inputs.node));
                action = None;
            } else if let Some(held) = self.below_threshold(confidence, &reason) {
                (action, reason) = (None, held);
            }
        }
        let argv = match (action, command) {
            (Some(Action::Exec), Some(command)) => command.split_whitespace().map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        Verdict { action, reason, confidence, method, decided_by, evidence: evidence.to_json(), argv }
    }
}

/// Why `action` is not allowed: the node does not execute it, or the container's label narrows it out.
fn not_allowed(action: Action, node: &NodeAbilities) -> String {
    match node.allows(action) {
        false => format!("{} is not executed by this node (its NODE_ALLOWED_ACTIONS)", action.name()),
        true => format!("{} is not allowed by the {ACTIONS_LABEL} label", action.name()),
    }
}

/// What a decision is made from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The alert, its exit assessed.
    pub case: &'a Assessed,
    /// The container's samples, oldest first.
    pub samples: &'a [Sample],
    /// Its earlier alerts.
    pub history: &'a [HistoryEntry],
    /// The episode, for a condition.
    pub episode: Option<EpisodeEvidence>,
    /// Now, Unix milliseconds.
    pub now_ms: u64,
    /// What the container's node executes.
    pub node: &'a NodeAbilities,
}

/// The container's samples: those of earlier alerts and the alert's own, oldest first.
pub fn samples_of(alert: &AlertReport, history: &[HistoryEntry]) -> Vec<Sample> {
    let mut samples: Vec<Sample> = history.iter().flat_map(|h| h.samples.iter().copied()).collect();
    samples.extend(alert_samples(alert));
    patterns::merge(samples)
}

/// The alert's own samples, reduced for the history.
pub fn alert_samples(alert: &AlertReport) -> Vec<Sample> {
    alert.recent.iter().filter_map(sample_of).collect()
}

/// A metrics sample reduced to what the patterns need; `None` without the time it was taken.
pub fn sample_of(m: &Metrics) -> Option<Sample> {
    let at = m.sampled_at?.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as u64;
    Some(Sample { at_ms: at, cpu: m.cpu_percent, memory_used: m.memory_used, memory_limit: m.memory_limit })
}

/// The actions analysis may decide on a container: a restart, a cleanup of its exited siblings, `scale_up`
/// for a service's container that opted in with `hemostat.scale_up.max`, and `exec` of a diagnostic command
/// when its node allows some; of those, the ones its node executes, narrowed by the `hemostat.actions`
/// label. (The rules choose only restart and scale_up; an LLM may choose any of them.)
pub fn allowed_actions(container: &ContainerFacts, node: &NodeAbilities) -> Vec<Action> {
    let mut candidates = vec![Action::Restart, Action::Cleanup];
    if container.scale_up_cap().is_some() {
        candidates.push(Action::ScaleUp);
    }
    if !node.exec_allowlist.is_empty() {
        candidates.push(Action::Exec);
    }
    candidates.retain(|a| node.allows(*a));
    permitted_by_label(container, &candidates)
}

/// `candidates` narrowed by the container's `hemostat.actions` label (a comma-separated list of action
/// names; `none` allows nothing; without the label, all of them).
pub fn permitted_by_label(container: &ContainerFacts, candidates: &[Action]) -> Vec<Action> {
    let all = candidates.iter().copied();
    match container.labels.get(ACTIONS_LABEL) {
        None => all.collect(),
        Some(list) => {
            let names: Vec<String> = list.split(',').map(|n| n.trim().to_ascii_lowercase()).collect();
            all.into_iter().filter(|a| names.iter().any(|n| n == a.name())).collect()
        }
    }
}
