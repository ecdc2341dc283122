//! The SAML sign-in resolvers: `nameIdMatchingUserEntityName`. The common e-mail ones
//! (`emailMatchingUserEntityProfileEmail`, `emailLocalPartMatchingUserEntityName`) are in
//! [`stagepass_core::resolvers`] and read the profile's e-mail, taken from the assertion's
//! attributes.

use stagepass_core::resolvers::{MissingUser, UsernameMatchingUserEntityName};

/// The attribute holding the assertion's `NameID`.
pub const NAME_ID_ATTRIBUTE: &str = "nameID";

/// `nameIdMatchingUserEntityName`: the catalog user named like the assertion's `NameID`
/// (`user:default/<NameID>`), as Backstage's SAML provider does. A `NameID` that is not a valid
/// entity name (an e-mail address, say) fails the sign-in: use an e-mail resolver then.
///
/// `missing` is Backstage's `dangerouslyAllowSignInWithoutUserInCatalog`.
pub fn name_id_matching_user_entity_name(missing: MissingUser) -> UsernameMatchingUserEntityName {
    UsernameMatchingUserEntityName {
        attribute: NAME_ID_ATTRIBUTE.to_owned(),
        missing_user: missing,
    }
}
