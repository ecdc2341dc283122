//! Newtypes for secret values. Their `Debug` output is redacted and they have no `Display`, so
//! a secret cannot reach a log line by accident.

macro_rules! secret_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The secret value. Call this only where the value leaves the process on purpose
            /// (an HTTP request to the identity provider, a response to the owner of the value).
            pub fn secret(&self) -> &str {
                &self.0
            }

            /// Consumes the wrapper and returns the secret value.
            pub fn into_secret(self) -> String {
                self.0
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "([redacted])"))
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

secret_type!(
    /// An OAuth client secret.
    ClientSecret
);
secret_type!(
    /// An access token issued by an identity provider.
    AccessToken
);
secret_type!(
    /// A refresh token issued by an identity provider.
    RefreshToken
);
secret_type!(
    /// An OpenID Connect ID token issued by an identity provider.
    IdToken
);
secret_type!(
    /// A signed Backstage identity token (a JWT).
    BackstageToken
);
secret_type!(
    /// The `auth.session.secret` from which cookie keys are derived.
    SessionSecret
);
secret_type!(
    /// Opaque per-login data a strategy keeps between `start` and the callback (a PKCE code
    /// verifier, an OpenID nonce, a SAML request id). The protocol layer stores it encrypted and
    /// bound to the login's state.
    FlowData
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let token = AccessToken::new("gho_supersecret");
        let printed = format!("{token:?}");
        assert_eq!(printed, "AccessToken([redacted])");
        assert!(!printed.contains("supersecret"));
        assert_eq!(token.secret(), "gho_supersecret");
    }
}
