//! The session cookie: reading it from a `Cookie` header and writing its `Set-Cookie` line.

/// The session cookie's name. On HTTPS it is `__Host-or_session` (the prefix makes browsers
/// refuse it unless it is Secure, host-only and `Path=/`); on http loopback plain `or_session`.
pub fn session_name(secure: bool) -> &'static str {
    if secure {
        "__Host-or_session"
    } else {
        "or_session"
    }
}

/// The name of the short-lived cookie that binds a sign-in to the browser that started it.
pub fn login_name(secure: bool) -> &'static str {
    if secure {
        "__Host-or_login"
    } else {
        "or_login"
    }
}

/// The value of cookie `name` in a `Cookie` header, if present and non-empty.
pub fn get<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|part| {
        let (k, v) = part.trim().split_once('=')?;
        (k.trim() == name && !v.trim().is_empty()).then(|| v.trim().trim_matches('"'))
    })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Lax, `Path=/`, Secure unless served over plain
/// http on loopback (where browsers would drop a Secure cookie from `http://127.0.0.1`).
/// `max_age_s = 0` deletes it.
pub fn set(name: &str, value: &str, max_age_s: u64, secure: bool) -> String {
    let mut s = format!("{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Lax");
    if secure {
        s.push_str("; Secure");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_cookie_only() {
        let h = "a=1; or_session=ors_abc; or_session_x=2";
        assert_eq!(get(h, "or_session"), Some("ors_abc"));
        assert_eq!(get(h, "or_sess"), None);
        assert_eq!(get("or_session=", "or_session"), None);
        assert_eq!(get("", "or_session"), None);
    }

    #[test]
    fn set_cookie_is_http_only_lax_and_secure_off_loopback() {
        let c = set(session_name(true), "v", 60, true);
        assert_eq!(
            c,
            "__Host-or_session=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        let c = set(session_name(false), "v", 0, false);
        assert!(c.starts_with("or_session=v; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"));
        assert!(!c.contains("Secure"));
    }
}
