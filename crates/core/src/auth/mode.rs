//! Which of the three auth modes a Worker runs in, and the loopback test local mode rests on.
//!
//! - `Local`: no identity provider configured (what `make dev` is). One person, user id
//!   `local`, owner of everything; the Worker answers only requests addressed to loopback, so a
//!   deployed Worker that nobody configured refuses every API call instead of serving everyone.
//! - `SignIn`: an OpenID Connect issuer and/or GitHub is configured; every API call needs a
//!   session cookie or a personal API token.
//! - `Open`: `AUTH_MODE=open`, set explicitly by an operator who wants no accounts: everyone is
//!   user `open`, owner of everything (today's behaviour, on purpose).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Local,
    SignIn,
    Open,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Local => "local",
            Mode::SignIn => "signin",
            Mode::Open => "open",
        }
    }

    /// The mode from `AUTH_MODE` and whether a provider is configured.
    pub fn resolve(auth_mode: Option<&str>, has_provider: bool) -> Result<Mode, String> {
        match auth_mode.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") if has_provider => Ok(Mode::SignIn),
            None | Some("") => Ok(Mode::Local),
            Some("signin") if has_provider => Ok(Mode::SignIn),
            Some("signin") => Err(
                "AUTH_MODE=signin but no identity provider is configured: set OIDC_ISSUER, \
                 OIDC_CLIENT_ID and OIDC_CLIENT_SECRET, or GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET"
                    .into(),
            ),
            Some("local") => Ok(Mode::Local),
            Some("open") => Ok(Mode::Open),
            Some(other) => Err(format!(
                "AUTH_MODE={other:?} is not a mode: use signin (the default with a provider), \
                 local (the default without one) or open"
            )),
        }
    }
}

/// The message a non-loopback caller of a Worker in local mode gets.
pub const NOT_CONFIGURED: &str = "this server has no identity provider configured, so it only \
answers on loopback (make dev). The operator must set OIDC_ISSUER, OIDC_CLIENT_ID and \
OIDC_CLIENT_SECRET (or GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET), or set AUTH_MODE=open to serve \
everyone without accounts";

/// Whether a URL host (as in `Host`, without the port) names this machine: `localhost`,
/// `*.localhost`, 127.0.0.0/8 or `[::1]`.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "localhost"
        || h.ends_with(".localhost")
        || h == "[::1]"
        || h == "::1"
        || is_loopback_ip(&h)
}

/// Whether an IP address literal is loopback (127.0.0.0/8 or ::1).
pub fn is_loopback_ip(ip: &str) -> bool {
    let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
    if ip == "::1" || ip == "::ffff:127.0.0.1" {
        return true;
    }
    let parts: Vec<&str> = ip.split('.').collect();
    parts.len() == 4 && parts[0] == "127" && parts.iter().all(|p| p.parse::<u8>().is_ok())
}

/// Local mode's admission rule: the request is addressed to loopback, and when the runtime
/// names the peer (`CF-Connecting-IP`), the peer is loopback too.
pub fn local_request_allowed(host: &str, peer: Option<&str>) -> bool {
    is_loopback_host(host) && peer.is_none_or(is_loopback_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(Mode::resolve(None, false), Ok(Mode::Local));
        assert_eq!(Mode::resolve(None, true), Ok(Mode::SignIn));
        assert_eq!(Mode::resolve(Some(""), true), Ok(Mode::SignIn));
        assert_eq!(Mode::resolve(Some("open"), false), Ok(Mode::Open));
        assert_eq!(Mode::resolve(Some(" Open "), true), Ok(Mode::Open));
        assert_eq!(Mode::resolve(Some("local"), true), Ok(Mode::Local));
        assert!(Mode::resolve(Some("signin"), false).is_err());
        assert!(Mode::resolve(Some("yes"), false)
            .unwrap_err()
            .contains("not a mode"));
    }

    #[test]
    fn loopback() {
        for h in [
            "localhost",
            "127.0.0.1",
            "127.1.2.3",
            "[::1]",
            "app.localhost",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "example.com",
            "10.0.0.1",
            "localhost.example.com",
            "128.0.0.1",
            "127.0.0",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
        assert!(local_request_allowed("127.0.0.1", None));
        assert!(local_request_allowed("localhost", Some("127.0.0.1")));
        assert!(!local_request_allowed("localhost", Some("203.0.113.9")));
        assert!(!local_request_allowed("example.com", None));
    }
}
