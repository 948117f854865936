//! Bounds on what the node puts in a message for the coordinator, so that no message exceeds what the
//! coordinator accepts and none blocks the ones behind it. Text cut to its bound ends in a visible marker
//! saying how much was cut: `…[truncated 4.3 MB]`.

/// The longest marker: `…[truncated 1000.0 KB]`.
const MARKER_MAX: usize = 24;

/// The marker that ends text cut by `bytes` bytes: `…[truncated 4.3 MB]`.
pub fn marker(bytes: usize) -> String {
    format!("…[truncated {}]", human_bytes(bytes))
}

/// `bytes` in decimal units with one decimal: `512 B`, `1.5 KB`, `4.3 MB`.
pub fn human_bytes(bytes: usize) -> String {
    let b = bytes as f64;
    if bytes < 1000 {
        format!("{bytes} B")
    } else if b < 1e6 {
        format!("{:.1} KB", b / 1e3)
    } else if b < 1e9 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.1} GB", b / 1e9)
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary; returns how many bytes were cut.
pub fn cut_to(text: &mut String, max: usize) -> usize {
    if text.len() <= max {
        return 0;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    text.truncate(end);
    cut
}

/// Cuts `text` to at most `max` bytes, marker included, ending it with the marker when anything was cut;
/// returns how many bytes of the original were cut.
pub fn truncate_marked(text: &mut String, max: usize) -> usize {
    if text.len() <= max {
        return 0;
    }
    let original = text.len();
    let room = max.saturating_sub(MARKER_MAX);
    cut_to(text, room);
    let cut = original - text.len();
    text.push_str(&marker(cut));
    cut
}
