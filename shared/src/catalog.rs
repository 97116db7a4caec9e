//! Reference data: the district and its centers, the service-item catalog, and
//! their Automerge documents, which only the hub writes and every node holds.

use std::collections::BTreeMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{AutoCommit, AutomergeError, ObjType, ROOT, ReadDoc, Value};
use serde::{Deserialize, Serialize};

pub use crate::deadline::{Limit, LimitUnit};
use crate::ids::NodeId;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog data is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("reference document is damaged: {0}")]
    Damaged(String),
    #[error("automerge: {0}")]
    Automerge(#[from] AutomergeError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handling {
    /// 即办件: finished at the counter.
    Instant,
    /// 承诺件: finished within the promised limit.
    Promised,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaterialItem {
    pub code: String,
    pub name: String,
    pub required: bool,
}

/// One service item (政务服务事项) of the district's implementation list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogItem {
    /// The 31-character implementation code (实施编码).
    pub code: String,
    pub name: String,
    pub item_type: String,
    pub department: String,
    pub department_code: String,
    pub handling: Handling,
    pub promised_limit: Limit,
    pub statutory_limit: Limit,
    /// 到现场次数: visits the applicant needs (0 or 1 count as 最多跑一次).
    pub visits: u32,
    pub delivery: Vec<String>,
    pub materials: Vec<MaterialItem>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CatalogFile {
    pub version: u32,
    pub district: String,
    pub items: Vec<CatalogItem>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CenterInfo {
    pub code: String,
    pub name: String,
    #[serde(default)]
    pub street_code: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct District {
    pub version: u32,
    pub code: String,
    pub name: String,
    pub hub: CenterInfo,
    pub centers: Vec<CenterInfo>,
}

impl District {
    pub fn center(&self, code: &str) -> Option<&CenterInfo> {
        self.centers.iter().find(|c| c.code == code)
    }
}

/// The reference documents' type markers.
pub const DOC_TYPE_CATALOG: &str = "catalog";
pub const DOC_TYPE_CALENDAR: &str = "calendar";
pub const DOC_TYPE_NODES: &str = "nodes";

/// The options of a seed commit: the seed actor, time zero, a fixed message. Every
/// node builds the same seed bytes, so the seed changes deduplicate by hash when
/// nodes first meet instead of conflicting.
fn seed_commit() -> CommitOptions {
    CommitOptions::default().with_time(0).with_message("seed")
}

fn seed_doc() -> AutoCommit {
    AutoCommit::new().with_actor(NodeId::SEED.actor([0; 4]))
}

/// The catalog document as seeded from the fixture: one JSON value per item code,
/// because items are replaced whole by the hub, never merged field by field.
pub fn seed_catalog(file: &CatalogFile) -> Result<AutoCommit, CatalogError> {
    let mut doc = seed_doc();
    doc.put(ROOT, "type", DOC_TYPE_CATALOG)?;
    doc.put(ROOT, "district", file.district.as_str())?;
    let items = doc.put_object(ROOT, "items", ObjType::Map)?;
    for item in &file.items {
        doc.put(&items, item.code.as_str(), serde_json::to_string(item)?)?;
    }
    doc.commit_with(seed_commit());
    Ok(doc)
}

/// Reads every item of a catalog document, in code order.
pub fn read_catalog(doc: &AutoCommit) -> Result<BTreeMap<String, CatalogItem>, CatalogError> {
    let items = match doc.get(ROOT, "items")? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => return Err(CatalogError::Damaged("catalog has no items map".into())),
    };
    let mut out = BTreeMap::new();
    for code in doc.keys(&items) {
        if let Some((Value::Scalar(s), _)) = doc.get(&items, code.as_str())? {
            let Some(text) = s.as_str() else {
                return Err(CatalogError::Damaged(format!("item {code} is not text")));
            };
            out.insert(code.clone(), serde_json::from_str(text)?);
        }
    }
    Ok(out)
}

/// The calendar document, seeded empty: the official calendar comes from the
/// program; the hub adds years here as they are published.
pub fn seed_calendar() -> Result<AutoCommit, CatalogError> {
    let mut doc = seed_doc();
    doc.put(ROOT, "type", DOC_TYPE_CALENDAR)?;
    doc.put_object(ROOT, "years", ObjType::Map)?;
    doc.commit_with(seed_commit());
    Ok(doc)
}

/// The enrolled-nodes document, seeded empty: the hub records enrollments and revocations.
pub fn seed_nodes() -> Result<AutoCommit, CatalogError> {
    let mut doc = seed_doc();
    doc.put(ROOT, "type", DOC_TYPE_NODES)?;
    doc.put_object(ROOT, "nodes", ObjType::Map)?;
    doc.put_object(ROOT, "revoked", ObjType::Map)?;
    doc.commit_with(seed_commit());
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CatalogFile {
        CatalogFile {
            version: 1,
            district: "440399".into(),
            items: vec![CatalogItem {
                code: "1".repeat(31),
                name: "测试事项".into(),
                item_type: "01".into(),
                department: "测试局".into(),
                department_code: "1".repeat(18),
                handling: Handling::Promised,
                promised_limit: Limit {
                    value: 5,
                    unit: LimitUnit::WorkingDays,
                },
                statutory_limit: Limit {
                    value: 20,
                    unit: LimitUnit::WorkingDays,
                },
                visits: 1,
                delivery: vec!["window".into()],
                materials: vec![MaterialItem {
                    code: "M01".into(),
                    name: "申请表".into(),
                    required: true,
                }],
            }],
        }
    }

    #[test]
    fn seeds_are_byte_identical_and_read_back() {
        let mut a = seed_catalog(&sample()).unwrap();
        let mut b = seed_catalog(&sample()).unwrap();
        assert_eq!(
            a.get_heads(),
            b.get_heads(),
            "two nodes must seed the same change"
        );
        assert_eq!(
            read_catalog(&a).unwrap().values().next(),
            sample().items.first()
        );
        assert_eq!(
            seed_nodes().unwrap().get_heads(),
            seed_nodes().unwrap().get_heads()
        );
    }
}
