//! Registering a case: the body, its checks (naming the field at fault) and the
//! handler that answers once the case is durable.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use yichuang_shared::case::{ApplicantKind, Party};
use yichuang_shared::validate;

use super::super::auth::Clerk;
use super::super::error::{ApiJson, ErrorBody};
use super::super::roles::{Action, require};
use super::super::{ApiError, AppState};
use super::cases::{CaseDetail, case_detail};
use crate::store::{CreateCase, Store};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyBody {
    pub name: String,
    /// 18-character resident ID (GB 11643) for a natural person, else the unified
    /// social credit code (GB 32100).
    pub id_no: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicantBody {
    /// natural_person (default), enterprise_legal_person, public_institution, …
    #[serde(default)]
    pub kind: Option<String>,
    pub name: String,
    pub id_no: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub address: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCaseBody {
    /// The item's 31-character implementation code.
    pub item_code: String,
    pub applicant: ApplicantBody,
    #[serde(default)]
    pub agent: Option<PartyBody>,
    /// Codes of the materials received at the counter.
    #[serde(default)]
    pub materials_received: Vec<String>,
    /// window (default), post or locker; must be one the item offers.
    #[serde(default)]
    pub delivery: Option<String>,
    /// Where the result is posted; required when `delivery` is post.
    #[serde(default)]
    pub delivery_address: String,
}

fn party_check(prefix: &str, kind: ApplicantKind, p: &PartyBody) -> Result<(), ApiError> {
    if p.name.trim().is_empty() {
        return Err(ApiError::invalid(
            &format!("{prefix}.name"),
            "the name must not be empty",
        ));
    }
    let id = match kind {
        ApplicantKind::NaturalPerson => validate::check_resident_id(&p.id_no),
        _ => validate::check_credit_code(&p.id_no),
    };
    id.map_err(|e| ApiError::invalid(&format!("{prefix}.id_no"), e.to_string()))?;
    if !p.phone.is_empty() {
        validate::check_phone(&p.phone)
            .map_err(|e| ApiError::invalid(&format!("{prefix}.phone"), e.to_string()))?;
    }
    Ok(())
}

/// Checks a registration and turns it into the store's request.
pub fn create_request(body: CreateCaseBody, clerk: &str) -> Result<CreateCase, ApiError> {
    if body.item_code.trim().is_empty() {
        return Err(ApiError::invalid("item_code", "choose a service item"));
    }
    let kind = match body.applicant.kind.as_deref() {
        None | Some("") => ApplicantKind::NaturalPerson,
        Some(k) => ApplicantKind::parse(k).ok_or_else(|| {
            ApiError::invalid("applicant.kind", format!("unknown applicant kind {k:?}"))
        })?,
    };
    let applicant = PartyBody {
        name: body.applicant.name,
        id_no: body.applicant.id_no,
        phone: body.applicant.phone,
        address: body.applicant.address,
    };
    party_check("applicant", kind, &applicant)?;
    if let Some(agent) = &body.agent {
        party_check("agent", ApplicantKind::NaturalPerson, agent)?;
    }
    if let Some(d) = &body.delivery
        && !yichuang_shared::case::DELIVERY_METHODS.contains(&d.as_str())
    {
        return Err(ApiError::invalid(
            "delivery",
            format!(
                "unknown delivery {d:?}; one of {}",
                yichuang_shared::case::DELIVERY_METHODS.join(", ")
            ),
        ));
    }
    let party = |p: PartyBody| Party {
        name: p.name.trim().to_owned(),
        id_no: p.id_no,
        phone: p.phone,
        address: p.address,
    };
    Ok(CreateCase {
        item: body.item_code,
        applicant_kind: kind,
        applicant: party(applicant),
        agent: body.agent.map(party),
        materials_received: body.materials_received,
        delivery_method: body.delivery,
        delivery_address: body.delivery_address,
        clerk: clerk.to_owned(),
    })
}

/// Checks materials and delivery against the catalog item, naming the field.
fn check_against_item(s: &mut Store, req: &CreateCase) -> Result<(), ApiError> {
    let catalog = s.catalog()?;
    let Some(item) = catalog.get(&req.item) else {
        return Err(ApiError::invalid(
            "item_code",
            format!("unknown item code {:?}", req.item),
        ));
    };
    for code in &req.materials_received {
        if !item.materials.iter().any(|m| &m.code == code) {
            return Err(ApiError::invalid(
                "materials_received",
                format!("item {} has no material {code:?}", item.code),
            ));
        }
    }
    if let Some(d) = &req.delivery_method
        && !item.delivery.contains(d)
    {
        return Err(ApiError::invalid(
            "delivery",
            format!(
                "this item is not delivered by {d:?}; it offers {}",
                item.delivery.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Registers a case; answers once it is durable.
#[utoipa::path(post, path = "/api/cases", tag = "cases", request_body = CreateCaseBody,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Registered and durable", body = CaseDetail),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 413, description = "The body is too large", body = ErrorBody),
        (status = 415, description = "Not sent as application/json", body = ErrorBody),
        (status = 422, description = "A field is missing, of the wrong type or invalid; unknown item", body = ErrorBody),
    ))]
pub async fn create_case(
    State(state): State<AppState>,
    Clerk(user): Clerk,
    ApiJson(body): ApiJson<CreateCaseBody>,
) -> Result<(StatusCode, Json<CaseDetail>), ApiError> {
    require(&user, Action::Register)?;
    let req = create_request(body, &user.name)?;
    let detail = state
        .store
        .call(move |s| -> Result<CaseDetail, ApiError> {
            check_against_item(s, &req)?;
            let created = s.create_case(&req)?;
            case_detail(s, created.doc_id.as_str(), created.case)
        })
        .await??;
    tracing::info!(case = %detail.case_no, "case registered over http");
    state.refresh_sync();
    Ok((StatusCode::CREATED, Json(detail)))
}
