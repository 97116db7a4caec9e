//! The rules of case work on the store: the calendar this node works with (official
//! data plus the hub's calendar document), each case's deadlines and facts in the
//! case index, lists of overdue cases, and district metrics.
//!
//! The index holds what does not change with time (deadline dates, facts); whether a
//! case is overdue is decided at query time against the clock. When the catalog or the
//! calendar document changes, every case is re-indexed before the next list or report
//! (see [`Store::ensure_rules_current`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use automerge::transaction::CommitOptions;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use yichuang_shared::calendar::document::{calendar_from_doc, put_year};
use yichuang_shared::calendar::{WorkCalendar, YearOverride};
use yichuang_shared::case::deadlines::{CaseDeadlines, ItemLimits, case_deadlines};
use yichuang_shared::case::facts::CaseFacts;
use yichuang_shared::case::{CaseDoc, CaseView};
use yichuang_shared::catalog::Handling;
use yichuang_shared::ids::{DocId, RefDoc, Role};
use yichuang_shared::metrics::{self, MetricsCase, Report, ReportQuery};

use super::cases::{CaseRow, ROW_COLUMNS, row};
use super::docs::{fresh_doc, write_changes};
use super::{Store, StoreError, Tx, now_ms};

/// Bumped whenever what the index derives from a case changes, so old rows are
/// re-derived once.
const RULES_VERSION: u32 = 1;
/// Cases re-indexed per transaction: long enough to amortise the commit, short enough
/// that a clerk's write waits at most a moment behind it.
const REINDEX_BATCH: usize = 500;
/// Statuses after which no deadline runs.
const CLOSED_STATUSES: &str = "'completed', 'delivered', 'rejected', 'cancelled', 'terminated'";
/// Near overdue means under one working day left; a deadline more than four calendar
/// days away (a long weekend and a day) cannot be that near.
const NEAR_CANDIDATE_MS: i64 = 4 * 86_400_000;
/// The label of the district back office in reports.
const BACK_OFFICE_NAME: &str = "区级后台";

/// What the rules need from one catalog item.
#[derive(Clone, Debug)]
pub struct ItemRules {
    pub limits: ItemLimits,
    pub handling: Handling,
    /// 到现场次数 the catalog promises.
    pub visits: u32,
    pub delivery: Vec<String>,
}

/// The catalog limits and the calendar, as of the reference documents' current state.
#[derive(Debug)]
pub struct RulesContext {
    pub items: BTreeMap<String, ItemRules>,
    /// A damaged calendar document makes every deadline unavailable, with this reason,
    /// rather than silently falling back to the official data.
    pub calendar: Result<WorkCalendar, String>,
    /// Which catalog and calendar changes (and rules version) this was built from.
    basis: String,
}

impl RulesContext {
    /// A case's deadlines as of `now_ms`.
    pub fn deadlines(&self, item_code: &str, facts: &CaseFacts, now_ms: i64) -> CaseDeadlines {
        let Some(item) = self.items.get(item_code) else {
            return CaseDeadlines::Unavailable {
                reason: format!("item {item_code} is not in the catalog"),
            };
        };
        match &self.calendar {
            Ok(cal) => case_deadlines(facts, &item.limits, cal, now_ms),
            Err(reason) => CaseDeadlines::Unavailable {
                reason: reason.clone(),
            },
        }
    }
}

/// What the index keeps of a case's rules, as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct IndexedRules {
    facts: CaseFacts,
    deadlines: CaseDeadlines,
    agent: bool,
}

/// Which deadline list to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// 超期: past the promised deadline.
    Overdue,
    /// 临近超期: under one working day left.
    NearOverdue,
}

/// A case on a deadline list, with its deadlines as of now.
#[derive(Clone, Debug, Serialize)]
pub struct DueCase {
    #[serde(flatten)]
    pub row: CaseRow,
    pub deadlines: CaseDeadlines,
}

/// What the index keeps of a case's rules, column by column.
pub(super) struct RuleColumns {
    pub state: &'static str,
    pub promised_ms: Option<i64>,
    pub statutory_ms: Option<i64>,
    pub calendar_version: String,
    /// The earliest and latest times a metric dates the case by, so a report reads
    /// only the cases that can count in its span.
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    pub json: String,
}

pub(super) fn rule_columns(
    view: &CaseView,
    rules: &RulesContext,
    now: i64,
) -> Result<RuleColumns, StoreError> {
    let deadlines = rules.deadlines(&view.item_code, &view.facts, now);
    let facts = &view.facts;
    let mut times: Vec<i64> = [
        facts.accepted_ms,
        facts.rejected_ms,
        facts.completed_ms,
        facts.cancelled_ms,
        facts.terminated_ms,
    ]
    .into_iter()
    .flatten()
    .collect();
    times.extend(facts.extensions.iter().map(|e| e.at_ms));
    times.extend(facts.evaluations.iter().map(|e| e.at_ms));
    let known = deadlines.known();
    let columns = RuleColumns {
        state: deadlines.state(),
        promised_ms: known.map(|k| k.promised_ms),
        statutory_ms: known.map(|k| k.statutory_ms),
        calendar_version: known
            .map(|k| k.calendar_version.clone())
            .unwrap_or_default(),
        first_ms: times.iter().min().copied(),
        last_ms: times.iter().max().copied(),
        json: String::new(),
    };
    let indexed = IndexedRules {
        facts: facts.clone(),
        agent: view.agent.is_some(),
        deadlines,
    };
    let json = serde_json::to_string(&indexed).map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(RuleColumns { json, ..columns })
}

