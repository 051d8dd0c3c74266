//! SCIM 2.0 provisioning of the directory at `/.clearance/scim/v2/Users`: the IdP creates,
//! updates, deactivates and deletes people; managers, sponsors and `active` come from here.

use super::AppState;
use super::error::{AppError, HttpError, IntoHttp};
use crate::domain::Person;
use crate::domain::scim::{self, ScimError};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

fn scim_error(e: ScimError) -> AppError {
    AppError::bad_request(e.scim_type, e.detail)
}

/// The SCIM client's token name, as the audit trail's actor.
fn client(req: &HttpRequest, state: &AppState) -> Result<String, HttpError> {
    super::api::token_name(req, &state.settings().followup.scim_tokens, "SCIM")
        .map(|name| format!("scim:{name}"))
        .http(req)
}

fn body(req: &HttpRequest, bytes: &[u8]) -> Result<Value, HttpError> {
    serde_json::from_slice(bytes)
        .map_err(|e| {
            AppError::bad_request("invalidSyntax", format!("the body is not valid JSON: {e}"))
        })
        .http(req)
}

fn base(state: &AppState) -> String {
    format!(
        "{}/.clearance/scim/v2",
        state.settings().public_url.as_str().trim_end_matches('/')
    )
}

fn answer(status: actix_web::http::StatusCode, value: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/scim+json")
        .body(value.to_string())
}

async fn find(req: &HttpRequest, state: &AppState, id: &str) -> Result<Person, HttpError> {
    state
        .store
        .person_by_scim_id(id)
        .await
        .http(req)?
        .filter(|p| !p.deleted)
        .ok_or_else(|| AppError::NotFound(format!("User {id} not found")))
        .http(req)
}

#[derive(Deserialize)]
pub struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<usize>,
    count: Option<usize>,
}

/// `GET /Users[?filter=userName eq "..."]`
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, HttpError> {
    client(&req, &state)?;
    let filter = query
        .filter
        .as_deref()
        .map(scim::parse_filter)
        .transpose()
        .map_err(scim_error)
        .http(&req)?;
    let mut people: Vec<Person> = state
        .store
        .people()
        .await
        .http(&req)?
        .into_iter()
        .filter(|p| !p.deleted && p.scim_id.is_some())
        .filter(|p| match &filter {
            Some((attr, value)) if attr == "username" => p.user_name.eq_ignore_ascii_case(value),
            Some((_, value)) => p.external_id.as_deref() == Some(value.as_str()),
            None => true,
        })
        .collect();
    people.sort_by(|a, b| a.user_name.cmp(&b.user_name));
    let total = people.len();
    let start = query.start_index.unwrap_or(1).max(1);
    let count = query.count.unwrap_or(100).min(1000);
    let base = base(&state);
    let resources: Vec<Value> = people
        .iter()
        .skip(start - 1)
        .take(count)
        .map(|p| scim::resource(p, &base))
        .collect();
    Ok(answer(
        actix_web::http::StatusCode::OK,
        &json!({
            "schemas": [scim::LIST],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": resources.len(),
            "Resources": resources,
        }),
    ))
}

/// `POST /Users`
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    bytes: web::Bytes,
) -> Result<HttpResponse, HttpError> {
    let actor = client(&req, &state)?;
    let value = body(&req, &bytes)?;
    let id = uuid::Uuid::new_v4().to_string();
    let person = scim::create(&value, &id, state.clock.now())
        .map_err(scim_error)
        .http(&req)?;
    if let Some(existing) = state.store.person(&person.subject).await.http(&req)?
        && !existing.deleted
        && existing.source == crate::domain::DirectorySource::Scim
    {
        return Err(AppError::Conflict(format!(
            "a User with userName {:?} exists already",
            person.user_name
        )))
        .http(&req);
    }
    state.store.put_person(&person, &actor).await.http(&req)?;
    tracing::info!(user.subject = %person.subject, scim.id = %id, user.active = person.active, "directory: person created over SCIM");
    Ok(answer(
        actix_web::http::StatusCode::CREATED,
        &scim::resource(&person, &base(&state)),
    ))
}

/// `GET /Users/{id}`
pub async fn get(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    client(&req, &state)?;
    let person = find(&req, &state, &id).await?;
    Ok(answer(
        actix_web::http::StatusCode::OK,
        &scim::resource(&person, &base(&state)),
    ))
}

/// `PUT /Users/{id}` and `PATCH /Users/{id}`.
async fn change(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    bytes: web::Bytes,
    how: fn(&Person, &Value, chrono::DateTime<chrono::Utc>) -> Result<Person, ScimError>,
) -> Result<HttpResponse, HttpError> {
    let actor = client(&req, &state)?;
    let value = body(&req, &bytes)?;
    let existing = find(&req, &state, &id).await?;
    let person = how(&existing, &value, state.clock.now())
        .map_err(scim_error)
        .http(&req)?;
    state.store.put_person(&person, &actor).await.http(&req)?;
    tracing::info!(user.subject = %person.subject, scim.id = %id, user.active = person.active, "directory: person updated over SCIM");
    Ok(answer(
        actix_web::http::StatusCode::OK,
        &scim::resource(&person, &base(&state)),
    ))
}

pub async fn replace(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, HttpError> {
    change(req, state, id, bytes, scim::replace).await
}

pub async fn patch(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    bytes: web::Bytes,
) -> Result<HttpResponse, HttpError> {
    change(req, state, id, bytes, scim::patch).await
}

/// `DELETE /Users/{id}`: the entry is kept, inactive and hidden, so that the person stays
/// denied everywhere (a forgotten entry would fall back to sign-in claims).
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, HttpError> {
    let actor = client(&req, &state)?;
    let mut person = find(&req, &state, &id).await?;
    person.active = false;
    person.deleted = true;
    person.updated_at = state.clock.now();
    state.store.put_person(&person, &actor).await.http(&req)?;
    tracing::info!(user.subject = %person.subject, scim.id = %id, "directory: person deleted over SCIM (kept inactive)");
    Ok(HttpResponse::NoContent().finish())
}
