//! Search-and-replace edits for the `edit_file` tool: each search text must match exactly once,
//! first exactly, then line by line with growing tolerance (trailing whitespace, then
//! indentation, then Unicode punctuation), as codex's `seek_sequence` does.
//!
//! Errors are written for the model, which gets them as the tool result: they say which edit
//! failed, why, and what to do instead. Edits are all-or-nothing, so a failed call never leaves
//! a half-edited file behind.

use serde::{Deserialize, Serialize};

/// One replacement: `search` must occur exactly once in the file as it stands after the edits
/// before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edit {
    pub search: String,
    pub replace: String,
}

/// How a search text matched, from strictest to most tolerant; each mode is tried only when
/// the ones before it found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// Byte for byte.
    Exact,
    /// Whole lines equal once trailing whitespace (and `\r`) is ignored.
    TrailingWhitespace,
    /// Whole lines equal once leading and trailing whitespace is ignored; the replacement is
    /// re-indented by the difference when it is a plain prefix.
    Indentation,
    /// As `Indentation`, with typographic quotes, dashes and non-breaking spaces read as
    /// their ASCII forms.
    UnicodePunctuation,
}

impl MatchMode {
    const FALLBACKS: [MatchMode; 3] = [
        MatchMode::TrailingWhitespace,
        MatchMode::Indentation,
        MatchMode::UnicodePunctuation,
    ];

    /// How the tool result names the mode.
    pub fn describe(self) -> &'static str {
        match self {
            MatchMode::Exact => "exact",
            MatchMode::TrailingWhitespace => "ignoring trailing whitespace",
            MatchMode::Indentation => "ignoring indentation",
            MatchMode::UnicodePunctuation => "ignoring indentation and Unicode punctuation",
        }
    }

    fn normalize(self, line: &str) -> String {
        match self {
            MatchMode::Exact => line.to_string(),
            MatchMode::TrailingWhitespace => line.trim_end().to_string(),
            MatchMode::Indentation => line.trim().to_string(),
            MatchMode::UnicodePunctuation => line.trim().chars().map(ascii_punctuation).collect(),
        }
    }
}

/// The ASCII form of a typographic character models and editors substitute.
fn ascii_punctuation(c: char) -> char {
    match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' => '\'',
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{2033}' => '"',
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}'
        | '\u{2212}' => '-',
        '\u{00A0}' | '\u{2002}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}' => ' ',
        c => c,
    }
}

/// The edited text and how each edit matched, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub text: String,
    pub modes: Vec<MatchMode>,
}

