//! What Discord and Microsoft Teams accept, as their documentation states it, for the stand-in servers to
//! refuse what the real services would refuse (400), and for tests to check bodies against.
//!
//! - Discord's "Execute Webhook" and its embed limits: content at most 2000 characters; at most 10 embeds;
//!   an embed's title at most 256, description 4096, at most 25 fields each with a non-empty name of at most
//!   256 and a non-empty value of at most 1024, footer text 2048, author name 256, and at most 6000 in all
//!   the embeds' texts together; a colour is an integer from 0 to 0xFFFFFF; a username at most 80 and
//!   without "discord" or "clyde"; `allowed_mentions.parse` holds only `roles`, `users`, `everyone`.
//!   Lengths are counted in UTF-16 units, as Discord's JavaScript clients count them (stricter than
//!   characters).
//! - Teams' Workflows webhook: a `message` whose attachments are Adaptive Cards
//!   (`application/vnd.microsoft.card.adaptive`) of schema version 1.0 to 1.5 (the highest Teams renders),
//!   each element of a known type with its required properties (TextBlock `text`, FactSet `facts` of
//!   `title`/`value`, Container `items`, Action.OpenUrl `title` and an http(s) `url`), and at most 28 KB in
//!   all (Teams' limit for a message).

use serde_json::Value;

/// The problems Discord would report with this webhook body; empty if it takes it.
pub fn discord_problems(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let len = |v: &Value| v.as_str().map_or(0, |s| s.encode_utf16().count());
    let mut check = |ok: bool, problem: String| {
        if !ok {
            problems.push(problem);
        }
    };
    let embeds = body["embeds"].as_array().cloned().unwrap_or_default();
    check(
        body["content"].as_str().is_some_and(|c| !c.is_empty()) || !embeds.is_empty(),
        "a message needs content or embeds".into(),
    );
    check(len(&body["content"]) <= 2000, "content is longer than 2000".into());
    check(embeds.len() <= 10, format!("{} embeds, at most 10", embeds.len()));
    if let Some(username) = body["username"].as_str() {
        let lower = username.to_lowercase();
        check(len(&body["username"]) <= 80, "username longer than 80".into());
        check(!lower.contains("discord") && !lower.contains("clyde"), format!("username {username:?} is not allowed"));
    }
    for parse in body["allowed_mentions"]["parse"].as_array().cloned().unwrap_or_default() {
        check(
            matches!(parse.as_str(), Some("roles" | "users" | "everyone")),
            format!("allowed_mentions.parse {parse}"),
        );
    }
    let mut total = 0;
    for (i, embed) in embeds.iter().enumerate() {
        for (key, max) in [("title", 256), ("description", 4096)] {
            check(len(&embed[key]) <= max, format!("embeds[{i}].{key} is longer than {max}"));
            total += len(&embed[key]);
        }
        check(len(&embed["footer"]["text"]) <= 2048, format!("embeds[{i}].footer.text is longer than 2048"));
        check(len(&embed["author"]["name"]) <= 256, format!("embeds[{i}].author.name is longer than 256"));
        total += len(&embed["footer"]["text"]) + len(&embed["author"]["name"]);
        if let Some(colour) = embed.get("color") {
            check(
                colour.as_u64().is_some_and(|c| c <= 0xFF_FFFF),
                format!("embeds[{i}].color {colour} is not a colour"),
            );
        }
        if let Some(url) = embed.get("url") {
            check(url.as_str().is_some_and(is_http), format!("embeds[{i}].url {url} is not a URL"));
        }
        if let Some(time) = embed.get("timestamp") {
            let parses = time.as_str().is_some_and(|t| humantime::parse_rfc3339(t).is_ok());
            check(parses, format!("embeds[{i}].timestamp {time} is not ISO 8601"));
        }
        let fields = embed["fields"].as_array().cloned().unwrap_or_default();
        check(fields.len() <= 25, format!("embeds[{i}] has {} fields, at most 25", fields.len()));
        for (j, field) in fields.iter().enumerate() {
            let (name, value) = (len(&field["name"]), len(&field["value"]));
            check((1..=256).contains(&name), format!("embeds[{i}].fields[{j}].name must be 1 to 256 long"));
            check((1..=1024).contains(&value), format!("embeds[{i}].fields[{j}].value must be 1 to 1024 long"));
            total += name + value;
        }
    }
    check(total <= 6000, format!("the embeds hold {total} characters, at most 6000"));
    problems
}

