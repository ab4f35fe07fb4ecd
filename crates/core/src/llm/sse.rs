//! An incremental server-sent-events decoder: bytes in, whole events out, whatever the chunking.
//!
//! It follows the WHATWG event-stream rules that matter for LLM streams: LF, CRLF and lone CR all
//! end a line (a CRLF may be split across two chunks); a line starting with `:` is a comment
//! (OpenRouter sends `: OPENROUTER PROCESSING` as a keep-alive); several `data:` lines of one event
//! are joined with `\n`; a blank line dispatches. Lines are kept as bytes until complete, so a
//! UTF-8 sequence split across chunks is decoded whole.

/// One decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// A `data:` event; `event` is the `event:` field, if the server sent one.
    Message { event: Option<String>, data: String },
    /// `data: [DONE]`, OpenAI's end-of-stream marker.
    Done,
    /// A comment line, without the leading `:` and one optional space.
    Comment(String),
}

#[derive(Debug, Default)]
pub struct SseDecoder {
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// The previous chunk ended with CR: a LF at the start of the next chunk belongs to it.
    after_cr: bool,
    /// Whether anything has been read yet (a UTF-8 BOM is only skipped at the very start).
    started: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes the next chunk of the body and returns the events it completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if !self.started {
                // Hold back a possible BOM until we know whether it is one.
                self.line.push(b);
                if BOM.starts_with(&self.line) {
                    if self.line.len() == BOM.len() {
                        self.line.clear();
                        self.started = true;
                    }
                    continue;
                }
                self.started = true;
                let held = std::mem::take(&mut self.line);
                for hb in held {
                    self.byte(hb, &mut out);
                }
                continue;
            }
            self.byte(b, &mut out);
        }
        out
    }

    /// Ends the stream. An unterminated last line and an event missing its closing blank line
    /// are still dispatched: servers that end with `data: [DONE]` and no newline are common, and
    /// a half-sent JSON chunk then fails to parse downstream, which is the right outcome.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.started && !self.line.is_empty() {
            // Fewer bytes than a BOM arrived and they were a BOM prefix: they are just text.
            self.started = true;
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut out);
        }
        self.dispatch(&mut out);
        self.after_cr = false;
        out
    }

    fn byte(&mut self, b: u8, out: &mut Vec<SseEvent>) {
        let after_cr = std::mem::replace(&mut self.after_cr, false);
        match b {
            b'\n' if after_cr => {} // second half of a CRLF
            b'\n' | b'\r' => {
                self.after_cr = b == b'\r';
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, out);
            }
            _ => self.line.push(b),
        }
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        let line = String::from_utf8_lossy(line);
        if let Some(comment) = line.strip_prefix(':') {
            out.push(SseEvent::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_string(),
            ));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            // `id` and `retry` only matter to browsers that reconnect; unknown fields are ignored
            // by the spec.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        let data = std::mem::take(&mut self.data);
        if data.trim() == "[DONE]" {
            out.push(SseEvent::Done);
        } else {
            out.push(SseEvent::Message { event, data });
        }
    }
}

/// Decodes a whole body at once (tests, and servers that answered without streaming).
pub fn decode_all(bytes: &[u8]) -> Vec<SseEvent> {
    let mut d = SseDecoder::new();
    let mut out = d.feed(bytes);
    out.extend(d.finish());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(data: &str) -> SseEvent {
        SseEvent::Message {
            event: None,
            data: data.to_string(),
        }
    }

    /// Every way of cutting `input` in two, and byte-by-byte, gives the same events.
    fn assert_chunking_invariant(input: &[u8]) -> Vec<SseEvent> {
        let whole = decode_all(input);
        for cut in 0..=input.len() {
            let mut d = SseDecoder::new();
            let mut got = d.feed(&input[..cut]);
            got.extend(d.feed(&input[cut..]));
            got.extend(d.finish());
            assert_eq!(got, whole, "split at byte {cut}");
        }
        let mut d = SseDecoder::new();
        let mut got = Vec::new();
        for b in input {
            got.extend(d.feed(std::slice::from_ref(b)));
        }
        got.extend(d.finish());
        assert_eq!(got, whole, "one byte at a time");
        whole
    }

    #[test]
    fn line_endings_comments_and_done() {
        let input = "\u{feff}: OPENROUTER PROCESSING\r\n\r\ndata: a\r\n\r\ndata: b\n\ndata: c\r\rdata: [DONE]\n\n";
        assert_eq!(
            assert_chunking_invariant(input.as_bytes()),
            vec![
                SseEvent::Comment("OPENROUTER PROCESSING".into()),
                msg("a"),
                msg("b"),
                msg("c"),
                SseEvent::Done
            ]
        );
    }

    #[test]
    fn multi_line_data_event_field_and_no_space() {
        let input = "event: error\ndata:{\"a\":\ndata: 1}\nid: 7\nretry: 10\n\n";
        assert_eq!(
            assert_chunking_invariant(input.as_bytes()),
            vec![SseEvent::Message {
                event: Some("error".into()),
                data: "{\"a\":\n1}".into()
            }]
        );
    }

    #[test]
    fn utf8_split_anywhere() {
        let input = "data: héllo 世界 🦀\n\n";
        assert_eq!(
            assert_chunking_invariant(input.as_bytes()),
            vec![msg("héllo 世界 🦀")]
        );
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing() {
        assert_eq!(
            assert_chunking_invariant(b"\n\n\r\n:x\n\n"),
            vec![SseEvent::Comment("x".into())]
        );
        assert_eq!(assert_chunking_invariant(b"event: ping\n\n"), vec![]);
    }

    #[test]
    fn unterminated_tail_is_dispatched_at_finish() {
        assert_eq!(
            assert_chunking_invariant(b"data: x\n\ndata: [DONE]"),
            vec![msg("x"), SseEvent::Done]
        );
        // A short body that merely starts like a BOM is text, not swallowed.
        assert_eq!(decode_all(b"\xEF"), vec![]);
        assert_eq!(decode_all(b"\xEFdata: x\n\n").len(), 0);
    }
}
