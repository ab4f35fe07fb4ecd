//! Verification reports: trims the output of failed checks to what a model needs (the first
//! errors, with file and line) and phrases the message that starts a fix round.

/// One failed signal: a check command, a crashed dev server, a failing health route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub name: String,
    pub output: String,
}

/// Lines that usually carry the cause: errors, tracebacks, failed tests, `file:line` locations.
fn is_relevant(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    l.contains("error")
        || l.contains("traceback")
        || l.contains("failed")
        || l.contains("exception")
        || l.contains("cannot find")
        || l.contains("not found")
        || l.contains("no module named")
        || l.trim_start().starts_with("file \"")
        || has_location(line)
}

/// `src/App.tsx(12,5)`, `app/main.py:3`, `src/x.ts:4:7`.
fn has_location(line: &str) -> bool {
    let exts = [
        ".ts", ".tsx", ".js", ".jsx", ".py", ".css", ".json", ".html",
    ];
    exts.iter().any(|e| {
        line.find(e).is_some_and(|i| {
            let rest = &line[i + e.len()..];
            rest.starts_with(':') && rest[1..].starts_with(|c: char| c.is_ascii_digit())
                || rest.starts_with('(') && rest[1..].starts_with(|c: char| c.is_ascii_digit())
        })
    })
}

/// The first `max_lines` relevant lines with one line of context after each (tracebacks put the
/// message after the location), or the tail of the output when nothing looks like an error.
pub fn trim_output(output: &str, max_lines: usize) -> String {
    let lines: Vec<&str> = output.lines().collect();
    let mut keep = vec![false; lines.len()];
    let mut n = 0;
    for (i, l) in lines.iter().enumerate() {
        if n >= max_lines {
            break;
        }
        if is_relevant(l) {
            keep[i] = true;
            if i + 1 < lines.len() {
                keep[i + 1] = true;
            }
            n += 1;
        }
    }
    let picked: Vec<&str> = lines
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(l, _)| *l)
        .collect();
    let text = if picked.is_empty() {
        lines[lines.len().saturating_sub(max_lines)..].join("\n")
    } else {
        picked.join("\n")
    };
    text.chars().take(4_000).collect()
}

/// One report from the preview page's capture script (see the VM API's `browser-reports`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct BrowserReport {
    pub kind: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub line: u32,
    #[serde(default)]
    pub column: u32,
    #[serde(default)]
    pub stack: String,
    #[serde(default)]
    pub url: String,
}

/// The page's runtime errors as the model should read them: each distinct message once (React
/// logs an error more than once), with where it happened and the top of its stack, at most 8.
pub fn browser_failure(reports: &[BrowserReport]) -> Option<Failure> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = String::new();
    let mut n = 0;
    for r in reports {
        let first_line = r.message.lines().next().unwrap_or("").trim().to_string();
        if !seen.insert((r.kind.clone(), first_line)) {
            continue;
        }
        n += 1;
        if n > 8 {
            continue;
        }
        out.push_str(&format!("[{}] {}", r.kind, r.message.trim()));
        if !r.source.is_empty() {
            // Show the path inside the project, not the preview host.
            let src = r
                .source
                .split_once("://")
                .and_then(|(_, rest)| rest.split_once('/'))
                .map(|(_, p)| format!("/{p}"))
                .unwrap_or_else(|| r.source.clone());
            out.push_str(&format!(" (at {src}:{}:{})", r.line, r.column));
        }
        if !r.url.is_empty() {
            out.push_str(&format!(" on page {}", r.url));
        }
        out.push('\n');
        for l in r.stack.lines().skip(1).take(5) {
            out.push_str(&format!("    {}\n", l.trim()));
        }
    }
    if n == 0 {
        return None;
    }
    if n > 8 {
        out.push_str(&format!("… and {} more\n", n - 8));
    }
    Some(Failure {
        name: format!(
            "browser: {n} runtime error{} in the preview page",
            if n == 1 { "" } else { "s" }
        ),
        output: out.chars().take(4_000).collect(),
    })
}

