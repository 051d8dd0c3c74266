//! The `warn` interstitial's form: `POST /.clearance/warnings/acknowledge` records that the person
//! saw what is due and sends them on to where they were going.

use super::AppState;
use super::error::{AppError, HttpError, IntoHttp};
use super::gate::{session_identity, start_url};
use super::oauth::checked_rd;
use crate::domain::{Enforcement, RequirementId};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use subtle::ConstantTimeEq;

#[derive(Deserialize)]
pub struct AcknowledgeForm {
    csrf: String,
    rd: String,
    /// Comma-separated requirement ids.
    requirements: String,
}

pub async fn acknowledge(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<AcknowledgeForm>,
) -> Result<HttpResponse, HttpError> {
    let rd = checked_rd(Some(&form.rd), &state).http(&req)?;
    let (_, session) = session_identity(&req, &state, &|| start_url(&rd))
        .await
        .http(&req)?;
    if !bool::from(session.csrf.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return Err(AppError::bad_request(
            "invalid_csrf_token",
            "This form has expired or did not come from Clearance. Go back and try again.",
        ))
        .http(&req);
    }
    let now = state.clock.now();
    for id in form
        .requirements
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        let settings = state.settings();
        let Some(requirement) = settings.policy.get_str(id) else {
            return Err(AppError::bad_request(
                "invalid_requirement",
                format!("There is no requirement {id:?}."),
            ))
            .http(&req);
        };
        // Only a warning still in force can be acknowledged; a blocking one cannot be waved away.
        if requirement.enforcement_at(now) != Enforcement::Warn {
            continue;
        }
        let ttl = requirement
            .warn_every
            .to_std()
            .unwrap_or(std::time::Duration::from_secs(86_400));
        state
            .store
            .acknowledge_warning(
                &session.principal.subject,
                &RequirementId(requirement.id.0.clone()),
                ttl,
            )
            .await
            .http(&req)?;
        tracing::info!(
            user.subject = %session.principal.subject,
            requirement.id = %requirement.id,
            "warning acknowledged"
        );
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, rd))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
