//! Email over SMTP (`SMTP_URL`, `ALERT_EMAIL_TO`): a plain-text message per notification, one listing a
//! burst, through lettre with rustls (aws-lc-rs).
//!
//! `smtp://host[:587]` upgrades with STARTTLS and refuses to go on without it; `smtps://host[:465]` is TLS
//! from the first byte; `smtp://host:25?tls=none` is plain text, for a relay on the same host. A user and
//! password in the URL authenticate (PLAIN or LOGIN, after TLS). The server's certificate is checked
//! against the system's roots and, when set, `SMTP_CA_FILE`'s.
//!
//! Headers are never made of raw untrusted text: the subject has its control characters (line breaks
//! included) replaced and is encoded by lettre (RFC 2047) when not ASCII; names and logs appear in the
//! plain-text body only. An SMTP 4xx is retried, a 5xx is final.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, Tokio1Executor};

use crate::alerting::AlertingConfig;
use crate::alerting::delivery::Verdict;
use crate::alerting::escape::one_line;
use crate::alerting::grouping::Message;
use crate::alerting::notification::{Burst, Notification};
use crate::alerting::sink::Sink;
use crate::alerting::transport::{Reply, Request};

/// The longest subject, in characters.
const MAX_SUBJECT_CHARS: usize = 150;
/// The longest reason in a message.
const MAX_REASON_CHARS: usize = 4000;
/// The most notifications a burst's message lists.
const MAX_BURST_LINES: usize = 50;

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text upgraded with STARTTLS, which is required (`smtp://`).
    StartTls,
    /// TLS from the start (`smtps://`).
    Tls,
    /// Plain text (`smtp://...?tls=none`).
    None,
}

/// Where and to whom email goes.
#[derive(Clone, PartialEq, Eq)]
pub struct EmailConfig {
    /// The SMTP server's host.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub security: SmtpSecurity,
    /// The user and password to authenticate with.
    pub credentials: Option<(String, String)>,
    /// More CA certificates to trust (PEM).
    pub ca_file: Option<PathBuf>,
    /// The sender.
    pub from: Mailbox,
    /// The recipients.
    pub to: Vec<Mailbox>,
}

impl fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .field("ca_file", &self.ca_file)
            .field("from", &self.from)
            .field("to", &self.to)
            .finish()
    }
}

/// Why email cannot be configured.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// `SMTP_URL` is not a usable URL.
    #[error("SMTP_URL: {0}")]
    Url(String),
    /// An address does not parse.
    #[error("{setting}: {address:?} is not an email address")]
    Address {
        /// The setting.
        setting: &'static str,
        /// The address.
        address: String,
    },
    /// `SMTP_CA_FILE` cannot be read or holds no certificate.
    #[error("SMTP_CA_FILE {path}: {problem}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// lettre refused the TLS settings.
    #[error("SMTP TLS settings: {0}")]
    Tls(String),
}

impl EmailConfig {
    /// Email from the settings: the SMTP URL, the recipients (comma-separated), the sender (default
    /// `hemostat@<SMTP host>`) and an extra CA file.
    pub fn parse(url: &str, to: &str, from: Option<&str>, ca_file: Option<PathBuf>) -> Result<Self, EmailError> {
        let parsed = reqwest::Url::parse(url.trim()).map_err(|e| EmailError::Url(e.to_string()))?;
        let plain_requested = parsed.query_pairs().any(|(k, v)| k == "tls" && v == "none");
        let (security, default_port) = match (parsed.scheme(), plain_requested) {
            ("smtp", false) => (SmtpSecurity::StartTls, 587),
            ("smtp", true) => (SmtpSecurity::None, 25),
            ("smtps", _) => (SmtpSecurity::Tls, 465),
            (scheme, _) => return Err(EmailError::Url(format!("the scheme must be smtp or smtps, not {scheme:?}"))),
        };
        let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or_else(|| EmailError::Url("no host".into()))?;
        let decode = |s: &str| percent_decode(s).map_err(|e| EmailError::Url(e.to_owned()));
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => None,
            (user, password) => Some((decode(user)?, decode(password.unwrap_or_default())?)),
        };
        let address = |setting, address: &str| {
            address
                .trim()
                .parse::<Mailbox>()
                .map_err(|_| EmailError::Address { setting, address: address.trim().into() })
        };
        let to = to
            .split(',')
            .filter(|a| !a.trim().is_empty())
            .map(|a| address("ALERT_EMAIL_TO", a))
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(EmailError::Address { setting: "ALERT_EMAIL_TO", address: String::new() });
        }
        let from = match from {
            Some(from) => address("ALERT_EMAIL_FROM", from)?,
            None => address("ALERT_EMAIL_FROM", &format!("HemoStat <hemostat@{host}>"))?,
        };
        Ok(EmailConfig {
            host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port: parsed.port().unwrap_or(default_port),
            security,
            credentials,
            ca_file,
            from,
            to,
        })
    }

    /// The SMTP client for this server (connections are opened when mail is sent, and pooled).
    pub fn mailer(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, EmailError> {
        let tls = || -> Result<TlsParameters, EmailError> {
            let mut builder = TlsParameters::builder(self.host.clone());
            if let Some(path) = &self.ca_file {
                let pem = std::fs::read(path)
                    .map_err(|e| EmailError::CaFile { path: path.clone(), problem: e.to_string() })?;
                let certificate = Certificate::from_pem(&pem)
                    .map_err(|e| EmailError::CaFile { path: path.clone(), problem: e.to_string() })?;
                builder = builder.add_root_certificate(certificate);
            }
            builder.build_rustls().map_err(|e| EmailError::Tls(e.to_string()))
        };
        let tls = match self.security {
            SmtpSecurity::StartTls => Tls::Required(tls()?),
            SmtpSecurity::Tls => Tls::Wrapper(tls()?),
            SmtpSecurity::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(10)));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(builder.build())
    }
}

