//! Alerting's settings: where notifications go, how they are shaped, and each sink's filters.
//!
//! [`AlertingSettings`] holds them as given (a flag, an environment variable, a key of the configuration
//! file: the key is the flag's name with underscores); [`AlertingSettings::resolve`] checks them and makes
//! the [`AlertingConfig`] the notifier runs with.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::filter::SinkFilter;
use super::links::{Links, PLACEHOLDERS};
use super::sinks::email::EmailConfig;
use super::sinks::webhook::WebhookFormat;

/// Where and how notifications are sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertingConfig {
    /// `ALERT_ENABLED`: notifications on or off (the event log is kept either way).
    pub enabled: bool,
    /// `SLACK_WEBHOOK_URL`: a Slack incoming webhook.
    pub slack_webhook_url: Option<String>,
    /// `ALERT_WEBHOOK_URL`: a generic JSON webhook receiving the same events.
    pub webhook_url: Option<String>,
    /// `ALERT_WEBHOOK_FORMAT`: the generic webhook's body, HemoStat's JSON or Alertmanager's webhook payload.
    pub webhook_format: WebhookFormat,
    /// `ALERTMANAGER_URL`: Alertmanagers (comma-separated base URLs) to push alerts to.
    pub alertmanager_urls: Vec<String>,
    /// `ALERTMANAGER_RESEND_SECONDS`: how often alerts still firing are pushed again.
    pub alertmanager_resend: Duration,
    /// `DISCORD_WEBHOOK_URL`: a Discord channel webhook.
    pub discord_webhook_url: Option<String>,
    /// `TEAMS_WEBHOOK_URL`: a Microsoft Teams Workflows webhook ("when a Teams webhook request is received").
    pub teams_webhook_url: Option<String>,
    /// `NTFY_URL`: an ntfy topic's URL.
    pub ntfy_url: Option<String>,
    /// `NTFY_TOKEN`: an ntfy access token, for a protected topic.
    pub ntfy_token: Option<String>,
    /// `GOTIFY_URL`: a Gotify server.
    pub gotify_url: Option<String>,
    /// `GOTIFY_TOKEN`: the Gotify application token messages are posted with.
    pub gotify_token: Option<String>,
    /// `SMTP_URL`, `ALERT_EMAIL_TO`, ...: email.
    pub email: Option<EmailConfig>,
    /// `HEMOSTAT_EXTERNAL_URL`, `HEMOSTAT_CONTAINER_URL_TEMPLATE`: the links notifications carry.
    pub links: Links,
    /// `<SINK>_EVENTS`, `<SINK>_MIN_SEVERITY`, `<SINK>_NODES`: each sink's filter, by sink name.
    pub filters: BTreeMap<String, SinkFilter>,
    /// How long a decision waits for approval (`RESPONDER_APPROVAL_TTL_SECONDS`): Alertmanager's
    /// `HemoStatApprovalPending` ends then.
    pub approval_ttl: Duration,
    /// `ALERT_DEDUPE_TTL`: one notification per (event type, node, container, outcome) within this time.
    pub dedupe_ttl: Duration,
    /// `ALERT_GROUP_WINDOW_SECONDS`: notifications within this window are sent as one message listing them.
    pub group_window: Duration,
    /// `ALERT_QUIET_SUCCESS`: remediated-and-verified issues are not notified (the event log keeps them).
    pub quiet_success: bool,
    /// `ALERT_QUEUE_CAPACITY`: notifications waiting to be sent; beyond it the oldest are dropped and counted.
    pub queue_capacity: usize,
}

