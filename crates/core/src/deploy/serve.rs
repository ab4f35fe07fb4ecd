//! Serving a published app at the edge: which host names which deployment (`PUBLISH_URL`),
//! which static file answers a path (exact, a folder's `index.html`, the single-page-app
//! fallback) or whether the backend does (`/api/*`), and the headers a static answer carries
//! (type, strong ETag, long immutable caching for hashed assets, revalidation for the rest).
//! Pure rules for the Worker's publish host; unit-tested here.

use crate::azure::rest::content_type_for;
use crate::manifest::{FileEntry, Manifest};

/// `Cache-Control` of an asset whose name carries its content hash (`assets/index-BRm3fC9x.js`):
/// it never changes under that name.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of everything else (`index.html`, `favicon.svg`): always revalidated, so a
/// new deployment shows at once; the ETag makes revalidation a 304.
pub const CACHE_REVALIDATE: &str = "public, max-age=0, must-revalidate";
/// Slugs: 3 to 40 of `a-z`, `0-9` and `-`, not starting or ending with `-`.
pub const MIN_SLUG_CHARS: usize = 3;
pub const MAX_SLUG_CHARS: usize = 40;

/// Where a request to a published app goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// To the deployment's backend (the path and query unchanged).
    Backend,
    /// A static file of the deployment; `fallback` when it is the app's `index.html` answering a
    /// route the client-side router owns.
    Static {
        path: String,
        entry: &'a FileEntry,
        fallback: bool,
    },
    /// Nothing answers: 404.
    NotFound,
    /// A path that can never name a file (`..`, bad escapes, NUL): 400 with this message.
    Bad(String),
}

/// Whether `path` goes to the backend: `/api` and everything under `/api/`.
pub fn is_backend_path(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Which target answers `method` on `path` (the URL's path, still percent-encoded, starting
/// with `/`). Only GET and HEAD reach static files; `accepts_html` is whether the request's
/// `Accept` names `text/html` (a browser navigating), which is when a missing extension-less
/// route falls back to `index.html`.
pub fn resolve<'a>(
    manifest: &'a Manifest,
    method: &str,
    path: &str,
    accepts_html: bool,
) -> Target<'a> {
    if is_backend_path(path) {
        return Target::Backend;
    }
    if method != "GET" && method != "HEAD" {
        return Target::NotFound;
    }
    let decoded = match crate::paths::percent_decode(path.trim_start_matches('/')) {
        Ok(d) => d,
        Err(e) => return Target::Bad(e),
    };
    let rel = decoded.trim_end_matches('/');
    if !rel.is_empty() {
        if let Err(e) = crate::paths::validate_path(rel) {
            return Target::Bad(e.to_string());
        }
    }
    let found = |p: &str| manifest.files.get(p).map(|e| (p.to_string(), e));
    let candidates = if rel.is_empty() {
        vec!["index.html".to_string()]
    } else if decoded.ends_with('/') {
        vec![format!("{rel}/index.html")]
    } else {
        vec![
            rel.to_string(),
            format!("{rel}/index.html"),
            format!("{rel}.html"),
        ]
    };
    for c in &candidates {
        if let Some((p, entry)) = found(c) {
            return Target::Static {
                path: p,
                entry,
                fallback: false,
            };
        }
    }
    // A route of a single-page app (`/todos/3`): the app's index.html, for navigations only. A
    // missing asset (`/assets/gone.js`) stays a 404 so a broken deployment is visible.
    let last = rel.rsplit('/').next().unwrap_or("");
    if accepts_html && !last.contains('.') {
        if let Some((p, entry)) = found("index.html") {
            return Target::Static {
                path: p,
                entry,
                fallback: true,
            };
        }
    }
    Target::NotFound
}

/// Whether a file name carries a content hash, as bundlers write them: a last `-` or `.`
/// separated part before the extension of at least 8 characters mixing letters and digits
/// (`index-BRm3fC9x.js`, `app.3f2a9c1b.css`, `chunk-2F6XJZ7K.mjs`).
pub fn is_hashed_asset(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some((stem, _ext)) = name.rsplit_once('.') else {
        return false;
    };
    let Some(part) = stem
        .rsplit(['-', '.'])
        .next()
        .filter(|p| p.len() < stem.len())
    else {
        return false;
    };
    part.len() >= 8
        && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && part.chars().any(|c| c.is_ascii_digit())
        && part.chars().any(|c| c.is_ascii_alphabetic())
}

