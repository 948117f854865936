//! The rules for a container exit, in order (the first that matches decides):
//!
//! | # | condition | result |
//! |---|---|---|
//! | 1 | labelled `hemostat.enable=false` | ignored: the operator opted it out |
//! | 2 | the stop was requested (see below) | ignored: a manual stop is never a crash |
//! | 3 | exit code 0 and not OOM-killed | ignored: it finished its work |
//! | 4 | Docker's restart policy (`always`, `unless-stopped`, `on-failure`) restarts it | `false_alarm`, confidence 0.9: Docker already handles it |
//! | 5 | otherwise (non-zero exit or OOM kill) | `remediation_needed`: restart, confidence 0.9 |
//!
//! "Ignored" records nothing: it is not a problem (the node does not even report a requested stop or a
//! clean exit; the coordinator checks again). Everything else records the `health_alert` and the decision.
//!
//! **Who asked for an exit** is read from what Docker's event stream says happened, by the node
//! (`hemostat_node::detection::exit_requested`), which reports it as `stop_requested`:
//!
//! | what happened | read as |
//! |---|---|
//! | `docker stop`, `docker kill`, `docker restart`, `docker rm -f`, HemoStat's own restart: a `kill` event delivering a stopping signal (INT, QUIT, KILL, TERM, or the container's own stop signal) since it last started | requested, whatever the exit code, unless the code says a *different* killing signal ended it |
//! | the process killed by a signal nobody sent through Docker: `kill -9` of its process on the host, `kill` inside the container (`docker exec … kill`), a TERM it ignored followed by a KILL from elsewhere (code 128 + HUP, INT, QUIT, KILL or TERM, that signal not delivered by Docker) | a fault |
//! | the kernel's OOM killer (an `oom` event, or inspect's `OOMKilled`) | a fault, whatever the code, even during a stop |
//! | anything else: exit code 0 | a clean exit |
//! | anything else: a non-zero code | a fault |

use crate::container::{AlertReport, ContainerFacts, ExitReport};
use crate::events::Action;

/// The confidence of the non-zero-exit rule (the original's).
pub const NON_ZERO_EXIT_CONFIDENCE: f64 = 0.9;

/// What analysis concluded about one report.
#[derive(Clone, Debug, PartialEq)]
pub enum Assessment {
    /// Not a problem; nothing is recorded.
    Ignore {
        /// Why, for debug logs.
        reason: &'static str,
    },
    /// A problem: record the alert, then this decision.
    Decide(Decision),
}

/// A decision about an alert.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Act.
    Remediate {
        /// The action.
        action: Action,
        /// Why.
        reason: String,
        /// How sure, 0 to 1.
        confidence: f64,
    },
    /// Leave it: the alert needs no action.
    FalseAlarm {
        /// Why.
        reason: String,
        /// How sure, 0 to 1.
        confidence: f64,
    },
}

/// An alert with its exit (if any) assessed, once: the pipeline and the decision table read the same
/// assessment.
#[derive(Clone, Debug, PartialEq)]
pub struct Assessed {
    /// The alert.
    pub alert: AlertReport,
    /// What its exit means; `None` when it reports no exit.
    pub exit: Option<Assessment>,
}

impl Assessed {
    /// Assesses the alert's exit.
    pub fn new(alert: AlertReport) -> Self {
        let exit = alert.exit.as_ref().map(|exit| assess_exit(&alert.container, exit));
        Assessed { alert, exit }
    }

    /// Why the exit needs nothing recorded, if it does not.
    pub fn ignored(&self) -> Option<&'static str> {
        match &self.exit {
            Some(Assessment::Ignore { reason }) => Some(reason),
            _ => None,
        }
    }
}

