//! The OAuth `state` parameter: the login's fields, form-encoded, then hex-encoded.

use stagepass_core::Error;

/// The fields carried through the identity provider in the `state` parameter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthState {
    /// The login nonce, also kept in the `<provider>-nonce` cookie.
    pub nonce: String,
    /// The environment the login started in.
    pub env: String,
    /// The app origin that opened the login.
    pub origin: Option<String>,
    /// Where the redirect flow returns to.
    pub redirect_url: Option<String>,
    /// `popup` or `redirect`.
    pub flow: Option<String>,
    /// The requested scope, for providers that persist scopes.
    pub scope: Option<String>,
    /// Other fields, kept in order.
    pub extra: Vec<(String, String)>,
}

impl OAuthState {
    /// Encodes the state: `application/x-www-form-urlencoded` in the order `nonce, env,
    /// origin, redirectUrl, flow, scope`, then the extra fields, as lowercase hex of the UTF-8
    /// bytes.
    pub fn encode(&self) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("nonce", &self.nonce);
        form.append_pair("env", &self.env);
        for (key, value) in [
            ("origin", &self.origin),
            ("redirectUrl", &self.redirect_url),
            ("flow", &self.flow),
            ("scope", &self.scope),
        ] {
            if let Some(value) = value {
                form.append_pair(key, value);
            }
        }
        for (key, value) in &self.extra {
            form.append_pair(key, value);
        }
        hex_encode(form.finish().as_bytes())
    }

    /// Decodes a state, in any field order. Fails with `NotAllowedError` when the state is not
    /// hex, not UTF-8, or lacks `env` or `nonce`.
    pub fn decode(encoded: &str) -> Result<Self, Error> {
        let bytes = hex_decode(encoded)
            .ok_or_else(|| Error::not_allowed("OAuth state is invalid, not hex encoded"))?;
        let mut state = Self::default();
        for (key, value) in form_urlencoded::parse(&bytes) {
            let value = value.into_owned();
            match key.as_ref() {
                "nonce" => state.nonce = value,
                "env" => state.env = value,
                "origin" => state.origin = Some(value),
                "redirectUrl" => state.redirect_url = Some(value),
                "flow" => state.flow = Some(value),
                "scope" => state.scope = Some(value),
                _ => state.extra.push((key.into_owned(), value)),
            }
        }
        if state.env.is_empty() {
            return Err(Error::not_allowed("OAuth state is invalid, missing env"));
        }
        if state.nonce.is_empty() {
            return Err(Error::not_allowed("OAuth state is invalid, missing nonce"));
        }
        Ok(state)
    }

    /// Whether this login uses the redirect flow.
    pub fn is_redirect_flow(&self) -> bool {
        self.flow.as_deref() == Some("redirect")
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    bytes
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn encodes_like_backstage() {
        let state = OAuthState {
            nonce: "abc=".into(),
            env: "development".into(),
            origin: Some("http://localhost:3000".into()),
            flow: Some("popup".into()),
            ..Default::default()
        };
        let encoded = state.encode();
        let expected =
            "nonce=abc%3D&env=development&origin=http%3A%2F%2Flocalhost%3A3000&flow=popup";
        assert_eq!(encoded, hex_encode(expected.as_bytes()));
        assert_eq!(OAuthState::decode(&encoded).unwrap(), state);
    }

    #[test]
    fn spaces_are_plus_signs() {
        let state = OAuthState {
            nonce: "n".into(),
            env: "e".into(),
            scope: Some("openid email".into()),
            ..Default::default()
        };
        let decoded = String::from_utf8(hex_decode(&state.encode()).unwrap()).unwrap();
        assert_eq!(decoded, "nonce=n&env=e&scope=openid+email");
    }

    #[test]
    fn rejects_incomplete_states() {
        let missing_nonce = hex_encode(b"env=development");
        let err = OAuthState::decode(&missing_nonce).unwrap_err();
        assert_eq!(err.message(), "OAuth state is invalid, missing nonce");
        assert_eq!(err.status(), 403);
        let missing_env = hex_encode(b"nonce=abc");
        let err = OAuthState::decode(&missing_env).unwrap_err();
        assert_eq!(err.message(), "OAuth state is invalid, missing env");
        assert!(OAuthState::decode("zz").is_err());
        assert!(OAuthState::decode("abc").is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in "\\PC*") {
            let _ = OAuthState::decode(&s);
        }

        #[test]
        fn decode_of_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = OAuthState::decode(&hex_encode(&bytes));
        }

        #[test]
        fn round_trips(
            nonce in "\\PC{1,30}",
            env in "\\PC{1,20}",
            origin in proptest::option::of("\\PC{0,30}"),
            scope in proptest::option::of("\\PC{0,30}"),
        ) {
            let state = OAuthState { nonce, env, origin, scope, ..Default::default() };
            prop_assert_eq!(OAuthState::decode(&state.encode()).unwrap(), state);
        }
    }

    // Properties of the decoder over arbitrary input.
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn state_decoding_never_panics(s in "\\PC{0,200}", hex in "[0-9a-fA-F]{0,200}") {
            let _ = OAuthState::decode(&s);
            let _ = OAuthState::decode(&hex);
        }

        #[test]
        fn state_round_trips(
            nonce in "\\PC{1,30}",
            env in "\\PC{1,20}",
            origin in proptest::option::of("\\PC{0,30}"),
            redirect_url in proptest::option::of("\\PC{0,40}"),
            flow in proptest::option::of("\\PC{0,10}"),
            scope in proptest::option::of("\\PC{0,30}"),
            extra in proptest::collection::vec(("x-[a-z]{1,8}", "\\PC{0,20}"), 0..4),
        ) {
            let state = OAuthState { nonce, env, origin, redirect_url, flow, scope, extra };
            let encoded = state.encode();
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_hexdigit()));
            prop_assert_eq!(OAuthState::decode(&encoded).unwrap(), state);
        }
    }
}
