//! Blob REST operations as data: request building for each operation we use, response
//! classification, List Blobs XML parsing and the retry policy. The platforms only send bytes.

use super::{authorization_header, AzureAuth, AzureConfig, SignableRequest, API_VERSION};

/// A fully built HTTP request, ready for fetch (Worker) or reqwest (native).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

/// What came back, as far as the Blob layer cares.
#[derive(Debug, Clone, Default)]
pub struct HttpResponse {
    pub status: u16,
    pub etag: Option<String>,
    pub body: Vec<u8>,
}

/// Preconditions for writes and deletes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    None,
    /// Create only: fails with 409 (BlobAlreadyExists) or 412 if the blob exists.
    IfNoneMatchAny,
    /// Replace only the version we read.
    IfMatch(String),
}

#[derive(Debug, Clone)]
pub enum Op<'a> {
    CreateContainer,
    ContainerProperties,
    Put {
        name: &'a str,
        body: Vec<u8>,
        content_type: &'a str,
        cond: Cond,
    },
    Get {
        name: &'a str,
    },
    Delete {
        name: &'a str,
        cond: Cond,
    },
    List {
        prefix: &'a str,
        delimiter: Option<&'a str>,
        marker: Option<&'a str>,
        max_results: Option<u32>,
    },
}

/// Method, blob name, decoded query and body of one operation.
type RequestParts<'a> = (
    &'static str,
    Option<&'a str>,
    Vec<(&'a str, &'a str)>,
    Option<Vec<u8>>,
);

/// Builds and signs the request for `op` at `date` (RFC 1123, e.g. `Sun, 29 Nov 2026 06:00:00 GMT`).
pub fn build(cfg: &AzureConfig, container: &str, op: Op<'_>, date: &str) -> HttpRequest {
    let mut headers: Vec<(String, String)> = vec![
        ("x-ms-date".into(), date.into()),
        ("x-ms-version".into(), API_VERSION.into()),
    ];
    let cond_header = |headers: &mut Vec<(String, String)>, c: &Cond| match c {
        Cond::None => {}
        Cond::IfNoneMatchAny => headers.push(("If-None-Match".into(), "*".into())),
        Cond::IfMatch(e) => headers.push(("If-Match".into(), e.clone())),
    };
    let max;
    let (method, blob, query, body): RequestParts<'_> = match op {
        Op::CreateContainer => {
            headers.push(("Content-Length".into(), "0".into()));
            ("PUT", None, vec![("restype", "container")], None)
        }
        Op::ContainerProperties => ("GET", None, vec![("restype", "container")], None),
        Op::Put {
            name,
            body,
            content_type,
            cond,
        } => {
            headers.push(("Content-Length".into(), body.len().to_string()));
            headers.push(("Content-Type".into(), content_type.into()));
            headers.push(("x-ms-blob-type".into(), "BlockBlob".into()));
            cond_header(&mut headers, &cond);
            ("PUT", Some(name), vec![], Some(body))
        }
        Op::Get { name } => ("GET", Some(name), vec![], None),
        Op::Delete { name, cond } => {
            cond_header(&mut headers, &cond);
            ("DELETE", Some(name), vec![], None)
        }
        Op::List {
            prefix,
            delimiter,
            marker,
            max_results,
        } => {
            let mut q = vec![("restype", "container"), ("comp", "list")];
            if !prefix.is_empty() {
                q.push(("prefix", prefix));
            }
            if let Some(d) = delimiter {
                q.push(("delimiter", d));
            }
            if let Some(m) = marker {
                q.push(("marker", m));
            }
            max = max_results.map(|m| m.to_string());
            if let Some(m) = &max {
                q.push(("maxresults", m.as_str()));
            }
            ("GET", None, q, None)
        }
    };
    let target = cfg.target(container, blob, &query);
    if let AzureAuth::SharedKey(key) = &cfg.auth {
        let auth = authorization_header(
            &cfg.account,
            key,
            &SignableRequest {
                method,
                encoded_path: &target.encoded_path,
                query: &target.query,
                headers: &headers,
            },
        );
        headers.push(("Authorization".into(), auth));
    }
    HttpRequest {
        method,
        url: target.url,
        headers,
        body,
    }
}

