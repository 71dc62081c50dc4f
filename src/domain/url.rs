//! Webhook target URLs.

use std::fmt;

use serde::Serialize;

use super::ValidationError;

const MAX_URL_LEN: usize = 2048;

/// Which targets a deployment accepts. `allow_http` is on with `--dev`.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlPolicy {
    pub allow_http: bool,
}

/// An absolute `https://` (or, in dev, `http://`) URL with a host and no userinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    pub fn parse(field: &str, raw: &str, policy: UrlPolicy) -> Result<Self, ValidationError> {
        if raw.len() > MAX_URL_LEN {
            return Err(ValidationError::new(field, "must be at most 2048 characters"));
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
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ValidationError::new(field, "must not contain user information"));
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

    const STRICT: UrlPolicy = UrlPolicy { allow_http: false };
    const DEV: UrlPolicy = UrlPolicy { allow_http: true };

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
    fn relative_userinfo_odd_schemes_and_long_urls_are_refused() {
        let long = format!("https://example.com/{}", "a".repeat(2048));
        for bad in [
            "/relative",
            "example.com",
            "https://user:pw@example.com/",
            "https://user@example.com/",
            "ftp://example.com/",
            "file:///etc/passwd",
            long.as_str(),
        ] {
            let err = WebhookUrl::parse("url", bad, DEV).unwrap_err();
            assert_eq!(err.field, "url", "{bad}");
        }
    }
}
