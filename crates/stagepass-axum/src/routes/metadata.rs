//! `/{provider}/metadata`: the provider's metadata document, such as the SAML service
//! provider metadata.

use axum::extract::{OriginalUri, Path};
use axum::response::{IntoResponse, Response};
use http::header;
use stagepass_core::{Error, MetadataRequest};

use super::{AppState, Handled, ProviderEnv, lookup, query_params, unknown_provider};
use crate::backend::{Inner, Provider};
use crate::error::RequestLine;

/// `GET /{provider}/metadata`: the document of `?env=` or of the provider's only environment;
/// 404 when it has none.
pub(super) async fn metadata(
    axum::extract::State(inner): AppState,
    Path(id): Path<String>,
    line: RequestLine,
    uri: OriginalUri,
) -> Response {
    line.answer(document(&inner, &id, &uri))
}

fn document(inner: &std::sync::Arc<Inner>, id: &str, uri: &OriginalUri) -> Handled {
    let envs = match lookup(inner, id)? {
        Provider::OAuth(envs) => envs,
        Provider::Proxy { .. } => return Err(unknown_provider(id)),
    };
    let provider = ProviderEnv::select_or_only(inner, id, envs, &query_params(uri))?;
    let callback = provider.callback_url()?;
    match provider
        .env
        .strategy
        .metadata(MetadataRequest::new(&callback))?
    {
        Some(document) => Ok((
            [(header::CONTENT_TYPE, document.content_type)],
            document.body,
        )
            .into_response()),
        None => Err(Error::not_found(format!(
            "The auth provider '{id}' has no metadata"
        ))),
    }
}
