//! Keeping denial cases current: a refusal is counted into the person's open case, and a case
//! closes by itself as soon as a record change makes the person compliant.

use super::AppState;
use crate::config::Settings;
use crate::domain::followup::compliant;
use crate::domain::{DenialEvent, SubjectKey, evaluate};
use crate::store::Store;
use chrono::{DateTime, Utc};

/// Counts a refusal into the person's open case (opening one if needed). A failure is logged:
/// the denial itself is already in the denial log.
pub async fn count_into_case(state: &AppState, event: &DenialEvent) {
    let id = uuid::Uuid::new_v4().to_string();
    if let Err(e) = state.store.touch_case(event, &id).await {
        tracing::error!(user.subject = %event.subject, error = %e, "the denial could not be counted into a case");
    }
}

/// Closes the subject's open case if they are now compliant with every requirement that applies
/// to them. Returns whether a case was closed.
pub async fn settle(
    settings: &Settings,
    store: &dyn Store,
    subject: &SubjectKey,
    now: DateTime<Utc>,
) -> bool {
    let result = async {
        let standing = store.standing(subject).await?;
        let principal = crate::oversight::principal_for(
            subject,
            store.profile(subject).await?,
            standing.person.as_ref(),
        );
        let evaluation = evaluate(
            settings.policy.requirements.iter(),
            &principal,
            &standing.records,
            now,
        );
        if compliant(&evaluation) {
            Ok::<_, crate::store::StoreError>(store.close_case(subject, now).await?.is_some())
        } else {
            Ok(false)
        }
    }
    .await;
    match result {
        Ok(closed) => {
            if closed {
                tracing::info!(user.subject = %subject, "case closed: the person is compliant");
            }
            closed
        }
        Err(e) => {
            tracing::warn!(user.subject = %subject, error = %e, "could not check whether the case can close");
            false
        }
    }
}

/// [`settle`] with the server's state.
pub async fn settle_case(state: &AppState, subject: &SubjectKey) -> bool {
    settle(
        &state.settings,
        state.store.as_ref(),
        subject,
        state.clock.now(),
    )
    .await
}