impl Default for AlertingConfig {
    fn default() -> Self {
        AlertingConfig {
            enabled: true,
            slack_webhook_url: None,
            webhook_url: None,
            webhook_format: WebhookFormat::Hemostat,
            alertmanager_urls: Vec::new(),
            alertmanager_resend: Duration::from_secs(60),
            discord_webhook_url: None,
            teams_webhook_url: None,
            ntfy_url: None,
            ntfy_token: None,
            gotify_url: None,
            gotify_token: None,
            email: None,
            links: Links::default(),
            filters: BTreeMap::new(),
            approval_ttl: Duration::from_secs(3600),
            dedupe_ttl: Duration::from_secs(60),
            group_window: Duration::from_secs(2),
            quiet_success: false,
            queue_capacity: 1000,
        }
    }
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct AlertingConfigError(pub String);

/// The sinks' setting prefixes for their filters, by sink name.
const FILTER_PREFIXES: [(&str, &str); 8] = [
    ("slack", "SLACK"),
    ("webhook", "ALERT_WEBHOOK"),
    ("alertmanager", "ALERTMANAGER"),
    ("discord", "DISCORD"),
    ("teams", "TEAMS"),
    ("ntfy", "NTFY"),
    ("gotify", "GOTIFY"),
    ("email", "ALERT_EMAIL"),
];

/// Alerting's flags, environment variables and configuration-file keys, as given.
#[derive(Clone, Debug, Default, clap::Args, Deserialize)]
pub struct AlertingSettings {
    /// Send notifications (true/false); the event log is kept either way [default: true].
    #[arg(long, env = "ALERT_ENABLED")]
    pub alert_enabled: Option<bool>,
    /// Seconds within which the same (type, node, container, outcome) is notified once [default: 60].
    #[arg(long, env = "ALERT_DEDUPE_TTL")]
    pub alert_dedupe_ttl: Option<u64>,
    /// Seconds within which notifications are grouped into one message [default: 2].
    #[arg(long, env = "ALERT_GROUP_WINDOW_SECONDS")]
    pub alert_group_window_seconds: Option<u64>,
    /// Do not notify actions that succeeded and were verified (true/false) [default: false].
    #[arg(long, env = "ALERT_QUIET_SUCCESS")]
    pub alert_quiet_success: Option<bool>,
    /// Notifications waiting to be sent; beyond it the oldest are dropped and counted [default: 1000].
    #[arg(long, env = "ALERT_QUEUE_CAPACITY")]
    pub alert_queue_capacity: Option<usize>,
    /// The dashboard's URL as operators reach it (e.g. https://hemostat.example.com): notifications link to
    /// their event there.
    #[arg(long, env = "HEMOSTAT_EXTERNAL_URL")]
    pub external_url: Option<String>,
    /// A container's URL in your Docker UI, with {node}, {container} (its name) and {id}, e.g.
    /// https://arcane.example.com/containers/{id}.
    #[arg(long, env = "HEMOSTAT_CONTAINER_URL_TEMPLATE")]
    pub container_url_template: Option<String>,
    /// A Slack incoming webhook URL for notifications.
    #[arg(long, env = "SLACK_WEBHOOK_URL", hide_env_values = true)]
    pub slack_webhook_url: Option<String>,
    /// A URL that receives every notification as JSON (POST).
    #[arg(long, env = "ALERT_WEBHOOK_URL", hide_env_values = true)]
    pub alert_webhook_url: Option<String>,
    /// The webhook's body: hemostat (HemoStat's JSON) or alertmanager (Alertmanager's webhook payload,
    /// version 4) [default: hemostat].
    #[arg(long, env = "ALERT_WEBHOOK_FORMAT")]
    pub alert_webhook_format: Option<String>,
    /// Alertmanager base URLs, comma-separated (e.g. http://alertmanager:9093): alerts are pushed to
    /// /api/v2/alerts of each.
    #[arg(long, env = "ALERTMANAGER_URL")]
    pub alertmanager_url: Option<String>,
    /// Seconds between two pushes of the alerts still firing [default: 60].
    #[arg(long, env = "ALERTMANAGER_RESEND_SECONDS")]
    pub alertmanager_resend_seconds: Option<u64>,
    /// A Discord channel webhook URL.
    #[arg(long, env = "DISCORD_WEBHOOK_URL", hide_env_values = true)]
    pub discord_webhook_url: Option<String>,
    /// A Microsoft Teams Workflows webhook URL.
    #[arg(long, env = "TEAMS_WEBHOOK_URL", hide_env_values = true)]
    pub teams_webhook_url: Option<String>,
    /// An ntfy topic's URL (e.g. https://ntfy.sh/my-hemostat-topic).
    #[arg(long, env = "NTFY_URL", hide_env_values = true)]
    pub ntfy_url: Option<String>,
    /// An ntfy access token, for a protected topic.
    #[arg(long, env = "NTFY_TOKEN", hide_env_values = true)]
    pub ntfy_token: Option<String>,
    /// A Gotify server's URL (messages go to its /message).
    #[arg(long, env = "GOTIFY_URL")]
    pub gotify_url: Option<String>,
    /// The Gotify application token.
    #[arg(long, env = "GOTIFY_TOKEN", hide_env_values = true)]
    pub gotify_token: Option<String>,
    /// An SMTP server: smtp://[user:password@]host[:port] (STARTTLS, required), smtps://... (TLS), or
    /// smtp://...?tls=none (plain, for a relay on this host).
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// A PEM file of CA certificates trusted for the SMTP server, besides the system's.
    #[arg(long, env = "SMTP_CA_FILE")]
    pub smtp_ca_file: Option<PathBuf>,
    /// Email recipients, comma-separated.
    #[arg(long, env = "ALERT_EMAIL_TO")]
    pub alert_email_to: Option<String>,
    /// The sender address [default: hemostat@<the SMTP server's host>].
    #[arg(long, env = "ALERT_EMAIL_FROM")]
    pub alert_email_from: Option<String>,
    /// Slack: only these event types (comma-separated).
    #[arg(long, env = "SLACK_EVENTS")]
    pub slack_events: Option<String>,
    /// Slack: only notifications at least this serious (info, warning, critical).
    #[arg(long, env = "SLACK_MIN_SEVERITY")]
    pub slack_min_severity: Option<String>,
    /// Slack: only these nodes (comma-separated).
    #[arg(long, env = "SLACK_NODES")]
    pub slack_nodes: Option<String>,
    /// The webhook: only these event types.
    #[arg(long, env = "ALERT_WEBHOOK_EVENTS")]
    pub alert_webhook_events: Option<String>,
    /// The webhook: only notifications at least this serious.
    #[arg(long, env = "ALERT_WEBHOOK_MIN_SEVERITY")]
    pub alert_webhook_min_severity: Option<String>,
    /// The webhook: only these nodes.
    #[arg(long, env = "ALERT_WEBHOOK_NODES")]
    pub alert_webhook_nodes: Option<String>,
    /// Alertmanager: only alerts of these event types.
    #[arg(long, env = "ALERTMANAGER_EVENTS")]
    pub alertmanager_events: Option<String>,
    /// Alertmanager: only alerts at least this serious.
    #[arg(long, env = "ALERTMANAGER_MIN_SEVERITY")]
    pub alertmanager_min_severity: Option<String>,
    /// Alertmanager: only these nodes.
    #[arg(long, env = "ALERTMANAGER_NODES")]
    pub alertmanager_nodes: Option<String>,
    /// Discord: only these event types.
    #[arg(long, env = "DISCORD_EVENTS")]
    pub discord_events: Option<String>,
    /// Discord: only notifications at least this serious.
    #[arg(long, env = "DISCORD_MIN_SEVERITY")]
    pub discord_min_severity: Option<String>,
    /// Discord: only these nodes.
    #[arg(long, env = "DISCORD_NODES")]
    pub discord_nodes: Option<String>,
    /// Teams: only these event types.
    #[arg(long, env = "TEAMS_EVENTS")]
    pub teams_events: Option<String>,
    /// Teams: only notifications at least this serious.
    #[arg(long, env = "TEAMS_MIN_SEVERITY")]
    pub teams_min_severity: Option<String>,
    /// Teams: only these nodes.
    #[arg(long, env = "TEAMS_NODES")]
    pub teams_nodes: Option<String>,
    /// ntfy: only these event types.
    #[arg(long, env = "NTFY_EVENTS")]
    pub ntfy_events: Option<String>,
    /// ntfy: only notifications at least this serious.
    #[arg(long, env = "NTFY_MIN_SEVERITY")]
    pub ntfy_min_severity: Option<String>,
    /// ntfy: only these nodes.
    #[arg(long, env = "NTFY_NODES")]
    pub ntfy_nodes: Option<String>,
    /// Gotify: only these event types.
    #[arg(long, env = "GOTIFY_EVENTS")]
    pub gotify_events: Option<String>,
    /// Gotify: only notifications at least this serious.
    #[arg(long, env = "GOTIFY_MIN_SEVERITY")]
    pub gotify_min_severity: Option<String>,
    /// Gotify: only these nodes.
    #[arg(long, env = "GOTIFY_NODES")]
    pub gotify_nodes: Option<String>,
    /// Email: only these event types.
    #[arg(long, env = "ALERT_EMAIL_EVENTS")]
    pub alert_email_events: Option<String>,
    /// Email: only notifications at least this serious.
    #[arg(long, env = "ALERT_EMAIL_MIN_SEVERITY")]
    pub alert_email_min_severity: Option<String>,
    /// Email: only these nodes.
    #[arg(long, env = "ALERT_EMAIL_NODES")]
    pub alert_email_nodes: Option<String>,
}

impl AlertingSettings {
    /// Resolves flags and environment (`self`) over the configuration file's keys (`file`) over defaults.
    pub fn resolve(&self, file: &AlertingSettings) -> Result<AlertingConfig, AlertingConfigError> {
        macro_rules! pick {
            ($field:ident) => {
                self.$field.clone().or_else(|| file.$field.clone()).filter(Given::given)
            };
        }
        let defaults = AlertingConfig::default();
        let webhook_format = match pick!(alert_webhook_format) {
            None => defaults.webhook_format,
            Some(name) => WebhookFormat::from_name(name.trim()).ok_or_else(|| {
                AlertingConfigError(format!("ALERT_WEBHOOK_FORMAT must be hemostat or alertmanager, not {name:?}"))
            })?,
        };
        let alertmanager_urls: Vec<String> = pick!(alertmanager_url)
            .unwrap_or_default()
            .split(',')
            .map(|url| url.trim().trim_end_matches('/').to_owned())
            .filter(|url| !url.is_empty())
            .collect();
        let email = match (pick!(smtp_url), pick!(alert_email_to)) {
            (None, None) => None,
            (Some(url), Some(to)) => Some(
                EmailConfig::parse(&url, &to, pick!(alert_email_from).as_deref(), pick!(smtp_ca_file))
                    .map_err(|e| AlertingConfigError(e.to_string()))?,
            ),
            (Some(_), None) => return Err(AlertingConfigError("SMTP_URL is set but ALERT_EMAIL_TO is not".into())),
            (None, Some(_)) => return Err(AlertingConfigError("ALERT_EMAIL_TO is set but SMTP_URL is not".into())),
        };
        let gotify_token = pick!(gotify_token);
        if pick!(gotify_url).is_some() && gotify_token.is_none() {
            return Err(AlertingConfigError("GOTIFY_URL is set but GOTIFY_TOKEN (an application token) is not".into()));
        }
        let links = Links::new(pick!(external_url), pick!(container_url_template));
        if let Some(template) = &links.container_url_template
            && !PLACEHOLDERS.iter().any(|p| template.contains(p))
        {
            return Err(AlertingConfigError(format!(
                "HEMOSTAT_CONTAINER_URL_TEMPLATE needs at least one of {}",
                PLACEHOLDERS.join(", ")
            )));
        }
        let filter_settings = [
            (pick!(slack_events), pick!(slack_min_severity), pick!(slack_nodes)),
            (pick!(alert_webhook_events), pick!(alert_webhook_min_severity), pick!(alert_webhook_nodes)),
            (pick!(alertmanager_events), pick!(alertmanager_min_severity), pick!(alertmanager_nodes)),
            (pick!(discord_events), pick!(discord_min_severity), pick!(discord_nodes)),
            (pick!(teams_events), pick!(teams_min_severity), pick!(teams_nodes)),
            (pick!(ntfy_events), pick!(ntfy_min_severity), pick!(ntfy_nodes)),
            (pick!(gotify_events), pick!(gotify_min_severity), pick!(gotify_nodes)),
            (pick!(alert_email_events), pick!(alert_email_min_severity), pick!(alert_email_nodes)),
        ];
        let mut filters = BTreeMap::new();
        for ((sink, prefix), (events, severity, nodes)) in FILTER_PREFIXES.into_iter().zip(filter_settings) {
            let filter = SinkFilter::parse(prefix, events.as_deref(), severity.as_deref(), nodes.as_deref())
                .map_err(|e| AlertingConfigError(e.to_string()))?;
            if filter != SinkFilter::default() {
                filters.insert(sink.to_owned(), filter);
            }
        }
        let config = AlertingConfig {
            enabled: pick!(alert_enabled).unwrap_or(defaults.enabled),
            slack_webhook_url: pick!(slack_webhook_url),
            webhook_url: pick!(alert_webhook_url),
            webhook_format,
            alertmanager_urls,
            alertmanager_resend: pick!(alertmanager_resend_seconds)
                .map_or(defaults.alertmanager_resend, |s| Duration::from_secs(s.max(1))),
            discord_webhook_url: pick!(discord_webhook_url),
            teams_webhook_url: pick!(teams_webhook_url),
            ntfy_url: pick!(ntfy_url),
            ntfy_token: pick!(ntfy_token),
            gotify_url: pick!(gotify_url),
            gotify_token,
            email,
            links,
            filters,
            approval_ttl: defaults.approval_ttl,
            dedupe_ttl: pick!(alert_dedupe_ttl).map_or(defaults.dedupe_ttl, Duration::from_secs),
            group_window: pick!(alert_group_window_seconds).map_or(defaults.group_window, Duration::from_secs),
            quiet_success: pick!(alert_quiet_success).unwrap_or(defaults.quiet_success),
            queue_capacity: pick!(alert_queue_capacity).unwrap_or(defaults.queue_capacity).max(1),
        };
        for url in config.urls() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(AlertingConfigError(format!(
                    "notification URLs must start with http:// or https://, not {:?}",
                    url.chars().take(16).collect::<String>()
                )));
            }
        }
        Ok(config)
    }
}

