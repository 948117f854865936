//! The rules for a container exit, in order (the first that matches decides):
//!
//! | # | condition | result |
//! |---|---|---|
//! | 1 | labelled `hemostat.enable=false` | ignored: the operator opted it out |
//! | 2 | the stop was requested (`docker stop`/`kill`/`restart`) | ignored: a manual stop is never a crash |
//! | 3 | exit code 0 and not OOM-killed | ignored: it finished its work |
//! | 4 | Docker's restart policy (`always`, `unless-stopped`, `on-failure`) restarts it | `false_alarm`, confidence 0.9: Docker already handles it |
//! | 5 | otherwise (non-zero exit or OOM kill) | `remediation_needed`: restart, confidence 0.9 |
//!
//! "Ignored" records nothing: it is not a problem (the node does not even report a requested stop or a
//! clean exit; the coordinator checks again). Everything else records the `health_alert` and the decision.

use crate::container::{ContainerFacts, ExitReport};
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