/// Content type by file extension, for blobs that are served or downloaded as files.
pub fn content_type_for(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs" | "cjs" | "jsx") => "text/javascript; charset=utf-8",
        Some("ts" | "tsx" | "mts" | "cts") => "text/x-typescript; charset=utf-8",
        Some("json") => "application/json",
        Some("md") => "text/markdown; charset=utf-8",
        Some("py") => "text/x-python; charset=utf-8",
        Some("txt" | "toml" | "yaml" | "yml" | "ini" | "cfg" | "sh" | "env") => {
            "text/plain; charset=utf-8"
        }
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("ico") => "image/x-icon",
        Some("wasm") => "application/wasm",
        Some("map") => "application/json",
        Some("xml") => "application/xml",
        Some("webmanifest") => "application/manifest+json",
        Some("woff2") => "font/woff2",
        Some("woff") => "font/woff",
        Some("ttf") => "font/ttf",
        Some("otf") => "font/otf",
        Some("avif") => "image/avif",
        Some("pdf") => "application/pdf",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        Some("zip") => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Why a Blob call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("blob not found")]
    NotFound,
    /// 412, or 409 BlobAlreadyExists for a create-only write: someone else won the race.
    #[error("precondition failed: {0}")]
    Precondition(String),
    #[error("Azure Blob answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    #[error("Azure Blob is unreachable: {0}")]
    Transport(String),
}

impl BlobError {
    /// Classifies a non-2xx answer, taking Azure's `<Code>`/`<Message>` from the XML body.
    pub fn from_response(status: u16, body: &[u8]) -> BlobError {
        let text = String::from_utf8_lossy(body);
        let code = tag_text(&text, "Code").unwrap_or_default();
        let message = tag_text(&text, "Message")
            .map(|m| m.lines().next().unwrap_or("").to_string())
            .unwrap_or_default();
        match status {
            404 => BlobError::NotFound,
            412 => BlobError::Precondition(code),
            409 if code == "BlobAlreadyExists" => BlobError::Precondition(code),
            _ => BlobError::Http {
                status,
                message: if code.is_empty() {
                    text.chars().take(200).collect()
                } else {
                    format!("{code}: {message}")
                },
            },
        }
    }

    /// 5xx and transport failures are worth another try; a 4xx never is.
    pub fn is_retryable(&self) -> bool {
        match self {
            BlobError::Transport(_) => true,
            BlobError::Http { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }
}

/// Attempts per call, including the first.
pub const MAX_ATTEMPTS: u32 = 4;

/// Backoff before retry number `attempt` (1-based): 100 ms, 400 ms, 1.6 s.
pub fn backoff_ms(attempt: u32) -> u64 {
    100u64
        .saturating_mul(4u64.saturating_pow(attempt.saturating_sub(1)))
        .min(5_000)
}

/// One entry of a List Blobs page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobItem {
    pub name: String,
    pub size: u64,
    pub etag: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub blobs: Vec<BlobItem>,
    /// Virtual directories when listing with a delimiter, e.g. `proj-1/`.
    pub prefixes: Vec<String>,
    pub next_marker: Option<String>,
}

/// Parses a List Blobs answer. The format is small and fixed, so a dependency-free scanner
/// keeps the Worker's wasm lean.
pub fn parse_list(xml: &str) -> Result<ListPage, String> {
    if !xml.contains("<EnumerationResults") {
        return Err("List Blobs answer is not an EnumerationResults document".into());
    }
    let mut page = ListPage::default();
    let mut rest = xml;
    while let Some(i) = rest.find("<Blob>") {
        let after = &rest[i + 6..];
        let end = after.find("</Blob>").ok_or("unterminated <Blob> element")?;
        let item = &after[..end];
        let name = tag_text(item, "Name").ok_or("<Blob> without <Name>")?;
        let size = tag_text(item, "Content-Length")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let etag = tag_text(item, "Etag").unwrap_or_default();
        page.blobs.push(BlobItem { name, size, etag });
        rest = &after[end..];
    }
    let mut rest = xml;
    while let Some(i) = rest.find("<BlobPrefix>") {
        let after = &rest[i + 12..];
        let end = after
            .find("</BlobPrefix>")
            .ok_or("unterminated <BlobPrefix> element")?;
        if let Some(n) = tag_text(&after[..end], "Name") {
            page.prefixes.push(n);
        }
        rest = &after[end..];
    }
    page.next_marker = tag_text(xml, "NextMarker").filter(|m| !m.is_empty());
    Ok(page)
}

/// The unescaped text of the first `<tag>` (attributes allowed) in `s`.
fn tag_text(s: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}");
    let mut from = 0;
    loop {
        let i = s[from..].find(&open)? + from;
        let after = &s[i + open.len()..];
        // `<Name>` or `<Name attr="...">`, but not `<NameSpace>`.
        match after.chars().next() {
            Some('>') | Some(' ') => {}
            Some('/') => return Some(String::new()),
            _ => {
                from = i + open.len();
                continue;
            }
        }
        let gt = after.find('>')?;
        if after[..gt].ends_with('/') {
            return Some(String::new());
        }
        let body = &after[gt + 1..];
        let close = format!("</{tag}>");
        let end = body.find(&close)?;
        return Some(unescape(&body[..end]));
    }
}

fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(semi) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let ent = &after[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ if ent.starts_with("#x") => u32::from_str_radix(&ent[2..], 16)
                .ok()
                .and_then(char::from_u32),
            _ if ent.starts_with('#') => ent[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match ch {
            Some(c) => out.push(c),
            None => out.push_str(&after[..=semi]),
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &str = "Sun, 29 Nov 2026 06:00:00 GMT";

    fn dev() -> AzureConfig {
        AzureConfig::from_connection_string("UseDevelopmentStorage=true").unwrap()
    }

    #[test]
    fn put_create_only_is_signed_with_its_condition() {
        let r = build(
            &dev(),
            "c",
            Op::Put {
                name: "p/a b.txt",
                body: b"hello".to_vec(),
                content_type: "text/plain",
                cond: Cond::IfNoneMatchAny,
            },
            DATE,
        );
        assert_eq!(r.method, "PUT");
        assert_eq!(
            r.url,
            "http://127.0.0.1:10000/devstoreaccount1/c/p/a%20b.txt"
        );
        let h = |n: &str| {
            r.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("If-None-Match"), Some("*"));
        assert_eq!(h("Content-Length"), Some("5"));
        assert!(h("Authorization")
            .unwrap()
            .starts_with("SharedKey devstoreaccount1:"));
    }

    #[test]
    fn list_query_and_sas() {
        let c = AzureConfig::from_connection_string(
            "BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=1&sig=s",
        )
        .unwrap();
        let r = build(
            &c,
            "c",
            Op::List {
                prefix: "p/",
                delimiter: None,
                marker: Some("m 1"),
                max_results: Some(2),
            },
            DATE,
        );
        assert_eq!(
            r.url,
            "https://a.blob.core.windows.net/c?restype=container&comp=list&prefix=p%2F&marker=m%201&maxresults=2&sv=1&sig=s"
        );
        assert!(!r.headers.iter().any(|(k, _)| k == "Authorization"));
    }

    #[test]
    fn parses_list_pages() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="x" ContainerName="c"><Prefix>p/</Prefix><MaxResults>2</MaxResults><Blobs><Blob><Name>p/a &amp; b.txt</Name><Properties><Creation-Time>x</Creation-Time><Etag>"0x1"</Etag><Content-Length>5</Content-Length></Properties></Blob><Blob><Name>p/%é</Name><Properties><Etag>0x2</Etag><Content-Length>0</Content-Length></Properties></Blob><BlobPrefix><Name>q/</Name></BlobPrefix></Blobs><NextMarker>2!abc</NextMarker></EnumerationResults>"#;
        let p = parse_list(xml).unwrap();
        assert_eq!(p.blobs.len(), 2);
        assert_eq!(p.blobs[0].name, "p/a & b.txt");
        assert_eq!(p.blobs[0].size, 5);
        assert_eq!(p.blobs[0].etag, "\"0x1\"");
        assert_eq!(p.blobs[1].name, "p/%é");
        assert_eq!(p.prefixes, ["q/"]);
        assert_eq!(p.next_marker.as_deref(), Some("2!abc"));
        let last =
            parse_list("<EnumerationResults><Blobs /><NextMarker /></EnumerationResults>").unwrap();
        assert!(last.blobs.is_empty() && last.next_marker.is_none());
        assert!(parse_list("<html>").is_err());
    }

    #[test]
    fn classifies_errors() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>ConditionNotMet</Code><Message>The condition specified using HTTP conditional header(s) is not met.\nRequestId:1</Message></Error>";
        assert_eq!(
            BlobError::from_response(412, body),
            BlobError::Precondition("ConditionNotMet".into())
        );
        assert_eq!(
            BlobError::from_response(409, b"<Error><Code>BlobAlreadyExists</Code></Error>"),
            BlobError::Precondition("BlobAlreadyExists".into())
        );
        assert_eq!(BlobError::from_response(404, b""), BlobError::NotFound);
        let e = BlobError::from_response(
            403,
            b"<Error><Code>AuthenticationFailed</Code><Message>no</Message></Error>",
        );
        assert_eq!(
            e.to_string(),
            "Azure Blob answered HTTP 403: AuthenticationFailed: no"
        );
        assert!(!e.is_retryable());
        assert!(BlobError::from_response(503, b"").is_retryable());
        assert!(BlobError::Transport("refused".into()).is_retryable());
        assert_eq!(
            (backoff_ms(1), backoff_ms(2), backoff_ms(3)),
            (100, 400, 1600)
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type_for("src/App.TSX"),
            "text/x-typescript; charset=utf-8"
        );
        assert_eq!(content_type_for("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type_for("Makefile"), "application/octet-stream");
    }
}