/// Rewrites a case's rule columns in its index row (which must exist).
fn index_rules(
    conn: &Connection,
    doc_id: &DocId,
    view: &CaseView,
    rules: &RulesContext,
    now: i64,
) -> Result<(), StoreError> {
    let c = rule_columns(view, rules, now)?;
    conn.prepare_cached(
        "UPDATE case_index SET deadline_state = ?2, promised_ms = ?3, statutory_ms = ?4, calendar_version = ?5,
             rules_first_ms = ?6, rules_last_ms = ?7, rules = ?8 WHERE doc_id = ?1",
    )?
    .execute(params![
        doc_id.as_str(),
        c.state,
        c.promised_ms,
        c.statutory_ms,
        c.calendar_version,
        c.first_ms,
        c.last_ms,
        c.json,
    ])?;
    Ok(())
}

fn doc_seq(conn: &Connection, id: &DocId) -> Result<i64, StoreError> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT last_seq FROM docs WHERE doc_id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?;
    seq.ok_or_else(|| StoreError::Corrupt(format!("the {id} document is missing")))
}

impl Store {
    /// The catalog limits and calendar as the reference documents hold them now,
    /// rebuilt only when one of them changed.
    pub fn rules_context(&mut self) -> Result<Arc<RulesContext>, StoreError> {
        let catalog_seq = doc_seq(&self.conn, &RefDoc::Catalog.doc_id())?;
        let calendar_seq = doc_seq(&self.conn, &RefDoc::Calendar.doc_id())?;
        let basis = format!("{RULES_VERSION}:{catalog_seq}:{calendar_seq}");
        if let Some(rules) = self.rules.as_ref().filter(|r| r.basis == basis) {
            return Ok(rules.clone());
        }
        let items = self
            .catalog()?
            .iter()
            .map(|(code, item)| {
                let rules = ItemRules {
                    limits: ItemLimits {
                        promised: item.promised_limit,
                        statutory: item.statutory_limit,
                    },
                    handling: item.handling,
                    visits: item.visits,
                    delivery: item.delivery.clone(),
                };
                (code.clone(), rules)
            })
            .collect();
        let doc = self.load_doc(&RefDoc::Calendar.doc_id())?;
        let calendar = calendar_from_doc(&doc).map_err(|e| {
            tracing::error!(error = %e, "the calendar document is damaged; deadlines are unavailable");
            format!("the hub's calendar document is damaged: {e}")
        });
        let rules = Arc::new(RulesContext {
            items,
            calendar,
            basis,
        });
        self.rules = Some(rules.clone());
        Ok(rules)
    }

    /// The working-day calendar: official data plus the hub's years.
    pub fn calendar(&mut self) -> Result<WorkCalendar, StoreError> {
        self.rules_context()?
            .calendar
            .clone()
            .map_err(StoreError::Invalid)
    }

    /// Writes one year into the calendar document. Only the hub writes reference
    /// documents; every case is re-indexed against the new calendar.
    pub fn set_calendar_year(
        &mut self,
        year: &YearOverride,
        clerk: &str,
    ) -> Result<usize, StoreError> {
        if self.settings.role != Role::Hub {
            return Err(StoreError::NotHub {
                role: self.settings.role,
            });
        }
        let id = RefDoc::Calendar.doc_id();
        let result = self.set_calendar_year_inner(&id, year, clerk);
        if result.is_err() {
            self.cache.evict(&id);
        }
        result?;
        self.ensure_rules_current()
    }

    fn set_calendar_year_inner(
        &mut self,
        id: &DocId,
        year: &YearOverride,
        clerk: &str,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let tx = Tx::begin(&self.conn, self.in_group)?;
        let doc = fresh_doc(&tx, &mut self.cache, id)?;
        doc.set_actor(self.actor.clone());
        let before = doc.get_heads();
        put_year(doc, year).map_err(|e| StoreError::Invalid(e.to_string()))?;
        doc.commit_with(
            CommitOptions::default()
                .with_message(clerk.to_owned())
                .with_time(now),
        );
        let changes = doc.get_changes(&before);
        let (last_seq, _) = write_changes(&tx, id, "calendar", &changes, doc, None, now)?;
        tx.commit()?;
        self.cache.set_last_seq(id, last_seq);
        tracing::info!(year = year.year, version = %year.version, "calendar year written");
        Ok(())
    }

