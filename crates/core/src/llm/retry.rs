//! When to retry a failed model request, when to move to the next provider, and what to tell the
//! person when we give up; plus the headers every request carries.
//!
//! Pure: the caller passes the attempt number, what went wrong and the current time, and does
//! the sleeping itself.

use super::types::ErrorEnvelope;
use crate::agent::context::{is_context_length_error, limit_from_error};
use crate::llm_config::Provider;

/// Retry limits. The defaults keep a stuck provider from holding a turn for more than about a
/// minute before the fallback provider gets a chance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts against one provider, the first included.
    pub max_attempts_per_provider: u32,
    /// Backoff before the second attempt; doubled for each attempt after that.
    pub base_delay_ms: u64,
    /// Ceiling of the exponential backoff.
    pub max_delay_ms: u64,
    /// The longest `Retry-After` we wait out; a longer one means "move on" (a provider asking
    /// for an hour is telling us a quota is spent, not that it is busy).
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts_per_provider: 3,
            base_delay_ms: 1_000,
            max_delay_ms: 16_000,
            max_retry_after_ms: 30_000,
        }
    }
}

/// What went wrong with one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure<'a> {
    /// The server answered with a non-2xx status.
    Http {
        status: u16,
        /// The `Retry-After` header, verbatim.
        retry_after: Option<&'a str>,
        /// The response body (an error JSON, usually).
        body: &'a str,
    },
    /// No response: DNS, TCP, TLS, or a timeout before the headers.
    Connection { message: &'a str },
    /// The stream broke before anything reached the person (cut, malformed chunk, or an error
    /// chunk). Only report this when no text was shown yet, or the retry would repeat it.
    BrokenStream { message: &'a str },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait this long, then send the same request to the same provider.
    Retry { after_ms: u64 },
    /// Stop using this provider for this request; try the next one from `LlmSettings::providers`.
    FallbackToNextProvider { reason: String },
    /// Give up and show this to the person.
    Fail { user_message: String },
    /// The request was too long for the model's context window: not worth repeating as it
    /// is, and no other provider would take it either. The caller compacts the conversation
    /// and sends it once more; `limit` is the window the error states, when it states one.
    ContextTooLong { limit: Option<u32>, message: String },
}

impl RetryPolicy {
    /// Decides what to do after attempt number `attempt` (1 for the first) against `provider`
    /// failed. `has_fallback` says whether another provider is configured after this one.
    pub fn decide(
        &self,
        provider: &str,
        attempt: u32,
        failure: &Failure<'_>,
        now_unix: u64,
        has_fallback: bool,
    ) -> RetryDecision {
        let (what, retry_after) = match *failure {
            Failure::Http {
                status,
                retry_after,
                body,
            } => {
                if matches!(status, 400 | 413 | 422) {
                    let message = provider_message(body).unwrap_or_default();
                    if status == 413 || is_context_length_error(&message) {
                        return RetryDecision::ContextTooLong {
                            limit: limit_from_error(&message),
                            message: describe_client_error(provider, status, body),
                        };
                    }
                }
                if !is_retryable_status(status) {
                    // A client error is about our request or account: another attempt, or
                    // another provider with different models and keys, would only hide it.
                    return RetryDecision::Fail {
                        user_message: describe_client_error(provider, status, body),
                    };
                }
                let mut what = status_text(status);
                if let Some(msg) = provider_message(body) {
                    what.push_str(&format!(": {msg}"));
                }
                (
                    what,
                    retry_after.and_then(|v| parse_retry_after(v, now_unix)),
                )
            }
            Failure::Connection { message } => (format!("could not connect: {message}"), None),
            Failure::BrokenStream { message } => (format!("the answer broke off: {message}"), None),
        };

        let give_up = |why: String| {
            if has_fallback {
                RetryDecision::FallbackToNextProvider {
                    reason: format!("{provider}: {why}"),
                }
            } else {
                RetryDecision::Fail {
                    user_message: format!(
                        "The model provider {provider} is not answering ({why}). Try again in a \
                         minute; to fail over automatically, configure a second provider \
                         (OPENROUTER_API_KEY, GROQ_API_KEY or LLM_BASE_URL)."
                    ),
                }
            }
        };

        if let Some(ms) = retry_after {
            if ms > self.max_retry_after_ms {
                return give_up(format!(
                    "{what}; it asked us to wait {}s",
                    ms.div_ceil(1000)
                ));
            }
        }
        if attempt >= self.max_attempts_per_provider {
            return give_up(format!("{what}, {attempt} attempts"));
        }
        let after_ms = retry_after.unwrap_or_else(|| self.backoff_ms(attempt));
        RetryDecision::Retry { after_ms }
    }

    /// Exponential backoff after attempt `attempt`: base, 2×base, 4×base, ... up to the cap.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        let shift = attempt.saturating_sub(1).min(32);
        self.base_delay_ms
            .saturating_mul(1u64 << shift)
            .min(self.max_delay_ms)
    }
}