/// The strong ETag of a file: its sha256, quoted.
pub fn etag(entry: &FileEntry) -> String {
    format!("\"{}\"", entry.sha256)
}

/// Whether an `If-None-Match` header value matches `etag` (a list, `*`, weak forms compared
/// weakly as RFC 9110 says for GET).
pub fn not_modified(if_none_match: Option<&str>, etag: &str) -> bool {
    let Some(v) = if_none_match else {
        return false;
    };
    v.split(',').map(str::trim).any(|t| {
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag.strip_prefix("W/").unwrap_or(etag)
    })
}

/// The headers of a static answer for `path`.
pub fn static_headers(
    path: &str,
    entry: &FileEntry,
    fallback: bool,
) -> Vec<(&'static str, String)> {
    let cache = if !fallback && is_hashed_asset(path) {
        CACHE_IMMUTABLE
    } else {
        CACHE_REVALIDATE
    };
    vec![
        ("content-type", content_type_for(path).to_string()),
        ("etag", etag(entry)),
        ("cache-control", cache.to_string()),
        ("x-content-type-options", "nosniff".to_string()),
    ]
}

/// Whether `slug` is a valid published app name.
pub fn validate_slug(slug: &str) -> Result<(), String> {
    let n = slug.chars().count();
    if !(MIN_SLUG_CHARS..=MAX_SLUG_CHARS).contains(&n) {
        return Err(format!(
            "an app name is {MIN_SLUG_CHARS} to {MAX_SLUG_CHARS} characters; {slug:?} has {n}"
        ));
    }
    if !slug
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || slug.starts_with('-')
        || slug.ends_with('-')
    {
        return Err(format!(
            "an app name is made of a-z, 0-9 and '-', not starting or ending with '-': {slug:?}"
        ));
    }
    Ok(())
}

/// A slug made from a project's name: lower-case ASCII letters and digits, other runs as one
/// `-`, cut to the limit, padded with `app` when too short.
pub fn slug_from_name(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            s.push(c);
        } else if !s.is_empty() && !s.ends_with('-') {
            s.push('-');
        }
    }
    let mut s: String = s.chars().take(MAX_SLUG_CHARS).collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.len() < MIN_SLUG_CHARS {
        s = if s.is_empty() {
            "app".into()
        } else {
            format!("{s}-app")
        };
    }
    s
}

/// The slugs to try, in order, for a project's first publish: its name's slug, then that slug
/// with the end of the project id (its random part) so a taken name still gets a readable
/// slug, then the project id itself (unique) cut to the limit.
pub fn slug_candidates(name: &str, project_id: &str) -> Vec<String> {
    let base = slug_from_name(name);
    let tail: String = project_id
        .rsplit('-')
        .next()
        .unwrap_or("")
        .chars()
        .take(8)
        .collect();
    let mut out = vec![base.clone()];
    if !tail.is_empty() {
        let keep = MAX_SLUG_CHARS - 1 - tail.len();
        let head: String = base.chars().take(keep).collect();
        out.push(format!("{}-{tail}", head.trim_end_matches('-')));
    }
    let id: String = project_id.chars().take(MAX_SLUG_CHARS).collect();
    out.push(slug_from_name(&id));
    out.retain(|s| validate_slug(s).is_ok());
    out.dedup();
    out
}

/// The public URL template (`PUBLISH_URL`, e.g. `https://{slug}.apps.example.com/`): where the
/// `{slug}` label sits in a host name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishUrl {
    scheme: String,
    /// The host after `{slug}.` (`apps.example.com`), lower-case.
    suffix: String,
    /// `:8787` or empty.
    port: String,
}

