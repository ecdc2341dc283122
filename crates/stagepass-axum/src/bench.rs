//! The codecs of the protocol outside a request, for the crate's benches and for tests that
//! read or forge cookies and states (the private `_bench` feature). Not a stable API.

pub use crate::cookies::{CHUNK_SIZE, MAX_CHUNKS};
pub use crate::crypto::{CookieCipher, InvalidCookie};
pub use crate::popup::{ErrorMessage, PopupPage, WebMessage};
pub use crate::state::OAuthState;
