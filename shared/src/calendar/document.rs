//! The hub's calendar document (`ref-calendar`): a `years` map from a year ("2027")
//! to that year's [`YearOverride`] as JSON text. Only the hub writes it; every node
//! builds its [`WorkCalendar`] from the official data plus these years.
//!
//! A year is stored whole, as one value, because the hub replaces a year's arrangement
//! as the State Council publishes it; merging two versions date by date would make an
//! arrangement nobody published.

use automerge::transaction::Transactable;
use automerge::{AutoCommit, AutomergeError, ObjType, ROOT, ReadDoc, Value};

use super::{CalendarError, WorkCalendar, YearOverride};

/// The document type marker (the same as `catalog::DOC_TYPE_CALENDAR`).
const DOC_TYPE: &str = "calendar";

#[derive(Debug, thiserror::Error)]
pub enum CalendarDocError {
    #[error("the document is not a calendar document")]
    NotACalendar,
    #[error("calendar document entry {key:?} is damaged: {reason}")]
    Damaged { key: String, reason: String },
    #[error(transparent)]
    Invalid(#[from] CalendarError),
    #[error("automerge: {0}")]
    Automerge(#[from] AutomergeError),
}

fn years_map(doc: &AutoCommit) -> Result<automerge::ObjId, CalendarDocError> {
    match doc.get(ROOT, "type")? {
        Some((Value::Scalar(s), _)) if s.as_str() == Some(DOC_TYPE) => {}
        _ => return Err(CalendarDocError::NotACalendar),
    }
    match doc.get(ROOT, "years")? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(CalendarDocError::NotACalendar),
    }
}

/// Every year of the document, in year order, each checked.
pub fn read_years(doc: &AutoCommit) -> Result<Vec<YearOverride>, CalendarDocError> {
    let years = years_map(doc)?;
    let mut out = Vec::new();
    for key in doc.keys(&years) {
        let damaged = |reason: String| CalendarDocError::Damaged {
            key: key.clone(),
            reason,
        };
        let text = match doc.get(&years, key.as_str())? {
            Some((Value::Scalar(s), _)) => s
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| damaged("not text".into()))?,
            _ => return Err(damaged("not text".into())),
        };
        let year: YearOverride = serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
        if key != year.year.to_string() {
            return Err(damaged(format!("holds year {}", year.year)));
        }
        out.push(year);
    }
    out.sort_by_key(|y| y.year);
    // Checks every year: a damaged override is refused, never half used.
    WorkCalendar::new(out.clone())?;
    Ok(out)
}

/// The official calendar with the document's years.
pub fn calendar_from_doc(doc: &AutoCommit) -> Result<WorkCalendar, CalendarDocError> {
    Ok(WorkCalendar::new(read_years(doc)?)?)
}

/// Writes (or replaces) one year, after checking it; the caller commits.
pub fn put_year(doc: &mut AutoCommit, year: &YearOverride) -> Result<(), CalendarDocError> {
    WorkCalendar::new(vec![year.clone()])?;
    let years = years_map(doc)?;
    let text = serde_json::to_string(year).map_err(|e| CalendarDocError::Damaged {
        key: year.year.to_string(),
        reason: e.to_string(),
    })?;
    doc.put(&years, year.year.to_string(), text)?;
    Ok(())
}
