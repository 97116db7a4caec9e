//! `GET /api/report`: the district metrics of `yichuang report`, over HTTP, as JSON
//! or CSV, computed by the same store function.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use yichuang_shared::metrics::{self, GroupBy, OnceRule, Period, ReportQuery};

use super::error::{ApiQuery, ErrorBody};
use super::roles::{Allowed, ToReport};
use super::{ApiError, AppState};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// First day, YYYY-MM-DD (China time).
    pub from: String,
    /// Last day, YYYY-MM-DD, included.
    pub to: String,
    /// all (default), center, item or department.
    pub by: Option<String>,
    /// all (default), day, week or month.
    pub period: Option<String>,
    /// Only this center's cases.
    pub center: Option<String>,
    /// The 一次办结率 rule, e.g. `no-supplement,no-return`; the node's default otherwise.
    pub once_rule: Option<String>,
    /// json (default) or csv.
    pub format: Option<String>,
}

fn date(field: &str, text: &str) -> Result<time::Date, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text.trim(), format)
        .map_err(|e| ApiError::invalid(field, format!("expected YYYY-MM-DD: {e}")))
}

fn query(p: &ReportParams) -> Result<ReportQuery, ApiError> {
    let by = match p.by.as_deref().unwrap_or("all") {
        "all" => GroupBy::All,
        "center" => GroupBy::Center,
        "item" => GroupBy::Item,
        "department" => GroupBy::Department,
        other => {
            return Err(ApiError::invalid(
                "by",
                format!("unknown grouping {other:?}: all, center, item or department"),
            ));
        }
    };
    let period = match p.period.as_deref().unwrap_or("all") {
        "all" => Period::All,
        "day" => Period::Day,
        "week" => Period::Week,
        "month" => Period::Month,
        other => {
            return Err(ApiError::invalid(
                "period",
                format!("unknown period {other:?}: all, day, week or month"),
            ));
        }
    };
    let once_rule = match p.once_rule.as_deref() {
        Some(text) => {
            OnceRule::parse(text).map_err(|e| ApiError::invalid("once_rule", e.to_string()))?
        }
        None => OnceRule::default(),
    };
    let (from, to) = (date("from", &p.from)?, date("to", &p.to)?);
    if to < from {
        return Err(ApiError::invalid("to", "the period ends before it starts"));
    }
    Ok(ReportQuery {
        from,
        to,
        by,
        period,
        once_rule,
    })
}

/// 按时办结率, 最多跑一次, 一次办结率, 好差评 and the case counts, per group and period.
#[utoipa::path(get, path = "/api/report", tag = "node", params(ReportParams), security(("bearer" = [])),
    responses((status = 200, description = "The report (JSON, or CSV with format=csv)", body = Object),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The report needs the admin role", body = ErrorBody),
        (status = 422, description = "Bad parameter", body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    _admin: Allowed<ToReport>,
    ApiQuery(params): ApiQuery<ReportParams>,
) -> Result<Response, ApiError> {
    let q = query(&params)?;
    let csv = match params.format.as_deref().unwrap_or("json") {
        "json" => false,
        "csv" => true,
        other => {
            return Err(ApiError::invalid(
                "format",
                format!("unknown format {other:?}: json or csv"),
            ));
        }
    };
    let center = params.center.clone();
    let report = state
        .store
        .call(move |s| s.report(&q, center.as_deref()))
        .await??;
    if csv {
        return Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            metrics::to_csv(&report),
        )
            .into_response());
    }
    Ok(axum::Json(report).into_response())
}
