//! What the engine keeps in the protocol layer's encrypted cookies: the login flow data between
//! `start` and the callback, and the refresh-cookie value.

use serde::{Deserialize, Serialize};
use stagepass_core::{FlowData, RefreshToken};

/// The flow data of a login: compact JSON
/// `{"code_verifier":"…","nonce":"…","scope":"…"}`, each member optional.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct LoginFlow {
    /// The PKCE code verifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) code_verifier: Option<String>,
    /// The OpenID Connect nonce sent with the authorization request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) nonce: Option<String>,
    /// The scope requested, reported when the token response names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
}

impl LoginFlow {
    pub(crate) fn to_flow_data(&self) -> FlowData {
        FlowData::new(serde_json::to_string(self).unwrap_or_default())
    }

    pub(crate) fn from_flow_data(data: &FlowData) -> Option<Self> {
        serde_json::from_str(data.secret()).ok()
    }
}

/// The refresh-cookie value: compact JSON `{"rt":"<refresh token>","idt":"<id token>"}` (the
/// ID token kept for `id_token_hint` at logout), or a bare refresh token, which is read too.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct StoredSession {
    pub(crate) refresh_token: String,
    pub(crate) id_token: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Blob {
    rt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    idt: Option<String>,
}

impl StoredSession {
    /// Reads a refresh-cookie value in either form.
    pub(crate) fn parse(value: &RefreshToken) -> Self {
        let raw = value.secret();
        if raw.starts_with('{')
            && let Ok(blob) = serde_json::from_str::<Blob>(raw)
        {
            return Self {
                refresh_token: blob.rt,
                id_token: blob.idt.filter(|t| !t.is_empty()),
            };
        }
        Self {
            refresh_token: raw.to_owned(),
            id_token: None,
        }
    }

    /// The refresh-cookie value.
    pub(crate) fn to_refresh_token(&self) -> RefreshToken {
        let blob = Blob {
            rt: self.refresh_token.clone(),
            idt: self.id_token.clone(),
        };
        RefreshToken::new(serde_json::to_string(&blob).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_value_round_trips_and_accepts_bare_tokens() {
        let stored = StoredSession {
            refresh_token: "rt-1".into(),
            id_token: Some("a.b.c".into()),
        };
        let value = stored.to_refresh_token();
        assert_eq!(value.secret(), r#"{"rt":"rt-1","idt":"a.b.c"}"#);
        assert!(StoredSession::parse(&value) == stored);

        let bare = StoredSession::parse(&RefreshToken::new("plain-token"));
        assert_eq!(bare.refresh_token, "plain-token");
        assert!(bare.id_token.is_none());

        let odd = StoredSession::parse(&RefreshToken::new("{not json"));
        assert_eq!(odd.refresh_token, "{not json");
    }

    #[test]
    fn flow_data_is_compact_json() {
        let flow = LoginFlow {
            code_verifier: Some("v".into()),
            nonce: Some("n".into()),
            scope: None,
        };
        let data = flow.to_flow_data();
        assert_eq!(data.secret(), r#"{"code_verifier":"v","nonce":"n"}"#);
        let back = LoginFlow::from_flow_data(&data).unwrap();
        assert_eq!(back.nonce.as_deref(), Some("n"));
        assert!(LoginFlow::from_flow_data(&FlowData::new("garbage")).is_none());
    }
}
