//! URL-safe names (project slugs, cron monitor slugs) derived from display names.

/// Turns a display name into a slug: lowercase ASCII letters, digits and single dashes, at most
/// 50 characters.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let trimmed = out.trim_end_matches('-');
    trimmed.chars().take(50).collect()
}

#[cfg(test)]
mod tests {
    use super::slugify;

    #[test]
    fn slugs_keep_ascii_letters_and_digits() {
        assert_eq!(slugify("My Web App!"), "my-web-app");
        assert_eq!(slugify("  --Ünïcode  API "), "n-code-api");
        assert_eq!(slugify("Nightly Backup!"), "nightly-backup");
        assert_eq!(slugify("checkout"), "checkout");
    }
}
