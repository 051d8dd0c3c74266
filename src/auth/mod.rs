//! Signing people in: the OIDC relying party, sessions, and post-sign-in redirects.

pub mod bearer;
pub mod claims;
pub mod logout;
pub mod oidc;
pub mod redirect;
pub mod session;
