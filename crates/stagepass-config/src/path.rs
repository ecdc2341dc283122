//! Dotted key paths, as errors name them: `auth.providers.github.development.clientId`,
//! `auth.keyStore.static.keys[0].keyId`.

/// `parent.key`, or `key` at the top (when `parent` is empty).
///
/// ```
/// assert_eq!(stagepass_config::key_path("auth", "environment"), "auth.environment");
/// assert_eq!(stagepass_config::key_path("", "auth"), "auth");
/// ```
pub fn key_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[index]`.
///
/// ```
/// assert_eq!(stagepass_config::index_path("signIn.resolvers", 0), "signIn.resolvers[0]");
/// ```
pub fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}
