//! Clearance: an OIDC-aware gatekeeper that admits people only while their security induction is current.

pub mod config;
pub mod domain;
pub mod store;
pub mod auth;
