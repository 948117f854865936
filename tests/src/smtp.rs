//! A small real SMTP server on loopback, for the email sink: the dialogue a client has with a submission
//! server (RFC 5321 with EHLO, STARTTLS per RFC 3207 using a test PKI certificate, AUTH PLAIN and LOGIN
//! per RFC 4954 over TLS only, MAIL, RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT). It records every
//! message it is given, and fails the next ones with a reply code when told (451: try again; 554: refused).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hemostat_pki::TlsFiles;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// One message the server was given.
#[derive(Clone, Debug)]
pub struct Mail {
    /// When its data ended.
    pub at: Instant,
    /// The reply code it got (250 delivered, else the scripted failure).
    pub status: u16,
    /// `MAIL FROM`.
    pub from: String,
    /// Each `RCPT TO`.
    pub to: Vec<String>,
    /// The message as sent (headers and body), dots unstuffed.
    pub data: String,
    /// Whether the session was under TLS.
    pub tls: bool,
    /// Who authenticated, if anyone.
    pub user: Option<String>,
}

#[derive(Default)]
struct State {
    mails: Mutex<Vec<Mail>>,
    failures: Mutex<VecDeque<u16>>,
    tls: Option<TlsAcceptor>,
    credentials: Option<(String, String)>,
}

/// The server; stopped on drop.
pub struct SmtpServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl SmtpServer {
    /// Starts a server offering STARTTLS with `tls` (a server certificate, e.g. the test PKI's
    /// coordinator's, valid for localhost) and requiring `credentials` (user, password), when given.
    pub async fn start(tls: Option<&TlsFiles>, credentials: Option<(&str, &str)>) -> Self {
        let tls = tls.map(|files| {
            let material = files.load().expect("the server certificate loads");
            let config = rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(material.cert_chain(), material.private_key())
                .expect("a TLS server configuration");
            TlsAcceptor::from(Arc::new(config))
        });
        let credentials = credentials.map(|(u, p)| (u.to_owned(), p.to_owned()));
        let state = Arc::new(State { tls, credentials, ..State::default() });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(session(stream, state.clone()));
                }
            }
        });
        SmtpServer { addr, state, task }
    }

    /// The port it listens on (on 127.0.0.1; connect as `localhost` for the certificate's name).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answers the DATA of the next messages with these codes, in order, then 250 again.
    pub fn fail_next(&self, codes: impl IntoIterator<Item = u16>) {
        self.state.failures.lock().unwrap().extend(codes);
    }

    /// Every message it was given, delivered or not.
    pub fn mails(&self) -> Vec<Mail> {
        self.state.mails.lock().unwrap().clone()
    }

    /// The messages it took (250).
    pub fn delivered(&self) -> Vec<Mail> {
        self.mails().into_iter().filter(|m| m.status == 250).collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one line (without its CRLF) from `stream`, keeping what follows in `pending`.
async fn line(stream: &mut Pin<Box<dyn Stream>>, pending: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
            let line = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..end + 2);
            return Some(line);
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        pending.extend_from_slice(&chunk[..n]);
    }
}

async fn reply(stream: &mut Pin<Box<dyn Stream>>, text: &str) -> Option<()> {
    stream.write_all(text.as_bytes()).await.ok()?;
    stream.flush().await.ok()
}