/// 408 and 425 are "try again" by definition; 429 is rate limiting; 5xx is the provider's fault.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..=599).contains(&status)
}

/// `HTTP 429 Too Many Requests`, or just `HTTP 418` when we know no phrase.
fn status_text(status: u16) -> String {
    let phrase = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => return format!("HTTP {status}"),
    };
    format!("HTTP {status} {phrase}")
}

fn describe_client_error(provider: &str, status: u16, body: &str) -> String {
    let mut msg = format!(
        "The model provider {provider} rejected the request ({})",
        status_text(status)
    );
    if let Some(m) = provider_message(body) {
        msg.push_str(": ");
        msg.push_str(&m);
    }
    if !msg.ends_with(['.', '!', '?']) {
        msg.push('.');
    }
    let hint = match status {
        401 => " Check the API key (OPENROUTER_API_KEY, GROQ_API_KEY or LLM_API_KEY).",
        402 => " The account is out of credits: add credits or choose a cheaper model.",
        403 => " The key may not use this model, or the request was refused by moderation.",
        404 => " Check the model name and the provider's base URL.",
        400 | 413 if provider_message(body).is_some_and(|m| is_context_length_error(&m)) || status == 413 => {
            " The conversation is too large for this model even after compacting it: press New chat \
             (the files stay) or pick a model with a larger context."
        }
        _ => "",
    };
    msg.push_str(hint);
    msg
}

/// Longest provider message quoted to the person.
const MAX_MESSAGE_CHARS: usize = 300;

/// The human-readable message of an error body: OpenAI/OpenRouter `{"error":{"message"}}`
/// (plus OpenRouter's upstream `metadata.raw`), `{"message"}`, `{"detail"}`, or short plain text.
pub fn provider_message(body: &str) -> Option<String> {
    let body = body.trim();
    if body.is_empty() {
        return None;
    }
    let msg = if let Ok(env) = serde_json::from_str::<ErrorEnvelope>(body) {
        let mut m = env.error.message;
        // OpenRouter wraps upstream failures as "Provider returned error" with the real
        // reason in `metadata.raw`.
        if let Some(raw) = env
            .error
            .metadata
            .as_ref()
            .and_then(|md| md.get("raw"))
            .and_then(|r| r.as_str())
            .filter(|r| !r.trim().is_empty())
        {
            m = if m.is_empty() {
                raw.to_string()
            } else {
                format!("{m} ({raw})")
            };
        }
        m
    } else if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        ["message", "detail", "error"]
            .iter()
            .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_default()
    } else if body.starts_with('<') {
        // An HTML error page from a proxy says nothing useful in a chat bubble.
        String::new()
    } else {
        body.to_string()
    };
    let msg = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    if msg.is_empty() {
        return None;
    }
    Some(if msg.chars().count() > MAX_MESSAGE_CHARS {
        let cut: String = msg.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}…")
    } else {
        msg
    })
}

/// `Retry-After` as milliseconds from `now_unix`: delta-seconds or an HTTP-date (IMF-fixdate,
/// RFC 850 or asctime). A date in the past means "now". Unparseable values are ignored.
pub fn parse_retry_after(value: &str, now_unix: u64) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.saturating_mul(1000));
    }
    // Some servers send fractional seconds, though the RFC does not allow it.
    if let Ok(secs) = value.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Some((secs * 1000.0).ceil() as u64);
        }
    }
    let at = parse_http_date(value)?;
    Some(at.saturating_sub(now_unix).saturating_mul(1000))
}

/// Seconds since the Unix epoch of an HTTP-date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn parse_http_date(s: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let (mut day, mut month, mut year, mut time) = (None, None, None, None);
    for tok in s
        .split(|c: char| c.is_whitespace() || c == ',' || c == '-')
        .filter(|t| !t.is_empty())
    {
        let lower = tok.to_ascii_lowercase();
        if tok.contains(':') {
            let parts: Vec<u64> = tok
                .split(':')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let [h, m, sec] = parts[..] else { return None };
            if h > 23 || m > 59 || sec > 60 {
                return None;
            }
            time = Some(h * 3600 + m * 60 + sec);
        } else if let Some(i) = MONTHS.iter().position(|m| lower == *m) {
            month = Some(i as u64 + 1);
        } else if let Ok(n) = tok.parse::<u64>() {
            if tok.len() == 4 {
                year = Some(n);
            } else if day.is_none() {
                day = Some(n);
            } else {
                // RFC 850 two-digit years.
                year = Some(if n < 70 { 2000 + n } else { 1900 + n });
            }
        }
    }
    let (day, month, year, time) = (day?, month?, year?, time?);
    if !(1..=31).contains(&day) || year < 1970 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + time)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm), for
