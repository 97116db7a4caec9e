//! District metrics from case facts: on-time completion (按时办结率), "at most one
//! visit" (最多跑一次), completion at the first pass (一次办结率), evaluations
//! (好差评) and counts of 即办件 / 承诺件 / 不予受理 / 延期 / 异常终止, by center, item or
//! department and by period. Pure: the CLI, the HTTP API and tests call the same code.
//!
//! Each count is dated by its own event, as China dates within `from..=to`:
//! acceptance counts (受理, 即办件, 承诺件, 代办) by the acceptance, 不予受理 by the
//! rejection, completion metrics (按时, 一次办结, 最多跑一次) by the completion, 延期 by the
//! extension, 异常终止 and 撤销 by the ending, evaluations by the evaluation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::case::deadlines::CaseDeadlines;
use crate::case::facts::CaseFacts;
use crate::case::rules::EvaluationLevel;
use crate::catalog::Handling;
use crate::deadline::china_date;

/// Longest report span: ten years of daily rows is already more than anyone reads, and
/// the bound keeps a mistyped year from building millions of rows.
pub const REPORT_SPAN_MAX_DAYS: i64 = 3660;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("the report ends ({to}) before it starts ({from})")]
    Backwards { from: Date, to: Date },
    #[error("a report may span at most {REPORT_SPAN_MAX_DAYS} days")]
    SpanTooLong,
    #[error(
        "unknown one-pass rule part {0:?}; expected no-supplement, no-return, max-visits=N or default"
    )]
    OnceRule(String),
}

/// One case as the metrics read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsCase {
    /// The center the case is at (its current center; `district` for the back office).
    pub center: String,
    pub center_name: String,
    pub item_code: String,
    pub item_name: String,
    pub department: String,
    pub handling: Handling,
    /// 到现场次数 the catalog promises for the item.
    pub item_visits: u32,
    /// An agent (代办人) acts for the applicant.
    pub agent: bool,
    pub facts: CaseFacts,
    pub deadlines: CaseDeadlines,
}

/// How rows are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// One group: the whole node (the district on the hub, the center on a center).
    All,
    Center,
    Item,
    Department,
}

/// How rows are split in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// One period: `from..=to`.
    All,
    Day,
    /// ISO weeks, Monday first.
    Week,
    Month,
}

/// What "completed at the first pass" (一次办结) means; set by configuration.
///
/// The default follows the district's definition: closed (办结) with no 补正 and no
/// 退回. A district that also wants the applicant to have come at most once adds
/// `max-visits=1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnceRule {
    pub no_supplement: bool,
    pub no_return: bool,
    pub max_visits: Option<u32>,
}

impl Default for OnceRule {
    fn default() -> Self {
        OnceRule {
            no_supplement: true,
            no_return: true,
            max_visits: None,
        }
    }
}

impl OnceRule {
    /// Parses `default` or a comma-separated list of `no-supplement`, `no-return`,
    /// `max-visits=N`; the listed conditions are the whole rule.
    pub fn parse(text: &str) -> Result<OnceRule, MetricsError> {
        if text.trim() == "default" {
            return Ok(OnceRule::default());
        }
        if text.trim().is_empty() {
            return Err(MetricsError::OnceRule(String::new()));
        }
        let mut rule = OnceRule {
            no_supplement: false,
            no_return: false,
            max_visits: None,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "no-supplement" => rule.no_supplement = true,
                "no-return" => rule.no_return = true,
                _ => {
                    let visits = part
                        .strip_prefix("max-visits=")
                        .and_then(|n| n.parse().ok())
                        .ok_or_else(|| MetricsError::OnceRule(part.to_owned()))?;
                    rule.max_visits = Some(visits);
                }
            }
        }
        Ok(rule)
    }

    pub fn holds(&self, facts: &CaseFacts) -> bool {
        facts.completed_ms.is_some()
            && !(self.no_supplement && facts.supplements > 0)
            && !(self.no_return && facts.returns > 0)
            && self.max_visits.is_none_or(|max| facts.visits <= max)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportQuery {
    pub from: Date,
    pub to: Date,
    pub by: GroupBy,
    pub period: Period,
    pub once_rule: OnceRule,
}

/// Evaluations by level (GB/T 39734-2020), in the standard's order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EvaluationCounts {
    #[serde(rename = "非常满意")]
    pub very_satisfied: u64,
    #[serde(rename = "满意")]
    pub satisfied: u64,
    #[serde(rename = "基本满意")]
    pub basic: u64,
    #[serde(rename = "不满意")]
    pub dissatisfied: u64,
    #[serde(rename = "非常不满意")]
    pub very_dissatisfied: u64,
}

impl EvaluationCounts {
    fn add(&mut self, level: EvaluationLevel) {
        let slot = match level {
            EvaluationLevel::VerySatisfied => &mut self.very_satisfied,
            EvaluationLevel::Satisfied => &mut self.satisfied,
            EvaluationLevel::Basic => &mut self.basic,
            EvaluationLevel::Dissatisfied => &mut self.dissatisfied,
            EvaluationLevel::VeryDissatisfied => &mut self.very_dissatisfied,
        };
        *slot += 1;
    }

