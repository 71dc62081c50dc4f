//! Names people give things (webhooks, workspaces): free text, but shown in lists, logs and
//! operational events, and stored as text on both backends, which must agree on what they
//! hold. PostgreSQL text cannot hold NUL at all; other control characters would be accepted
//! there but garble every place a name is shown, so names hold none.

use super::ValidationError;

const MAX_NAME_CHARS: usize = 255;

/// A name: 1 to 255 characters, not only whitespace, without control characters.
pub fn parse_name(field: &str, raw: String) -> Result<String, ValidationError> {
    if raw.trim().is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if raw.chars().count() > MAX_NAME_CHARS {
        return Err(ValidationError::new(field, "must be at most 255 characters"));
    }
    if raw.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "must not contain control characters"));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_visible_text() {
        assert_eq!(parse_name("name", "Billing – prod ✓".into()).unwrap(), "Billing – prod ✓");
        for bad in ["", "   ", "a\u{0}b", "tab\there", "line\nbreak", "\u{7f}", "\u{85}"] {
            assert_eq!(parse_name("name", bad.into()).unwrap_err().field, "name", "{bad:?}");
        }
        assert!(parse_name("name", "é".repeat(255)).is_ok());
        assert!(parse_name("name", "é".repeat(256)).is_err());
    }
}
