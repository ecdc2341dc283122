//! Single logout (SAML Core 3.7): what a login keeps for it, and the `LogoutRequest` sent to
//! the identity provider by HTTP-Redirect.

use chrono::Utc;
use samael::schema::Assertion;
use stagepass_core::{LogoutResponse, RefreshToken, Result};
use url::Url;

use crate::binding::new_request_id;
use crate::provider::SamlProvider;
use crate::xml::escape;

/// What single logout needs from a login, kept in the encrypted refresh cookie.
#[derive(serde::Serialize, serde::Deserialize)]
struct LogoutSession {
    #[serde(rename = "nameID")]
    name_id: String,
    #[serde(rename = "nameIDFormat", skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    #[serde(rename = "sessionIndex", skip_serializing_if = "Option::is_none")]
    session_index: Option<String>,
}

impl LogoutSession {
    fn of(assertion: &Assertion) -> Option<Self> {
        let name_id = assertion.subject.as_ref()?.name_id.as_ref()?;
        Some(Self {
            name_id: name_id.value.clone(),
            format: name_id.format.clone(),
            session_index: assertion
                .authn_statements
                .iter()
                .flatten()
                .find_map(|s| s.session_index.clone()),
        })
    }

    /// A `LogoutRequest` (SAML Core 3.7.1) for this session.
    fn logout_request(&self, id: &str, issuer: &str, destination: &Url) -> String {
        let format = self
            .format
            .as_deref()
            .map(|f| format!(" Format=\"{}\"", escape(f)))
            .unwrap_or_default();
        let session_index = self
            .session_index
            .as_deref()
            .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(s)))
            .unwrap_or_default();
        format!(
            "<samlp:LogoutRequest xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
             xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" \
             IssueInstant=\"{}\" Destination=\"{}\"><saml:Issuer>{}</saml:Issuer>\
             <saml:NameID{format}>{}</saml:NameID>{session_index}</samlp:LogoutRequest>",
            Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            escape(destination.as_str()),
            escape(issuer),
            escape(&self.name_id),
        )
    }
}

impl SamlProvider {
    /// What a login keeps for single logout, when the IdP has a single logout URL (configured
    /// or from its metadata): the NameID and session index, as a refresh token.
    pub(crate) fn logout_session(
        &self,
        idp_logout_url: Option<&Url>,
        assertion: &Assertion,
    ) -> Option<RefreshToken> {
        if self.logout_url.is_none() && idp_logout_url.is_none() {
            return None;
        }
        LogoutSession::of(assertion)
            .and_then(|s| serde_json::to_string(&s).ok())
            .map(RefreshToken::new)
    }

    /// The identity provider's single logout URL carrying a `LogoutRequest` for the session in
    /// the refresh token, or nothing when there is no single logout URL or no session to name.
    pub(crate) fn single_logout(
        &self,
        idp_logout_url: Option<&Url>,
        refresh_token: Option<&RefreshToken>,
    ) -> Result<LogoutResponse> {
        let Some(slo) = self.logout_url.as_ref().or(idp_logout_url) else {
            return Ok(LogoutResponse::default());
        };
        // Without the login's NameID there is nothing to name in a LogoutRequest.
        let Some(session) =
            refresh_token.and_then(|t| serde_json::from_str::<LogoutSession>(t.secret()).ok())
        else {
            return Ok(LogoutResponse::default());
        };
        let xml = session.logout_request(&new_request_id()?, &self.issuer, slo);
        let url = self.redirect_url(slo, &xml, "")?;
        Ok(LogoutResponse {
            logout_url: Some(url),
        })
    }
}