    pub fn total(&self) -> u64 {
        self.very_satisfied
            + self.satisfied
            + self.basic
            + self.dissatisfied
            + self.very_dissatisfied
    }
}

/// The metrics of one group and period.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// 受理.
    pub accepted: u64,
    /// 即办件 accepted.
    pub instant: u64,
    /// 承诺件 accepted.
    pub promised: u64,
    /// Accepted with an agent (代办).
    pub agent: u64,
    /// 不予受理.
    pub rejected: u64,
    /// 办结.
    pub completed: u64,
    pub completed_on_time: u64,
    pub completed_late: u64,
    /// Completed cases whose deadline could not be computed (calendar unknown).
    pub completed_deadline_unknown: u64,
    /// 按时办结率: on time ÷ (on time + late).
    pub on_time_rate: Option<f64>,
    /// 一次办结 under the configured rule.
    pub completed_once: u64,
    /// 一次办结率: completed once ÷ completed.
    pub once_rate: Option<f64>,
    /// Completed cases whose applicant came at most once.
    pub completed_at_most_one_visit: u64,
    /// 最多跑一次 by cases.
    pub one_visit_rate: Option<f64>,
    /// Completed cases whose applicant came more often than the catalog promises.
    pub completed_visits_over_promise: u64,
    /// Items with completed cases.
    pub items_completed: u64,
    /// Items all of whose completed cases needed at most one visit.
    pub items_at_most_one_visit: u64,
    /// 最多跑一次 by items.
    pub item_one_visit_rate: Option<f64>,
    /// 延期.
    pub extended: u64,
    /// 异常终止.
    pub terminated: u64,
    /// 撤销申请.
    pub cancelled: u64,
    pub evaluations: EvaluationCounts,
    /// 差评 (不满意 and 非常不满意).
    pub bad_reviews: u64,
    pub bad_reviews_followed_up: u64,
    pub bad_reviews_pending: u64,
}

/// One row of a report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReportRow {
    /// The group's code: center code, item code or department name; empty for `all`.
    pub key: String,
    pub label: String,
    /// The period's name: `2026-03-02`, `2026-W10`, `2026-03`, or `from..to`.
    pub period: String,
    #[serde(flatten)]
    pub metrics: Metrics,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub by: GroupBy,
    pub period: Period,
    pub once_rule: OnceRule,
    pub rows: Vec<ReportRow>,
    /// Every case of the span in one row.
    pub total: Metrics,
}

/// Counts accumulated for one bucket; rates and item shares are derived at the end.
#[derive(Default)]
struct Bucket {
    label: String,
    metrics: Metrics,
    /// Item code → whether every completed case so far needed at most one visit.
    items: BTreeMap<String, bool>,
}

impl Bucket {
    fn finish(mut self) -> Metrics {
        let m = &mut self.metrics;
        m.items_completed = self.items.len() as u64;
        m.items_at_most_one_visit = self.items.values().filter(|ok| **ok).count() as u64;
        m.on_time_rate = rate(m.completed_on_time, m.completed_on_time + m.completed_late);
        m.once_rate = rate(m.completed_once, m.completed);
        m.one_visit_rate = rate(m.completed_at_most_one_visit, m.completed);
        m.item_one_visit_rate = rate(m.items_at_most_one_visit, m.items_completed);
        self.metrics
    }
}

