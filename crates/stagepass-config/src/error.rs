//! Errors and warnings that point at a place in the configuration: the file, the dotted key and
//! what is wrong there.

use std::fmt;
use std::sync::Arc;

/// A configuration problem that stops the server from starting.
///
/// `Display` prints `<file>: <key>: <message>` (or `<file>: <message>` for problems with a file
/// as a whole), so an operator can go straight to the offending line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", located(.file, .key, .message))]
#[non_exhaustive]
pub struct ConfigError {
    /// The file the offending value came from, as it was named on the command line (or
    /// `<built-in>`). When several files contributed to a map, their names joined by `, `.
    pub file: Arc<str>,
    /// The dotted key of the offending value, e.g. `auth.backstageTokenExpiration` or
    /// `auth.keyStore.static.keys[0].keyId`; empty for problems with a file as a whole.
    pub key: String,
    /// What is wrong, in lowercase without a trailing period.
    pub message: String,
}

impl ConfigError {
    /// A new error about `key` in `file`.
    pub fn new(
        file: impl Into<Arc<str>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Something the configuration loader accepted but the operator should know about: a value
/// that was clamped, a `${VAR}` whose variable is not set. Log these once logging is set up
/// (a server logs them at start).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigWarning {
    /// The file the value came from.
    pub file: Arc<str>,
    /// The dotted key of the value.
    pub key: String,
    /// What happened, in lowercase without a trailing period.
    pub message: String,
}

impl ConfigWarning {
    /// A new warning about `key` in `file`.
    pub fn new(
        file: impl Into<Arc<str>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&located(&self.file, &self.key, &self.message))
    }
}

/// `<file>: <key>: <message>`, or `<file>: <message>` without a key.
fn located(file: &str, key: &str, message: &str) -> String {
    if key.is_empty() {
        format!("{file}: {message}")
    } else {
        format!("{file}: {key}: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_key_and_problem() {
        let err = ConfigError::new("app-config.yaml", "auth.environment", "expected a string");
        assert_eq!(
            err.to_string(),
            "app-config.yaml: auth.environment: expected a string"
        );
        let err = ConfigError::new("app-config.yaml", "", "invalid YAML");
        assert_eq!(err.to_string(), "app-config.yaml: invalid YAML");
    }
}
