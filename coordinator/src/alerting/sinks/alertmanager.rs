//! Alertmanager (`ALERTMANAGER_URL`): HemoStat's conditions ([`alerts`](crate::alerting::alerts)) pushed to
//! `/api/v2/alerts`, where the operator's routes, grouping, silences and inhibitions apply.
//!
//! Alertmanager expects a client to push its alerts again while they fire (Prometheus does every minute)
//! and treats an alert as resolved once its `endsAt` has passed; an alert pushed without `endsAt` is
//! resolved `resolve_timeout` (5 minutes by default) after its last push. HemoStat always sets `endsAt`:
//! while an alert fires it is pushed again every `ALERTMANAGER_RESEND_SECONDS` (60) with `endsAt` four
//! resends ahead, so if HemoStat stops, its alerts end within four minutes rather than fire for ever;
//! when an event ends the condition (the node recovered, a later success, the approval taken or expired)
//! the alert is pushed with `endsAt` at that event, and pushed so again with the firing ones for four
//! resends, in case one push was lost.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::alerting::AlertingConfig;
use crate::alerting::alerts::Alert;
use crate::alerting::conditions::ConditionTracker;
use crate::alerting::filter::SinkFilter;
use crate::alerting::grouping::Message;
use crate::alerting::notification::Notification;
use crate::alerting::sink::Sink;
use crate::alerting::transport::Request;
use crate::events::unix_ms;

/// How many resends ahead a firing alert's `endsAt` is.
const VALIDITY_IN_RESENDS: u32 = 4;

/// The Alertmanager sink.
pub struct Alertmanager {
    urls: Vec<String>,
    resend: Duration,
    tracker: ConditionTracker,
}

impl Alertmanager {
    /// The sink, when Alertmanager is configured.
    pub fn new(config: &AlertingConfig) -> Option<Self> {
        if config.alertmanager_urls.is_empty() {
            return None;
        }
        let filter = config.filters.get("alertmanager").cloned().unwrap_or_default();
        Some(Alertmanager {
            urls: config.alertmanager_urls.iter().map(|base| format!("{base}/api/v2/alerts")).collect(),
            resend: config.alertmanager_resend,
            tracker: ConditionTracker::new(filter, config.approval_ttl),
        })
    }

    /// How long a pushed alert stays valid without another push.
    fn validity(&self) -> Duration {
        self.resend * VALIDITY_IN_RESENDS
    }

    /// One POST of `alerts` to each Alertmanager.
    fn push(&self, alerts: &[Alert], now: SystemTime) -> Vec<Request> {
        if alerts.is_empty() {
            return Vec::new();
        }
        let valid_until = unix_ms(now) + self.validity().as_millis() as u64;
        let body = Value::Array(alerts.iter().map(|alert| postable(alert, valid_until)).collect());
        self.urls.iter().map(|url| Request::json(url, body.clone())).collect()
    }
}

impl Sink for Alertmanager {
    fn name(&self) -> &'static str {
        "alertmanager"
    }

    fn wants(&self, notification: &Notification, _selected: bool, _filter: &SinkFilter) -> bool {
        self.tracker.wants(notification)
    }

    fn tracks_conditions(&self) -> bool {
        true
    }

    fn render(&self, message: &Message<Notification>) -> Vec<Request> {
        let changes = self.tracker.apply(message.items());
        let alerts: Vec<Alert> = changes.fired.into_iter().chain(changes.resolved).collect();
        self.push(&alerts, SystemTime::now())
    }

    fn refresh_every(&self) -> Option<Duration> {
        Some(self.resend)
    }

    fn refresh(&self, now: SystemTime) -> Vec<Request> {
        self.push(&self.tracker.current(unix_ms(now), self.validity()), now)
    }
}