fn rate(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// Computes a report; see the module documentation for which date dates what.
pub fn report(cases: &[MetricsCase], query: &ReportQuery) -> Result<Report, MetricsError> {
    if query.to < query.from {
        return Err(MetricsError::Backwards {
            from: query.from,
            to: query.to,
        });
    }
    if (query.to - query.from).whole_days() > REPORT_SPAN_MAX_DAYS {
        return Err(MetricsError::SpanTooLong);
    }
    let mut buckets: BTreeMap<(String, String), Bucket> = BTreeMap::new();
    let mut total = Bucket::default();
    for case in cases {
        let (key, label) = match query.by {
            GroupBy::All => (String::new(), String::new()),
            GroupBy::Center => (case.center.clone(), case.center_name.clone()),
            GroupBy::Item => (case.item_code.clone(), case.item_name.clone()),
            GroupBy::Department => (case.department.clone(), case.department.clone()),
        };
        let mut count = |at_ms: Option<i64>, add: &dyn Fn(&mut Bucket)| {
            let Some(day) = at_ms.and_then(|ms| china_date(ms).ok()) else {
                return;
            };
            if day < query.from || day > query.to {
                return;
            }
            let bucket = buckets
                .entry((key.clone(), period_name(query, day)))
                .or_default();
            bucket.label.clone_from(&label);
            add(bucket);
            add(&mut total);
        };
        let facts = &case.facts;
        count(facts.accepted_ms, &|b| {
            b.metrics.accepted += 1;
            match case.handling {
                Handling::Instant => b.metrics.instant += 1,
                Handling::Promised => b.metrics.promised += 1,
            }
            if case.agent {
                b.metrics.agent += 1;
            }
        });
        count(facts.rejected_ms, &|b| b.metrics.rejected += 1);
        count(facts.completed_ms, &|b| {
            add_completion(b, case, &query.once_rule)
        });
        count(facts.extensions.first().map(|e| e.at_ms), &|b| {
            b.metrics.extended += 1
        });
        count(facts.terminated_ms, &|b| b.metrics.terminated += 1);
        count(facts.cancelled_ms, &|b| b.metrics.cancelled += 1);
        for evaluation in &facts.evaluations {
            count(Some(evaluation.at_ms), &|b| {
                b.metrics.evaluations.add(evaluation.level);
                if evaluation.level.is_bad() {
                    b.metrics.bad_reviews += 1;
                    if evaluation.followed_up_ms.is_some() {
                        b.metrics.bad_reviews_followed_up += 1;
                    } else {
                        b.metrics.bad_reviews_pending += 1;
                    }
                }
            });
        }
    }
    let rows = buckets
        .into_iter()
        .map(|((key, period), bucket)| ReportRow {
            key,
            label: bucket.label.clone(),
            period,
            metrics: bucket.finish(),
        })
        .collect();
    Ok(Report {
        from: query.from.to_string(),
        to: query.to.to_string(),
        by: query.by,
        period: query.period,
        once_rule: query.once_rule,
        rows,
        total: total.finish(),
    })
}

fn add_completion(b: &mut Bucket, case: &MetricsCase, once_rule: &OnceRule) {
    let facts = &case.facts;
    let m = &mut b.metrics;
    m.completed += 1;
    match case.deadlines.known().and_then(|k| k.on_time) {
        Some(true) => m.completed_on_time += 1,
        Some(false) => m.completed_late += 1,
        None => m.completed_deadline_unknown += 1,
    }
    if once_rule.holds(facts) {
        m.completed_once += 1;
    }
    if facts.visits > case.item_visits {
        m.completed_visits_over_promise += 1;
    }
    let one_visit = facts.visits <= 1;
    if one_visit {
        m.completed_at_most_one_visit += 1;
    }
    let item = b.items.entry(case.item_code.clone()).or_insert(true);
    *item &= one_visit;
}

fn period_name(query: &ReportQuery, day: Date) -> String {
    match query.period {
        Period::All => format!("{}..{}", query.from, query.to),
        Period::Day => day.to_string(),
        Period::Week => {
            let (year, week, _) = day.to_iso_week_date();
            format!("{year}-W{week:02}")
        }
        Period::Month => format!("{}-{:02}", day.year(), u8::from(day.month())),
    }
}

/// The report as CSV (RFC 4180): one line per row, then the total as group `*`.
pub fn to_csv(report: &Report) -> String {
    let mut out = String::new();
    let header = [
        "key",
        "label",
        "period",
        "accepted",
        "instant",
        "promised",
        "agent",
        "rejected",
        "completed",
        "completed_on_time",
        "completed_late",
        "completed_deadline_unknown",
        "on_time_rate",
        "completed_once",
        "once_rate",
        "completed_at_most_one_visit",
        "one_visit_rate",
        "completed_visits_over_promise",
        "items_completed",
        "items_at_most_one_visit",
        "item_one_visit_rate",
        "extended",
        "terminated",
        "cancelled",
        "非常满意",
        "满意",
        "基本满意",
        "不满意",
        "非常不满意",
        "bad_reviews",
        "bad_reviews_followed_up",
        "bad_reviews_pending",
    ];
    out.push_str(&header.join(","));
    out.push('\n');
    let total = ReportRow {
        key: "*".into(),
        label: "合计".into(),
        period: format!("{}..{}", report.from, report.to),
        metrics: report.total.clone(),
    };
    for row in report.rows.iter().chain(std::iter::once(&total)) {
        let m = &row.metrics;
        let rate = |r: Option<f64>| r.map(|r| format!("{r:.4}")).unwrap_or_default();
        let cells: Vec<String> = vec![
            csv_cell(&row.key),
            csv_cell(&row.label),
            csv_cell(&row.period),
            m.accepted.to_string(),
            m.instant.to_string(),
            m.promised.to_string(),
            m.agent.to_string(),
            m.rejected.to_string(),
            m.completed.to_string(),
            m.completed_on_time.to_string(),
            m.completed_late.to_string(),
            m.completed_deadline_unknown.to_string(),
            rate(m.on_time_rate),
            m.completed_once.to_string(),
            rate(m.once_rate),
            m.completed_at_most_one_visit.to_string(),
            rate(m.one_visit_rate),
            m.completed_visits_over_promise.to_string(),
            m.items_completed.to_string(),
            m.items_at_most_one_visit.to_string(),
            rate(m.item_one_visit_rate),
            m.extended.to_string(),
            m.terminated.to_string(),
            m.cancelled.to_string(),
            m.evaluations.very_satisfied.to_string(),
            m.evaluations.satisfied.to_string(),
            m.evaluations.basic.to_string(),
            m.evaluations.dissatisfied.to_string(),
            m.evaluations.very_dissatisfied.to_string(),
            m.bad_reviews.to_string(),
            m.bad_reviews_followed_up.to_string(),
            m.bad_reviews_pending.to_string(),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

fn csv_cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests;