/// dates from 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as u64
}

/// `{base_url}/chat/completions`.
pub fn chat_completions_url(provider: &Provider) -> String {
    format!(
        "{}/chat/completions",
        provider.base_url.trim_end_matches('/')
    )
}

/// Headers for a streaming chat-completions request. `referer` is the deployment's public URL:
/// OpenRouter attributes usage to the app by `HTTP-Referer` and `X-Title`.
pub fn request_headers(provider: &Provider, referer: &str) -> Vec<(String, String)> {
    let mut h = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Accept".to_string(), "text/event-stream".to_string()),
    ];
    if let Some(key) = &provider.api_key {
        h.push(("Authorization".to_string(), format!("Bearer {key}")));
    }
    let is_openrouter =
        provider.name == "openrouter" || provider.base_url.contains("openrouter.ai");
    if is_openrouter {
        if !referer.is_empty() {
            h.push(("HTTP-Referer".to_string(), referer.to_string()));
        }
        h.push(("X-Title".to_string(), "open-replit".to_string()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_400_000; // 2025-11-29T07:06:40Z

    fn http<'a>(status: u16, retry_after: Option<&'a str>, body: &'a str) -> Failure<'a> {
        Failure::Http {
            status,
            retry_after,
            body,
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Sat, 29 Nov 2025 07:06:40 GMT"), Some(NOW));
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT"),
            Some(1_709_164_800)
        );
        assert_eq!(parse_http_date("soon"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:00:00 GMT"), None);
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7", NOW), Some(7_000));
        assert_eq!(parse_retry_after(" 1.5 ", NOW), Some(1_500));
        assert_eq!(
            parse_retry_after("Sat, 29 Nov 2025 07:06:52 GMT", NOW),
            Some(12_000)
        );
        assert_eq!(
            parse_retry_after("Sat, 29 Nov 2025 07:00:00 GMT", NOW),
            Some(0)
        );
        assert_eq!(parse_retry_after("later", NOW), None);
    }

    #[test]
    fn rate_limit_honours_retry_after_seconds_and_dates() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.decide("openrouter", 1, &http(429, Some("3"), ""), NOW, true),
            RetryDecision::Retry { after_ms: 3_000 }
        );
        assert_eq!(
            p.decide(
                "openrouter",
                1,
                &http(429, Some("Sat, 29 Nov 2025 07:06:45 GMT"), ""),
                NOW,
                false
            ),
            RetryDecision::Retry { after_ms: 5_000 }
        );
        // No header: exponential backoff.
        assert_eq!(
            p.decide("openrouter", 2, &http(429, None, ""), NOW, true),
            RetryDecision::Retry { after_ms: 2_000 }
        );
        // An hour's wait is a spent quota: move on rather than wait.
        match p.decide("openrouter", 1, &http(429, Some("3600"), ""), NOW, true) {
            RetryDecision::FallbackToNextProvider { reason } => {
                assert!(reason.contains("3600s"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_errors_exhaust_then_fall_back_or_fail() {
        let p = RetryPolicy::default();
        let body = r#"{"error":{"message":"upstream overloaded","code":503}}"#;
        let f = http(500, None, body);
        assert_eq!(
            p.decide("openrouter", 1, &f, NOW, true),
            RetryDecision::Retry { after_ms: 1_000 }
        );
        assert_eq!(
            p.decide("openrouter", 2, &f, NOW, true),
            RetryDecision::Retry { after_ms: 2_000 }
        );
        match p.decide("openrouter", 3, &f, NOW, true) {
            RetryDecision::FallbackToNextProvider { reason } => {
                assert!(reason.starts_with("openrouter: HTTP 500"), "{reason}");
                assert!(reason.contains("upstream overloaded"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        match p.decide("groq", 3, &f, NOW, false) {
            RetryDecision::Fail { user_message } => {
                assert!(
                    user_message.contains("groq is not answering"),
                    "{user_message}"
                );
                assert!(user_message.contains("3 attempts"), "{user_message}");
            }
            other => panic!("{other:?}"),
        }
        let conn = Failure::Connection {
            message: "connection refused",
        };
        assert_eq!(
            p.decide("custom", 1, &conn, NOW, false),
            RetryDecision::Retry { after_ms: 1_000 }
        );
        assert!(matches!(
            p.decide(
                "custom",
                3,
                &Failure::BrokenStream { message: "cut" },
                NOW,
                true
            ),
            RetryDecision::FallbackToNextProvider { .. }
        ));
        assert_eq!(p.backoff_ms(10), p.max_delay_ms);
        assert_eq!(p.backoff_ms(u32::MAX), p.max_delay_ms);
    }

    #[test]
    fn client_errors_are_explained_never_retried() {
        let p = RetryPolicy::default();
        let body = r#"{"error":{"message":"No auth credentials found","code":401}}"#;
        match p.decide("openrouter", 1, &http(401, None, body), NOW, true) {
            RetryDecision::Fail { user_message } => {
                assert_eq!(
                    user_message,
                    "The model provider openrouter rejected the request (HTTP 401 Unauthorized): \
                     No auth credentials found. Check the API key (OPENROUTER_API_KEY, \
                     GROQ_API_KEY or LLM_API_KEY)."
                );
            }
            other => panic!("{other:?}"),
        }
        match p.decide("custom", 1, &http(400, None, "<html>bad</html>"), NOW, true) {
            RetryDecision::Fail { user_message } => assert_eq!(
                user_message,
                "The model provider custom rejected the request (HTTP 400 Bad Request)."
            ),
            other => panic!("{other:?}"),
        }
        match p.decide("custom", 1, &http(418, None, ""), NOW, true) {
            RetryDecision::Fail { user_message } => {
                assert!(user_message.contains("(HTTP 418)."), "{user_message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn context_length_errors_are_their_own_kind() {
        let p = RetryPolicy::default();
        let body = r#"{"error":{"message":"This endpoint's maximum context length is 32768 tokens. However, you requested about 40261 tokens (36165 of text input, 4096 in the output). Please reduce the length of either one, or use the \"middle-out\" transform to compress your prompt automatically.","code":400}}"#;
        match p.decide("openrouter", 1, &http(400, None, body), NOW, true) {
            RetryDecision::ContextTooLong { limit, message } => {
                assert_eq!(limit, Some(32_768));
                assert!(message.contains("New chat"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // Upstream wording in metadata.raw, no number; a 413 with no body.
        let raw = r#"{"error":{"message":"Provider returned error","code":400,"metadata":{"raw":"prompt is too long"}}}"#;
        assert_eq!(
            p.decide("openrouter", 1, &http(400, None, raw), NOW, false),
            RetryDecision::ContextTooLong {
                limit: None,
                message: "The model provider openrouter rejected the request (HTTP 400 Bad \
                          Request): Provider returned error (prompt is too long). The \
                          conversation is too large for this model even after compacting it: \
                          press New chat (the files stay) or pick a model with a larger context."
                    .into()
            }
        );
        assert!(matches!(
            p.decide("custom", 1, &http(413, None, ""), NOW, false),
            RetryDecision::ContextTooLong { limit: None, .. }
        ));
        // Any other 400 stays a plain failure.
        assert!(matches!(
            p.decide(
                "custom",
                1,
                &http(400, None, r#"{"error":{"message":"bad tool schema"}}"#),
                NOW,
                false
            ),
            RetryDecision::Fail { .. }
        ));
    }

    #[test]
    fn provider_messages() {
        assert_eq!(
            provider_message(
                r#"{"error":{"message":"Provider returned error","code":400,"metadata":{"raw":"context too long","provider_name":"X"}}}"#
            )
            .as_deref(),
            Some("Provider returned error (context too long)")
        );
        assert_eq!(
            provider_message(r#"{"detail":"model not found"}"#).as_deref(),
            Some("model not found")
        );
        assert_eq!(
            provider_message("  plain\ntext "),
            Some("plain text".into())
        );
        assert_eq!(provider_message(""), None);
        let long = provider_message(&"x".repeat(1000)).unwrap();
        assert_eq!(long.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn headers_per_provider() {
        let or = Provider {
            name: "openrouter",
            base_url: "https://openrouter.ai/api/v1".into(),
            api_key: Some("sk-or-1".into()),
            fallback_model: None,
        };
        let h = request_headers(&or, "https://app.example");
        assert!(h.contains(&("Authorization".into(), "Bearer sk-or-1".into())));
        assert!(h.contains(&("HTTP-Referer".into(), "https://app.example".into())));
        assert!(h.contains(&("X-Title".into(), "open-replit".into())));
        assert_eq!(
            chat_completions_url(&or),
            "https://openrouter.ai/api/v1/chat/completions"
        );

        let local = Provider {
            name: "custom",
            base_url: "http://127.0.0.1:11434/v1".into(),
            api_key: None,
            fallback_model: None,
        };
        let h = request_headers(&local, "https://app.example");
        assert!(h
            .iter()
            .all(|(k, _)| k != "Authorization" && k != "X-Title"));
    }
}
