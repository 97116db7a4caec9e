//! The hall at a glance: case counts by center, item, department and status, daily
//! volume per center, and the open cases that are overdue or nearly so.
//!
//! Deadlines are computed here from each open case's events until the case index
//! carries them; the scan is bounded by [`DEADLINE_SCAN_MAX`], oldest first, because
//! the oldest open cases are the ones that run out of time.

use std::collections::BTreeMap;

use rusqlite::params;
use serde::Serialize;
use yichuang_shared::calendar::WorkCalendar;
use yichuang_shared::case::{CaseView, Status};
use yichuang_shared::catalog::CatalogItem;
use yichuang_shared::deadline::{self, DeadlineInput, Extension, LimitUnit, Pause, PauseKind};

use super::cases::{CaseRow, china_day};
use super::{Store, StoreError, district};

/// Open cases whose deadlines one dashboard computes. Each costs a document load
/// (about a millisecond), so 1,000 keeps the page near a second on a busy hub.
pub const DEADLINE_SCAN_MAX: usize = 1_000;
/// Days in the daily-volume chart: two working weeks.
pub const VOLUME_DAYS: usize = 14;
/// Rows in the by-item table; a district has hundreds of items, the top ones matter.
pub const TOP_ITEMS: usize = 15;

#[derive(Clone, Debug, Serialize)]
pub struct Count {
    pub key: String,
    pub label: String,
    pub count: i64,
}

/// Cases registered per day and center, oldest day first.
#[derive(Clone, Debug, Serialize)]
pub struct DailyVolume {
    pub days: Vec<String>,
    pub centers: Vec<CenterSeries>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CenterSeries {
    pub center: String,
    pub label: String,
    pub counts: Vec<i64>,
}

/// An open case with its computed promised deadline.
#[derive(Clone, Debug, Serialize)]
pub struct DeadlineRow {
    #[serde(flatten)]
    pub case: CaseRow,
    pub deadline_ms: i64,
    pub remaining_working_days: i64,
    pub overdue: bool,
    pub near_overdue: bool,
    pub paused: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Dashboard {
    pub total: i64,
    pub by_center: Vec<Count>,
    pub by_item: Vec<Count>,
    pub by_department: Vec<Count>,
    pub by_status: Vec<Count>,
    pub daily: DailyVolume,
    pub overdue: Vec<DeadlineRow>,
    pub near_overdue: Vec<DeadlineRow>,
    /// Open cases whose deadlines were computed, and whether more were left out.
    pub deadline_scanned: usize,
    pub deadline_truncated: bool,
}

/// A center's display name from the district fixture; the hub's code names the hub.
pub fn center_label(code: &str) -> String {
    let d = district();
    if code == d.hub.code {
        return d.hub.name;
    }
    d.center(code)
        .map(|c| c.name.clone())
        .unwrap_or_else(|| code.to_owned())
}

fn status_label(s: &str) -> String {
    s.parse::<Status>()
        .map(|s| s.label_zh().to_owned())
        .unwrap_or_else(|_| s.to_owned())
}

fn pause_kind(kind: &str) -> Option<(PauseKind, bool)> {
    match kind {
        "supplement_requested" => Some((PauseKind::Supplement, true)),
        "supplement_received" => Some((PauseKind::Supplement, false)),
        "suspended" => Some((PauseKind::SpecialProcedure, true)),
        "resumed" => Some((PauseKind::SpecialProcedure, false)),
        _ => None,
    }
}

/// The deadline input of a case from its (ordered) events: the clock starts at
/// acceptance, pauses for 补正 and 特别程序, and grows with each 延期 whose data
/// says `value` (a count) and `unit` (a catalog unit code, working days by default).
/// `None` while the case is not accepted or no longer open.
pub fn deadline_input(view: &CaseView, item: &CatalogItem, now_ms: i64) -> Option<DeadlineInput> {
    if !view.status.is_some_and(Status::is_open) {
        return None;
    }
    let accepted_at_ms = view
        .events
        .iter()
        .find(|e| e.kind == "accepted")
        .map(|e| e.wall_ms)?;
    let mut pauses: Vec<Pause> = Vec::new();
    let mut extensions = Vec::new();
    for e in &view.events {
        if let Some((kind, starts)) = pause_kind(&e.kind) {
            if starts {
                pauses.push(Pause {
                    kind,
                    from_ms: e.wall_ms,
                    to_ms: None,
                });
            } else if let Some(open) = pauses
                .iter_mut()
                .rev()
                .find(|p| p.kind == kind && p.to_ms.is_none())
            {
                open.to_ms = Some(e.wall_ms);
            }
        } else if e.kind == "extended"
            && let Some(value) = e.data.get("value").and_then(|v| v.parse::<u32>().ok())
        {
            let unit = e
                .data
                .get("unit")
                .and_then(|u| u.parse::<u8>().ok())
                .and_then(LimitUnit::from_code)
                .unwrap_or(LimitUnit::WorkingDays);
            extensions.push(Extension { value, unit });
        }
    }
    Some(DeadlineInput {
        accepted_at_ms,
        promised: item.promised_limit,
        statutory: item.statutory_limit,
        pauses,
        extensions,
        now_ms,
    })
}

impl Store {
    fn counts(&self, sql: &str) -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Case counts by status, for `/metrics` and the dashboard.
    pub fn status_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.counts("SELECT status, COUNT(*) FROM case_index GROUP BY status ORDER BY status")
    }