impl PublishUrl {
    /// Parses `scheme://{slug}.suffix[:port][/]`; the slug must be the whole first label.
    pub fn parse(template: &str) -> Result<PublishUrl, String> {
        let t = template.trim().trim_end_matches('/');
        let (scheme, rest) = t
            .split_once("://")
            .ok_or_else(|| format!("PUBLISH_URL needs a scheme (https://{{slug}}.…): {t:?}"))?;
        if scheme != "https" && scheme != "http" {
            return Err(format!("PUBLISH_URL must be http or https: {t:?}"));
        }
        let host_port = rest
            .strip_prefix("{slug}.")
            .ok_or_else(|| format!("PUBLISH_URL's host must start with {{slug}}.: {t:?}"))?;
        if host_port.contains('/') || host_port.contains('{') {
            return Err(format!("PUBLISH_URL has no path and one {{slug}}: {t:?}"));
        }
        let (suffix, port) = match host_port.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => (h, format!(":{p}")),
            _ => (host_port, String::new()),
        };
        if suffix.is_empty() || !suffix.contains('.') && suffix != "localhost" {
            return Err(format!("PUBLISH_URL needs a domain after {{slug}}.: {t:?}"));
        }
        Ok(PublishUrl {
            scheme: scheme.into(),
            suffix: suffix.to_ascii_lowercase(),
            port,
        })
    }

    /// The app's public URL.
    pub fn url_for(&self, slug: &str) -> String {
        format!("{}://{slug}.{}{}/", self.scheme, self.suffix, self.port)
    }

    /// The slug a request's `Host` (with or without port) names, if it is one of ours.
    pub fn slug_of(&self, host: &str) -> Option<String> {
        let h = host.trim().to_ascii_lowercase();
        let h = match h.rsplit_once(':') {
            Some((name, p)) if p.parse::<u16>().is_ok() => name.to_string(),
            _ => h,
        };
        let slug = h.strip_suffix(&self.suffix)?.strip_suffix('.')?;
        validate_slug(slug).ok()?;
        Some(slug.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(paths: &[&str]) -> Manifest {
        let mut m = Manifest::default();
        for (i, p) in paths.iter().enumerate() {
            m.files.insert(
                p.to_string(),
                FileEntry {
                    sha256: format!("{i:064x}"),
                    size: 10,
                },
            );
        }
        m
    }

    fn path_of(t: Target) -> (String, bool) {
        match t {
            Target::Static { path, fallback, .. } => (path, fallback),
            other => panic!("not static: {other:?}"),
        }
    }

    #[test]
    fn paths_resolve_to_files_folders_and_the_spa_fallback() {
        let m = manifest(&[
            "index.html",
            "assets/index-BRm3fC9x.js",
            "docs/index.html",
            "about.html",
            "a b.txt",
        ]);
        assert_eq!(
            path_of(resolve(&m, "GET", "/", true)),
            ("index.html".into(), false)
        );
        assert_eq!(
            path_of(resolve(&m, "HEAD", "/assets/index-BRm3fC9x.js", false)),
            ("assets/index-BRm3fC9x.js".into(), false)
        );
        assert_eq!(
            path_of(resolve(&m, "GET", "/docs/", true)).0,
            "docs/index.html"
        );
        assert_eq!(
            path_of(resolve(&m, "GET", "/docs", true)).0,
            "docs/index.html"
        );
        assert_eq!(path_of(resolve(&m, "GET", "/about", true)).0, "about.html");
        assert_eq!(
            path_of(resolve(&m, "GET", "/a%20b.txt", false)).0,
            "a b.txt"
        );
        // A client-side route: index.html for a navigation, 404 for anything else.
        assert_eq!(
            path_of(resolve(&m, "GET", "/todos/3", true)),
            ("index.html".into(), true)
        );
        assert_eq!(resolve(&m, "GET", "/todos/3", false), Target::NotFound);
        // A missing asset is a 404 even for a browser.
        assert_eq!(
            resolve(&m, "GET", "/assets/gone.js", true),
            Target::NotFound
        );
        // The backend owns /api; other methods never reach files.
        assert_eq!(resolve(&m, "POST", "/api/todos", false), Target::Backend);
        assert_eq!(resolve(&m, "GET", "/api", true), Target::Backend);
        assert_ne!(resolve(&m, "GET", "/apiary", true), Target::Backend);
        assert_eq!(resolve(&m, "POST", "/index.html", true), Target::NotFound);
        // No index.html: nothing to fall back to.
        let bare = manifest(&["app.js"]);
        assert_eq!(resolve(&bare, "GET", "/", true), Target::NotFound);
        assert_eq!(resolve(&bare, "GET", "/x", true), Target::NotFound);
    }

    #[test]
    fn paths_that_cannot_name_a_file_are_bad_requests() {
        let m = manifest(&["index.html"]);
        for p in ["/../etc/passwd", "/a/%2e%2e/b", "/%ZZ", "/a%00b"] {
            assert!(matches!(resolve(&m, "GET", p, true), Target::Bad(_)), "{p}");
        }
    }

    #[test]
    fn hashed_assets_are_recognised_and_cached_for_good() {
        for p in [
            "assets/index-BRm3fC9x.js",
            "static/js/main.3f2a9c1b.js",
            "chunk-2F6XJZ7K.mjs",
            "assets/logo-a1b2c3d4.svg",
        ] {
            assert!(is_hashed_asset(p), "{p}");
        }
        for p in [
            "index.html",
            "favicon.svg",
            "assets/vendor.js",
            "my-component.js",
            "readme-file.txt",
        ] {
            assert!(!is_hashed_asset(p), "{p}");
        }
        let e = FileEntry {
            sha256: "ab".repeat(32),
            size: 1,
        };
        let h = static_headers("assets/index-BRm3fC9x.js", &e, false);
        assert!(h.contains(&("cache-control", CACHE_IMMUTABLE.to_string())));
        assert!(h.contains(&("content-type", "text/javascript; charset=utf-8".to_string())));
        assert!(h.contains(&("etag", format!("\"{}\"", "ab".repeat(32)))));
        let h = static_headers("index.html", &e, true);
        assert!(h.contains(&("cache-control", CACHE_REVALIDATE.to_string())));
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let t = "\"abc\"";
        assert!(not_modified(Some("\"abc\""), t));
        assert!(not_modified(Some("W/\"abc\""), t));
        assert!(not_modified(Some("\"x\", \"abc\""), t));
        assert!(not_modified(Some("*"), t));
        assert!(!not_modified(Some("\"abd\""), t));
        assert!(!not_modified(None, t));
    }

    #[test]
    fn slugs_from_names_and_their_rules() {
        assert_eq!(slug_from_name("My Todo App!"), "my-todo-app");
        assert_eq!(slug_from_name("  ---Kanban---  "), "kanban");
        assert_eq!(slug_from_name("日本"), "app");
        assert_eq!(slug_from_name("x"), "x-app");
        assert_eq!(slug_from_name(&"a".repeat(80)).len(), MAX_SLUG_CHARS);
        for good in ["abc", "my-app-2", &"a".repeat(40)] {
            assert!(validate_slug(good).is_ok(), "{good}");
        }
        for bad in ["ab", "-abc", "abc-", "ABC", "a_b", "a.b", &"a".repeat(41)] {
            assert!(validate_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn publish_url_templates_give_urls_and_read_hosts() {
        let p = PublishUrl::parse("https://{slug}.apps.example.com/").unwrap();
        assert_eq!(p.url_for("todo"), "https://todo.apps.example.com/");
        assert_eq!(p.slug_of("todo.apps.example.com"), Some("todo".into()));
        assert_eq!(p.slug_of("TODO.Apps.Example.com:443"), Some("todo".into()));
        assert_eq!(p.slug_of("apps.example.com"), None);
        assert_eq!(p.slug_of("a.b.apps.example.com"), None);
        assert_eq!(p.slug_of("todo.apps.example.com.evil.net"), None);
        assert_eq!(p.slug_of("todoapps.example.com"), None);
        let local = PublishUrl::parse("http://{slug}.apps.localhost:8787").unwrap();
        assert_eq!(local.url_for("todo"), "http://todo.apps.localhost:8787/");
        assert_eq!(
            local.slug_of("todo.apps.localhost:8787"),
            Some("todo".into())
        );
        for bad in [
            "apps.example.com",
            "ftp://{slug}.x.com",
            "https://app-{slug}.x.com",
            "https://{slug}.x.com/path",
            "https://{slug}.",
            "https://{slug}.{slug}.x.com",
        ] {
            assert!(PublishUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slug_candidates_start_with_the_name_and_end_unique() {
        assert_eq!(
            slug_candidates("Todo App", "todo-app-k3j9x2"),
            ["todo-app", "todo-app-k3j9x2"]
        );
        let long = "a".repeat(60);
        let c = slug_candidates(&long, &format!("{}-zz12", "b".repeat(50)));
        assert!(c.iter().all(|s| validate_slug(s).is_ok()), "{c:?}");
        assert!(c[1].ends_with("-zz12"), "{c:?}");
        assert_eq!(slug_candidates("!!", "app-9x")[0], "app");
    }
}
