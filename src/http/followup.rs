//! Keeping denial cases current: a refusal is counted into the person's open case (and, with
//! notifications on, marks the person as news for their manager), and a case closes by itself as
//! soon as a record change makes the person compliant.

use super::AppState;
use crate::config::Settings;
use crate::config::followup::NotifyMode;
use crate::denial_buffer::CaseCount;
use crate::domain::followup::compliant;
use crate::domain::{Evaluation, SubjectKey, evaluate};
use crate::store::{Store, StoreError};
use chrono::{DateTime, Utc};

/// How a real refusal is counted into the person's open case (opening one with a new id if
/// none is open); with immediate notifications the person is also marked as news for their
/// manager, in the same atomic step. Written by [`crate::denial_buffer::DenialBuffer`].
pub fn case_count(state: &AppState) -> CaseCount {
    // Daily digests read the open cases; immediate ones need to know who has news.
    let mark_dirty = state
        .settings()
        .followup
        .notifications
        .as_ref()
        .is_some_and(|n| matches!(n.mode, NotifyMode::Immediate { .. }));
    CaseCount {
        case_id: uuid::Uuid::new_v4().to_string(),
        mark_dirty,
    }
}

/// Evaluates every requirement that applies to `subject` now, with their profile from the last
/// sign-in (the directory's user type wins). Returns the principal too.
pub async fn evaluate_subject(
    settings: &Settings,
    store: &dyn Store,
    subject: &SubjectKey,
    now: DateTime<Utc>,
) -> Result<(crate::domain::Principal, Evaluation), StoreError> {
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
    Ok((principal, evaluation))
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
        let (_, evaluation) = evaluate_subject(settings, store, subject, now).await?;
        if compliant(&evaluation) {
            Ok::<_, StoreError>(store.close_case(subject, now).await?.is_some())
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
            tracing::warn!(user.subject = %subject, error.message = %e, "could not check whether the case can close");
            false
        }
    }
}

/// [`settle`] with the server's state.
pub async fn settle_case(state: &AppState, subject: &SubjectKey) -> bool {
    settle(
        &state.settings(),
        state.store.as_ref(),
        subject,
        state.clock.now(),
    )
    .await
}
