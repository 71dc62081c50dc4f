//! Webhook target URLs.

use std::fmt;

use serde::Serialize;

use super::ValidationError;

const MAX_URL_LEN: usize = 2048;

/// Which targets a deployment accepts. Both are on with `--dev`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlPolicy {
    pub allow_http: bool,
    /// Private, loopback and other internal addresses (SPEC §6 target guard off).
    pub allow_private: bool,
}

/// An absolute `https://` (or, in dev, `http://`) URL with a host and no userinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(field: &str, raw: &str, policy: UrlPolicy) -> Result<Self, ValidationError> {
        if raw.len() > MAX_URL_LEN {
            return Err(ValidationError::new(field, "must be at most 2048 characters"));
        }
        // The URL parser would silently drop or percent-encode them: what is stored must be
        // what the user wrote.
        if raw.chars().any(char::is_control) {
            return Err(ValidationError::new(field, "must not contain control characters"));
        }
        let url =
            url::Url::parse(raw).map_err(|e| ValidationError::new(field, format!("is not an absolute URL ({e})")))?;
        match url.scheme() {
            "https" => {}
            "http" if policy.allow_http => {}
            "http" => {
                return Err(ValidationError::new(field, "must use https:// (http:// is allowed only with --dev)"))
            }
            _ => return Err(ValidationError::new(field, "must be an https:// URL")),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(ValidationError::new(field, "must have a host"));
        }
        if url.port() == Some(0) {
            return Err(ValidationError::new(field, "must not use port 0"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ValidationError::new(field, "must not contain user information"));
        }
        if !policy.allow_private && Self(url.clone()).is_internal() {
            return Err(ValidationError::new(
                field,
                "must point to a public address (private, loopback and other internal addresses are refused)",
            ));
        }
        Ok(Self(url))
    }

    /// Rebuilds a URL read back from storage, where it was validated on the way in.
    pub fn from_stored(raw: &str) -> Result<Self, url::ParseError> {
        url::Url::parse(raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host as written (IPv6 without brackets) and the port, for resolving.
    pub fn host_and_port(&self) -> (String, u16) {
        let host = match self.0.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(host) => host.to_string(),
            None => String::new(),
        };
        (host, self.0.port_or_known_default().unwrap_or(443))
    }

    /// The host is an internal IP literal (in any of its spellings, which the URL parser
    /// normalises: `2130706433`, `127.1`, `[::ffff:127.0.0.1]`) or a `localhost` name.
    pub fn is_internal(&self) -> bool {
        match self.0.host() {
            Some(url::Host::Ipv4(ip)) => super::target::is_blocked(ip.into()),
            Some(url::Host::Ipv6(ip)) => super::target::is_blocked(ip.into()),
            Some(url::Host::Domain(name)) => super::target::is_local_name(name),
            None => true,
        }
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl Serialize for WebhookUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: UrlPolicy = UrlPolicy { allow_http: false, allow_private: false };
    const DEV: UrlPolicy = UrlPolicy { allow_http: true, allow_private: true };

    #[test]
    fn https_urls_are_accepted() {
        let url = WebhookUrl::parse("url", "https://example.com/hooks?x=1", STRICT).unwrap();
        assert_eq!(url.as_str(), "https://example.com/hooks?x=1");
    }

    #[test]
    fn http_is_refused_unless_dev() {
        assert!(WebhookUrl::parse("url", "http://example.com/", STRICT).is_err());
        assert!(WebhookUrl::parse("url", "http://127.0.0.1:9000/", DEV).is_ok());
    }

    #[test]
    fn internal_targets_are_refused_in_every_spelling() {
        for url in [
            "https://127.0.0.1/",
            "https://2130706433/",
            "https://127.1/",
            "https://0x7f.1/",
            "https://[::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:c0a8:0101::1]/",
            "https://10.0.0.8/",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/",
            "https://api.localhost:8443/",
            "https://0.0.0.0/",
            "https://[::ffff:0:7f00:1]/",
            "https://[2001::1]/",
            "https://[100::1]/",
            "https://192.88.99.1/",
        ] {
            assert!(WebhookUrl::parse("url", url, STRICT).is_err(), "{url}");
            assert!(WebhookUrl::parse("url", url, DEV).is_ok(), "{url} with the guard off");
        }
        assert!(WebhookUrl::parse("url", "https://8.8.8.8/", STRICT).is_ok());
    }

    #[test]
    fn relative_userinfo_odd_schemes_and_long_urls_are_refused() {
        let long = format!("https://example.com/{}", "a".repeat(2048));
        for bad in [
            "/relative",
            "example.com",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "ftp://example.com/",
            "file:///etc/passwd",
            "https://example.com:0/",
            "https://example.com/a\u{0}b",
            "https://example.com/\tx",
            "\u{1}https://example.com/",
            long.as_str(),
        ] {
            let err = WebhookUrl::parse("url", bad, DEV).unwrap_err();
            assert_eq!(err.field, "url", "{bad}");
        }
    }
}