/// Whether a setting's value says something: an empty string (or path) is as good as unset, so that an
/// empty variable or flag clears a value from the file.
trait Given {
    fn given(&self) -> bool;
}

impl Given for String {
    fn given(&self) -> bool {
        !self.trim().is_empty()
    }
}

impl Given for PathBuf {
    fn given(&self) -> bool {
        !self.as_os_str().is_empty()
    }
}

macro_rules! always_given {
    ($($t:ty),*) => {
        $(impl Given for $t {
            fn given(&self) -> bool {
                true
            }
        })*
    };
}
always_given!(bool, u64, usize);

impl AlertingConfig {
    /// Every HTTP URL configured: the sinks' and the links'.
    fn urls(&self) -> impl Iterator<Item = &String> {
        [
            &self.slack_webhook_url,
            &self.webhook_url,
            &self.discord_webhook_url,
            &self.teams_webhook_url,
            &self.ntfy_url,
            &self.gotify_url,
            &self.links.external_url,
            &self.links.container_url_template,
        ]
        .into_iter()
        .flatten()
        .chain(&self.alertmanager_urls)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::alerting::notification::Severity;
    use crate::events::EventKind;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        settings: AlertingSettings,
    }

    fn flags(args: &[&str]) -> AlertingSettings {
        Flags::try_parse_from(std::iter::once("test").chain(args.iter().copied())).unwrap().settings
    }

