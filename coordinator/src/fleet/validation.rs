//! The checks every request passes, whichever front end it came through: names, reasons, ids, arguments
//! and who may change things. Each failure says what is wrong, for people.

use hemostat_pki::{Identity, OperatorRole, Role};

use super::FleetError;
use crate::events::Action;
use crate::silence::MAX_SILENCE;

/// The longest node or container name a request may hold.
pub const MAX_NAME_LEN: usize = 253;
/// The longest reason an operator may give.
pub const MAX_REASON_LEN: usize = 500;
/// The most arguments an exec may have.
pub const MAX_ARGS: usize = 32;
/// The longest argument of an exec.
pub const MAX_ARG_LEN: usize = 256;
/// The longest approval id (a command id: 32 hex digits, with room).
const MAX_APPROVAL_ID_LEN: usize = 64;
/// The longest silence id (16 hex digits, with room).
const MAX_SILENCE_ID_LEN: usize = 32;

fn invalid(message: impl Into<String>) -> FleetError {
    FleetError::Invalid(message.into())
}

/// A name that may be empty (then it selects everything), but not too long.
pub fn check_name(field: &str, value: &str) -> Result<(), FleetError> {
    if value.len() > MAX_NAME_LEN {
        return Err(invalid(format!("{field} is longer than {MAX_NAME_LEN} bytes")));
    }
    Ok(())
}

/// A required name: present, and not too long.
pub fn require_name(field: &str, value: &str) -> Result<(), FleetError> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{field} is required")));
    }
    check_name(field, value)
}