/// The user a SASL PLAIN response (`\0user\0password`, base64) names, if its password is right.
fn plain_user(response: &str, credentials: &(String, String)) -> Option<String> {
    let decoded = STANDARD.decode(response.trim()).ok()?;
    let mut parts = decoded.split(|b| *b == 0).map(|p| String::from_utf8_lossy(p).into_owned());
    let (_authzid, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    (user == credentials.0 && password == credentials.1).then_some(user)
}

fn decode(text: &str) -> String {
    String::from_utf8_lossy(&STANDARD.decode(text.trim()).unwrap_or_default()).into_owned()
}

async fn session(stream: TcpStream, state: Arc<State>) {
    let mut stream: Pin<Box<dyn Stream>> = Box::pin(stream);
    let (mut pending, mut tls, mut user) = (Vec::new(), false, None::<String>);
    let (mut from, mut to) = (String::new(), Vec::new());
    if reply(&mut stream, "220 localhost HemoStat test SMTP\r\n").await.is_none() {
        return;
    }
    while let Some(command) = line(&mut stream, &mut pending).await {
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") {
            let mut lines = vec!["250-localhost", "250-8BITMIME", "250-PIPELINING"];
            if state.tls.is_some() && !tls {
                lines.push("250-STARTTLS");
            }
            if state.credentials.is_some() && tls {
                lines.push("250-AUTH PLAIN LOGIN");
            }
            lines.push("250 SMTPUTF8");
            lines.join("\r\n") + "\r\n"
        } else if upper.starts_with("HELO") || upper == "NOOP" {
            "250 Ok\r\n".into()
        } else if upper == "STARTTLS" && !tls && state.tls.is_some() {
            if reply(&mut stream, "220 Ready to start TLS\r\n").await.is_none() {
                return;
            }
            let acceptor = state.tls.clone().expect("checked");
            match acceptor.accept(stream).await {
                Ok(secured) => {
                    stream = Box::pin(secured);
                    (tls, user, pending) = (true, None, Vec::new());
                    continue;
                }
                Err(_) => return,
            }
        } else if upper.starts_with("AUTH") && tls && state.credentials.is_some() {
            let credentials = state.credentials.as_ref().expect("checked");
            let words: Vec<&str> = command.split_whitespace().collect();
            let authenticated = match words.get(1).map(|m| m.to_ascii_uppercase()).as_deref() {
                Some("PLAIN") => {
                    let response = match words.get(2) {
                        Some(response) => (*response).to_owned(),
                        None => {
                            reply(&mut stream, "334 \r\n").await;
                            line(&mut stream, &mut pending).await.unwrap_or_default()
                        }
                    };
                    plain_user(&response, credentials)
                }
                Some("LOGIN") => {
                    reply(&mut stream, "334 VXNlcm5hbWU6\r\n").await;
                    let name = decode(&line(&mut stream, &mut pending).await.unwrap_or_default());
                    reply(&mut stream, "334 UGFzc3dvcmQ6\r\n").await;
                    let password = decode(&line(&mut stream, &mut pending).await.unwrap_or_default());
                    (name == credentials.0 && password == credentials.1).then_some(name)
                }
                _ => None,
            };
            match authenticated {
                Some(name) => {
                    user = Some(name);
                    "235 Authentication succeeded\r\n".into()
                }
                None => "535 Authentication credentials invalid\r\n".into(),
            }
        } else if upper.starts_with("MAIL FROM:") {
            if state.credentials.is_some() && user.is_none() {
                "530 Authentication required\r\n".into()
            } else if state.tls.is_some() && !tls {
                "530 Must issue a STARTTLS command first\r\n".into()
            } else {
                (from, to) = (command[10..].trim().to_owned(), Vec::new());
                "250 Ok\r\n".into()
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(command[8..].trim().to_owned());
            "250 Ok\r\n".into()
        } else if upper == "DATA" {
            if reply(&mut stream, "354 End data with <CR><LF>.<CR><LF>\r\n").await.is_none() {
                return;
            }
            let mut data = Vec::new();
            while let Some(text) = line(&mut stream, &mut pending).await {
                if text == "." {
                    break;
                }
                data.push(text.strip_prefix('.').map(str::to_owned).unwrap_or(text));
            }
            let status = state.failures.lock().unwrap().pop_front().unwrap_or(250);
            state.mails.lock().unwrap().push(Mail {
                at: Instant::now(),
                status,
                from: std::mem::take(&mut from),
                to: std::mem::take(&mut to),
                data: data.join("\r\n"),
                tls,
                user: user.clone(),
            });
            match status {
                250 => "250 Ok: queued\r\n".into(),
                code if code < 500 => format!("{code} Try again later\r\n"),
                code => format!("{code} Transaction failed\r\n"),
            }
        } else if upper == "RSET" {
            (from, to) = (String::new(), Vec::new());
            "250 Ok\r\n".into()
        } else if upper == "QUIT" {
            reply(&mut stream, "221 Bye\r\n").await;
            return;
        } else {
            "502 Command not implemented\r\n".into()
        };
        if reply(&mut stream, &answer).await.is_none() {
            return;
        }
    }
}
