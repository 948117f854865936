//! Alerting's settings: where notifications go, how they are shaped, and each sink's filters.
//!
//! [`AlertingSettings`] declares them once ([`hemostat_settings::settings!`]: flag, environment variable,
//! file key, default); [`AlertingConfig::from_settings`] checks them and makes the [`AlertingConfig`] the
//! notifier runs with. A bad value is a [`ConfigError`] naming the setting and where its value came from.
//! An empty string (or path) is as good as unset, so that an empty flag clears a value from the file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use hemostat_settings::{ConfigError, Sourced};

use super::filter::SinkFilter;
use super::links::{Links, PLACEHOLDERS};
use super::sinks::email::{EmailConfig, EmailError};
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

hemostat_settings::settings! {
    /// Alerting's flags (flattened into the coordinator's); each setting also reads its environment
    /// variable and its key in the configuration file.
    #[derive(Clone, Debug, Default, clap::Args)]
    pub struct AlertingArgs {}

    /// Every alerting setting, each with where its value came from.
    #[derive(Clone, Debug)]
    pub struct AlertingSettings {
        /// Send notifications (true/false); the event log is kept either way [default: true].
        alert_enabled: bool = AlertingConfig::default().enabled, env "ALERT_ENABLED";
        /// Seconds within which the same (type, node, container, outcome) is notified once [default: 60].
        alert_dedupe_ttl: u64 = AlertingConfig::default().dedupe_ttl.as_secs(), env "ALERT_DEDUPE_TTL";
        /// Seconds within which notifications are grouped into one message [default: 2].
        alert_group_window_seconds: u64 = AlertingConfig::default().group_window.as_secs(), env "ALERT_GROUP_WINDOW_SECONDS";
        /// Do not notify actions that succeeded and were verified (true/false) [default: false].
        alert_quiet_success: bool = AlertingConfig::default().quiet_success, env "ALERT_QUIET_SUCCESS";
        /// Notifications waiting to be sent; beyond it the oldest are dropped and counted [default: 1000].
        alert_queue_capacity: usize = AlertingConfig::default().queue_capacity, env "ALERT_QUEUE_CAPACITY";
        /// The dashboard's URL as operators reach it (e.g. https://hemostat.example.com): notifications link
        /// to their event there.
        external_url: String, env "HEMOSTAT_EXTERNAL_URL";
        /// A container's URL in your Docker UI, with {node}, {container} (its name) and {id}, e.g.
        /// https://arcane.example.com/containers/{id}.
        container_url_template: String, env "HEMOSTAT_CONTAINER_URL_TEMPLATE";
        /// A Slack incoming webhook URL for notifications.
        slack_webhook_url: String, env "SLACK_WEBHOOK_URL";
        /// A URL that receives every notification as JSON (POST).
        alert_webhook_url: String, env "ALERT_WEBHOOK_URL";
        /// The webhook's body: hemostat (HemoStat's JSON) or alertmanager (Alertmanager's webhook payload,
        /// version 4) [default: hemostat].
        alert_webhook_format: String, env "ALERT_WEBHOOK_FORMAT";
        /// Alertmanager base URLs, comma-separated (e.g. http://alertmanager:9093): alerts are pushed to
        /// /api/v2/alerts of each.
        alertmanager_url: String, env "ALERTMANAGER_URL";
        /// Seconds between two pushes of the alerts still firing [default: 60].
        alertmanager_resend_seconds: u64 = AlertingConfig::default().alertmanager_resend.as_secs(), env "ALERTMANAGER_RESEND_SECONDS";
        /// A Discord channel webhook URL.
        discord_webhook_url: String, env "DISCORD_WEBHOOK_URL";
        /// A Microsoft Teams Workflows webhook URL.
        teams_webhook_url: String, env "TEAMS_WEBHOOK_URL";
        /// An ntfy topic's URL (e.g. https://ntfy.sh/my-hemostat-topic).
        ntfy_url: String, env "NTFY_URL";
        /// An ntfy access token, for a protected topic.
        ntfy_token: String, env "NTFY_TOKEN";
        /// A Gotify server's URL (messages go to its /message).
        gotify_url: String, env "GOTIFY_URL";
        /// The Gotify application token.
        gotify_token: String, env "GOTIFY_TOKEN";
        /// An SMTP server: smtp://[user:password@]host[:port] (STARTTLS, required), smtps://... (TLS), or
        /// smtp://...?tls=none (plain, for a relay on this host).
        smtp_url: String, env "SMTP_URL";
        /// A PEM file of CA certificates trusted for the SMTP server, besides the system's.
        smtp_ca_file: PathBuf, env "SMTP_CA_FILE";
        /// Email recipients, comma-separated.
        alert_email_to: String, env "ALERT_EMAIL_TO";
        /// The sender address [default: hemostat@<the SMTP server's host>].
        alert_email_from: String, env "ALERT_EMAIL_FROM";
        /// Slack: only these event types (comma-separated).
        slack_events: String, env "SLACK_EVENTS";
        /// Slack: only notifications at least this serious (info, warning, critical).
        slack_min_severity: String, env "SLACK_MIN_SEVERITY";
        /// Slack: only these nodes (comma-separated).
        slack_nodes: String, env "SLACK_NODES";
        /// The webhook: only these event types.
        alert_webhook_events: String, env "ALERT_WEBHOOK_EVENTS";
        /// The webhook: only notifications at least this serious.
        alert_webhook_min_severity: String, env "ALERT_WEBHOOK_MIN_SEVERITY";
        /// The webhook: only these nodes.
        alert_webhook_nodes: String, env "ALERT_WEBHOOK_NODES";
        /// Alertmanager: only alerts of these event types.
        alertmanager_events: String, env "ALERTMANAGER_EVENTS";
        /// Alertmanager: only alerts at least this serious.
        alertmanager_min_severity: String, env "ALERTMANAGER_MIN_SEVERITY";
        /// Alertmanager: only these nodes.
        alertmanager_nodes: String, env "ALERTMANAGER_NODES";
        /// Discord: only these event types.
        discord_events: String, env "DISCORD_EVENTS";
        /// Discord: only notifications at least this serious.
        discord_min_severity: String, env "DISCORD_MIN_SEVERITY";
        /// Discord: only these nodes.
        discord_nodes: String, env "DISCORD_NODES";
        /// Teams: only these event types.
        teams_events: String, env "TEAMS_EVENTS";
        /// Teams: only notifications at least this serious.
        teams_min_severity: String, env "TEAMS_MIN_SEVERITY";
        /// Teams: only these nodes.
        teams_nodes: String, env "TEAMS_NODES";
        /// ntfy: only these event types.
        ntfy_events: String, env "NTFY_EVENTS";
        /// ntfy: only notifications at least this serious.
        ntfy_min_severity: String, env "NTFY_MIN_SEVERITY";
        /// ntfy: only these nodes.
        ntfy_nodes: String, env "NTFY_NODES";
        /// Gotify: only these event types.
        gotify_events: String, env "GOTIFY_EVENTS";
        /// Gotify: only notifications at least this serious.
        gotify_min_severity: String, env "GOTIFY_MIN_SEVERITY";
        /// Gotify: only these nodes.
        gotify_nodes: String, env "GOTIFY_NODES";
        /// Email: only these event types.
        alert_email_events: String, env "ALERT_EMAIL_EVENTS";
        /// Email: only notifications at least this serious.
        alert_email_min_severity: String, env "ALERT_EMAIL_MIN_SEVERITY";
        /// Email: only these nodes.
        alert_email_nodes: String, env "ALERT_EMAIL_NODES";
    }
}

