//! Parses `AZURE_STORAGE_CONNECTION_STRING` in all the shapes Azure and Azurite document.

use base64::Engine;

/// Azurite's well-known development account (documented by Microsoft, not a secret).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known development key (documented by Microsoft, not a secret).
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How requests are authorised.
#[derive(Clone, PartialEq, Eq)]
pub enum AzureAuth {
    /// The decoded account key; requests carry a SharedKey `Authorization` header.
    SharedKey(Vec<u8>),
    /// A SAS token (without the leading `?`), appended to every URL's query.
    Sas(String),
}

impl std::fmt::Debug for AzureAuth {
    // Never print key material, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AzureAuth::SharedKey(_) => f.write_str("SharedKey(<redacted>)"),
            AzureAuth::Sas(_) => f.write_str("Sas(<redacted>)"),
        }
    }
}

/// Everything needed to address and sign Blob requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureConfig {
    pub account: String,
    /// Blob service endpoint without a trailing slash, e.g. `https://acct.blob.core.windows.net`
    /// or, path-style for Azurite, `http://127.0.0.1:10000/devstoreaccount1`.
    pub blob_endpoint: String,
    pub auth: AzureAuth,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnError {
    #[error("AZURE_STORAGE_CONNECTION_STRING is empty")]
    Empty,
    #[error("connection string segment {0:?} is not of the form Key=Value")]
    Malformed(String),
    #[error("connection string has no AccountName and no BlobEndpoint")]
    NoAccount,
    #[error("connection string has neither AccountKey nor SharedAccessSignature")]
    NoCredential,
    #[error("AccountKey is not valid base64")]
    BadKey,
    #[error("BlobEndpoint {0:?} is not an http(s) URL")]
    BadEndpoint(String),
}

impl AzureConfig {
    /// Parses a connection string such as
    /// `DefaultEndpointsProtocol=https;AccountName=a;AccountKey=k;EndpointSuffix=core.windows.net`,
    /// one with an explicit `BlobEndpoint=`, one with `SharedAccessSignature=`, or
    /// `UseDevelopmentStorage=true` (Azurite on 127.0.0.1:10000, overridable with
    /// `DevelopmentStorageProxyUri`).
    pub fn from_connection_string(s: &str) -> Result<Self, ConnError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ConnError::Empty);
        }
        let mut protocol = "https".to_string();
        let mut account = None;
        let mut key = None;
        let mut sas = None;
        let mut blob_endpoint = None;
        let mut suffix = "core.windows.net".to_string();
        let mut dev = false;
        let mut dev_proxy = None;
        for seg in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            // Values (keys, SAS tokens) may contain '='; split on the first one only.
            let (k, v) = seg
                .split_once('=')
                .ok_or_else(|| ConnError::Malformed(seg.chars().take(40).collect()))?;
            match k.trim().to_ascii_lowercase().as_str() {
                "defaultendpointsprotocol" => protocol = v.trim().to_ascii_lowercase(),
                "accountname" => account = Some(v.trim().to_string()),
                "accountkey" => key = Some(v.trim().to_string()),
                "sharedaccesssignature" => sas = Some(v.trim().trim_start_matches('?').to_string()),
                "blobendpoint" => blob_endpoint = Some(v.trim().trim_end_matches('/').to_string()),
                "endpointsuffix" => suffix = v.trim().to_string(),
                "usedevelopmentstorage" => dev = v.trim().eq_ignore_ascii_case("true"),
                "developmentstorageproxyuri" => {
                    dev_proxy = Some(v.trim().trim_end_matches('/').to_string())
                }
                // Queue/Table/File endpoints are not ours to use; ignore them.
                _ => {}
            }
        }
        if dev {
            let base = dev_proxy.unwrap_or_else(|| "http://127.0.0.1:10000".to_string());
            return Ok(AzureConfig {
                account: DEV_ACCOUNT.to_string(),
                blob_endpoint: format!("{base}/{DEV_ACCOUNT}"),
                auth: AzureAuth::SharedKey(decode_key(DEV_KEY)?),
            });
        }
        let account = match (account, &blob_endpoint) {
            (Some(a), _) => a,
            // A SAS-only string may name just the endpoint; take the account from its host.
            (None, Some(ep)) => account_from_endpoint(ep).ok_or(ConnError::NoAccount)?,
            (None, None) => return Err(ConnError::NoAccount),
        };
        let blob_endpoint =
            blob_endpoint.unwrap_or_else(|| format!("{protocol}://{account}.blob.{suffix}"));
        if !(blob_endpoint.starts_with("http://") || blob_endpoint.starts_with("https://")) {
            return Err(ConnError::BadEndpoint(blob_endpoint));
        }
        let auth = match (key, sas) {
            (Some(k), _) => AzureAuth::SharedKey(decode_key(&k)?),
            (None, Some(t)) => AzureAuth::Sas(t),
            (None, None) => return Err(ConnError::NoCredential),
        };
        Ok(AzureConfig {
            account,
            blob_endpoint,
            auth,
        })
    }

    /// The host (and port) requests go to, for health messages.
    pub fn host(&self) -> &str {
        let rest = self
            .blob_endpoint
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.blob_endpoint);
        rest.split('/').next().unwrap_or(rest)
    }
}

