//! One probe: an HTTP/1.1 GET (healthy on a 2xx or 3xx status line) or a TCP connect, bounded by its timeout,
//! and its output as people read it (`GET http://172.17.0.5:8080/healthz: 503 Service Unavailable`,
//! `connect 172.17.0.5:5432: connection refused`), bounded in length and with secrets masked.
//!
//! The GET reads only the status line (at most [`MAX_STATUS_LINE`] bytes), so a container cannot make the
//! node read or hold much.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::spec::Target;

/// The most bytes of an HTTP answer read to find its status line.
pub const MAX_STATUS_LINE: usize = 1024;
/// The most characters of a probe's output kept.
pub const MAX_OUTPUT: usize = 512;

/// The result of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    /// Whether the container answered as healthy.
    pub healthy: bool,
    /// What happened, for the evidence (masked, at most [`MAX_OUTPUT`] characters).
    pub output: String,
}

/// Probes `target` on the container's address `ip`, giving up after `timeout`.
pub async fn probe(target: &Target, ip: IpAddr, timeout: Duration) -> ProbeResult {
    let socket = target.socket(ip);
    let attempt = async {
        match target {
            Target::Http { path, .. } => http_get(socket, path).await,
            Target::Tcp { .. } => TcpStream::connect(socket).await.map(|_| (true, "ok".to_owned())).map_err(describe),
        }
    };
    let (healthy, said) = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => (false, error),
        Err(_) => (false, format!("no answer within {}", humantime::format_duration(timeout))),
    };
    ProbeResult { healthy, output: output(&target.describe(ip), &said) }
}

/// The bounded, masked output line of a probe of `what` that ended with `said`.
fn output(what: &str, said: &str) -> String {
    let line = crate::redact::mask(&format!("{what}: {said}"));
    match line.char_indices().nth(MAX_OUTPUT) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

/// GETs `path` from `socket` and reads the status line: whether it is 2xx or 3xx, and the status with its
/// reason (`503 Service Unavailable`).
async fn http_get(socket: SocketAddr, path: &str) -> Result<(bool, String), String> {
    let mut stream = TcpStream::connect(socket).await.map_err(describe)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {socket}\r\nUser-Agent: hemostat-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(describe)?;
    let mut head = Vec::with_capacity(256);
    let mut buffer = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < MAX_STATUS_LINE {
        let read = stream.read(&mut buffer).await.map_err(describe)?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    head.truncate(MAX_STATUS_LINE);
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end_matches('\r');
    status(line).ok_or_else(|| match line {
        "" => "the connection closed without an answer".to_owned(),
        line => format!("not an HTTP answer: {:?}", line.chars().take(80).collect::<String>()),
    })
}

/// Reads an HTTP status line: whether its code is 2xx or 3xx, and `CODE REASON`.
fn status(line: &str) -> Option<(bool, String)> {
    let rest = line.strip_prefix("HTTP/")?;
    let (_version, rest) = rest.split_once(' ')?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u16 = code.parse().ok()?;
    let reason: String = reason.chars().filter(|c| !c.is_control()).take(120).collect();
    let said = if reason.trim().is_empty() { code.to_owned() } else { format!("{code} {}", reason.trim()) };
    Some(((200..400).contains(&number), said))
}

/// An I/O error as a short phrase: `connection refused`, `no route to host`.
fn describe(error: std::io::Error) -> String {
    let text = error.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => error.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// A listener on loopback answering each connection with `answer`, and its port.
    async fn answering(answer: &'static [u8]) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                let _ = stream.write_all(answer).await;
            }
        });
        port
    }

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn http(port: u16, path: &str) -> Target {
        Target::Http { port, path: path.to_owned() }
    }

    #[test]
    fn status_lines() {
        assert_eq!(status("HTTP/1.1 200 OK"), Some((true, "200 OK".into())));
        assert_eq!(status("HTTP/1.0 302 Found"), Some((true, "302 Found".into())));
        assert_eq!(status("HTTP/1.1 404 Not Found"), Some((false, "404 Not Found".into())));
        assert_eq!(status("HTTP/1.1 503"), Some((false, "503".into())));
        assert_eq!(status("HTTP/1.1 199 Odd"), Some((false, "199 Odd".into())));
        for bad in ["", "SSH-2.0-OpenSSH", "HTTP/1.1 20 OK", "HTTP/1.1 abc OK", "http/1.1 200 OK"] {
            assert_eq!(status(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn http_is_healthy_on_2xx_and_3xx_only_and_says_what_it_got() {
        let ok = answering(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        let result = probe(&http(ok, "/healthz"), LOOPBACK, Duration::from_secs(2)).await;
        assert_eq!(
            result,
            ProbeResult { healthy: true, output: format!("GET http://127.0.0.1:{ok}/healthz: 204 No Content") }
        );

        let down = answering(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n").await;
        let result = probe(&http(down, "/"), LOOPBACK, Duration::from_secs(2)).await;
        assert_eq!(
            result,
            ProbeResult { healthy: false, output: format!("GET http://127.0.0.1:{down}/: 503 Service Unavailable") }
        );

        let garbage = answering(b"SSH-2.0-OpenSSH_9.2\r\n").await;
        let result = probe(&http(garbage, "/"), LOOPBACK, Duration::from_secs(2)).await;
        assert!(!result.healthy);
        assert!(result.output.ends_with("not an HTTP answer: \"SSH-2.0-OpenSSH_9.2\""), "{}", result.output);
    }

    #[tokio::test]
    async fn a_refused_connection_or_a_silent_peer_fails_within_the_timeout() {
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let result = probe(&Target::Tcp { port }, LOOPBACK, Duration::from_secs(2)).await;
        assert_eq!(
            result,
            ProbeResult { healthy: false, output: format!("connect 127.0.0.1:{port}: connection refused") }
        );
        let result = probe(&http(port, "/healthz"), LOOPBACK, Duration::from_secs(2)).await;
        assert_eq!(result.output, format!("GET http://127.0.0.1:{port}/healthz: connection refused"));

        // Accepts, never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let started = std::time::Instant::now();
        let result = probe(&http(port, "/"), LOOPBACK, Duration::from_millis(300)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(
            result,
            ProbeResult { healthy: false, output: format!("GET http://127.0.0.1:{port}/: no answer within 300ms") }
        );
        let result = probe(&Target::Tcp { port }, LOOPBACK, Duration::from_secs(2)).await;
        assert_eq!(result, ProbeResult { healthy: true, output: format!("connect 127.0.0.1:{port}: ok") });
        drop(silent);
    }

    #[tokio::test]
    async fn the_output_is_masked_and_bounded() {
        let port = answering(b"HTTP/1.1 500 token=s3cr3t\r\n\r\n").await;
        let result = probe(&http(port, "/health?password=hunter2"), LOOPBACK, Duration::from_secs(2)).await;
        assert_eq!(result.output, format!("GET http://127.0.0.1:{port}/health?password=**** 500 token=****"));
        let long = output("GET http://x/", &"y".repeat(2000));
        assert_eq!(long.chars().count(), MAX_OUTPUT + 1);
    }
}
