//! The pure domain: principals, requirements, records and the evaluation that turns them into a decision.
//!
//! Nothing in here performs I/O or reads the clock: time is always passed in.

pub mod audit;
pub mod decision;
pub mod denial;
pub mod directory;
pub mod esign;
pub mod exemption;
pub mod followup;
pub mod notify;
pub mod principal;
pub mod record;
pub mod requirement;
pub mod route;
pub mod scim;
pub mod session;
pub mod xapi;

pub use decision::{Decision, Evaluation, Reason, RequirementStatus, Status, Unmet, evaluate};
pub use denial::DenialEvent;
pub use directory::{Directory, DirectorySource, Person};
pub use exemption::{Exemption, ExemptionState};
pub use followup::{Action, ActionKind, Case};
pub use principal::{Principal, SubjectKey, SubjectKeyError};
pub use record::{Decline, HistoryEntry, Record, RecordError, Revocation, Source, records_as_of};
pub use requirement::{
    Document, Enforcement, Policy, Requirement, RequirementId, RequirementKind, Selector, Version,
};
pub use route::{Route, RouteAccess, RouteTable};
pub use session::Session;
