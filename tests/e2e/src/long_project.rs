//! The long project: a scripted 30-turn build (each turn writes a ~6 KB component, reads the
//! previous one back and answers), driven through the real stack. Shared by
//! `tests/long_project.rs` and the context benchmark.

use crate::llm::{Reply, ScriptedLlm};
use crate::ws::ProjectSocket;
use anyhow::{bail, Result};
use serde_json::{json, Value};

/// A React component of about `bytes` bytes, different for every `k`.
pub fn component(k: usize, bytes: usize) -> String {
    let mut s = format!(
        "import {{ useState }} from \"react\";\n\n/** Component {k} of the long project. */\nexport function Panel{k}() {{\n  const [open, setOpen] = useState(false);\n  return (\n    <section className=\"panel-{k}\">\n"
    );
    let mut i = 0;
    while s.len() < bytes {
        s.push_str(&format!(
            "      <div className=\"row row-{i}\" onClick={{() => setOpen(!open)}}>item {i} of panel {k}: {{open ? \"open\" : \"closed\"}}</div>\n"
        ));
        i += 1;
    }
    s.push_str("    </section>\n  );\n}\n");
    s
}

/// Queues turn `k`'s three model steps.
pub fn script_turn(llm: &ScriptedLlm, k: usize) {
    llm.push(
        Reply::tool_calls(
            Some(&format!("Adding panel {k}.")),
            &[(
                "write_file",
                json!({"path": format!("src/Panel{k}.tsx"), "content": component(k, 6_000)}),
            )],
        )
        .measured(),
    );
    let prev = if k > 1 { k - 1 } else { 1 };
    llm.push(
        Reply::tool_calls(
            None,
            &[("read_file", json!({"path": format!("src/Panel{prev}.tsx")}))],
        )
        .measured(),
    );
    llm.push(Reply::text(&format!("Panel {k} is in src/Panel{k}.tsx.")).measured());
}

/// A person's request for panel `k`: a paragraph of spec, as people write them (requests are
/// never stubbed, so they are what makes a long project need compaction).
pub fn request(k: usize) -> String {
    let mut s = format!("Now add panel {k}. ");
    let mut i = 0;
    while s.len() < 1_500 {
        s.push_str(&format!(
            "Row {i} of panel {k} shows the item's title, its owner, its due date and a toggle; clicking the row opens it, and the panel keeps the open rows when the page reloads. "
        ));
        i += 1;
    }
    s
}

/// The first request of the project (kept verbatim through every compaction).
pub const FIRST_REQUEST: &str = "Build a dashboard app made of panels; start with panel 1.";

/// Runs turns `1..=turns` on `model` and returns each turn's `turn_finished` event.
pub async fn run(
    llm: &ScriptedLlm,
    ws: &mut ProjectSocket,
    model: &str,
    turns: usize,
) -> Result<Vec<Value>> {
    let mut finished = Vec::new();
    for k in 1..=turns {
        script_turn(llm, k);
        let text = if k == 1 {
            FIRST_REQUEST.to_string()
        } else {
            request(k)
        };
        ws.send(&json!({"type": "user_message", "text": text, "model": model}))
            .await?;
        let (fin, _) = ws.until("turn_finished").await?;
        if fin["end"] != "done" {
            bail!("turn {k} ended {}: {}", fin["end"], fin["message"]);
        }
        finished.push(fin);
    }
    Ok(finished)
}