/// An alert as Alertmanager's API takes it: firing until `valid_until_ms` (or its own expiry, if sooner),
/// or resolved at its end.
pub fn postable(alert: &Alert, valid_until_ms: u64) -> Value {
    let ends_ms =
        alert.resolved_ms.unwrap_or_else(|| alert.expires_ms.map_or(valid_until_ms, |e| e.min(valid_until_ms)));
    let mut body = json!({
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": rfc3339_millis(alert.starts_ms),
        "endsAt": rfc3339_millis(ends_ms),
    });
    if let (Some(url), Value::Object(map)) = (&alert.generator_url, &mut body) {
        map.insert("generatorURL".into(), Value::String(url.clone()));
    }
    body
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn rfc3339_millis(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// The labels all `alerts` share, with the same value.
pub fn common(
    alerts: &[Alert],
    of: impl Fn(&Alert) -> &std::collections::BTreeMap<String, String>,
) -> Map<String, Value> {
    let Some((first, rest)) = alerts.split_first() else { return Map::new() };
    of(first)
        .iter()
        .filter(|(key, value)| rest.iter().all(|alert| of(alert).get(*key) == Some(value)))
        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notification::tests::notification;
    use crate::alerting::transport::Body;
    use crate::events::{EventKind, Outcome};

    fn sink() -> Alertmanager {
        let config = AlertingConfig {
            alertmanager_urls: vec!["http://am-1:9093".into(), "http://am-2:9093".into()],
            ..AlertingConfig::default()
        };
        let sink = Alertmanager::new(&config).unwrap();
        assert_eq!(sink.name(), "alertmanager");
        sink
    }

    fn complete(outcome: Outcome) -> Notification {
        let mut n = notification(EventKind::RemediationComplete, "web");
        n.record.outcome = Some(outcome);
        n
    }

    fn alerts(requests: &[Request]) -> Vec<Value> {
        match &requests[0] {
            Request::Http(http) => match &http.body {
                Body::Json(Value::Array(alerts)) => alerts.clone(),
                other => panic!("{other:?}"),
            },
            Request::Mail(_) => panic!("a mail"),
        }
    }

    #[test]
    fn a_failure_is_pushed_to_every_alertmanager_and_re_sent_until_a_success_resolves_it() {
        let am = sink();
        let failed = complete(Outcome::Failed);
        assert!(
            am.tracks_conditions() && am.wants(&failed, false, &SinkFilter::default()),
            "whatever the shared rules say"
        );
        let pushed = am.render(&Message::Single(failed));
        let urls: Vec<&str> = pushed
            .iter()
            .map(|r| match r {
                Request::Http(http) => http.url.as_str(),
                Request::Mail(_) => "",
            })
            .collect();
        assert_eq!(urls, ["http://am-1:9093/api/v2/alerts", "http://am-2:9093/api/v2/alerts"]);
        let alert = &alerts(&pushed)[0];
        assert_eq!(alert["labels"]["alertname"], "HemoStatRemediationFailed");
        assert_eq!(alert["startsAt"], "2026-11-18T11:06:40.000Z");
        let ends = humantime::parse_rfc3339(alert["endsAt"].as_str().unwrap()).unwrap();
        let ahead = ends.duration_since(SystemTime::now()).unwrap();
        assert!(ahead > Duration::from_secs(230) && ahead <= Duration::from_secs(240), "four resends ahead: {ahead:?}");
        assert_eq!(alert.get("generatorURL"), None, "no dashboard URL configured");

        assert_eq!(am.refresh_every(), Some(Duration::from_secs(60)));
        assert_eq!(alerts(&am.refresh(SystemTime::now())).len(), 1, "still firing: pushed again");

        let mut fixed = complete(Outcome::Success);
        fixed.record.time_ms += 30_000;
        let resolved = alerts(&am.render(&Message::Single(fixed)));
        assert_eq!(resolved[0]["labels"], alert["labels"]);
        assert_eq!(resolved[0]["endsAt"], "2026-11-18T11:07:10.000Z", "ended at the success");
        assert!(am.render(&Message::Single(notification(EventKind::FalseAlarm, "web"))).is_empty());
    }

    #[test]
    fn common_labels_are_those_all_share() {
        let failed = crate::alerting::alerts::transition(&complete(Outcome::Failed), Duration::ZERO).fires.unwrap();
        let mut other = failed.clone();
        other.labels.insert("container".into(), "db".into());
        let shared = common(&[failed.clone(), other], |a| &a.labels);
        assert_eq!(shared.get("alertname"), Some(&json!("HemoStatRemediationFailed")));
        assert_eq!(shared.get("container"), None);
        assert!(common(&[], |a| &a.labels).is_empty());
    }
}