    fn file(toml: &str) -> AlertingSettings {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = file(
            "discord_webhook_url = \"https://discord.test/api/webhooks/1/x\"\nalert_dedupe_ttl = 30\n\
             discord_min_severity = \"warning\"\nntfy_url = \"https://ntfy.test/topic\"\n",
        );
        let config = flags(&["--alert-dedupe-ttl", "10", "--ntfy-url", ""]).resolve(&file).unwrap();
        assert_eq!(config.dedupe_ttl, Duration::from_secs(10));
        assert_eq!(config.discord_webhook_url.as_deref(), Some("https://discord.test/api/webhooks/1/x"));
        assert_eq!(config.ntfy_url, None, "an empty flag clears the file's value");
        assert_eq!(config.filters["discord"].min_severity, Some(Severity::Warning));
        assert_eq!(config.filters.len(), 1, "sinks without a filter take everything");
        let defaults = AlertingSettings::default().resolve(&AlertingSettings::default()).unwrap();
        assert_eq!(defaults, AlertingConfig::default());
    }

    #[test]
    fn every_sink_and_link_is_configured_from_its_settings() {
        let config = flags(&[
            "--alert-webhook-format",
            "alertmanager",
            "--alertmanager-url",
            "http://am-1:9093/, http://am-2:9093",
            "--alertmanager-resend-seconds",
            "30",
            "--gotify-url",
            "https://gotify.test",
            "--gotify-token",
            "AbCd",
            "--external-url",
            "https://hemostat.test/",
            "--container-url-template",
            "https://arcane.test/containers/{id}",
            "--alert-email-events",
            "node_lost",
        ])
        .resolve(&AlertingSettings::default())
        .unwrap();
        assert_eq!(config.webhook_format, WebhookFormat::Alertmanager);
        assert_eq!(config.alertmanager_urls, ["http://am-1:9093", "http://am-2:9093"]);
        assert_eq!(config.alertmanager_resend, Duration::from_secs(30));
        assert_eq!(config.gotify_token.as_deref(), Some("AbCd"));
        assert_eq!(config.links.external_url.as_deref(), Some("https://hemostat.test"));
        assert_eq!(config.filters["email"].events, [EventKind::NodeLost]);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let bad = |args: &[&str]| flags(args).resolve(&AlertingSettings::default()).unwrap_err().to_string();
        assert!(bad(&["--discord-webhook-url", "discord.com/x"]).contains("must start with http"));
        assert!(bad(&["--alertmanager-url", "am:9093"]).contains("must start with http"));
        assert_eq!(
            bad(&["--alert-webhook-format", "xml"]),
            "ALERT_WEBHOOK_FORMAT must be hemostat or alertmanager, not \"xml\""
        );
        assert!(bad(&["--gotify-url", "https://gotify.test"]).contains("GOTIFY_TOKEN"));
        assert!(bad(&["--container-url-template", "https://ui.test/containers"]).contains("{id}"));
        assert!(bad(&["--teams-min-severity", "high"]).starts_with("TEAMS_MIN_SEVERITY"));
        assert_eq!(bad(&["--smtp-url", "smtp://mail.test"]), "SMTP_URL is set but ALERT_EMAIL_TO is not");
        let err = toml::from_str::<AlertingSettings>("ntfy_url = 3\n").unwrap_err().to_string();
        assert!(err.contains("ntfy_url"), "{err}");
    }

