//! `POST /chat/stream`'s filter: which events of the project's socket belong to the caller's
//! own turn, so that an earlier, still-running turn's events are not relayed as theirs.

use serde_json::Value;

/// Follows one caller's message through the project's event stream.
pub struct TurnRelay {
    /// The text the caller sent: their turn is the first `turn_started` carrying it.
    text: String,
    turn: Option<u64>,
}

/// An event to pass on to the caller.
#[derive(Debug, PartialEq, Eq)]
pub struct Relayed {
    /// The event's `type`, used as the SSE event name.
    pub event_type: String,
    /// This is the caller's `turn_finished`: the stream ends after it.
    pub last: bool,
}

impl TurnRelay {
    pub fn new(text: impl Into<String>) -> TurnRelay {
        TurnRelay {
            text: text.into(),
            turn: None,
        }
    }

    /// Decides for one socket frame (the event's JSON): `Some` when it is relayed.
    pub fn accept(&mut self, frame: &str) -> Option<Relayed> {
        let v: Value = serde_json::from_str(frame).ok()?;
        let ty = v["type"].as_str().unwrap_or("").to_string();
        if ty == "turn_started" && self.turn.is_none() && v["text"] == self.text.as_str() {
            self.turn = v["turn_id"].as_u64();
        }
        let mine = self.turn.is_some() && v["turn_id"].as_u64() == self.turn;
        // Queue positions are news to the caller too, and so is the checkpoint their turn
        // made (checkpoints carry no turn id).
        let relay = mine || ty == "queued" || (ty == "checkpoint_created" && self.turn.is_some());
        relay.then(|| Relayed {
            last: mine && ty == "turn_finished",
            event_type: ty,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(v: Value) -> String {
        v.to_string()
    }

    #[test]
    fn only_the_callers_turn_is_relayed_and_its_finish_is_last() {
        let mut r = TurnRelay::new("build a todo app");
        // An earlier turn, still running when the caller joined.
        assert_eq!(
            r.accept(&frame(
                json!({"seq": 1, "type": "assistant_delta", "turn_id": 1, "text": "x"})
            )),
            None
        );
        let queued = r.accept(&frame(
            json!({"seq": 2, "type": "queued", "text": "build a todo app", "position": 1}),
        ));
        assert_eq!(queued.map(|q| q.last), Some(false));
        assert_eq!(
            r.accept(&frame(
                json!({"seq": 3, "type": "checkpoint_created", "checkpoint": {}, "diff": {}})
            )),
            None,
            "a checkpoint before the caller's turn started is not theirs"
        );
        assert_eq!(
            r.accept(&frame(
                json!({"seq": 4, "type": "turn_finished", "turn_id": 1})
            )),
            None
        );
        let started = r
            .accept(&frame(json!({"seq": 5, "type": "turn_started", "turn_id": 2, "text": "build a todo app", "model": "m"})))
            .unwrap();
        assert_eq!(started.event_type, "turn_started");
        assert!(!started.last);
        assert!(r
            .accept(&frame(
                json!({"seq": 6, "type": "assistant_delta", "turn_id": 2, "text": "ok"})
            ))
            .is_some());
        assert!(r
            .accept(&frame(
                json!({"seq": 7, "type": "checkpoint_created", "checkpoint": {}, "diff": {}})
            ))
            .is_some());
        let fin = r
            .accept(&frame(
                json!({"seq": 8, "type": "turn_finished", "turn_id": 2}),
            ))
            .unwrap();
        assert!(fin.last);
    }

    #[test]
    fn a_turn_with_other_text_and_garbage_frames_are_not_relayed() {
        let mut r = TurnRelay::new("mine");
        assert_eq!(
            r.accept(&frame(
                json!({"type": "turn_started", "turn_id": 3, "text": "theirs"})
            )),
            None
        );
        assert_eq!(r.accept("not json"), None);
        assert_eq!(
            r.accept(&frame(json!({"type": "turn_finished", "turn_id": 3}))),
            None
        );
    }
}
