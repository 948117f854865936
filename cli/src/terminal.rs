//! Text on its way to a terminal. Untrusted text (container names, reasons, labels, command output) is
//! printed with control characters, ANSI escapes and bidirectional overrides escaped, so it cannot move the
//! cursor, recolour the terminal or disguise what it says.

use std::io::Write;

/// Whether `c` must not reach a terminal as it is: C0/C1 controls (ESC starts every ANSI escape, U+009B
/// is a one-character CSI), DEL, line and paragraph separators, bidirectional controls, zero-width
/// characters and the byte order mark.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Text safe to print on a terminal: every unsafe character escaped (`\u{1b}`, `\n`, ...).
pub fn printable(text: &str) -> String {
    if !text.chars().any(is_unsafe) {
        return text.to_owned();
    }
    text.chars().flat_map(|c| if is_unsafe(c) { c.escape_default().collect::<Vec<_>>() } else { vec![c] }).collect()
}

/// A serialised JSON document made safe for a terminal without changing what it decodes to: unsafe
/// characters that serde_json leaves raw inside strings (DEL, C1 controls, bidirectional controls) become
/// `\uXXXX` escapes. Raw newlines are the pretty printer's own (inside strings they are already `\n`).
pub fn json_safe(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c != '\n' && is_unsafe(c) {
            // Every unsafe character is in the Basic Multilingual Plane: one escape, no surrogate pair.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes `text` to standard output and flushes it, so a reader of a pipe sees each line as it is made.
/// A closed pipe (`hemostat events | head`) comes back as [`std::io::ErrorKind::BrokenPipe`], which
/// `main` treats as a normal end.
pub fn emit(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("web\x1b[31m\nx"), "web\\u{1b}[31m\\nx");
        assert_eq!(printable("plain-name_1"), "plain-name_1");
        assert_eq!(printable("a\u{9b}31m"), "a\\u{9b}31m");
        assert_eq!(printable("evil\u{202E}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(printable("zero\u{200B}width"), "zero\\u{200b}width");
        assert_eq!(printable("ümlaut ✓ 漢字"), "ümlaut ✓ 漢字");
    }

    #[test]
    fn json_stays_json_and_decodes_to_the_same_text() {
        let value = serde_json::json!({"name": "a\u{1b}[2J\u{7f}\u{9b}\u{202E}b\nc"});
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let safe = json_safe(&pretty);
        assert!(!safe.chars().any(|c| c != '\n' && is_unsafe(c)), "{safe}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), value);
    }
}
