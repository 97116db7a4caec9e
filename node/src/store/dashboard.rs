//! The hall at a glance: case counts by center, item, department and status, daily
//! volume per center, and the open cases that are overdue or nearly so (from the
//! rules' deadline columns, confirmed per case by [`Store::due_cases`]).

use std::collections::BTreeMap;

use serde::Serialize;
use yichuang_shared::case::Status;

use super::cases::{CaseRow, china_day};
use super::rules::{Due, DueCase};
use super::{Store, StoreError, district};

/// Cases each deadline list shows. Each is confirmed from its document (about a
/// millisecond), and a supervisor acts on the top of the list, not on thousands.
pub const DUE_LIST_MAX: usize = 200;
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
    /// Whether a deadline list was cut at [`DUE_LIST_MAX`].
    pub due_truncated: bool,
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

impl DeadlineRow {
    /// A deadline-list entry; `None` when its deadlines are not known.
    pub fn of(due: DueCase) -> Option<DeadlineRow> {
        let k = due.deadlines.known()?.clone();
        Some(DeadlineRow {
            case: due.row,
            deadline_ms: k.promised_ms,
            remaining_working_days: k.remaining_working_days,
            overdue: k.overdue,
            near_overdue: k.near_overdue,
            paused: k.paused,
        })
    }
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

    /// Overdue or nearly overdue cases, soonest deadline first, at most `limit`.
    pub fn due_rows(&mut self, due: Due, limit: usize) -> Result<Vec<DeadlineRow>, StoreError> {
        Ok(self
            .due_cases(due, limit)?
            .into_iter()
            .filter_map(DeadlineRow::of)
            .collect())
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
        let overdue = self.due_rows(Due::Overdue, DUE_LIST_MAX + 1)?;
        let near_overdue = self.due_rows(Due::NearOverdue, DUE_LIST_MAX + 1)?;
        let due_truncated = overdue.len() > DUE_LIST_MAX || near_overdue.len() > DUE_LIST_MAX;
        let overdue = overdue.into_iter().take(DUE_LIST_MAX).collect();
        let near_overdue = near_overdue.into_iter().take(DUE_LIST_MAX).collect();
        Ok(Dashboard {
            total,
            by_center,
            by_item,
            by_department,
            by_status,
            daily,
            overdue,
            near_overdue,
            due_truncated,
        })
    }
}
