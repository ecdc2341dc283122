//! [`delegate_strategy!`](crate::delegate_strategy): a provider type that wraps a configured
//! engine provider implements [`Strategy`](stagepass_core::Strategy) by forwarding to it.

/// Implements [`Strategy`](stagepass_core::Strategy) for a provider type that wraps another
/// strategy (usually an [`OidcProvider`](crate::OidcProvider) or
/// [`OAuth2Provider`](crate::OAuth2Provider) configured for one identity provider) by
/// forwarding every method to the field that holds it, the provided methods included, so that
/// the wrapper behaves exactly like what it wraps, also when the contract gains a method. Its
/// builder gets the transport setters of the wrapped builder with
/// [`client_option_setters!`](crate::client_option_setters) (`forward <field>`).
///
/// ```
/// use stagepass_generic_oauth::{OidcProvider, delegate_strategy};
///
/// /// Sign-in with Acme's OpenID Connect service.
/// pub struct AcmeProvider {
///     inner: OidcProvider,
/// }
///
/// delegate_strategy!(AcmeProvider, inner);
///
/// /// A tuple struct names its field by position.
/// pub struct OtherProvider(OidcProvider);
///
/// delegate_strategy!(OtherProvider, 0);
///
/// fn is_strategy<S: stagepass_core::Strategy>() {}
/// is_strategy::<AcmeProvider>();
/// is_strategy::<OtherProvider>();
/// ```
#[macro_export]
macro_rules! delegate_strategy {
    ($provider:ty, $field:tt) => {
        #[$crate::__private::async_trait]
        impl $crate::__private::Strategy for $provider {
            async fn start(
                &self,
                request: $crate::__private::StartRequest<'_>,
            ) -> $crate::__private::Result<$crate::__private::StartResponse> {
                $crate::__private::Strategy::start(&self.$field, request).await
            }

            async fn authenticate(
                &self,
                request: $crate::__private::AuthenticateRequest<'_>,
            ) -> $crate::__private::Result<$crate::__private::Authenticated> {
                $crate::__private::Strategy::authenticate(&self.$field, request).await
            }

            async fn refresh(
                &self,
                request: $crate::__private::RefreshRequest<'_>,
            ) -> $crate::__private::Result<$crate::__private::Authenticated> {
                $crate::__private::Strategy::refresh(&self.$field, request).await
            }

            async fn logout(
                &self,
                request: $crate::__private::LogoutRequest<'_>,
            ) -> $crate::__private::Result<$crate::__private::LogoutResponse> {
                $crate::__private::Strategy::logout(&self.$field, request).await
            }

            fn metadata(
                &self,
                request: $crate::__private::MetadataRequest<'_>,
            ) -> $crate::__private::Result<::std::option::Option<$crate::__private::ProviderMetadata>>
            {
                $crate::__private::Strategy::metadata(&self.$field, request)
            }

            fn accepts_unsolicited_callback(&self) -> bool {
                $crate::__private::Strategy::accepts_unsolicited_callback(&self.$field)
            }

            fn scope_policy(&self) -> $crate::__private::ScopePolicy {
                $crate::__private::Strategy::scope_policy(&self.$field)
            }

            fn callback_is_cross_site_post(&self) -> bool {
                $crate::__private::Strategy::callback_is_cross_site_post(&self.$field)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use stagepass_core::{
        AuthenticateRequest, Authenticated, MetadataRequest, Params, ProviderMetadata, Result,
        ScopePolicy, StartRequest, StartResponse, Strategy, async_trait,
    };
    use url::Url;

    /// A strategy whose every answer differs from the contract's defaults.
    struct Unusual;

    #[async_trait]
    impl Strategy for Unusual {
        async fn start(&self, request: StartRequest<'_>) -> Result<StartResponse> {
            Ok(StartResponse {
                url: request.callback_url.clone(),
                flow_data: None,
            })
        }

        async fn authenticate(&self, _: AuthenticateRequest<'_>) -> Result<Authenticated> {
            Ok(Authenticated::default())
        }

        fn metadata(&self, _: MetadataRequest<'_>) -> Result<Option<ProviderMetadata>> {
            Ok(Some(ProviderMetadata::new("text/plain", "unusual")))
        }

        fn accepts_unsolicited_callback(&self) -> bool {
            true
        }

        fn scope_policy(&self) -> ScopePolicy {
            ScopePolicy {
                required: vec!["unusual".into()],
                ..ScopePolicy::default()
            }
        }

        fn callback_is_cross_site_post(&self) -> bool {
            true
        }
    }

    struct Wrapper {
        inner: Unusual,
    }

    delegate_strategy!(Wrapper, inner);

    #[tokio::test]
    async fn every_method_reaches_the_wrapped_strategy() {
        let wrapper = Wrapper { inner: Unusual };
        let callback = Url::parse("https://backstage.example.com/cb").unwrap();
        let params = Params::default();
        let started = wrapper
            .start(StartRequest::new(
                "development",
                "",
                "s",
                &callback,
                &params,
            ))
            .await
            .unwrap();
        assert_eq!(started.url, callback);
        let metadata = wrapper
            .metadata(MetadataRequest::new(&callback))
            .unwrap()
            .unwrap();
        assert_eq!(metadata.body, "unusual");
        assert!(wrapper.accepts_unsolicited_callback());
        assert!(wrapper.callback_is_cross_site_post());
        assert_eq!(wrapper.scope_policy().required, ["unusual"]);
    }
}
