//! Where a notification points: the event in HemoStat's dashboard (`HEMOSTAT_EXTERNAL_URL`) and the
//! container in the operator's Docker UI (`HEMOSTAT_CONTAINER_URL_TEMPLATE`, e.g. Arcane's
//! `https://arcane.example.com/containers/{id}` or Portainer's
//! `https://portainer.example.com/#!/1/docker/containers/{id}`).
//!
//! Names are untrusted: every value put into a URL is percent-encoded, so a hostile container name cannot
//! change where a link goes.

use std::time::{Duration, UNIX_EPOCH};

use crate::events::EventRecord;

/// The placeholders of the container URL template.
pub const PLACEHOLDERS: [&str; 3] = ["{node}", "{container}", "{id}"];

/// Builds the links of notifications.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Links {
    /// The dashboard as operators reach it, without a trailing slash.
    pub external_url: Option<String>,
    /// The Docker UI's URL of a container, with `{node}`, `{container}` (its name) and `{id}`.
    pub container_url_template: Option<String>,
}

impl Links {
    /// Links from the settings; a trailing slash of the dashboard's URL is dropped.
    pub fn new(external_url: Option<String>, container_url_template: Option<String>) -> Self {
        let external_url = external_url.map(|url| url.trim_end_matches('/').to_owned());
        Links { external_url, container_url_template }
    }

    /// The dashboard's home, when its URL is known.
    pub fn dashboard(&self) -> Option<String> {
        self.external_url.as_ref().map(|base| format!("{base}/"))
    }

    /// The dashboard's timeline showing this event: its type, node and container within the second it was
    /// recorded.
    pub fn event(&self, record: &EventRecord) -> Option<String> {
        let base = self.external_url.as_ref()?;
        let mut query = vec![("type", record.kind.name().to_owned())];
        if !record.node.is_empty() {
            query.push(("node", record.node.clone()));
        }
        if !record.container_name.is_empty() {
            query.push(("container", record.container_name.clone()));
        }
        let second = UNIX_EPOCH + Duration::from_secs(record.time_ms / 1000);
        let local = |time| humantime::format_rfc3339_seconds(time).to_string().trim_end_matches('Z').to_owned();
        query.push(("period", "custom".into()));
        query.push(("from", local(second)));
        query.push(("to", local(second + Duration::from_secs(1))));
        let query: Vec<String> = query.into_iter().map(|(k, v)| format!("{k}={}", encode(&v))).collect();
        Some(format!("{base}/#/timeline?{}", query.join("&")))
    }

    /// The container in the Docker UI, when a template is set and the event is about a container.
    pub fn container(&self, record: &EventRecord) -> Option<String> {
        let template = self.container_url_template.as_ref()?;
        if record.container_id.is_empty() && record.container_name.is_empty() {
            return None;
        }
        let url = template
            .replace("{node}", &encode(&record.node))
            .replace("{container}", &encode(&record.container_name))
            .replace("{id}", &encode(&record.container_id));
        Some(url)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    fn record(name: &str) -> EventRecord {
        let mut record = EventRecord::new(EventKind::RemediationComplete, "host-a", "c0ffee", name, "why");
        record.time_ms = 1_795_000_000_123;
        record
    }

    #[test]
    fn the_event_link_opens_the_timeline_on_that_event() {
        let links = Links::new(Some("https://hemostat.example.com/".into()), None);
        assert_eq!(links.dashboard().as_deref(), Some("https://hemostat.example.com/"));
        assert_eq!(
            links.event(&record("web")).as_deref(),
            Some(
                "https://hemostat.example.com/#/timeline?type=remediation_complete&node=host-a&container=web\
                 &period=custom&from=2026-11-18T11%3A06%3A40&to=2026-11-18T11%3A06%3A41"
            )
        );
        let storm = EventRecord { node: String::new(), container_name: String::new(), ..record("") };
        assert!(links.event(&storm).unwrap().contains("?type=remediation_complete&period=custom"));
        assert_eq!(Links::default().event(&record("web")), None, "no dashboard URL, no link");
    }

    #[test]
    fn the_container_link_fills_the_template_with_encoded_values() {
        let arcane = Links::new(None, Some("https://arcane.example.com/containers/{id}".into()));
        assert_eq!(arcane.container(&record("web")).as_deref(), Some("https://arcane.example.com/containers/c0ffee"));
        let by_name = Links::new(None, Some("https://ui.example.com/{node}/{container}".into()));
        assert_eq!(
            by_name.container(&record("web/../../admin?x=1#y")).as_deref(),
            Some("https://ui.example.com/host-a/web%2F..%2F..%2Fadmin%3Fx%3D1%23y"),
            "a hostile name stays inside its path segment"
        );
        let node_event = EventRecord { container_id: String::new(), container_name: String::new(), ..record("") };
        assert_eq!(by_name.container(&node_event), None);
        assert_eq!(encode("a b&ü"), "a%20b%26%C3%BC");
    }
}
