//! Dispatch: an action on its way to a node passes the storm breaker, then the container's budget (checked
//! and recorded in one atomic store step), then goes to the node. What stops it is recorded as `rejected`,
//! once per episode (until the container is next acted on), not once per alert.
//!
//! Under the backoff policy an automatic action the backoff holds back is not dropped: it is retried when
//! the wait is over ([`Dispatcher::dispatch_or_retry`]), unless the container is running again by then (one
//! retry waits per container; a retry is kept in this coordinator's memory only).

use std::collections::{BTreeMap, HashSet};

use crate::bounded::BoundedMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::journal::Journal;
use super::node_commands::{Delivery, NodeCommands};
use super::quarantine::Quarantines;
use super::settings::Settings;
use super::storm::{FLEET_SCOPE, FleetStorm, node_scope};
use super::{Stop, Target};
use crate::container_policy::PolicyDefaults;
use crate::events::{Action, EventKind, EventRecord, Rejection, unix_ms};
use crate::policy::{BudgetVerdict, Draw, RestartPolicy};
use crate::store::{BudgetStore, StoreError, StormConfig, StormVerdict};

/// What became of an action handed to [`Dispatcher::dispatch`].
#[derive(Clone, Debug, PartialEq)]
pub enum DispatchOutcome {
    /// Sent: to the node's session here, or queued for the coordinator that holds it.
    Sent(Delivery),
    /// The policy stopped it (storm, cooldown, breaker, node gone); recorded as `rejected`.
    Stopped(Stop),
}

/// Rejection episodes remembered at most; beyond it the oldest is forgotten (its next rejection is recorded
/// again).
pub const EPISODES_KEPT: usize = 10_000;

/// Storm breaker, budget and delivery, in that order.
pub struct Dispatcher {
    budgets: Arc<dyn BudgetStore>,
    journal: Arc<Journal>,
    settings: Arc<Settings>,
    commands: Arc<NodeCommands>,
    policy: PolicyDefaults,
    storm: StormConfig,
    fleet_storm: FleetStorm,
    /// The last rejection recorded per budget key, until an action is allowed again (at most
    /// [`EPISODES_KEPT`]: keys come from what nodes report).
    episodes: Mutex<BoundedMap<String, Rejection>>,
    /// The budget keys with a retry waiting for their backoff to end.
    retries: Mutex<HashSet<String>>,
    /// The containers the breaker stopped, for their release by good behaviour.
    quarantines: Quarantines,
}

impl Dispatcher {
    /// A dispatcher holding containers to their budgets under `policy`, each node to `storm` and the fleet to `fleet_storm` in
    /// `budgets`, recording in
    /// `journal`, held back by `settings`, sending through `commands`.
    pub fn new(
        budgets: Arc<dyn BudgetStore>,
        journal: Arc<Journal>,
        settings: Arc<Settings>,
        commands: Arc<NodeCommands>,
        policy: PolicyDefaults,
        storm: StormConfig,
        fleet_storm: FleetStorm,
    ) -> Self {
        Dispatcher {
            budgets,
            journal,
            settings,
            commands,
            policy,
            storm,
            fleet_storm,
            episodes: Mutex::new(BoundedMap::new(EPISODES_KEPT)),
            retries: Mutex::new(HashSet::new()),
            quarantines: Quarantines::default(),
        }
    }

    /// The settings each container's policy starts from (its labels override them).
    pub fn policy(&self) -> &PolicyDefaults {
        &self.policy
    }

    /// Records and returns why a silence or dry-run holds the action back, when one does.
    pub async fn hold(&self, target: &Target, action: Action, command_id: &str) -> Result<Option<Stop>, StoreError> {
        let Some(stop) = self.settings.hold(target, action).await? else { return Ok(None) };
        self.reject(target, action, &stop, command_id.to_owned()).await?;
        Ok(Some(stop))
    }

    /// [`Dispatcher::dispatch`] for an automatic decision: under the backoff policy, an action the backoff
    /// holds back is retried (through the silences, the storm breaker and the budget again) once the wait is
    /// over, if the container is still not running by then.
    pub async fn dispatch_or_retry(
        self: &Arc<Self>,
        target: &Target,
        action: Action,
        argv: Vec<String>,
        command_id: String,
    ) -> Result<DispatchOutcome, StoreError> {
        let (outcome, backoff) = self.try_dispatch(target, action, argv.clone(), command_id.clone()).await?;
        if let Some(wait) = backoff {
            self.retry_after(target.clone(), action, argv, command_id, wait);
        }
        Ok(outcome)
    }