/// Applies the exit rules of this module's table.
pub fn assess_exit(container: &ContainerFacts, exit: &ExitReport) -> Assessment {
    if container.opted_out() {
        return Assessment::Ignore { reason: "opted out with hemostat.enable=false" };
    }
    if exit.stop_requested {
        return Assessment::Ignore { reason: "the stop was requested" };
    }
    if exit.exit_code == 0 && !exit.oom_killed {
        return Assessment::Ignore { reason: "exited with code 0" };
    }
    let summary = if exit.oom_killed {
        format!("killed by the OOM killer (exit code {})", exit.exit_code)
    } else if let Some(signal) = killing_signal(exit.exit_code) {
        format!("killed by {signal} (exit code {}), a signal nobody sent through Docker", exit.exit_code)
    } else {
        format!("exited unexpectedly with code {}", exit.exit_code)
    };
    let decision = if container.docker_restarts_it() {
        Decision::FalseAlarm {
            reason: format!("Docker's restart policy {:?} restarts it", container.restart_policy),
            confidence: NON_ZERO_EXIT_CONFIDENCE,
        }
    } else {
        Decision::Remediate {
            action: Action::Restart,
            reason: format!("unexpected non-zero exit: {summary}"),
            confidence: NON_ZERO_EXIT_CONFIDENCE,
        }
    };
    Assessment::Decide(decision)
}

/// The killing signal an exit code of 128 + n names (HUP, INT, QUIT, KILL, TERM), if it names one.
fn killing_signal(exit_code: i64) -> Option<&'static str> {
    Some(match exit_code.checked_sub(128)? {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        9 => "SIGKILL",
        15 => "SIGTERM",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::{Health, Status};

    fn container(labels: &[(&str, &str)], restart_policy: &str) -> ContainerFacts {
        ContainerFacts {
            id: "c1".into(),
            name: "web".into(),
            image: "busybox".into(),
            status: Status::Exited,
            health: Health::None,
            exit_code: 1,
            restart_policy: restart_policy.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            started_at: None,
            memory_limit: 0,
            cpu_limit: 0.0,
        }
    }

    fn exit(exit_code: i64, oom_killed: bool, stop_requested: bool) -> ExitReport {
        ExitReport { exit_code, oom_killed, stop_requested }
    }

    #[test]
    fn the_exit_table_row_by_row() {
        let plain = container(&[], "no");
        // 1: opted out, even when it crashed.
        assert!(matches!(
            assess_exit(&container(&[("hemostat.enable", "false")], "no"), &exit(1, false, false)),
            Assessment::Ignore { .. }
        ));
        // 2: a requested stop, whatever the code (137 after SIGKILL, 143 after SIGTERM).
        for code in [0, 1, 137, 143] {
            assert!(matches!(assess_exit(&plain, &exit(code, false, true)), Assessment::Ignore { .. }));
        }
        // 3: a clean exit.
        assert!(matches!(assess_exit(&plain, &exit(0, false, false)), Assessment::Ignore { .. }));
        // 4: Docker restarts it itself.
        let Assessment::Decide(decision) = assess_exit(&container(&[], "always"), &exit(1, false, false)) else {
            panic!("a crash is an alert");
        };
        assert!(matches!(decision, Decision::FalseAlarm { confidence, .. } if confidence == 0.9));
        // 5: killed by a signal nobody sent through Docker.
        let Assessment::Decide(decision) = assess_exit(&plain, &exit(137, false, false)) else { panic!("a fault") };
        assert!(
            matches!(&decision, Decision::Remediate { reason, .. }
                if reason == "unexpected non-zero exit: killed by SIGKILL (exit code 137), a signal nobody sent through Docker"),
            "{decision:?}"
        );
        // 5: a crash, and an OOM kill even with code 0.
        for report in [exit(1, false, false), exit(137, true, false), exit(0, true, false)] {
            let Assessment::Decide(decision) = assess_exit(&plain, &report) else { panic!("{report:?}") };
            assert_eq!(
                decision,
                Decision::Remediate {
                    action: Action::Restart,
                    reason: match report.oom_killed {
                        true => format!(
                            "unexpected non-zero exit: killed by the OOM killer (exit code {})",
                            report.exit_code
                        ),
                        false =>
                            format!("unexpected non-zero exit: exited unexpectedly with code {}", report.exit_code),
                    },
                    confidence: 0.9
                }
            );
        }
    }

    #[test]
    fn budgets_belong_to_the_compose_service_replica_or_the_name() {
        let compose = container(
            &[
                ("com.docker.compose.project", "shop"),
                ("com.docker.compose.service", "api"),
                ("com.docker.compose.container-number", "2"),
            ],
            "no",
        );
        assert_eq!(compose.budget_key("host-a"), "host-a/compose/shop/api/2");
        assert_eq!(container(&[], "no").budget_key("host-a"), "host-a/name/web");
    }
}