/// An operator's reason: at most [`MAX_REASON_LEN`] characters, no control characters but newlines.
pub fn check_reason(value: &str, required: bool) -> Result<(), FleetError> {
    if required && value.trim().is_empty() {
        return Err(invalid("reason is required: say why, for the people who read the log later"));
    }
    if value.chars().count() > MAX_REASON_LEN {
        return Err(invalid(format!("reason is longer than {MAX_REASON_LEN} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid("reason holds control characters"));
    }
    Ok(())
}

/// Refuses callers who are not admins, saying which role is needed.
pub fn require_admin(identity: &Identity) -> Result<(), FleetError> {
    if identity.role == Role::Operator(OperatorRole::Admin) {
        return Ok(());
    }
    tracing::warn!(caller = %identity, "refused a change: it needs the admin role");
    Err(FleetError::Forbidden(format!(
        "this needs the admin role; {identity} is not an admin (a change needs an admin's certificate or dashboard \
         token)"
    )))
}

fn is_hex_id(id: &str, max_len: usize) -> bool {
    !id.is_empty() && id.len() <= max_len && id.chars().all(|c| c.is_ascii_hexdigit())
}

/// The id of a decision awaiting approval.
pub fn check_approval_id(id: &str) -> Result<(), FleetError> {
    if !is_hex_id(id, MAX_APPROVAL_ID_LEN) {
        return Err(invalid("approval_id must be the hexadecimal id of an awaiting_approval event"));
    }
    Ok(())
}

/// The id of a silence.
pub fn check_silence_id(id: &str) -> Result<(), FleetError> {
    if !is_hex_id(id, MAX_SILENCE_ID_LEN) {
        return Err(invalid("id must be a silence's hexadecimal id (see ListSilences)"));
    }
    Ok(())
}

/// How long a silence lasts: from a second to [`MAX_SILENCE`].
pub fn check_silence_duration(seconds: u64) -> Result<(), FleetError> {
    if seconds == 0 || seconds > MAX_SILENCE.as_secs() {
        return Err(invalid(format!("duration_seconds must be between 1 and {} (30 days)", MAX_SILENCE.as_secs())));
    }
    Ok(())
}

/// A manual action and its arguments: an action is named; only exec takes arguments, and needs some.
pub fn check_action(action: Option<Action>, argv: &[String]) -> Result<Action, FleetError> {
    let action = action.ok_or_else(|| invalid("action must be restart, exec, cleanup or scale_up"))?;
    match action {
        Action::Exec if argv.is_empty() => Err(invalid("exec needs argv: the command's argument vector")),
        Action::Exec if argv.len() > MAX_ARGS || argv.iter().any(|a| a.len() > MAX_ARG_LEN) => {
            Err(invalid(format!("argv may hold at most {MAX_ARGS} arguments of at most {MAX_ARG_LEN} bytes")))
        }
        Action::Exec => Ok(action),
        _ if !argv.is_empty() => Err(invalid(format!("argv is only for exec, not {}", action.name()))),
        _ => Ok(action),
    }
}

/// A period: `since` (when given) before `until` (when given).
pub fn check_period(since_ms: Option<u64>, until_ms: Option<u64>) -> Result<(), FleetError> {
    if let (Some(since), Some(until)) = (since_ms, until_ms)
        && since >= until
    {
        return Err(invalid("since must be before until"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<impl std::fmt::Debug, FleetError>) -> String {
        match result {
            Err(FleetError::Invalid(message)) => message,
            other => panic!("expected an invalid request, got {other:?}"),
        }
    }

    #[test]
    fn names_reasons_and_ids_are_checked_with_a_message_saying_what_is_wrong() {
        assert!(check_name("node", "").is_ok());
        assert_eq!(message(check_name("node", &"x".repeat(254))), "node is longer than 253 bytes");
        assert_eq!(message(require_name("container", " ")), "container is required");
        assert!(message(check_reason(" ", true)).starts_with("reason is required"));
        assert!(check_reason("", false).is_ok());
        assert!(check_reason("two\nlines", true).is_ok());
        assert_eq!(message(check_reason("a\u{1b}[31m", true)), "reason holds control characters");
        assert_eq!(message(check_reason(&"é".repeat(501), true)), "reason is longer than 500 characters");
        assert!(check_reason(&"é".repeat(500), true).is_ok(), "characters, not bytes");
        assert!(check_approval_id(&"a".repeat(64)).is_ok());
        assert!(message(check_approval_id(&"a".repeat(65))).contains("hexadecimal"));
        assert!(message(check_approval_id("not-hex")).contains("hexadecimal"));
        assert!(message(check_silence_id("zz")).contains("hexadecimal"));
        assert!(message(check_silence_duration(0)).contains("duration_seconds"));
        assert!(check_silence_duration(30 * 24 * 3600).is_ok());
        assert!(message(check_silence_duration(30 * 24 * 3600 + 1)).contains("30 days"));
        assert_eq!(message(check_period(Some(2), Some(2))), "since must be before until");
        assert!(check_period(Some(1), Some(2)).is_ok() && check_period(None, Some(0)).is_ok());
    }

    #[test]
    fn only_exec_takes_arguments_and_it_needs_some() {
        let argv = |n: usize| vec!["x".to_owned(); n];
        assert!(message(check_action(None, &[])).starts_with("action must be"));
        assert_eq!(check_action(Some(Action::Restart), &[]).unwrap(), Action::Restart);
        assert_eq!(message(check_action(Some(Action::Restart), &argv(1))), "argv is only for exec, not restart");
        assert!(message(check_action(Some(Action::Exec), &[])).starts_with("exec needs argv"));
        assert!(check_action(Some(Action::Exec), &argv(32)).is_ok());
        assert!(message(check_action(Some(Action::Exec), &argv(33))).contains("at most 32 arguments"));
        assert!(message(check_action(Some(Action::Exec), &["x".repeat(257)])).contains("at most 256 bytes"));
    }

    #[test]
    fn only_admins_change_things_and_the_refusal_names_the_role() {
        let who = |role| Identity { role: Role::Operator(role), name: "alice".into() };
        assert!(require_admin(&who(OperatorRole::Admin)).is_ok());
        match require_admin(&who(OperatorRole::Viewer)) {
            Err(FleetError::Forbidden(message)) => {
                assert!(message.contains("needs the admin role") && message.contains("needs an admin"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert!(require_admin(&Identity { role: Role::Node, name: "host-a".into() }).is_err());
    }
}
