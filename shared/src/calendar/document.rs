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

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::catalog::seed_calendar;

    fn year_2027(version: &str) -> YearOverride {
        YearOverride {
            year: 2027,
            version: version.into(),
            holidays: vec![date!(2027 - 01 - 01)],
            workdays: vec![],
        }
    }

    #[test]
    fn years_round_trip_and_replace() {
        let mut doc = seed_calendar().expect("seed");
        assert_eq!(read_years(&doc).expect("empty is fine"), vec![]);
        put_year(&mut doc, &year_2027("hub-2027-v1")).expect("valid");
        put_year(&mut doc, &year_2027("hub-2027-v2")).expect("a year is replaced whole");
        let years = read_years(&doc).expect("valid");
        assert_eq!(years, vec![year_2027("hub-2027-v2")]);
        let cal = calendar_from_doc(&doc).expect("valid");
        assert_eq!(cal.version_for(2027).as_deref(), Ok("hub-2027-v2"));
        assert_eq!(cal.is_workday(date!(2027 - 01 - 01)), Ok(false));
    }

    #[test]
    fn bad_years_are_refused() {
        let mut doc = seed_calendar().expect("seed");
        let bad = YearOverride {
            version: "a+b".into(),
            ..year_2027("x")
        };
        assert!(matches!(
            put_year(&mut doc, &bad),
            Err(CalendarDocError::Invalid(_))
        ));
        // A forged entry under the wrong key is found on reading, not used.
        let years = match doc.get(ROOT, "years").expect("read") {
            Some((Value::Object(ObjType::Map), id)) => id,
            other => panic!("{other:?}"),
        };
        let text = serde_json::to_string(&year_2027("hub")).expect("json");
        doc.put(&years, "2028", text).expect("put");
        assert!(matches!(
            read_years(&doc),
            Err(CalendarDocError::Damaged { .. })
        ));
        let not_calendar = AutoCommit::new();
        assert!(matches!(
            read_years(&not_calendar),
            Err(CalendarDocError::NotACalendar)
        ));
    }
}
