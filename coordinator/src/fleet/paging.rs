//! Pages of the fleet's sorted lists (nodes, containers): at most [`MAX_PAGE_SIZE`] items a page, resumed
//! after the last item of the previous page by an opaque token, so that a fleet of 100,000 containers is read
//! in messages of bounded size and a list that changed between pages skips or repeats nothing that stayed.

use super::FleetError;

/// The most items one page holds, and the page size when a request asks for none (0).
pub const MAX_PAGE_SIZE: usize = 1_000;

/// One page of a list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// The token for the next page; `None` on the last page.
    pub next_token: Option<String>,
}

/// The items a page holds when a request asks for `size` (0: [`MAX_PAGE_SIZE`]; never more than it).
pub fn page_size(size: u32) -> usize {
    match size as usize {
        0 => MAX_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// The sort key of the last item of the previous page, from its token (`None` for the first page). A token
/// that no page gave is an [`FleetError::Invalid`] naming the field.
pub fn resume_after(token: &str) -> Result<Option<Vec<String>>, FleetError> {
    match token {
        "" => Ok(None),
        token => serde_json::from_str(token)
            .map(Some)
            .map_err(|_| FleetError::Invalid("page_token: not a next_page_token this list gave".into())),
    }
}

/// The token of the page that follows the item of sort key `last`.
pub fn token_after(last: &[String]) -> String {
    serde_json::to_string(last).expect("strings serialize")
}

/// The page of `sorted` (ordered by `key`, ascending and unique) that starts after `token` (empty: from the
/// start) and holds at most `size` items (see [`page_size`]).
pub fn page_of<T>(
    sorted: Vec<T>,
    key: impl Fn(&T) -> Vec<String>,
    size: u32,
    token: &str,
) -> Result<Page<T>, FleetError> {
    let size = page_size(size);
    let start = match resume_after(token)? {
        None => 0,
        Some(after) => sorted.partition_point(|item| key(item) <= after),
    };
    let more = sorted.len().saturating_sub(start) > size;
    let items: Vec<T> = sorted.into_iter().skip(start).take(size).collect();
    let next_token = match (more, items.last()) {
        (true, Some(last)) => Some(token_after(&key(last))),
        _ => None,
    };
    Ok(Page { items, next_token })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i:05}")).collect()
    }

    /// A name's sort key.
    fn key() -> impl Fn(&String) -> Vec<String> {
        |s| vec![s.clone()]
    }

    #[test]
    fn pages_cover_the_list_once_in_order_and_end_without_a_token() {
        let all = names(2_345);
        let (mut seen, mut token) = (Vec::new(), String::new());
        loop {
            let page = page_of(all.clone(), key(), 0, &token).unwrap();
            assert!(page.items.len() <= MAX_PAGE_SIZE);
            seen.extend(page.items);
            match page.next_token {
                Some(next) => token = next,
                None => break,
            }
        }
        assert_eq!(seen, all);
    }

    #[test]
    fn a_size_is_capped_and_an_exact_fit_has_no_next_page() {
        let page = page_of(names(5_000), key(), 1_000_000, "").unwrap();
        assert_eq!(page.items.len(), MAX_PAGE_SIZE);
        let exact = page_of(names(3), key(), 3, "").unwrap();
        assert_eq!((exact.items.len(), exact.next_token), (3, None));
        let empty = page_of(Vec::<String>::new(), key(), 0, "").unwrap();
        assert_eq!((empty.items.len(), empty.next_token), (0, None));
    }

    #[test]
    fn a_list_that_changed_between_pages_resumes_after_the_last_item_seen() {
        let first = page_of(names(10), key(), 4, "").unwrap();
        // c00002 (already read) removed and c00003a (after the last read) added before the next page: nothing
        // read repeats, nothing that stayed is skipped, and the new one comes in its place.
        let mut changed = names(10);
        changed.remove(2);
        changed.insert(3, "c00003a".into());
        let second = page_of(changed, key(), 4, first.next_token.as_deref().unwrap()).unwrap();
        assert_eq!(second.items, ["c00003a", "c00004", "c00005", "c00006"]);
    }

    #[test]
    fn a_token_no_page_gave_is_refused_with_the_field_named() {
        for token in ["garbage", "{\"a\":1}", "[1,2]"] {
            match page_of(names(3), key(), 0, token) {
                Err(FleetError::Invalid(message)) => assert!(message.starts_with("page_token:"), "{message}"),
                other => panic!("{token}: {other:?}"),
            }
        }
    }
}
