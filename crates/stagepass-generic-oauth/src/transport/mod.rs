//! How the engine talks to identity providers: the [`HttpClient`] every request goes through,
//! the [`ClientOptions`] every builder of the OAuth family takes, and the bearer-token JSON
//! `GET` that reads user documents.

mod bearer;
mod client;
mod error;
mod options;

pub use self::bearer::{BearerGet, JsonBodyError, JsonResponse};
pub use self::client::HttpClient;
pub use self::error::HttpError;
pub use self::options::{ClientOptions, DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_TIMEOUT};
