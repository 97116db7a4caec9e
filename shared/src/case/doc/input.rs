//! What a clerk enters: a new case (applicant, agent, materials, delivery), an event
//! request and the stamp every change carries, with the checks each value must pass
//! before anything is written.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{CaseError, TEXT_MAX_CHARS};
use crate::hlc::Hlc;
use crate::ids::NodeId;
use crate::validate::{self, ValidationError};

/// Applicant types of the national exchange specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicantKind {
    /// 1 自然人
    NaturalPerson,
    /// 2 企业法人
    EnterpriseLegalPerson,
    /// 3 事业单位
    PublicInstitution,
    /// 4 社会组织
    SocialOrganisation,
    /// 5 非法人企业
    NonLegalPersonEnterprise,
    /// 6 行政机关
    AdministrativeOrgan,
    /// 9 其他
    Other,
}

impl ApplicantKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ApplicantKind::NaturalPerson => "natural_person",
            ApplicantKind::EnterpriseLegalPerson => "enterprise_legal_person",
            ApplicantKind::PublicInstitution => "public_institution",
            ApplicantKind::SocialOrganisation => "social_organisation",
            ApplicantKind::NonLegalPersonEnterprise => "non_legal_person_enterprise",
            ApplicantKind::AdministrativeOrgan => "administrative_organ",
            ApplicantKind::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<ApplicantKind> {
        [
            ApplicantKind::NaturalPerson,
            ApplicantKind::EnterpriseLegalPerson,
            ApplicantKind::PublicInstitution,
            ApplicantKind::SocialOrganisation,
            ApplicantKind::NonLegalPersonEnterprise,
            ApplicantKind::AdministrativeOrgan,
            ApplicantKind::Other,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Natural persons carry a resident ID; every other kind a credit code.
    pub fn id_type(self) -> &'static str {
        match self {
            ApplicantKind::NaturalPerson => "resident_id",
            _ => "credit_code",
        }
    }
}

/// A person or body as entered at the counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Party {
    pub name: String,
    pub id_no: String,
    pub phone: String,
    pub address: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaterialSpec {
    pub code: String,
    pub name: String,
    pub required: bool,
    pub received: bool,
}

/// Everything needed to register a case.
#[derive(Clone, Debug)]
pub struct NewCase {
    pub case_no: String,
    pub district: String,
    pub home_center: String,
    pub item_code: String,
    pub item_name: String,
    pub department: String,
    pub applicant_kind: ApplicantKind,
    pub applicant: Party,
    pub agent: Option<Party>,
    pub materials: Vec<MaterialSpec>,
    pub delivery_method: String,
    /// Where results are posted; required when `delivery_method` is `post`.
    pub delivery_address: String,
}

/// Who is acting and when; every change a node makes carries one.
#[derive(Clone, Debug)]
pub struct Stamp {
    pub node: NodeId,
    pub clerk: String,
    pub hlc: Hlc,
    pub event_id: String,
}

/// A request to record an event.
#[derive(Clone, Debug, Default)]
pub struct NewEvent {
    pub note: String,
    pub data: BTreeMap<String, String>,
}

/// The fields a clerk may edit, as `path=value`.
pub const EDITABLE_FIELDS: &[&str] = &[
    "applicant.name",
    "applicant.id_no",
    "applicant.phone",
    "applicant.address",
    "agent.name",
    "agent.id_no",
    "agent.phone",
    "delivery.method",
    "delivery.address",
    "delivery.tracking_no",
    "materials.<code>.received",
    "materials.<code>.note",
];

pub const DELIVERY_METHODS: &[&str] = &["window", "post", "locker"];

pub(super) fn text_check(field: &str, value: &str) -> Result<(), CaseError> {
    if value.chars().count() > TEXT_MAX_CHARS {
        return Err(CaseError::InvalidValue {
            field: field.to_owned(),
            reason: format!("longer than {TEXT_MAX_CHARS} characters"),
        });
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(CaseError::InvalidValue {
            field: field.to_owned(),
            reason: "contains control characters".into(),
        });
    }
    Ok(())
}

pub(super) fn check_party_id(kind: ApplicantKind, id_no: &str) -> Result<(), ValidationError> {
    match kind {
        ApplicantKind::NaturalPerson => validate::check_resident_id(id_no),
        _ => validate::check_credit_code(id_no),
    }
}

impl NewCase {
    /// Checks what a clerk entered before anything is written.
    pub fn validate(&self) -> Result<(), CaseError> {
        if self.applicant.name.trim().is_empty() {
            return Err(CaseError::InvalidValue {
                field: "applicant.name".into(),
                reason: "must not be empty".into(),
            });
        }
        for (field, value) in [
            ("applicant.name", &self.applicant.name),
            ("applicant.address", &self.applicant.address),
        ] {
            text_check(field, value)?;
        }
        check_party_id(self.applicant_kind, &self.applicant.id_no)?;
        if !self.applicant.phone.is_empty() {
            validate::check_phone(&self.applicant.phone)?;
        }
        if let Some(agent) = &self.agent {
            text_check("agent.name", &agent.name)?;
            validate::check_resident_id(&agent.id_no)?;
            if !agent.phone.is_empty() {
                validate::check_phone(&agent.phone)?;
            }
        }
        if !DELIVERY_METHODS.contains(&self.delivery_method.as_str()) {
            return Err(CaseError::InvalidValue {
                field: "delivery.method".into(),
                reason: format!("expected one of {}", DELIVERY_METHODS.join(", ")),
            });
        }
        text_check("delivery.address", &self.delivery_address)?;
        check_delivery(&self.delivery_method, &self.delivery_address)?;
        Ok(())
    }
}

/// Postal delivery needs an address.
pub(super) fn check_delivery(method: &str, address: &str) -> Result<(), CaseError> {
    if method == "post" && address.trim().is_empty() {
        return Err(CaseError::InvalidValue {
            field: "delivery.address".into(),
            reason: "postal delivery needs an address".into(),
        });
    }
    Ok(())
}
