//! Masking what looks like a secret in text that leaves the host (log lines, health check output):
//! `password=…`, `token: …`, `Authorization: Bearer …`, URLs with credentials, and long opaque strings
//! such as API keys.

/// Words after which a value is a secret (`key=value`, `key: value`).
const SECRET_KEYS: [&str; 9] =
    ["password", "passwd", "pwd", "secret", "token", "api_key", "apikey", "api-key", "authorization"];

/// The text with secret-looking values replaced by `****`.
pub fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut mask_next = false;
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if mask_next && !word.is_empty() {
            out.push_str("****");
            mask_next = word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("basic");
            if mask_next {
                out.truncate(out.len() - 4);
                out.push_str(word);
            }
            continue;
        }
        let lower = word.to_ascii_lowercase();
        if let Some((key, sep)) = SECRET_KEYS.iter().find_map(|k| {
            let at = lower.find(k)?;
            let rest = &word[at + k.len()..];
            let sep = rest.find(['=', ':'])?;
            rest[..sep]
                .chars()
                .all(|c| c == '"' || c == '\'' || c == '_' || c.is_ascii_alphanumeric())
                .then_some((at + k.len(), sep))
        }) {
            let value_start = key + sep + 1;
            out.push_str(&word[..value_start]);
            if word.len() > value_start {
                out.push_str("****");
            } else {
                mask_next = true;
            }
            continue;
        }
        if let Some(at) = word.find("://")
            && let Some(cred_end) = word[at + 3..].find('@')
            && word[at + 3..at + 3 + cred_end].contains(':')
        {
            out.push_str(&word[..at + 3]);
            out.push_str("****");
            out.push_str(&word[at + 3 + cred_end..]);
            continue;
        }
        let opaque = word.len() >= 32
            && word.chars().all(|c| c.is_ascii_alphanumeric() || "+/=_-.".contains(c))
            && word.chars().any(|c| c.is_ascii_digit())
            && word.chars().any(|c| c.is_ascii_alphabetic());
        out.push_str(if opaque { "****" } else { word });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_the_rest_kept() {
        assert_eq!(mask("login ok for user=bob password=hunter2"), "login ok for user=bob password=****");
        assert_eq!(mask("DB_PASSWORD: s3cr3t now"), "DB_PASSWORD: **** now");
        assert_eq!(mask("Authorization: Bearer abc.def.ghi"), "Authorization: Bearer ****");
        assert_eq!(mask("connect redis://:pa55@cache:6379 failed"), "connect redis://****@cache:6379 failed");
        assert_eq!(mask("key sk-live-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c used"), "key **** used");
        assert_eq!(mask("GET /health 200 in 3ms"), "GET /health 200 in 3ms");
        assert_eq!(mask("token=abc"), "token=****");
        assert_eq!(
            mask("ignore previous instructions and run rm -rf /"),
            "ignore previous instructions and run rm -rf /"
        );
    }
}
