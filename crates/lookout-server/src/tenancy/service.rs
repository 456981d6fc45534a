//! The core's domain checks, written once for the API, the UI and the CLI.

use crate::service::{ServiceError, ServiceResult};

/// Checks an email and password for a new user (the API, the setup and settings forms, and `lookout user create`).
pub fn validate_new_user(email: &str, password: &str) -> ServiceResult<()> {
    validate_email(email)?;
    crate::tenancy::links::validate_password(password)
}

/// Checks a login email (an invitation has no password yet).
pub fn validate_email(email: &str) -> ServiceResult<()> {
    let email = email.trim();
    if email.len() < 3
        || email.len() > 254
        || !email.contains('@')
        || email.contains(char::is_whitespace)
    {
        return Err(ServiceError::Invalid(
            "email must be an address like ada@example.com".into(),
        ));
    }
    Ok(())
}