/// A sink's filter settings: its name, then its `<SINK>_EVENTS`, `<SINK>_MIN_SEVERITY` and `<SINK>_NODES`.
type FilterSettings = (&'static str, Option<Sourced<String>>, Option<Sourced<String>>, Option<Sourced<String>>);

impl AlertingConfig {
    /// The configuration the settings describe (its `approval_ttl` the default: the coordinator sets it
    /// from `RESPONDER_APPROVAL_TTL_SECONDS`); a bad value is an error naming the setting and its source.
    pub fn from_settings(s: AlertingSettings) -> Result<Self, ConfigError> {
        let defaults = AlertingConfig::default();
        let webhook_format = match given(s.alert_webhook_format) {
            None => defaults.webhook_format,
            Some(name) => {
                let text = name.value.clone();
                name.try_map(|name| {
                    WebhookFormat::from_name(name.trim())
                        .ok_or_else(|| format!("must be hemostat or alertmanager, not {text:?}"))
                })?
            }
        };
        let alertmanager_urls = match given(s.alertmanager_url) {
            None => Vec::new(),
            Some(list) => {
                let urls: Vec<String> = list
                    .split(',')
                    .map(|url| url.trim().trim_end_matches('/').to_owned())
                    .filter(|url| !url.is_empty())
                    .collect();
                for url in &urls {
                    check_url(&list, url)?;
                }
                urls
            }
        };
        let email_from = given(s.alert_email_from);
        let email = match (given(s.smtp_url), given(s.alert_email_to)) {
            (None, None) => None,
            (Some(url), Some(to)) => {
                let ca_file = s.smtp_ca_file.filter(|path| !path.as_os_str().is_empty()).map(Sourced::into_value);
                let parsed = EmailConfig::parse(&url, &to, email_from.as_deref().map(String::as_str), ca_file);
                Some(parsed.map_err(|e| match e {
                    EmailError::Address { setting, address } => {
                        let message = format!("{address:?} is not an email address");
                        match &email_from {
                            Some(from) if setting == from.setting.name() => from.invalid(message),
                            _ if setting == to.setting.name() => to.invalid(message),
                            _ => url.invalid(message),
                        }
                    }
                    EmailError::Url(problem) => url.invalid(problem),
                    other => url.invalid(other),
                })?)
            }
            (Some(url), None) => return Err(url.invalid("is set but ALERT_EMAIL_TO is not")),
            (None, Some(to)) => return Err(to.invalid("is set but SMTP_URL is not")),
        };
        let gotify_url = given(s.gotify_url);
        let gotify_token = given(s.gotify_token).map(Sourced::into_value);
        if let Some(url) = &gotify_url
            && gotify_token.is_none()
        {
            return Err(url.invalid("is set but GOTIFY_TOKEN (an application token) is not"));
        }
        let template = given(s.container_url_template);
        if let Some(template) = &template
            && !PLACEHOLDERS.iter().any(|p| template.contains(p))
        {
            return Err(template.invalid(format!("needs at least one of {}", PLACEHOLDERS.join(", "))));
        }
        let filter_settings: [FilterSettings; 8] = [
            ("slack", s.slack_events, s.slack_min_severity, s.slack_nodes),
            ("webhook", s.alert_webhook_events, s.alert_webhook_min_severity, s.alert_webhook_nodes),
            ("alertmanager", s.alertmanager_events, s.alertmanager_min_severity, s.alertmanager_nodes),
            ("discord", s.discord_events, s.discord_min_severity, s.discord_nodes),
            ("teams", s.teams_events, s.teams_min_severity, s.teams_nodes),
            ("ntfy", s.ntfy_events, s.ntfy_min_severity, s.ntfy_nodes),
            ("gotify", s.gotify_events, s.gotify_min_severity, s.gotify_nodes),
            ("email", s.alert_email_events, s.alert_email_min_severity, s.alert_email_nodes),
        ];
        let mut filters = BTreeMap::new();
        for (sink, events, severity, nodes) in filter_settings {
            let filter = sink_filter(given(events), given(severity), given(nodes))?;
            if filter != SinkFilter::default() {
                filters.insert(sink.to_owned(), filter);
            }
        }
        let url = |setting: Option<Sourced<String>>| -> Result<Option<String>, ConfigError> {
            match given(setting) {
                Some(url) => {
                    check_url(&url, &url)?;
                    Ok(Some(url.into_value()))
                }
                None => Ok(None),
            }
        };
        let external_url = url(s.external_url)?;
        let container_url_template = match template {
            Some(template) => url(Some(template))?,
            None => None,
        };
        Ok(AlertingConfig {
            enabled: *s.alert_enabled,
            slack_webhook_url: url(s.slack_webhook_url)?,
            webhook_url: url(s.alert_webhook_url)?,
            webhook_format,
            alertmanager_urls,
            alertmanager_resend: Duration::from_secs(s.alertmanager_resend_seconds.into_value().max(1)),
            discord_webhook_url: url(s.discord_webhook_url)?,
            teams_webhook_url: url(s.teams_webhook_url)?,
            ntfy_url: url(s.ntfy_url)?,
            ntfy_token: given(s.ntfy_token).map(Sourced::into_value),
            gotify_url: url(gotify_url)?,
            gotify_token,
            email,
            links: Links::new(external_url, container_url_template),
            filters,
            approval_ttl: defaults.approval_ttl,
            dedupe_ttl: Duration::from_secs(s.alert_dedupe_ttl.into_value()),
            group_window: Duration::from_secs(s.alert_group_window_seconds.into_value()),
            quiet_success: *s.alert_quiet_success,
            queue_capacity: s.alert_queue_capacity.into_value().max(1),
        })
    }
}

/// The setting, unless it is unset or empty (an empty value clears one from a lower layer).
fn given(setting: Option<Sourced<String>>) -> Option<Sourced<String>> {
    setting.filter(|text| !text.trim().is_empty())
}

/// `url` (one of `setting`'s URLs) if it is an HTTP URL, else an error naming `setting` and its source.
fn check_url(setting: &Sourced<String>, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(setting.invalid(format!(
            "notification URLs must start with http:// or https://, not {:?}",
            url.chars().take(16).collect::<String>()
        )))
    }
}

