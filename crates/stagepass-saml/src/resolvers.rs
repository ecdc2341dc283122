//! The SAML sign-in resolvers: `nameIdMatchingUserEntityName`. The common e-mail ones
//! (`emailMatchingUserEntityProfileEmail`, `emailLocalPartMatchingUserEntityName`) are in
//! [`stagepass_core::resolvers`] and read the profile's e-mail, taken from the assertion's
//! attributes.

use stagepass_core::resolvers::{MissingUser, UsernameMatchingUserEntityName};

/// The attribute holding the assertion's `NameID`.
pub const NAME_ID_ATTRIBUTE: &str = "nameID";

/// `nameIdMatchingUserEntityName`: the catalog user named like the assertion's `NameID`
/// (`user:default/<NameID>`), as Backstage's SAML provider does. A `NameID` that is not a valid
/// entity name ([`stagepass_core::is_valid_entity_name`]; an e-mail address, say) matches no
/// user, so the next resolver of the chain decides: put an e-mail resolver after this one for
/// such identity providers.
///
/// `missing` is Backstage's `dangerouslyAllowSignInWithoutUserInCatalog`; with it, a `NameID`
/// that is not a valid entity name refuses the sign-in with `NotAllowedError` instead of
/// becoming a token's `sub`.
pub fn name_id_matching_user_entity_name(missing: MissingUser) -> UsernameMatchingUserEntityName {
    UsernameMatchingUserEntityName {
        attribute: NAME_ID_ATTRIBUTE.to_owned(),
        missing_user: missing,
    }
}