    /// Retries `action` on `target` once `wait` is over (a little after, so the store's clock agrees).
    fn retry_after(
        self: &Arc<Self>,
        target: Target,
        action: Action,
        argv: Vec<String>,
        command_id: String,
        wait: Duration,
    ) {
        if !self.retries.lock().expect("retries lock").insert(target.key.clone()) {
            return;
        }
        tracing::debug!(node = %target.node, container = ?target.container_name, ?wait, "retry after the backoff");
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait + Duration::from_millis(100)).await;
            this.retries.lock().expect("retries lock").remove(&target.key);
            if !this.commands.still_failing(&target) {
                tracing::info!(node = %target.node, container = ?target.container_name, "running again: no retry");
                return;
            }
            let retried = match this.hold(&target, action, &command_id).await {
                Ok(Some(_)) => return,
                Ok(None) => this.dispatch_or_retry(&target, action, argv, command_id).await,
                Err(error) => Err(error),
            };
            if let Err(error) = retried {
                tracing::error!(node = %target.node, container = ?target.container_name, %error, "retry failed");
            }
        });
    }

    /// Checks the storm breaker and the budget and sends the command.
    pub async fn dispatch(
        &self,
        target: &Target,
        action: Action,
        argv: Vec<String>,
        command_id: String,
    ) -> Result<DispatchOutcome, StoreError> {
        Ok(self.try_dispatch(target, action, argv, command_id).await?.0)
    }

    /// [`Dispatcher::dispatch`], and how long the backoff has left when it is what stopped the action.
    async fn try_dispatch(
        &self,
        target: &Target,
        action: Action,
        argv: Vec<String>,
        command_id: String,
    ) -> Result<(DispatchOutcome, Option<Duration>), StoreError> {
        let (node, key) = (target.node.as_str(), &target.key);
        let now = now_ms();
        // The node's window and the fleet's, each with its own threshold; both note the container.
        let fleet = self.fleet_storm.config(&self.storm, self.commands.watched_containers());
        let on_node = self.budgets.note_need(&[node_scope(node)], key, now, &self.storm).await?;
        let in_fleet = self.budgets.note_need(&[FLEET_SCOPE.to_owned()], key, now, &fleet).await?;
        let storm = match (on_node, in_fleet) {
            (StormVerdict::Storm { scope, started, members }, _) => Some((scope, started, members, self.storm)),
            (_, StormVerdict::Storm { scope, started, members }) => Some((scope, started, members, fleet)),
            _ => None,
        };
        if let Some((scope, started, members, limits)) = storm {
            if started {
                self.record_storm(target, action, &scope, &members, limits.threshold).await?;
            }
            let reason =
                format!("storm in {scope}: too many containers need remediation at once; not acting automatically");
            let stop = Stop { rejection: Rejection::Storm, reason };
            return Ok((self.stopped(target, action, stop, command_id).await?, None));
        }
        let mut backoff = None;
        let budget = self.policy.effective(&target.labels).budget();
        let stop = match self.budgets.try_begin_action(key, now, &budget, Draw::random()).await? {
            BudgetVerdict::Allowed { attempts_in_window } => {
                tracing::info!(node, container = ?target.container_name, ?action, attempts_in_window, "remediating");
                self.episodes.lock().expect("episodes lock").remove(key);
                None
            }
            BudgetVerdict::CooldownActive { retry_after } => Some(Stop {
                rejection: Rejection::CooldownActive,
                reason: match budget.policy {
                    RestartPolicy::Cooldown => format!(
                        "cooldown active: {key} was acted on less than {}s ago; next action allowed in {}s",
                        budget.cooldown.as_secs(),
                        retry_after.as_secs().max(1)
                    ),
                    RestartPolicy::Backoff(_) => {
                        backoff = Some(retry_after);
                        format!(
                            "backoff active: {key} was acted on {} time(s) in this run; retrying in {}s",
                            self.budgets.read_budget(key).await?.streak,
                            retry_after.as_secs_f64().ceil() as u64
                        )
                    }
                },
            }),
            BudgetVerdict::CircuitOpen { retry_after } => {
                self.quarantines.note(target);
                let state = self.budgets.read_budget(key).await?;
                let window_ms = budget.window.as_millis() as u64;
                let mut tried: Vec<u64> = state
                    .attempts_ms
                    .iter()
                    .filter(|&&t| t + window_ms > now)
                    .map(|&t| now.saturating_sub(t))
                    .collect();
                tried.sort_unstable_by(|a, b| b.cmp(a));
                let tried = tried.iter().map(|ago| format!("{}s ago", ago / 1000)).collect::<Vec<_>>().join(", ");
                Some(Stop {
                    rejection: Rejection::CircuitOpen,
                    reason: format!(
                        "circuit open: {key} reached {} attempts in the last hour or {} failed verifications in a \
                         row; quarantined: tried {} {} time(s) in the last hour ({tried}), {} failed \
                         verification(s) in a row; no automatic action until `hemostat release {}/{}` or the \
                         breaker's trial in {}s",
                        budget.max_attempts,
                        budget.max_attempts,
                        action.name(),
                        state.attempts_ms.iter().filter(|&&t| t + window_ms > now).count(),
                        state.consecutive_failures,
                        target.node,
                        target.container_name,
                        retry_after.as_secs().max(1)
                    ),
                })
            }
        };
        if let Some(stop) = stop {
            return Ok((self.stopped(target, action, stop, command_id).await?, backoff));
        }
        match self.commands.send(target, action, argv, command_id.clone()).await? {
            Ok(delivery) => Ok((DispatchOutcome::Sent(delivery), None)),
            Err(error) => {
                let reason = format!("{error} any more; the command was not sent");
                let stop = Stop { rejection: Rejection::NodeDisconnected, reason };
                Ok((self.stopped(target, action, stop, command_id).await?, None))
            }
        }
    }

    /// Raises the one `storm` event of a storm that has just started.
    async fn record_storm(
        &self,
        target: &Target,
        action: Action,
        scope: &str,
        members: &[String],
        threshold: u32,
    ) -> Result<(), StoreError> {
        let window = self.storm.window.as_secs();
        let list = members.iter().map(|m| m.escape_debug().to_string()).collect::<Vec<_>>().join(", ");
        let reason = format!(
            "storm in {scope}: {} containers needed remediation within {window}s (more than {}); automatic actions \
             stop until the rate falls: {list}",
            members.len(),
            threshold
        );
        tracing::warn!(%scope, containers = members.len(), "storm: automatic actions stopped");
        let mut record =
            EventRecord::new(EventKind::Storm, &target.node, &target.container_id, &target.container_name, reason);
        record.action = Some(action);
        self.journal.append(&record).await?;
        Ok(())
    }

    async fn stopped(
        &self,
        target: &Target,
        action: Action,
        stop: Stop,
        command_id: String,
    ) -> Result<DispatchOutcome, StoreError> {
        self.reject(target, action, &stop, command_id).await?;
        Ok(DispatchOutcome::Stopped(stop))
    }

    /// Records a rejection, unless the same rejection of the same container was already recorded in this
    /// episode (since its last allowed action): one event per episode, not one per alert.
    pub async fn reject(
        &self,
        target: &Target,
        action: Action,
        stop: &Stop,
        command_id: String,
    ) -> Result<(), StoreError> {
        let repeated = {
            let mut episodes = self.episodes.lock().expect("episodes lock");
            let previous = episodes.get(&target.key).copied();
            episodes.insert(target.key.clone(), stop.rejection);
            previous == Some(stop.rejection)
        };
        if repeated {
            tracing::debug!(node = %target.node, container = ?target.container_name, code = stop.rejection.code(), "rejected again in the same episode");
            return Ok(());
        }
        tracing::info!(node = %target.node, container = ?target.container_name, reason = ?stop.reason, "action rejected");
        let mut record = EventRecord::new(
            EventKind::Rejected,
            &target.node,
            &target.container_id,
            &target.container_name,
            stop.reason.clone(),
        );
        record.action = Some(action);
        record.rejection = Some(stop.rejection);
        record.command_id = Some(command_id);
        self.journal.append(&record).await?;
        Ok(())
    }

    /// Counts an action a node's local policy took at `at_ms` in the container's budget; it starts a new
    /// episode.
    pub async fn count_local_action(
        &self,
        key: &str,
        labels: &BTreeMap<String, String>,
        at_ms: u64,
    ) -> Result<(), StoreError> {
        self.budgets.record_attempt(key, at_ms, &self.policy.effective(labels).budget()).await?;
        self.episodes.lock().expect("episodes lock").remove(key);
        Ok(())
    }

    /// Counts an action an admin forced past the policy in the container's budget.
    pub async fn count_forced_action(&self, target: &Target) -> Result<(), StoreError> {
        self.budgets.record_attempt(&target.key, now_ms(), &self.policy.effective(&target.labels).budget()).await
    }

    /// Releases the container `key` from quarantine (its budget starts over, a new episode); returns the
    /// state it had.
    pub async fn release(&self, key: &str) -> Result<crate::policy::BudgetState, StoreError> {
        let before = self.budgets.release(key).await?;
        self.episodes.lock().expect("episodes lock").remove(key);
        self.quarantines.forget(key);
        Ok(before)
    }

    /// The containers the breaker stopped (see [`super::quarantine`]).
    pub fn quarantines(&self) -> &Quarantines {
        &self.quarantines
    }

    /// The container `key`'s budget state as stored.
    pub async fn read_budget(&self, key: &str) -> Result<crate::policy::BudgetState, StoreError> {
        self.budgets.read_budget(key).await
    }

    /// Ends every storm; returns the scopes that were in one.
    pub async fn end_storms(&self) -> Result<Vec<String>, StoreError> {
        self.budgets.end_storms().await
    }
}

/// This coordinator's clock, Unix ms (the store decides budgets on its own).
fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}
