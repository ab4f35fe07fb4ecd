//! Search-and-replace edits for the `edit_file` tool: each search text must match exactly once.
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("edit {number} of {total}: `search` is empty; quote the exact text to replace. No edits were applied.")]
    EmptySearch { number: usize, total: usize },
    #[error("edit {number} of {total}: the search text was not found{hint}. No edits were applied; read the file again and copy the text exactly, including whitespace.")]
    NotFound {
        number: usize,
        total: usize,
        /// Starts with "; " when there is something useful to say, else empty.
        hint: String,
    },
    #[error("edit {number} of {total}: the search text matches {count} times (at lines {lines}); include more surrounding lines so it matches exactly once. No edits were applied.")]
    Ambiguous {
        number: usize,
        total: usize,
        count: usize,
        lines: String,
    },
}

/// Files with more lines than this skip the nearest-line search (it is only a hint).
const HINT_MAX_LINES: usize = 20_000;
/// Line numbers listed in an ambiguity error.
const MAX_LISTED_LINES: usize = 5;

/// Applies `edits` in order and returns the new text, or the first failure.
pub fn apply_edits(original: &str, edits: &[Edit]) -> Result<String, EditError> {
    let total = edits.len();
    let mut text = original.to_string();
    for (i, edit) in edits.iter().enumerate() {
        let number = i + 1;
        if edit.search.is_empty() {
            return Err(EditError::EmptySearch { number, total });
        }
        let positions = match_positions(&text, &edit.search);
        match positions.len() {
            0 => {
                return Err(EditError::NotFound {
                    number,
                    total,
                    hint: miss_hint(&text, &edit.search),
                })
            }
            1 => {
                let at = positions[0];
                text.replace_range(at..at + edit.search.len(), &edit.replace);
            }
            count => {
                let mut lines: Vec<String> = positions
                    .iter()
                    .take(MAX_LISTED_LINES)
                    .map(|&p| line_of(&text, p).to_string())
                    .collect();
                if count > MAX_LISTED_LINES {
                    lines.push("…".to_string());
                }
                return Err(EditError::Ambiguous {
                    number,
                    total,
                    count,
                    lines: lines.join(", "),
                });
            }
        }
    }
    Ok(text)
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
    if text.contains("\r\n") && !search.contains("\r\n") && search.contains('\n') {
        let crlf = search.replace('\n', "\r\n");
        if text.contains(&crlf) {
            return "; the file uses CRLF (\\r\\n) line endings and the search text uses \\n"
                .to_string();
        }
    }
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
        assert_eq!(out, "def add(a, b):\n    return a + b  # total\n\n\n");
        // Replacement text containing the search text is fine.
        assert_eq!(apply_edits("x", &[e("x", "xx")]).unwrap(), "xx");
        assert_eq!(apply_edits("héllo", &[e("é", "e")]).unwrap(), "hello");
    }

    #[test]
    fn ambiguous_match_says_how_many_and_where() {
        let err = apply_edits(FILE, &[e("(a, b):", "(x, y):")]).unwrap_err();
        assert_eq!(
            err,
            EditError::Ambiguous {
                number: 1,
                total: 1,
                count: 2,
                lines: "1, 5".into()
            }
        );
        assert!(err.to_string().contains("matches 2 times"), "{err}");
        // Overlapping occurrences are ambiguous too.
        assert!(matches!(
            apply_edits("aaa", &[e("aa", "b")]),
            Err(EditError::Ambiguous { count: 2, .. })
        ));
        let many = "x\n".repeat(9);
        let err = apply_edits(&many, &[e("x", "y")]).unwrap_err().to_string();
        assert!(err.contains("9 times (at lines 1, 2, 3, 4, 5, …)"), "{err}");
    }

    #[test]
    fn misses_point_at_the_nearest_line() {
        let err = apply_edits(FILE, &[e("x", "y"), e("  return a * b", "")]).unwrap_err();
        assert!(matches!(err, EditError::NotFound { number: 1, .. }));

        let err = apply_edits(FILE, &[e("return a+b", "")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("closest line is line 2: \"    return a + b\""),
            "{err}"
        );
        assert!(err.contains("No edits were applied"), "{err}");

        // Right text, wrong indentation.
        let err = apply_edits(FILE, &[e("return a - b\n  x", "")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("appears at line 6"), "{err}");

        let err = apply_edits("a\r\nb\r\n", &[e("a\nb", "c")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("CRLF"), "{err}");

        let err = apply_edits(FILE, &[e("completely unrelated", "")]).unwrap_err();
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
        let err = apply_edits(FILE, &[e("return a + b", "X"), e("", "Y")]).unwrap_err();
        assert_eq!(
            err,
            EditError::EmptySearch {
                number: 2,
                total: 2
            }
        );
        // A failure in a later edit names it.
        let err = apply_edits(FILE, &[e("return a + b", "X"), e("return a + b", "Y")])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("edit 2 of 2: the search text was not found"),
            "{err}"
        );
    }
}