/// What the model reads at the start of a fix round.
pub fn fix_request(failures: &[Failure], round: u32, max_rounds: u32) -> String {
    let mut s = format!(
        "The platform verified your changes and found {} problem{} (fix round {round} of {max_rounds}). \
         Read each error, fix its cause in the file it names, then finish with a short summary.\n",
        failures.len(),
        if failures.len() == 1 { "" } else { "s" }
    );
    for f in failures {
        s.push_str(&format!(
            "\n### {}\n```\n{}\n```\n",
            f.name,
            f.output.trim()
        ));
    }
    s
}

/// What people see while verification runs.
pub fn status_line(failures: &[Failure]) -> String {
    match failures.len() {
        0 => "app is running".to_string(),
        1 => "found 1 error, fixing".to_string(),
        n => format!("found {n} errors, fixing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_traceback_cause() {
        let out = "collected 3 items\n\nImportError while loading conftest\nTraceback (most recent call last):\n  File \"/project/app/main.py\", line 4, in <module>\n    from app.helpers import slugify\nModuleNotFoundError: No module named 'app.helpers'\n1 error in 0.2s\n";
        let t = trim_output(out, 10);
        assert!(t.contains("app/main.py\", line 4"), "{t}");
        assert!(t.contains("No module named 'app.helpers'"), "{t}");
        assert!(!t.contains("collected 3 items"), "{t}");
    }

    #[test]
    fn typescript_locations_and_fallback_tail() {
        let out = "> tsc --noEmit\nsrc/App.tsx(12,5): error TS2304: Cannot find name 'Todo'.\nsrc/api.ts:3:1 - warning\n";
        let t = trim_output(out, 10);
        assert!(t.starts_with("src/App.tsx(12,5)"), "{t}");
        assert_eq!(trim_output("a\nb\nc\nd", 2), "c\nd");
    }

    #[test]
    fn browser_reports_become_one_failure() {
        let r = |kind: &str, msg: &str, stack: &str| BrowserReport {
            kind: kind.into(),
            message: msg.into(),
            source: "http://todo-1.preview.localhost:8001/src/App.tsx?t=123".into(),
            line: 12,
            column: 5,
            stack: stack.into(),
            url: "/".into(),
        };
        assert_eq!(browser_failure(&[]), None);
        let f = browser_failure(&[
            r(
                "error",
                "Uncaught TypeError: Cannot read properties of undefined (reading 'length')",
                "TypeError: Cannot read properties of undefined\n    at App (App.tsx:12:5)\n    at renderWithHooks",
            ),
            r("error", "Uncaught TypeError: Cannot read properties of undefined (reading 'length')", ""),
            r("console.error", "The above error occurred in the <App> component", ""),
        ])
        .unwrap();
        assert_eq!(f.name, "browser: 2 runtime errors in the preview page");
        assert!(
            f.output.starts_with("[error] Uncaught TypeError: Cannot read properties of undefined (reading 'length') (at /src/App.tsx?t=123:12:5) on page /\n    at App (App.tsx:12:5)\n"),
            "{}",
            f.output
        );
        assert_eq!(f.output.matches("[error]").count(), 1, "deduplicated");
    }

    #[test]
    fn messages() {
        let f = vec![
            Failure {
                name: "pytest".into(),
                output: "E1".into(),
            },
            Failure {
                name: "dev server api".into(),
                output: "E2".into(),
            },
        ];
        assert_eq!(status_line(&f), "found 2 errors, fixing");
        assert_eq!(status_line(&[]), "app is running");
        let m = fix_request(&f, 1, 2);
        assert!(
            m.contains("found 2 problems (fix round 1 of 2)") && m.contains("### pytest\n```\nE1"),
            "{m}"
        );
    }
}