impl Applied {
    /// "2 edit(s) applied (edit 1 exact, edit 2 ignoring indentation)".
    pub fn summary(&self) -> String {
        let each: Vec<String> = self
            .modes
            .iter()
            .enumerate()
            .map(|(i, m)| format!("edit {} {}", i + 1, m.describe()))
            .collect();
        format!("{} edit(s) applied ({})", self.modes.len(), each.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("edit {number} of {total}: `search` is empty; quote the exact text to replace. No edits were applied.")]
    EmptySearch { number: usize, total: usize },
    #[error("edit {number} of {total}: the search text was not found, not even ignoring whitespace and typographic punctuation{hint}. No edits were applied; read the file again and copy the text exactly, including whitespace.")]
    NotFound {
        number: usize,
        total: usize,
        /// Starts with "; " when there is something useful to say, else empty.
        hint: String,
    },
    #[error("edit {number} of {total}: the search text matches {count} times (at lines {lines}{how}); include more surrounding lines so it matches exactly once. No edits were applied.")]
    Ambiguous {
        number: usize,
        total: usize,
        count: usize,
        lines: String,
        /// Empty for an exact match, else " when ignoring …".
        how: String,
    },
}

/// Files with more lines than this skip the nearest-line search (it is only a hint).
const HINT_MAX_LINES: usize = 20_000;
/// Line numbers listed in an ambiguity error.
const MAX_LISTED_LINES: usize = 5;

/// Applies `edits` in order and returns the new text with each edit's match mode, or the
/// first failure.
pub fn apply_edits(original: &str, edits: &[Edit]) -> Result<Applied, EditError> {
    let total = edits.len();
    let mut text = original.to_string();
    let mut modes = Vec::with_capacity(total);
    for (i, edit) in edits.iter().enumerate() {
        let number = i + 1;
        if edit.search.is_empty() {
            return Err(EditError::EmptySearch { number, total });
        }
        let ambiguous = |count: usize, lines: Vec<usize>, mode: MatchMode| {
            let mut listed: Vec<String> = lines
                .iter()
                .take(MAX_LISTED_LINES)
                .map(usize::to_string)
                .collect();
            if count > MAX_LISTED_LINES {
                listed.push("…".to_string());
            }
            EditError::Ambiguous {
                number,
                total,
                count,
                lines: listed.join(", "),
                how: match mode {
                    MatchMode::Exact => String::new(),
                    m => format!(" when {}", m.describe()),
                },
            }
        };
        let positions = match_positions(&text, &edit.search);
        match positions.len() {
            0 => {}
            1 => {
                let at = positions[0];
                text.replace_range(at..at + edit.search.len(), &edit.replace);
                modes.push(MatchMode::Exact);
                continue;
            }
            count => {
                let lines = positions.iter().map(|&p| line_of(&text, p)).collect();
                return Err(ambiguous(count, lines, MatchMode::Exact));
            }
        }
        let mut done = false;
        for mode in MatchMode::FALLBACKS {
            let found = seek_lines(&text, &edit.search, mode);
            match found.len() {
                0 => continue,
                1 => {
                    let m = &found[0];
                    let replace =
                        fit_replacement(&text[m.range.clone()], &edit.search, &edit.replace, mode);
                    text.replace_range(m.range.clone(), &replace);
                    modes.push(mode);
                    done = true;
                    break;
                }
                count => {
                    let lines = found.iter().map(|m| m.first_line).collect();
                    return Err(ambiguous(count, lines, mode));
                }
            }
        }
        if !done {
            return Err(EditError::NotFound {
                number,
                total,
                hint: miss_hint(&text, &edit.search),
            });
        }
    }
    Ok(Applied { text, modes })
}

/// A line-wise match: the bytes it covers and its first line (1-based).
struct LineMatch {
    range: std::ops::Range<usize>,
    first_line: usize,
}

/// Every place where the search text's lines equal a run of the file's lines under `mode`.
/// A search ending in a newline covers the last line's newline too; one that does not leaves
/// the file's line ending alone.
fn seek_lines(text: &str, search: &str, mode: MatchMode) -> Vec<LineMatch> {
    let with_newline = search.ends_with('\n');
    let body = search.strip_suffix('\n').unwrap_or(search);
    let pattern: Vec<String> = body.split('\n').map(|l| mode.normalize(l)).collect();
    // Only blank lines would match every blank run of the file.
    if pattern.iter().all(|l| l.trim().is_empty()) {
        return Vec::new();
    }
    // (start, end of content without `\r\n`, end including the newline)
    let mut lines: Vec<(usize, usize, usize)> = Vec::new();
    let mut start = 0;
    for piece in text.split_inclusive('\n') {
        let end = start + piece.len();
        let content = piece.strip_suffix('\n').unwrap_or(piece);
        let content = content.strip_suffix('\r').unwrap_or(content);
        lines.push((start, start + content.len(), end));
        start = end;
    }
    if pattern.len() > lines.len() {
        return Vec::new();
    }
    let normalized: Vec<String> = lines
        .iter()
        .map(|&(s, e, _)| mode.normalize(&text[s..e]))
        .collect();
    let mut out = Vec::new();
    for i in 0..=lines.len() - pattern.len() {
        if normalized[i..i + pattern.len()] == pattern[..] {
            let last = lines[i + pattern.len() - 1];
            let end = if with_newline { last.2 } else { last.1 };
            out.push(LineMatch {
                range: lines[i].0..end,
                first_line: i + 1,
            });
        }
    }
    out
}

/// The replacement as it goes into the matched text: with the file's line endings, and for the
/// indentation modes shifted by the indentation the search text got wrong.
fn fit_replacement(matched: &str, search: &str, replace: &str, mode: MatchMode) -> String {
    let mut out = replace.to_string();
    if mode >= MatchMode::Indentation {
        let indent = |s: &str| -> String {
            s.lines()
                .find(|l| !l.trim().is_empty())
                .map(|l| l[..l.len() - l.trim_start().len()].to_string())
                .unwrap_or_default()
        };
        let (have, wrote) = (indent(matched), indent(search));
        if have != wrote {
            if let Some(extra) = have.strip_prefix(wrote.as_str()) {
                out = map_lines(&out, |l| {
                    if l.trim().is_empty() {
                        l.to_string()
                    } else {
                        format!("{extra}{l}")
                    }
                });
            } else if let Some(extra) = wrote.strip_prefix(have.as_str()) {
                out = map_lines(&out, |l| l.strip_prefix(extra).unwrap_or(l).to_string());
            }
        }
    }
    if matched.contains("\r\n") && !out.contains("\r\n") {
        out = out.replace('\n', "\r\n");
    }
    out
}

/// Applies `f` to each line, keeping the newlines.
fn map_lines(s: &str, f: impl Fn(&str) -> String) -> String {
    s.split_inclusive('\n')
        .map(|piece| match piece.strip_suffix('\n') {
            Some(l) => format!("{}\n", f(l)),
            None => f(piece),
        })
        .collect()
}

/// Start offsets of every occurrence, overlapping ones included (`"aa"` is in `"aaa"` twice,
/// which is ambiguous).
fn match_positions(hay: &str, needle: &str) -> Vec<usize> {
    let step = needle.chars().next().map_or(1, char::len_utf8);
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(i) = hay[start..].find(needle) {
        out.push(start + i);
        start += i + step;
        if start > hay.len() {
            break;
        }
    }
    out
}

/// 1-based line number of a byte offset.
fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Why a search text probably missed, when that is cheap to find out.
fn miss_hint(text: &str, search: &str) -> String {
    let Some(first) = search.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return "; the search text is only whitespace".to_string();
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > HINT_MAX_LINES {
        return String::new();
    }
    if let Some((n, line)) = lines.iter().enumerate().find(|(_, l)| l.trim() == first) {
        return format!(
            "; its first line appears at line {} as {:?}, so check indentation and the lines after it",
            n + 1,
            line
        );
    }
    let target = bigrams(first);
    let best = lines
        .iter()
        .enumerate()
        .map(|(n, l)| (n, l, dice(&target, &bigrams(l))))
        .filter(|(_, _, score)| *score >= 0.6)
        // The first of equally close lines wins.
        .reduce(|best, x| if x.2 > best.2 { x } else { best });
    match best {
        Some((n, line, _)) => format!("; the closest line is line {}: {:?}", n + 1, line),
        None => String::new(),
    }
}

/// Character pairs, ignoring whitespace: a miss is most often a spacing difference.
fn bigrams(s: &str) -> Vec<(char, char)> {
    let chars: Vec<char> = s.chars().filter(|c| !c.is_whitespace()).collect();
    let mut v: Vec<(char, char)> = chars.windows(2).map(|w| (w[0], w[1])).collect();
    v.sort_unstable();
    v
}

/// Sørensen–Dice similarity of two sorted bigram multisets.
fn dice(a: &[(char, char)], b: &[(char, char)]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
        }
    }
    2.0 * common as f64 / (a.len() + b.len()) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n";

    fn e(search: &str, replace: &str) -> Edit {
        Edit {
            search: search.into(),
            replace: replace.into(),
        }
    }

    fn apply(text: &str, edits: &[Edit]) -> Result<String, EditError> {
        apply_edits(text, edits).map(|a| a.text)
    }

    #[test]
    fn edits_apply_in_order() {
        let out = apply_edits(
            FILE,
            &[
                e("return a + b", "return a + b  # sum"),
                // Sees the result of the first edit.
                e("b  # sum", "b  # total"),
                e("def sub(a, b):\n    return a - b\n", ""),
            ],
        )
        .unwrap();
        assert_eq!(out.text, "def add(a, b):\n    return a + b  # total\n\n\n");
        assert_eq!(out.modes, [MatchMode::Exact; 3]);
        assert_eq!(
            out.summary(),
            "3 edit(s) applied (edit 1 exact, edit 2 exact, edit 3 exact)"
        );
        // Replacement text containing the search text is fine.
        assert_eq!(apply("x", &[e("x", "xx")]).unwrap(), "xx");
        assert_eq!(apply("héllo", &[e("é", "e")]).unwrap(), "hello");
    }

    #[test]
    fn trailing_whitespace_is_the_first_fallback() {
        // The file has trailing spaces the model left out.
        let file = "a = 1   \nb = 2\t\nc = 3\n";
        let out = apply_edits(file, &[e("a = 1\nb = 2\n", "a = 10\nb = 20\n")]).unwrap();
        assert_eq!(out.text, "a = 10\nb = 20\nc = 3\n");
        assert_eq!(out.modes, [MatchMode::TrailingWhitespace]);
        assert!(out.summary().contains("ignoring trailing whitespace"));
        // The model added trailing spaces; without a final newline the file's own line end
        // stays.
        let out = apply_edits("x\ny\nz", &[e("y  ", "Y")]).unwrap();
        assert_eq!(out.text, "x\nY\nz");
        assert_eq!(out.modes, [MatchMode::TrailingWhitespace]);
        let out = apply_edits("x\ny\nz\n", &[e("x \ny ", "Q")]).unwrap();
        assert_eq!(out.text, "Q\nz\n");
        assert_eq!(out.modes, [MatchMode::TrailingWhitespace]);
        // CRLF files: `\n` search text matches, and the replacement gets `\r\n`.
        let out = apply_edits("a\r\nb\r\nc\r\n", &[e("a\nb\n", "A\nB\n")]).unwrap();
        assert_eq!(out.text, "A\r\nB\r\nc\r\n");
        assert_eq!(out.modes, [MatchMode::TrailingWhitespace]);
    }

    #[test]
    fn indentation_is_the_second_fallback_and_reindents() {
        let file = "class A:\n    def f(self):\n        return 1\n";
        // Search written without the class's indentation: the replacement is shifted too.
        let out = apply_edits(
            file,
            &[e(
                "def f(self):\n    return 1\n",
                "def f(self):\n    x = 1\n\n    return x\n",
            )],
        )
        .unwrap();
        assert_eq!(
            out.text,
            "class A:\n    def f(self):\n        x = 1\n\n        return x\n"
        );
        assert_eq!(out.modes, [MatchMode::Indentation]);
        // Search indented more than the file: the extra is taken off the replacement.
        let out = apply_edits(
            "if x:\n  y()\n",
            &[e("    if x:\n      y()", "    if z:\n      w()")],
        )
        .unwrap();
        assert_eq!(out.text, "if z:\n  w()\n");
        assert_eq!(out.modes, [MatchMode::Indentation]);
        // Tabs against spaces: no common prefix, the replacement goes in as written.
        let out = apply_edits("\tx()\n", &[e("  x()", "  y()")]).unwrap();
        assert_eq!(out.text, "  y()\n");
        assert_eq!(out.modes, [MatchMode::Indentation]);
    }

    #[test]
    fn unicode_punctuation_is_the_last_fallback() {
        let file = "msg = \"it's done\" # a - b\nx\u{a0}= 1\n";
        let out = apply_edits(
            file,
            &[
                e(
                    "msg = \u{201C}it\u{2019}s done\u{201D} # a \u{2014} b",
                    "msg = 'ok'",
                ),
                e("x = 1", "x = 2"),
            ],
        )
        .unwrap();
        assert_eq!(out.text, "msg = 'ok'\nx = 2\n");
        assert_eq!(
            out.modes,
            [MatchMode::UnicodePunctuation, MatchMode::UnicodePunctuation]
        );
        assert!(out
            .summary()
            .contains("edit 2 ignoring indentation and Unicode punctuation"));
        // And the other way round: the file has the typographic forms.
        let out = apply_edits(
            "say(\u{201C}hi\u{201D})\n",
            &[e("say(\"hi\")", "say(\"yo\")")],
        )
        .unwrap();
        assert_eq!(out.text, "say(\"yo\")\n");
    }

    #[test]
    fn stricter_modes_win_over_tolerant_ones() {
        // An exact match elsewhere beats a whitespace-tolerant one.
        let out = apply_edits("  a\na\n", &[e("a\n", "b\n")]);
        // "a\n" is exactly in both lines ("  a\n" contains it): ambiguous, not a fallback.
        assert!(matches!(out, Err(EditError::Ambiguous { count: 2, .. })));
        let out = apply_edits("a \nb\n  a\n", &[e("a\nb", "X")]).unwrap();
        assert_eq!(out.text, "X\n  a\n");
        assert_eq!(out.modes, [MatchMode::TrailingWhitespace]);
        // Search text of blank lines only never matches by a fallback.
        assert!(matches!(
            apply_edits("a\n  \n\nb\n", &[e(" \n \n", "x")]),
            Err(EditError::NotFound { .. })
        ));
    }

    #[test]
    fn ambiguous_match_says_how_many_and_where() {
        let err = apply(FILE, &[e("(a, b):", "(x, y):")]).unwrap_err();
        assert_eq!(
            err,
            EditError::Ambiguous {
                number: 1,
                total: 1,
                count: 2,
                lines: "1, 5".into(),
                how: String::new(),
            }
        );
        assert!(
            err.to_string().contains("matches 2 times (at lines 1, 5)"),
            "{err}"
        );
        // Overlapping occurrences are ambiguous too.
        assert!(matches!(
            apply("aaa", &[e("aa", "b")]),
            Err(EditError::Ambiguous { count: 2, .. })
        ));
        let many = "x\n".repeat(9);
        let err = apply(&many, &[e("x", "y")]).unwrap_err().to_string();
        assert!(err.contains("9 times (at lines 1, 2, 3, 4, 5, …)"), "{err}");
        // A fallback that matches twice is ambiguous too, and says in which mode.
        let file = "if a:\n    go()\nelse:\n  go()\n";
        let err = apply(file, &[e("go()  ", "stop()")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "edit 1 of 1: the search text matches 2 times (at lines 2, 4 when ignoring \
             indentation); include more surrounding lines so it matches exactly once. No \
             edits were applied."
        );
    }

    #[test]
    fn misses_point_at_the_nearest_line() {
        let err = apply(FILE, &[e("x", "y"), e("  return a * b", "")]).unwrap_err();
        assert!(matches!(err, EditError::NotFound { number: 1, .. }));

        let err = apply(FILE, &[e("return a+b", "")]).unwrap_err().to_string();
        assert!(
            err.contains("closest line is line 2: \"    return a + b\""),
            "{err}"
        );
        assert!(err.contains("No edits were applied"), "{err}");

        // Right first line, wrong lines after it.
        let err = apply(FILE, &[e("return a - b\n  x", "")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("appears at line 6"), "{err}");

        let err = apply(FILE, &[e("completely unrelated", "")]).unwrap_err();
        assert_eq!(
            err,
            EditError::NotFound {
                number: 1,
                total: 1,
                hint: String::new()
            }
        );
    }

    #[test]
    fn all_or_nothing_and_empty_search() {
        let err = apply(FILE, &[e("return a + b", "X"), e("", "Y")]).unwrap_err();
        assert_eq!(
            err,
            EditError::EmptySearch {
                number: 2,
                total: 2
            }
        );
        // A failure in a later edit names it.
        let err = apply(FILE, &[e("return a + b", "X"), e("return a + b", "Y")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("edit 2 of 2: the search text was not found"),
            "{err}"
        );
    }
}
