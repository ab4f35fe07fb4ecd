//! Blob URL building: percent-encoding of blob names so spaces, unicode and `%` round-trip.

use super::AzureConfig;

/// Percent-encodes a blob name for the URL path, keeping `/` as the virtual directory separator.
pub fn encode_blob_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for b in name.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-encodes a query value (everything but unreserved characters).
pub fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 8);
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A request target: the full URL plus the pieces the signer needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobTarget {
    pub url: String,
    pub encoded_path: String,
    pub query: Vec<(String, String)>,
}

impl AzureConfig {
    /// Addresses `container` (when `blob` is `None`) or a blob inside it, with decoded `query`.
    pub fn target(
        &self,
        container: &str,
        blob: Option<&str>,
        query: &[(&str, &str)],
    ) -> BlobTarget {
        let endpoint_path = self
            .blob_endpoint
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or("");
        let mut encoded_path = format!("{endpoint_path}/{}", encode_blob_name(container));
        if let Some(b) = blob {
            encoded_path.push('/');
            encoded_path.push_str(&encode_blob_name(b));
        }
        let origin_end = self.blob_endpoint.len() - endpoint_path.len();
        let mut url = format!("{}{}", &self.blob_endpoint[..origin_end], encoded_path);
        let mut sep = '?';
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (k, v) in &query {
            url.push(sep);
            sep = '&';
            url.push_str(&encode_query_value(k));
            url.push('=');
            url.push_str(&encode_query_value(v));
        }
        if let super::AzureAuth::Sas(token) = &self.auth {
            url.push(sep);
            url.push_str(token);
        }
        BlobTarget {
            url,
            encoded_path,
            query,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::AzureConfig;

    #[test]
    fn names_with_spaces_unicode_and_percent() {
        assert_eq!(encode_blob_name("a b/é%.txt"), "a%20b/%C3%A9%25.txt");
    }

    #[test]
    fn path_style_endpoint_keeps_account_in_path() {
        let c = AzureConfig::from_connection_string("UseDevelopmentStorage=true").unwrap();
        let t = c.target(
            "codebase-projects",
            Some("p/x y"),
            &[("comp", "list"), ("prefix", "p/a b")],
        );
        assert_eq!(
            t.encoded_path,
            "/devstoreaccount1/codebase-projects/p/x%20y"
        );
        assert_eq!(
            t.url,
            "http://127.0.0.1:10000/devstoreaccount1/codebase-projects/p/x%20y?comp=list&prefix=p%2Fa%20b"
        );
    }

    #[test]
    fn host_style_endpoint_and_sas() {
        let c = AzureConfig::from_connection_string(
            "BlobEndpoint=https://acme.blob.core.windows.net;SharedAccessSignature=sv=1&sig=x",
        )
        .unwrap();
        let t = c.target("c", None, &[("restype", "container")]);
        assert_eq!(t.encoded_path, "/c");
        assert_eq!(
            t.url,
            "https://acme.blob.core.windows.net/c?restype=container&sv=1&sig=x"
        );
    }
}