    #[test]
    fn the_coordinators_file_and_flags_carry_these_keys() {
        use crate::config::{CoordinatorArgs, CoordinatorConfig};
        let path = std::env::temp_dir().join(format!("hemostat-alerting-{}.toml", rand::random::<u32>()));
        std::fs::write(
            &path,
            "discord_webhook_url = \"https://discord.test/api/webhooks/1/x\"\nalert_dedupe_ttl = 5\n",
        )
        .unwrap();
        let args =
            CoordinatorArgs::try_parse_from(["hemostat-coordinator", "--ntfy-url", "https://ntfy.test/t"]).unwrap();
        let config = CoordinatorConfig::resolve(CoordinatorArgs { config: Some(path.clone()), ..args }).unwrap();
        assert_eq!(config.alerting.discord_webhook_url.as_deref(), Some("https://discord.test/api/webhooks/1/x"));
        assert_eq!(config.alerting.ntfy_url.as_deref(), Some("https://ntfy.test/t"));
        assert_eq!(config.alerting.dedupe_ttl, Duration::from_secs(5));
        std::fs::write(&path, "discord_webhook = \"https://discord.test\"\n").unwrap();
        let err = CoordinatorConfig::resolve(CoordinatorArgs { config: Some(path.clone()), ..Default::default() });
        assert!(err.unwrap_err().to_string().contains("unknown field `discord_webhook`"));
        std::fs::write(&path, "require_approval = true\napproval_ttl_seconds = 120\n").unwrap();
        let config = CoordinatorConfig::resolve(CoordinatorArgs { config: Some(path.clone()), ..Default::default() });
        assert_eq!(
            config.unwrap().alerting.approval_ttl,
            Duration::from_secs(120),
            "approvals end in Alertmanager too"
        );
        std::fs::remove_file(path).unwrap();
    }
}