/// The problems a Teams Workflows webhook would have with this body; empty if it takes it.
pub fn teams_problems(body: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if body.to_string().len() > 28 * 1024 {
        problems.push("the message is larger than 28 KB".into());
    }
    if body["type"] != "message" {
        problems.push(format!("type is {}, not \"message\"", body["type"]));
    }
    let attachments = body["attachments"].as_array().cloned().unwrap_or_default();
    if attachments.is_empty() {
        problems.push("no attachments".into());
    }
    for (i, attachment) in attachments.iter().enumerate() {
        if attachment["contentType"] != "application/vnd.microsoft.card.adaptive" {
            problems.push(format!(
                "attachments[{i}].contentType is {}: Workflows take Adaptive Cards only",
                attachment["contentType"]
            ));
        }
        let card = &attachment["content"];
        if card["type"] != "AdaptiveCard" {
            problems.push(format!("attachments[{i}].content.type is {}", card["type"]));
        }
        let version_ok = card["version"]
            .as_str()
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(major, minor)| major == "1" && minor.parse::<u8>().is_ok_and(|m| m <= 5));
        if !version_ok {
            problems.push(format!("attachments[{i}].content.version {} is not 1.0 to 1.5", card["version"]));
        }
        for element in card["body"].as_array().cloned().unwrap_or_default() {
            element_problems(&element, &mut problems);
        }
        for action in card["actions"].as_array().cloned().unwrap_or_default() {
            action_problems(&action, &mut problems);
        }
    }
    problems
}

fn element_problems(element: &Value, problems: &mut Vec<String>) {
    let string = |key: &str| element[key].as_str().is_some();
    match element["type"].as_str() {
        Some("TextBlock") if !string("text") => problems.push("a TextBlock without text".into()),
        Some("FactSet") => {
            let facts = element["facts"].as_array().cloned().unwrap_or_default();
            if facts.iter().any(|f| !f["title"].is_string() || !f["value"].is_string()) {
                problems.push("a FactSet fact needs a title and a value".into());
            }
        }
        Some("Container") => match element["items"].as_array() {
            Some(items) => items.iter().for_each(|item| element_problems(item, problems)),
            None => problems.push("a Container without items".into()),
        },
        Some("ActionSet") => {
            element["actions"].as_array().into_iter().flatten().for_each(|a| action_problems(a, problems));
        }
        Some("TextBlock" | "Image" | "ColumnSet" | "RichTextBlock" | "Table") => {}
        other => problems.push(format!("an element of unknown type {other:?}")),
    }
}

fn action_problems(action: &Value, problems: &mut Vec<String>) {
    match action["type"].as_str() {
        Some("Action.OpenUrl") => {
            if !action["title"].is_string() || !action["url"].as_str().is_some_and(is_http) {
                problems.push(format!("Action.OpenUrl needs a title and an http(s) url: {action}"));
            }
        }
        Some("Action.ShowCard" | "Action.ToggleVisibility" | "Action.Submit" | "Action.Execute") => {}
        other => problems.push(format!("an action of unknown type {other:?}")),
    }
}

fn is_http(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn discords_limits_are_enforced() {
        assert!(discord_problems(&json!({"content": "hi"})).is_empty());
        assert_eq!(discord_problems(&json!({})), ["a message needs content or embeds"]);
        let long_field = json!({"embeds": [{"fields": [{"name": "x", "value": "v".repeat(1025)}]}]});
        assert_eq!(discord_problems(&long_field), ["embeds[0].fields[0].value must be 1 to 1024 long"]);
        let too_much = json!({"embeds": [{"description": "d".repeat(4000)}, {"description": "d".repeat(4000)}]});
        assert_eq!(discord_problems(&too_much), ["the embeds hold 8000 characters, at most 6000"]);
        assert_eq!(discord_problems(&json!({"content": "x", "username": "My Discord bot"})).len(), 1);
        assert_eq!(discord_problems(&json!({"embeds": [{"title": "t", "color": "#ff0000"}]})).len(), 1);
    }

    #[test]
    fn teams_takes_adaptive_cards_only() {
        let card = |version: &str, body: Value| {
            json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                "content": {"type": "AdaptiveCard", "version": version, "body": body}}]})
        };
        assert!(teams_problems(&card("1.4", json!([{"type": "TextBlock", "text": "hi"}]))).is_empty());
        assert_eq!(teams_problems(&card("1.6", json!([]))).len(), 1, "above what Teams renders");
        assert_eq!(teams_problems(&card("1.4", json!([{"type": "TextBlock"}]))), ["a TextBlock without text"]);
        let message_card = json!({"@type": "MessageCard", "text": "old connector format"});
        assert_eq!(teams_problems(&message_card).len(), 2);
    }
}