    /// Cases with an unresolved conflict, and the conflicts they hold.
    pub fn conflict_totals(&self) -> Result<(i64, i64), StoreError> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(conflicts), 0) FROM case_index WHERE conflicts > 0",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    /// Cases with conflicts, newest first.
    pub fn conflicted_cases(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT case_no FROM case_index WHERE conflicts > 0 ORDER BY updated_ms DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit as i64], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Open cases with their promised deadlines, oldest cases first, at most
    /// [`DEADLINE_SCAN_MAX`]; the flag says whether more open cases were left out.
    pub fn open_deadlines(&mut self, now_ms: i64) -> Result<(Vec<DeadlineRow>, bool), StoreError> {
        let open: Vec<&str> = Status::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .map(Status::as_str)
            .collect();
        let open_json =
            serde_json::to_string(&open).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let rows: Vec<CaseRow> = self.list_where(
            "status IN (SELECT value FROM json_each(?1)) ORDER BY created_ms ASC LIMIT ?2",
            params![open_json, DEADLINE_SCAN_MAX as i64 + 1],
        )?;
        let truncated = rows.len() > DEADLINE_SCAN_MAX;
        let calendar = WorkCalendar::official();
        let catalog = self.catalog()?.clone();
        let mut out = Vec::new();
        for row in rows.into_iter().take(DEADLINE_SCAN_MAX) {
            let Some(item) = catalog.get(&row.item_code) else {
                continue;
            };
            let view = self.case_view(&row.doc_id, false, "")?;
            let Some(input) = deadline_input(&view, item, now_ms) else {
                continue;
            };
            // A year without a published calendar has no answer; such cases are left
            // out rather than guessed at.
            let Ok(d) = deadline::compute(&input, &calendar) else {
                continue;
            };
            out.push(DeadlineRow {
                case: row,
                deadline_ms: d.promised.value,
                remaining_working_days: d.remaining_working_days,
                overdue: d.overdue,
                near_overdue: d.near_overdue,
                paused: d.paused,
            });
        }
        Ok((out, truncated))
    }

    /// Everything the dashboard shows, as of `now_ms`.
    pub fn dashboard(&mut self, now_ms: i64) -> Result<Dashboard, StoreError> {
        let total = self.case_count()?;
        let labelled = |rows: Vec<(String, i64)>, label: &dyn Fn(&str) -> String| {
            rows.into_iter()
                .map(|(key, count)| Count {
                    label: label(&key),
                    key,
                    count,
                })
                .collect::<Vec<_>>()
        };
        let by_center = labelled(
            self.counts(
                "SELECT home_center, COUNT(*) FROM case_index GROUP BY home_center ORDER BY home_center",
            )?,
            &center_label,
        );
        let by_item = {
            let mut stmt = self.conn.prepare_cached(
                "SELECT item_code, item_name, COUNT(*) AS n FROM case_index GROUP BY item_code
                 ORDER BY n DESC, item_code LIMIT ?1",
            )?;
            stmt.query_map([TOP_ITEMS as i64], |r| {
                Ok(Count {
                    key: r.get(0)?,
                    label: r.get(1)?,
                    count: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?
        };
        let by_department = labelled(
            self.counts(
                "SELECT department, COUNT(*) AS n FROM case_index GROUP BY department ORDER BY n DESC, department",
            )?,
            &|d: &str| d.to_owned(),
        );
        let by_status = labelled(self.status_counts()?, &status_label);

        let days: Vec<String> = (0..VOLUME_DAYS as i64)
            .rev()
            .map(|back| china_day(now_ms - back * 86_400_000))
            .collect();
        let since_ms = now_ms - VOLUME_DAYS as i64 * 86_400_000;
        let mut per_center: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT home_center, created_ms FROM case_index WHERE created_ms >= ?1",
            )?;
            let rows = stmt.query_map([since_ms], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (center, created) = row?;
                let day = china_day(created);
                if let Some(i) = days.iter().position(|d| *d == day) {
                    per_center
                        .entry(center)
                        .or_insert_with(|| vec![0; VOLUME_DAYS])[i] += 1;
                }
            }
        }
        let daily = DailyVolume {
            days,
            centers: per_center
                .into_iter()
                .map(|(center, counts)| CenterSeries {
                    label: center_label(&center),
                    center,
                    counts,
                })
                .collect(),
        };
        let (deadlines, deadline_truncated) = self.open_deadlines(now_ms)?;
        let deadline_scanned = deadlines.len();
        let (mut overdue, mut near_overdue): (Vec<_>, Vec<_>) = deadlines
            .into_iter()
            .filter(|d| d.overdue || d.near_overdue)
            .partition(|d| d.overdue);
        overdue.sort_by_key(|d| d.deadline_ms);
        near_overdue.sort_by_key(|d| d.deadline_ms);
        Ok(Dashboard {
            total,
            by_center,
            by_item,
            by_department,
            by_status,
            daily,
            overdue,
            near_overdue,
            deadline_scanned,
            deadline_truncated,
        })
    }
}
