//! The `guest` provider type configured from `auth.providers.guest` (cargo feature `config`).

use std::sync::Arc;

use stagepass_config::{ConfigError, ProviderFactory, ProviderKind, ProxyContext, ProxyProvider};
use stagepass_core::EntityRef;

use crate::GuestProvider;

/// `guest`: the development guest provider, a proxy-style provider without environments. It
/// refuses to run outside the `development` environment unless
/// `dangerouslyAllowOutsideDevelopment` is set.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestFactory;

impl ProviderFactory for GuestFactory {
    fn name(&self) -> &'static str {
        "guest"
    }

    fn title(&self) -> &'static str {
        "Guest"
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Proxy
    }

    fn keys(&self) -> &'static [&'static str] {
        &[
            "userEntityRef",
            "ownershipEntityRefs",
            "dangerouslyAllowOutsideDevelopment",
        ]
    }

    fn proxy_provider(&self, section: &ProxyContext<'_>) -> Result<ProxyProvider, ConfigError> {
        let reader = section.reader();
        let parse_ref = |key: &str, value: &str| {
            EntityRef::parse_with_defaults(value, Some("user"), None)
                .map_err(|e| reader.error(key, e.to_string()))
        };
        let mut builder = GuestProvider::builder()
            .environment(section.environment())
            .dangerously_allow_outside_development(
                reader
                    .optional_bool("dangerouslyAllowOutsideDevelopment")?
                    .unwrap_or(false),
            );
        if let Some(user) = reader.optional_string("userEntityRef")? {
            builder = builder.user_entity_ref(parse_ref("userEntityRef", &user)?);
        }
        if let Some(refs) = reader.optional_string_list("ownershipEntityRefs")? {
            let refs = refs
                .iter()
                .map(|r| parse_ref("ownershipEntityRefs", r))
                .collect::<Result<Vec<_>, _>>()?;
            builder = builder.ownership_entity_refs(refs);
        }
        let guest = Arc::new(
            builder
                .build()
                .map_err(|e| reader.error("", e.to_string()))?,
        );
        Ok(ProxyProvider::new(guest.clone(), guest))
    }
}
