//! `yichuang report`: district metrics (按时办结率, 最多跑一次, 一次办结率, 好差评 and
//! counts of 即办件 / 承诺件 / 不予受理 / 延期 / 异常终止) over the cases this node holds.

use anyhow::Result;
use clap::{Args, ValueEnum};
use time::Date;
use yichuang_shared::metrics::{self, GroupBy, Metrics, OnceRule, Period, ReportQuery};

use super::calendar::parse_date;
use super::{DirArg, print_json, table};
use crate::store::Store;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ByArg {
    All,
    Center,
    Item,
    Department,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PeriodArg {
    All,
    Day,
    Week,
    Month,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    dir: DirArg,
    /// First day, YYYY-MM-DD (China dates).
    #[arg(long, value_parser = parse_date)]
    from: Date,
    /// Last day, included.
    #[arg(long, value_parser = parse_date)]
    to: Date,
    /// Group rows by center, item or department.
    #[arg(long, value_enum, default_value = "all")]
    by: ByArg,
    /// Split rows by day, ISO week or month.
    #[arg(long, value_enum, default_value = "all")]
    period: PeriodArg,
    /// Only the cases now at this center (a code, or `district`).
    #[arg(long)]
    center: Option<String>,
    /// What 一次办结 means: `default` (no 补正 and no 退回) or a list of no-supplement,
    /// no-return, max-visits=N.
    #[arg(long, env = "YICHUANG_ONCE_RULE", default_value = "default", value_parser = parse_once_rule)]
    once_rule: OnceRule,
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    #[arg(long)]
    csv: bool,
}

fn parse_once_rule(text: &str) -> Result<OnceRule, String> {
    OnceRule::parse(text).map_err(|e| e.to_string())
}

fn percent(rate: Option<f64>) -> String {
    rate.map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn cells(key: &str, label: &str, period: &str, m: &Metrics) -> Vec<String> {
    let e = &m.evaluations;
    vec![
        if label.is_empty() || label == key {
            key.to_owned()
        } else {
            format!("{key} {label}")
        },
        period.to_owned(),
        m.accepted.to_string(),
        format!("{}/{}", m.instant, m.promised),
        m.rejected.to_string(),
        m.completed.to_string(),
        percent(m.on_time_rate),
        percent(m.once_rate),
        percent(m.one_visit_rate),
        percent(m.item_one_visit_rate),
        m.extended.to_string(),
        m.terminated.to_string(),
        format!(
            "{}/{}/{}/{}/{}",
            e.very_satisfied, e.satisfied, e.basic, e.dissatisfied, e.very_dissatisfied
        ),
        format!("{}/{}", m.bad_reviews_pending, m.bad_reviews),
    ]
}

pub fn run(args: ReportArgs) -> Result<()> {
    let query = ReportQuery {
        from: args.from,
        to: args.to,
        by: match args.by {
            ByArg::All => GroupBy::All,
            ByArg::Center => GroupBy::Center,
            ByArg::Item => GroupBy::Item,
            ByArg::Department => GroupBy::Department,
        },
        period: match args.period {
            PeriodArg::All => Period::All,
            PeriodArg::Day => Period::Day,
            PeriodArg::Week => Period::Week,
            PeriodArg::Month => Period::Month,
        },
        once_rule: args.once_rule,
    };
    let mut store = Store::open(&args.dir.dir)?;
    let report = store.report(&query, args.center.as_deref())?;
    if args.json {
        return print_json(&report);
    }
    if args.csv {
        crate::out!("{}", metrics::to_csv(&report));
        return Ok(());
    }
    let mut rows: Vec<Vec<String>> = report
        .rows
        .iter()
        .map(|r| cells(&r.key, &r.label, &r.period, &r.metrics))
        .collect();
    rows.push(cells(
        "合计",
        "",
        &format!("{}..{}", report.from, report.to),
        &report.total,
    ));
    crate::out!(
        "{}",
        table::render(
            &[
                "分组",
                "期间",
                "受理",
                "即办/承诺",
                "不予受理",
                "办结",
                "按时办结率",
                "一次办结率",
                "最多跑一次(件)",
                "最多跑一次(事项)",
                "延期",
                "异常终止",
                "好差评(非常满意/满意/基本满意/不满意/非常不满意)",
                "差评待整改",
            ],
            &rows
        )
    );
    Ok(())
}
