//! The browser-facing security headers, as pure functions: the IDE's Content-Security-Policy
//! (built from the preview URL pattern), which file types are "active" (can run script when
//! opened), and the headers every response, every HTML page and every raw project file gets.

/// Headers on every response the Worker sends.
pub const ALWAYS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
];

/// Strict-Transport-Security for responses served over HTTPS (two years, subdomains).
pub const HSTS: (&str, &str) = (
    "strict-transport-security",
    "max-age=63072000; includeSubDomains",
);

/// The CSP of a raw project file: a unique opaque origin with no script, no plugins, no forms,
/// so an uploaded page can never act as the IDE.
pub const RAW_FILE_CSP: &str = "sandbox; default-src 'none'; img-src 'self' data:; \
     style-src 'unsafe-inline'; frame-ancestors 'none'";

/// The origin pattern the IDE may frame: `https://{id}.previews.example.com/` becomes
/// `https://*.previews.example.com`; a URL without `{id}` in its host gives its origin. A host
/// under `.localhost` (local development, loopback only, where ports are picked freely) allows
/// any port: `http://{id}.preview.localhost:8001/` becomes `http://*.preview.localhost:*`.
/// `None` for a URL that is not `http(s)://host[:port]...`.
pub fn preview_frame_source(preview_url: &str) -> Option<String> {
    let (scheme, rest) = preview_url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, Some(p)),
        _ => (authority, None),
    };
    let host = match host.split_once('.') {
        Some((first, rest)) if first.contains("{id}") => format!("*.{rest}"),
        _ if host.contains("{id}") => return None,
        _ => host.to_string(),
    };
    let ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'*');
    if !ok || host.is_empty() {
        return None;
    }
    let local = host == "localhost" || host.ends_with(".localhost");
    Some(match port {
        Some(_) if local => format!("{scheme}://{host}:*"),
        Some(p) => format!("{scheme}://{host}:{p}"),
        None => format!("{scheme}://{host}"),
    })
}

/// The IDE's CSP: scripts only from the IDE's own origin (no inline script, no eval), the
/// preview origin as the only frame, the API and its sockets on the own origin, and nobody may
/// frame the IDE. Inline styles are allowed: the editor (CodeMirror) and terminal (xterm.js)
/// inject `<style>` elements, and style cannot run script.
pub fn ide_csp(preview_url: &str) -> String {
    let frame = preview_frame_source(preview_url).unwrap_or_else(|| "'none'".into());
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; \
         frame-src {frame}; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Extensions a browser would render as a document or run as script (html, svg, xml, js...):
/// served raw they must download, never render on the IDE's origin.
const ACTIVE: &[&str] = &[
    "html",
    "htm",
    "xhtml",
    "xht",
    "shtml",
    "svg",
    "svgz",
    "xml",
    "xsl",
    "xslt",
    "rss",
    "atom",
    "js",
    "mjs",
    "cjs",
    "jsx",
    "ts",
    "tsx",
    "wasm",
    "pdf",
    "swf",
    "mht",
    "mhtml",
    "appcache",
    "manifest",
    "webmanifest",
    "vtt",
];

/// Whether a project file at `path` is of an active type (by its extension; a file without
/// one counts as active, since a browser would sniff it).
pub fn is_active_type(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => {
            ACTIVE.contains(&ext.to_ascii_lowercase().as_str())
        }
        _ => true,
    }
}

/// `attachment; filename="..."` for the file's base name (quotes and controls replaced, and
/// the UTF-8 name in `filename*`).
pub fn attachment(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Whether a content type is an HTML page (which gets the IDE's CSP).
pub fn is_html(content_type: &str) -> bool {
    content_type
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("text/html")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_sources() {
        assert_eq!(
            preview_frame_source("http://{id}.preview.localhost:8001/").as_deref(),
            Some("http://*.preview.localhost:*")
        );
        assert_eq!(
            preview_frame_source("https://{id}.previews.example.com:8443/").as_deref(),
            Some("https://*.previews.example.com:8443")
        );
        assert_eq!(
            preview_frame_source("https://{id}.previews.example-usercontent.com/").as_deref(),
            Some("https://*.previews.example-usercontent.com")
        );
        assert_eq!(
            preview_frame_source("https://preview.example.com/p/{id}/").as_deref(),
            Some("https://preview.example.com")
        );
        for bad in [
            "ftp://x/",
            "nope",
            "http://a{id}b/",
            "http://u@h/",
            "http:///",
            "http://a b/",
        ] {
            assert_eq!(preview_frame_source(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_ide_csp_allows_only_its_own_scripts_and_the_preview_frame() {
        let c = ide_csp("http://{id}.preview.localhost:8001/");
        assert!(c.contains("script-src 'self';"), "{c}");
        assert!(!c.contains("unsafe-eval"));
        assert!(!c
            .split(';')
            .any(|d| d.trim().starts_with("script-src") && d.contains("unsafe-inline")));
        assert!(c.contains("frame-src http://*.preview.localhost:*;"), "{c}");
        assert!(c.ends_with("frame-ancestors 'none'"), "{c}");
        assert!(ide_csp("garbage").contains("frame-src 'none'"));
    }

    #[test]
    fn active_types() {
        for a in [
            "x.html",
            "a/b/x.SVG",
            "x.xml",
            "app.js",
            "m.mjs",
            "Makefile",
            ".env",
            "doc.pdf",
        ] {
            assert!(is_active_type(a), "{a}");
        }
        for p in [
            "x.txt", "a/b.png", "c.json", "d.css", "e.md", "f.py", "g.rs", "h.jpg",
        ] {
            assert!(!is_active_type(p), "{p}");
        }
    }

    #[test]
    fn attachment_names_are_quoted_safely() {
        assert_eq!(
            attachment("src/x.html"),
            "attachment; filename=\"x.html\"; filename*=UTF-8''x.html"
        );
        assert_eq!(
            attachment("a\"b\r\n.svg"),
            "attachment; filename=\"a_b__.svg\"; filename*=UTF-8''a%22b%0D%0A.svg"
        );
        assert!(is_html("text/html; charset=utf-8") && !is_html("application/json"));
    }
}
