//! Making untrusted text (container and node names, reasons quoting logs and model output) safe in a
//! service's format. Slack has its own rules ([`sinks::slack::escape`](super::sinks::slack::escape)).
//!
//! Text is cut to a length *before* it is escaped, so no escape is cut in half; an escaped text is at most
//! twice as long, plus one.

/// A zero-width space: invisible, but it stops a client from reading what follows as a mention or a link.
pub const ZERO_WIDTH_SPACE: char = '\u{200B}';

/// Cuts `text` to `max_chars` (marking the cut with `…`), control characters other than newlines replaced
/// by spaces. For formats that show text as it is (plain-text email, ntfy, Gotify).
pub fn plain(text: &str, max_chars: usize) -> String {
    cut(text, max_chars).chars().map(|c| if c.is_control() && c != '\n' { ' ' } else { c }).collect()
}

/// [`plain`], on one line (newlines as spaces too).
pub fn one_line(text: &str, max_chars: usize) -> String {
    plain(text, max_chars).replace('\n', " ")
}

/// Makes untrusted text inert in Markdown (Discord, Teams' Adaptive Cards): [`plain`], then every character
/// Markdown gives a meaning backslash-escaped (no emphasis, heading, quote, list, code, link or HTML), a
/// zero-width space after every `@` (no `@everyone`, `@here` or `<@id>` mention) and inside every `://`
/// (no link appears).
pub fn markdown(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in plain(text, max_chars).chars() {
        match c {
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '#' | '-' | '+' | '[' | ']' | '(' | ')' | '!' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '@' => {
                out.push('@');
                out.push(ZERO_WIDTH_SPACE);
            }
            c => out.push(c),
        }
    }
    out.replace("://", &format!(":{ZERO_WIDTH_SPACE}//"))
}

/// `text` cut to `max_chars`, with `…` as its last character when cut.
fn cut(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_cut_and_its_controls_replaced() {
        assert_eq!(plain("a\r\nb\u{7}c", 100), "a \nb c");
        assert_eq!(plain("abcdef", 4), "abc…");
        assert_eq!(plain("abcd", 4), "abcd");
        assert_eq!(one_line("a\nb", 10), "a b");
    }

    #[test]
    fn markdown_cannot_format_mention_or_link() {
        let hostile = "@everyone **boom** [click](http://evil) <@123> # title\n> quote `code` ~~x~~ ||spoiler||";
        let safe = markdown(hostile, 500);
        assert!(!safe.contains("@everyone") && !safe.contains("@123"), "{safe}");
        assert!(!safe.contains("http://"), "{safe}");
        for token in ["**", "[click]", "](", "`code`", "~~", "||", "\n>"] {
            assert!(!safe.contains(token), "{token} survived in {safe}");
        }
        assert_eq!(markdown("a_b", 10), "a\\_b");
        assert_eq!(markdown("***", 2), "\\*…", "cut first, then escaped");
        let worst = markdown(&"*".repeat(1000), 100);
        assert!(worst.chars().count() <= 2 * 100 + 1);
    }
}