/// Decodes `%XX` escapes (as in a URL's user and password).
fn percent_decode(text: &str) -> Result<String, &'static str> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok()).ok_or("a bad %-escape")?;
            bytes.push(u8::from_str_radix(hex, 16).map_err(|_| "a bad %-escape")?);
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 once decoded")
}

/// The email sink.
pub struct Email {
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    /// The sink, when email is configured.
    pub fn new(config: &AlertingConfig) -> Option<Self> {
        let email = config.email.as_ref()?;
        Some(Email { from: email.from.clone(), to: email.to.clone() })
    }

    fn message(&self, subject: &str, body: String) -> Option<Request> {
        let mut builder =
            lettre::Message::builder().from(self.from.clone()).subject(one_line(subject, MAX_SUBJECT_CHARS));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        match builder.header(ContentType::TEXT_PLAIN).body(body) {
            Ok(message) => Some(Request::Mail(Box::new(message))),
            Err(error) => {
                tracing::warn!(%error, "could not build the notification email");
                None
            }
        }
    }
}

impl Sink for Email {
    fn name(&self) -> &'static str {
        "email"
    }

    fn render(&self, message: &Message<Notification>) -> Vec<Request> {
        let (subject, body) = match message {
            Message::Single(n) => (
                format!("[HemoStat] {}", n.headline()),
                format!("{}\n\n{}", n.headline(), n.plain_text(MAX_REASON_CHARS)),
            ),
            Message::Burst(ns) => {
                let burst = Burst::of(ns, MAX_BURST_LINES, |n| {
                    format!(
                        "- {}  {}: {}",
                        n.time_rfc3339(),
                        one_line(&n.headline(), 300),
                        one_line(&n.record.reason, 200)
                    )
                });
                (format!("[{}]", burst.title), burst.lines.join("\n"))
            }
        };
        self.message(&subject, body).into_iter().collect()
    }

    fn classify(&self, reply: &Reply) -> Verdict {
        match reply.status {
            200..=399 => Verdict::Delivered,
            400..=499 => Verdict::Retry(None),
            _ => Verdict::Refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notification::tests::notification;
    use crate::events::{EventKind, Outcome};

    fn config(url: &str) -> Result<EmailConfig, EmailError> {
        EmailConfig::parse(url, "ops@example.com, Oncall <oncall@example.com>", None, None)
    }

    #[test]
    fn the_smtp_url_says_how_to_connect() {
        let starttls = config("smtp://alert%40example.com:p%40ss%3Aword@mail.example.com").unwrap();
        assert_eq!(
            (starttls.host.as_str(), starttls.port, starttls.security),
            ("mail.example.com", 587, SmtpSecurity::StartTls)
        );
        assert_eq!(starttls.credentials, Some(("alert@example.com".into(), "p@ss:word".into())));
        assert_eq!(starttls.from.to_string(), "HemoStat <hemostat@mail.example.com>");
        assert_eq!(starttls.to.len(), 2);
        assert!(!format!("{starttls:?}").contains("p@ss"), "the password is not in logs");
        let tls = config("smtps://mail.example.com").unwrap();
        assert_eq!((tls.port, tls.security, tls.credentials), (465, SmtpSecurity::Tls, None));
        let plain = config("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((plain.port, plain.security), (2525, SmtpSecurity::None));
        assert!(config("http://mail.example.com").unwrap_err().to_string().contains("smtp or smtps"));
        let bad = EmailConfig::parse("smtp://m.example.com", "ops@", None, None).unwrap_err();
        assert_eq!(bad.to_string(), "ALERT_EMAIL_TO: \"ops@\" is not an email address");
        let missing = EmailConfig::parse("smtp://m.example.com", "ops@x.com", None, Some("/nonexistent.pem".into()));
        assert!(missing.unwrap().mailer().unwrap_err().to_string().starts_with("SMTP_CA_FILE /nonexistent.pem"));
    }

    #[test]
    fn a_hostile_name_cannot_add_a_header() {
        let config =
            AlertingConfig { email: Some(config("smtp://mail.example.com").unwrap()), ..AlertingConfig::default() };
        let email = Email::new(&config).unwrap();
        let mut n = notification(EventKind::RemediationComplete, "web\r\nBcc: evil@example.com\r\n\r\nhi");
        n.record.outcome = Some(Outcome::Failed);
        let requests = email.render(&Message::Single(n));
        let Request::Mail(message) = &requests[0] else { panic!("not a mail") };
        let text = String::from_utf8(message.formatted()).unwrap();
        let (headers, body) = text.split_once("\r\n\r\n").unwrap();
        let headers = headers.replace("\r\n ", " ");
        assert!(!headers.lines().any(|line| line.to_ascii_lowercase().starts_with("bcc:")), "{headers}");
        assert_eq!(headers.matches("Subject:").count(), 1, "{headers}");
        assert!(
            headers.contains("Subject: [HemoStat] Restart of web  Bcc: evil@example.com    hi on host-a FAILED"),
            "{headers}"
        );
        assert!(
            body.contains("Host: host-a") && body.contains("Event: remediation_complete 1795000000000-0"),
            "{body}"
        );
        assert_eq!(email.classify(&Reply::status(250)), Verdict::Delivered);
        assert_eq!(email.classify(&Reply::status(451)), Verdict::Retry(None));
        assert_eq!(email.classify(&Reply::status(554)), Verdict::Refused);
    }
}