fn decode_key(k: &str) -> Result<Vec<u8>, ConnError> {
    base64::engine::general_purpose::STANDARD
        .decode(k)
        .map_err(|_| ConnError::BadKey)
}

fn account_from_endpoint(ep: &str) -> Option<String> {
    let host = ep.split_once("://")?.1.split(['/', ':']).next()?;
    let first = host.split('.').next()?;
    (!first.is_empty() && host.contains(".blob.")).then(|| first.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_and_key_with_suffix() {
        let c = AzureConfig::from_connection_string(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(c.account, "acme");
        assert_eq!(c.blob_endpoint, "https://acme.blob.core.windows.net");
        assert_eq!(c.auth, AzureAuth::SharedKey(b"key".to_vec()));
        assert_eq!(c.host(), "acme.blob.core.windows.net");
    }

    #[test]
    fn development_storage() {
        let c = AzureConfig::from_connection_string("UseDevelopmentStorage=true").unwrap();
        assert_eq!(c.account, DEV_ACCOUNT);
        assert_eq!(c.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        let c = AzureConfig::from_connection_string(
            "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://127.0.0.1:4321/",
        )
        .unwrap();
        assert_eq!(c.blob_endpoint, "http://127.0.0.1:4321/devstoreaccount1");
        assert_eq!(c.host(), "127.0.0.1:4321");
    }

    #[test]
    fn explicit_endpoint_azurite_style() {
        let c = AzureConfig::from_connection_string(&format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};BlobEndpoint=http://127.0.0.1:5555/{DEV_ACCOUNT};"
        ))
        .unwrap();
        assert_eq!(c.blob_endpoint, "http://127.0.0.1:5555/devstoreaccount1");
        assert!(matches!(c.auth, AzureAuth::SharedKey(ref k) if k.len() == 64));
    }

    #[test]
    fn sas_only_takes_account_from_endpoint() {
        let c = AzureConfig::from_connection_string(
            "BlobEndpoint=https://acme.blob.core.windows.net/;SharedAccessSignature=?sv=2024-01-01&sig=a%3D%3D",
        )
        .unwrap();
        assert_eq!(c.account, "acme");
        assert_eq!(c.auth, AzureAuth::Sas("sv=2024-01-01&sig=a%3D%3D".into()));
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(
            AzureConfig::from_connection_string(" "),
            Err(ConnError::Empty)
        );
        assert_eq!(
            AzureConfig::from_connection_string("AccountName=a;garbage"),
            Err(ConnError::Malformed("garbage".into()))
        );
        assert_eq!(
            AzureConfig::from_connection_string("AccountName=a"),
            Err(ConnError::NoCredential)
        );
        assert_eq!(
            AzureConfig::from_connection_string("AccountName=a;AccountKey=!!!"),
            Err(ConnError::BadKey)
        );
        assert_eq!(
            AzureConfig::from_connection_string("AccountKey=a2V5"),
            Err(ConnError::NoAccount)
        );
    }

    #[test]
    fn debug_never_prints_the_key() {
        let c = AzureConfig::from_connection_string("UseDevelopmentStorage=true").unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("Eby8"), "{s}");
        assert!(s.contains("redacted"));
    }
}