/// One sink's filter from its `<SINK>_EVENTS`, `<SINK>_MIN_SEVERITY` and `<SINK>_NODES`; an error names the
/// setting that is wrong and its source.
fn sink_filter(
    events: Option<Sourced<String>>,
    severity: Option<Sourced<String>>,
    nodes: Option<Sourced<String>>,
) -> Result<SinkFilter, ConfigError> {
    // Each setting is read alone (`slot`: events, severity, nodes), so that an error is its own.
    let read = |setting: Option<Sourced<String>>, slot: usize| match setting {
        None => Ok(SinkFilter::default()),
        Some(setting) => setting.try_map(|text| {
            let mut parts = [None; 3];
            parts[slot] = Some(text.as_str());
            SinkFilter::parse("", parts[0], parts[1], parts[2]).map_err(|e| e.problem)
        }),
    };
    Ok(SinkFilter {
        events: read(events, 0)?.events,
        min_severity: read(severity, 1)?.min_severity,
        nodes: read(nodes, 2)?.nodes,
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use std::path::Path;

    use hemostat_settings::Layers;

    use super::*;
    use crate::alerting::notification::Severity;
    use crate::events::EventKind;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        args: AlertingArgs,
    }

    fn flags(args: &[&str]) -> AlertingArgs {
        Flags::try_parse_from(std::iter::once("test").chain(args.iter().copied())).unwrap().args
    }

    /// No environment: the tests see only what they configure.
    fn no_env(_: &str) -> Option<String> {
        None
    }

    /// The configuration of the flags `args` over the configuration file `file` (TOML) over the defaults.
    fn resolve(args: &AlertingArgs, file: Option<&str>) -> Result<AlertingConfig, ConfigError> {
        let layers = match file {
            Some(text) => Layers::parse(&no_env, Path::new("alerting.toml"), text, &[AlertingSettings::KEYS])?,
            None => Layers::read(&no_env, None, &[AlertingSettings::KEYS])?,
        };
        AlertingConfig::from_settings(AlertingSettings::resolve(args, &layers)?)
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = "discord_webhook_url = \"https://discord.test/api/webhooks/1/x\"\nalert_dedupe_ttl = 30\n\
                    discord_min_severity = \"warning\"\nntfy_url = \"https://ntfy.test/topic\"\n";
        let config = resolve(&flags(&["--alert-dedupe-ttl", "10", "--ntfy-url", ""]), Some(file)).unwrap();
        assert_eq!(config.dedupe_ttl, Duration::from_secs(10));
        assert_eq!(config.discord_webhook_url.as_deref(), Some("https://discord.test/api/webhooks/1/x"));
        assert_eq!(config.ntfy_url, None, "an empty flag clears the file's value");
        assert_eq!(config.filters["discord"].min_severity, Some(Severity::Warning));
        assert_eq!(config.filters.len(), 1, "sinks without a filter take everything");
        let defaults = resolve(&AlertingArgs::default(), None).unwrap();
        assert_eq!(defaults, AlertingConfig::default());
    }

    #[test]
    fn every_sink_and_link_is_configured_from_its_settings() {
        let args = flags(&[
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
        ]);
        let config = resolve(&args, None).unwrap();
        assert_eq!(config.webhook_format, WebhookFormat::Alertmanager);
        assert_eq!(config.alertmanager_urls, ["http://am-1:9093", "http://am-2:9093"]);
        assert_eq!(config.alertmanager_resend, Duration::from_secs(30));
        assert_eq!(config.gotify_token.as_deref(), Some("AbCd"));
        assert_eq!(config.links.external_url.as_deref(), Some("https://hemostat.test"));
        assert_eq!(config.filters["email"].events, [EventKind::NodeLost]);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let bad = |args: &[&str]| resolve(&flags(args), None).unwrap_err().to_string();
        assert!(bad(&["--discord-webhook-url", "discord.com/x"]).contains("must start with http"));
        assert!(bad(&["--alertmanager-url", "am:9093"]).contains("must start with http"));
        assert_eq!(
            bad(&["--alert-webhook-format", "xml"]),
            "ALERT_WEBHOOK_FORMAT (flag --alert-webhook-format): must be hemostat or alertmanager, not \"xml\""
        );
        assert!(bad(&["--gotify-url", "https://gotify.test"]).contains("GOTIFY_TOKEN"));
        assert!(bad(&["--container-url-template", "https://ui.test/containers"]).contains("{id}"));
        assert!(bad(&["--teams-min-severity", "high"]).starts_with("TEAMS_MIN_SEVERITY"));
        assert_eq!(
            bad(&["--smtp-url", "smtp://mail.test"]),
            "SMTP_URL (flag --smtp-url): is set but ALERT_EMAIL_TO is not"
        );
        let err = resolve(&AlertingArgs::default(), Some("ntfy_url = 3\n")).unwrap_err().to_string();
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
        let config =
            CoordinatorConfig::resolve_in(CoordinatorArgs { config: Some(path.clone()), ..args }, &no_env).unwrap();
        assert_eq!(config.alerting.discord_webhook_url.as_deref(), Some("https://discord.test/api/webhooks/1/x"));
        assert_eq!(config.alerting.ntfy_url.as_deref(), Some("https://ntfy.test/t"));
        assert_eq!(config.alerting.dedupe_ttl, Duration::from_secs(5));
        std::fs::write(&path, "discord_webhook = \"https://discord.test\"\n").unwrap();
        let err = CoordinatorConfig::resolve_in(
            CoordinatorArgs { config: Some(path.clone()), ..Default::default() },
            &no_env,
        );
        assert!(err.unwrap_err().to_string().contains("unknown field `discord_webhook`"));
        std::fs::write(&path, "require_approval = true\napproval_ttl_seconds = 120\n").unwrap();
        let config = CoordinatorConfig::resolve_in(
            CoordinatorArgs { config: Some(path.clone()), ..Default::default() },
            &no_env,
        );
        assert_eq!(
            config.unwrap().alerting.approval_ttl,
            Duration::from_secs(120),
            "approvals end in Alertmanager too"
        );
        std::fs::remove_file(path).unwrap();
    }
}