    /// Re-indexes every case if the catalog, the calendar or the rules changed since
    /// the index was built; returns how many cases were re-indexed.
    pub fn ensure_rules_current(&mut self) -> Result<usize, StoreError> {
        let rules = self.rules_context()?;
        let stored: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'rules_basis'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if stored.as_deref() == Some(rules.basis.as_str()) {
            return Ok(0);
        }
        let ids: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare("SELECT doc_id FROM case_index ORDER BY doc_id")?;
            stmt.query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        let now = now_ms();
        for chunk in ids.chunks(REINDEX_BATCH) {
            let tx = Tx::begin(&self.conn, self.in_group)?;
            for text in chunk {
                let id: DocId = text
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("document id {text:?}")))?;
                let doc = fresh_doc(&tx, &mut self.cache, &id)?;
                let mut case = CaseDoc::from_automerge(doc.clone())?;
                index_rules(&tx, &id, &case.view(false), &rules, now)?;
            }
            tx.commit()?;
        }
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES ('rules_basis', ?1) ON CONFLICT (key) DO UPDATE SET value = ?1",
            [rules.basis.as_str()],
        )?;
        tracing::info!(cases = ids.len(), "case deadlines re-indexed");
        Ok(ids.len())
    }

    /// A case's deadlines as of now.
    pub fn deadlines_of(&mut self, view: &CaseView) -> Result<CaseDeadlines, StoreError> {
        Ok(self
            .rules_context()?
            .deadlines(&view.item_code, &view.facts, now_ms()))
    }

    /// Open cases past their promised deadline, or with under one working day left,
    /// soonest first. The index narrows the search; each candidate is confirmed from
    /// its document, since a paused case's deadline moves on every day.
    pub fn due_cases(&mut self, due: Due, limit: usize) -> Result<Vec<DueCase>, StoreError> {
        self.ensure_rules_current()?;
        let now = now_ms();
        let threshold = match due {
            Due::Overdue => now,
            Due::NearOverdue => now.saturating_add(NEAR_CANDIDATE_MS),
        };
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM case_index WHERE promised_ms IS NOT NULL AND promised_ms < ?1
             AND status NOT IN ({CLOSED_STATUSES}) ORDER BY promised_ms"
        );
        let candidates: Vec<CaseRow> = {
            let mut stmt = self.conn.prepare_cached(&sql)?;
            stmt.query_map([threshold], row)?
                .collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for candidate in candidates {
            if out.len() >= limit {
                break;
            }
            let view = self.case_view(&candidate.doc_id, false, "")?;
            let deadlines = self.deadlines_of(&view)?;
            let wanted = deadlines.known().is_some_and(|k| match due {
                Due::Overdue => k.overdue,
                Due::NearOverdue => k.near_overdue,
            });
            if wanted {
                out.push(DueCase {
                    row: candidate,
                    deadlines,
                });
            }
        }
        Ok(out)
    }

    /// District metrics over the cases this node holds (the district on the hub, a
    /// center's own cases on a center), optionally for one center only.
    pub fn report(
        &mut self,
        query: &ReportQuery,
        center: Option<&str>,
    ) -> Result<Report, StoreError> {
        let rules = self.rules_context()?;
        self.ensure_rules_current()?;
        let from_ms = china_day_start_ms(query.from);
        let to_ms = china_day_start_ms(query.to.next_day().unwrap_or(query.to));
        let district = super::district();
        let mut stmt = self.conn.prepare_cached(
            "SELECT current_center, item_code, item_name, department, rules FROM case_index
             WHERE rules_last_ms >= ?1 AND rules_first_ms < ?2 AND (?3 IS NULL OR current_center = ?3)",
        )?;
        let rows = stmt.query_map(params![from_ms, to_ms, center], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut cases = Vec::new();
        for row in rows {
            let (center, item_code, item_name, department, json) = row?;
            let indexed: IndexedRules = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("indexed rules: {e}")))?;
            let center_name = match district.center(&center) {
                Some(c) => c.name.clone(),
                None if center == yichuang_shared::case::rules::DISTRICT_BACK_OFFICE => {
                    BACK_OFFICE_NAME.to_owned()
                }
                None if center == district.hub.code => district.hub.name.clone(),
                None => center.clone(),
            };
            let handling = rules
                .items
                .get(&item_code)
                .map_or(Handling::Promised, |i| i.handling);
            let item = rules.items.get(&item_code);
            cases.push(MetricsCase {
                item_visits: item.map_or(u32::MAX, |i| i.visits),
                center,
                center_name,
                item_code,
                item_name,
                department,
                handling,
                agent: indexed.agent,
                facts: indexed.facts,
                deadlines: indexed.deadlines,
            });
        }
        metrics::report(&cases, query).map_err(|e| StoreError::Invalid(e.to_string()))
    }
}

/// 00:00 China time of `date`, in UTC ms.
fn china_day_start_ms(date: time::Date) -> i64 {
    yichuang_shared::deadline::end_of_china_day_ms(date) + 1 - 86_400_000
}
