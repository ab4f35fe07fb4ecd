//! Which stored messages of earlier turns go back to the model: the history window.

use crate::llm::types::Message;

/// Rows of history the Worker loads for a new turn at most: the most recent ones. What fits the
/// model's window is decided by tokens (`agent::context`); this only bounds memory, which
/// compaction keeps far below it.
pub const HISTORY_ROWS: usize = 1_000;

/// Where a loaded tail of the history may start: at its first user or system message.
pub fn window_start<'a>(msgs: impl IntoIterator<Item = &'a Message>) -> usize {
    let mut n = 0;
    for m in msgs {
        if !matches!(m, Message::Tool { .. } | Message::Assistant { .. }) {
            return n;
        }
        n += 1;
    }
    n
}

/// Trims a loaded tail of the history so it never starts in the middle of a tool exchange: a
/// leading tool result or assistant message (whose tool calls or question were cut off by the
/// row limit) is dropped until the window starts with a user or system message.
pub fn window(mut msgs: Vec<Message>) -> Vec<Message> {
    let start = window_start(&msgs);
    msgs.drain(..start);
    msgs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Message {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_window_that_starts_mid_exchange_begins_at_the_next_user_message() {
        let msgs = vec![
            parse(json!({"role": "tool", "tool_call_id": "c1", "content": "ok"})),
            parse(json!({"role": "assistant", "content": "done"})),
            parse(json!({"role": "user", "content": "next"})),
            parse(json!({"role": "assistant", "content": "sure"})),
        ];
        let w = window(msgs);
        assert_eq!(w.len(), 2);
        assert!(matches!(w[0], Message::User { .. }));
    }

    #[test]
    fn window_start_is_the_first_person_or_system_message() {
        let msgs = vec![
            parse(json!({"role": "assistant", "content": "a"})),
            parse(json!({"role": "tool", "tool_call_id": "c1", "content": "ok"})),
            parse(json!({"role": "user", "content": "u"})),
        ];
        assert_eq!(window_start(&msgs), 2);
        assert_eq!(window_start(&msgs[2..]), 0);
        assert_eq!(window_start(&msgs[..2]), 2);
    }

    #[test]
    fn a_window_of_only_tool_traffic_is_empty_and_a_clean_one_is_kept_whole() {
        let dangling = vec![parse(
            json!({"role": "tool", "tool_call_id": "c1", "content": "ok"}),
        )];
        assert!(window(dangling).is_empty());
        let clean = vec![
            parse(json!({"role": "user", "content": "hi"})),
            parse(json!({"role": "assistant", "content": "hello"})),
        ];
        assert_eq!(window(clean.clone()), clean);
    }
}
