//! The hub dashboard: the whole hall at a glance — counts by center, item,
//! department and status, overdue lists, a daily-volume chart drawn as inline SVG on
//! the server, and the fleet's sync health.

use std::fmt::Write;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::super::auth::PageUser;
use super::super::{ApiError, AppState};
use super::{Nav, error_page, esc, layout, time};
use crate::store::dashboard::{Count, DailyVolume, Dashboard, DeadlineRow};
use crate::store::{SyncStatus, now_ms};

/// Series colours, distinguishable side by side and in greyscale order.
const PALETTE: [&str; 13] = [
    "#1f5fbf", "#e07b00", "#1b8a4a", "#c03434", "#7a4cc2", "#0f8b8d", "#b8860b", "#d14d8b",
    "#4b5563", "#5b9bd5", "#8c564b", "#2ca02c", "#9467bd",
];
/// The chart's drawing size, about its size on a 1280-pixel screen so text is not scaled.
const CHART_W: f64 = 1160.0;
const CHART_H: f64 = 240.0;
const PAD_L: f64 = 40.0;
const PAD_B: f64 = 30.0;
const PAD_T: f64 = 12.0;

/// Daily registrations per center as grouped bars.
pub fn volume_chart(daily: &DailyVolume) -> String {
    let max = daily
        .centers
        .iter()
        .flat_map(|c| c.counts.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1);
    // A round axis top: 1, 2, 5, 10, 20, 50 …
    let mut top = 1i64;
    while top < max {
        top = match top.to_string().chars().next() {
            Some('1') => top * 2,
            Some('2') => top / 2 * 5,
            _ => top * 2,
        };
    }
    let plot_w = CHART_W - PAD_L - 10.0;
    let plot_h = CHART_H - PAD_B - PAD_T;
    let days = daily.days.len().max(1) as f64;
    let group_w = plot_w / days;
    let series = daily.centers.len().max(1) as f64;
    let bar_w = ((group_w - 6.0) / series).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="volume-chart" viewBox="0 0 {CHART_W} {CHART_H}" width="100%" style="max-height:{CHART_H}px" role="img" aria-label="各中心每日办件量" xmlns="http://www.w3.org/2000/svg" font-size="12" font-family="Noto Sans CJK SC, sans-serif">"#
    );
    // Tick every fifth of a top of 5, 10, 20, 50 …; every unit for tops of 1 and 2.
    let step = if top >= 5 { top / 5 } else { 1 };
    let mut v = 0;
    while v <= top {
        let y = PAD_T + plot_h - plot_h * (v as f64) / (top as f64);
        let _ = write!(
            svg,
            r##"<line x1="{PAD_L}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e3e8ef"/><text x="{}" y="{:.1}" text-anchor="end" fill="#6a788c">{v}</text>"##,
            CHART_W - 10.0,
            PAD_L - 6.0,
            y + 4.0
        );
        v += step;
    }
    for (d, day) in daily.days.iter().enumerate() {
        let x0 = PAD_L + group_w * d as f64 + 3.0;
        for (s, c) in daily.centers.iter().enumerate() {
            let n = c.counts.get(d).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let h = plot_h * n as f64 / top as f64;
            let _ = write!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}：{n} 件</title></rect>"#,
                x0 + bar_w * s as f64,
                PAD_T + plot_h - h,
                bar_w,
                h,
                PALETTE[s % PALETTE.len()],
                esc(&c.label),
                esc(day),
            );
        }
        let label = if day.len() == 8 {
            format!("{}/{}", &day[4..6], &day[6..8])
        } else {
            day.clone()
        };
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#4a5a70">{}</text>"##,
            x0 + (group_w - 6.0) / 2.0,
            CHART_H - 10.0,
            esc(&label)
        );
    }
    svg.push_str("</svg>");
    let legend: String = daily
        .centers
        .iter()
        .enumerate()
        .map(|(s, c)| {
            format!(
                r#"<span style="margin-right:14px;white-space:nowrap"><span style="display:inline-block;width:11px;height:11px;background:{};border-radius:2px;margin-right:5px;vertical-align:-1px"></span>{}</span>"#,
                PALETTE[s % PALETTE.len()],
                esc(&c.label)
            )
        })
        .collect();
    let legend = if legend.is_empty() {
        r#"<span class="muted">近期没有登记办件。</span>"#.to_owned()
    } else {
        legend
    };
    format!(r#"{svg}<div class="muted" style="margin-top:6px">{legend}</div>"#)
}

fn count_table(id: &str, head: &str, rows: &[Count]) -> String {
    let max = rows.iter().map(|r| r.count).max().unwrap_or(0).max(1);
    let body: String = rows
        .iter()
        .map(|r| {
            format!(
                r#"<tr><td>{}</td><td style="width:90px;text-align:right">{}</td><td style="width:38%"><div class="bar"><span style="width:{:.0}%"></span></div></td></tr>"#,
                esc(&r.label),
                r.count,
                100.0 * r.count as f64 / max as f64
            )
        })
        .collect();
    let body = if body.is_empty() {
        r#"<tr><td colspan="3" class="muted">暂无数据</td></tr>"#.to_owned()
    } else {
        body
    };
    format!(
        r#"<table id="{id}"><thead><tr><th>{head}</th><th style="text-align:right">办件</th><th></th></tr></thead><tbody>{body}</tbody></table>"#
    )
}

fn deadline_table(id: &str, rows: &[DeadlineRow], overdue: bool) -> String {
    if rows.is_empty() {
        return format!(r#"<p class="muted" id="{id}">无。</p>"#);
    }
    let body: String = rows
        .iter()
        .map(|r| {
            format!(
                r#"<tr><td><a href="/cases/{no}">{no}</a></td><td>{item}</td><td>{center}</td><td><span class="badge {cls}">{deadline}</span></td><td>{left}</td></tr>"#,
                no = esc(&r.case.case_no),
                item = esc(&r.case.item_name),
                center = esc(&crate::store::dashboard::center_label(&r.case.home_center)),
                cls = if overdue { "overdue" } else { "near" },
                deadline = time(r.deadline_ms),
                left = if r.remaining_working_days < 0 {
                    format!("超 {} 个工作日", -r.remaining_working_days)
                } else {
                    format!("剩 {} 个工作日", r.remaining_working_days)
                },
            )
        })
        .collect();
    format!(
        r#"<table id="{id}"><thead><tr><th>办件编号</th><th>事项</th><th>中心</th><th>承诺办结</th><th>剩余</th></tr></thead><tbody>{body}</tbody></table>"#
    )
}

fn age(now: i64, ms: Option<i64>) -> String {
    match ms {
        None => "—".into(),
        Some(t) => {
            let s = (now - t).max(0) / 1000;
            if s < 60 {
                format!("{s} 秒前")
            } else if s < 3600 {
                format!("{} 分钟前", s / 60)
            } else if s < 86_400 {
                format!("{} 小时前", s / 3600)
            } else {
                format!("{} 天前", s / 86_400)
            }
        }
    }
}

fn fleet_table(sync: &SyncStatus) -> String {
    if sync.peers.is_empty() {
        return r#"<p class="muted" id="fleet">尚未与任何节点同步。</p>"#.to_owned();
    }
    let now = sync.now_ms;
    let body: String = sync
        .peers
        .iter()
        .map(|p| {
            let name = if p.name.is_empty() {
                format!("节点 {}", &p.peer[..p.peer.len().min(8)])
            } else {
                p.name.clone()
            };
            let role = match p.role.as_str() {
                "hub" => "区中心",
                "center" => "街道中心",
                "laptop" => "外勤终端",
                _ => "—",
            };
            format!(
                r#"<tr><td>{name}</td><td>{role}</td><td>{center}</td><td><span class="badge {cls}">{state}</span></td><td>{last}</td><td>{unacked}</td><td>{oldest}</td><td>{rej}</td></tr>"#,
                name = esc(&name),
                center = esc(&crate::store::dashboard::center_label(&p.center)),
                cls = if p.connected { "st-done" } else { "near" },
                state = if p.connected { "在线" } else { "离线" },
                last = if p.last_contact_ms > 0 {
                    format!("{}（{}）", time(p.last_contact_ms), age(now, Some(p.last_contact_ms)))
                } else {
                    "从未".into()
                },
                unacked = p.unacked_changes,
                oldest = age(now, p.oldest_unacked_ms),
                rej = if p.rejected > 0 {
                    format!(r#"<span class="badge overdue">{}</span>"#, p.rejected)
                } else {
                    "0".into()
                },
            )
        })
        .collect();
    format!(
        r#"<table id="fleet"><thead><tr><th>节点</th><th>类型</th><th>中心</th><th>状态</th><th>最近联系</th><th>未确认变更</th><th>最早未确认</th><th>被拒变更</th></tr></thead><tbody>{body}</tbody></table>"#
    )
}

pub async fn page(State(state): State<AppState>, PageUser(user): PageUser) -> Response {
    let result = state
        .store
        .call(
            |s| -> Result<(Dashboard, SyncStatus, (i64, i64)), ApiError> {
                Ok((
                    s.dashboard(now_ms())?,
                    s.sync_status()?,
                    s.conflict_totals()?,
                ))
            },
        )
        .await
        .map_err(ApiError::from)
        .and_then(|r| r);
    let (d, sync, (_, conflicts)) = match result {
        Ok(x) => x,
        Err(e) => return error_page(&state, &user, e),
    };
    let sync = match state.live.as_deref() {
        Some(board) => sync.with_live(&super::super::live_peers(board)),
        None => sync,
    };
    let open: i64 = d
        .by_status
        .iter()
        .filter(|c| {
            c.key
                .parse::<yichuang_shared::case::Status>()
                .is_ok_and(|s| s.is_open())
        })
        .map(|c| c.count)
        .sum();
    let truncated = if d.due_truncated {
        format!(
            r#"<p class="muted">每个时限列表最多显示 {} 件。</p>"#,
            crate::store::dashboard::DUE_LIST_MAX
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<h1>全区看板</h1>
<div class="stats"><div class="stat"><div class="n" id="stat-total">{total}</div><div class="l">办件总数</div></div>
<div class="stat"><div class="n">{open}</div><div class="l">在办</div></div>
<div class="stat red"><div class="n" id="stat-overdue">{overdue}</div><div class="l">已超期</div></div>
<div class="stat amber"><div class="n">{near}</div><div class="l">临近超期</div></div>
<div class="stat red"><div class="n">{conflicts}</div><div class="l">待处理冲突</div></div></div>
<div class="card"><h2 style="margin-top:0">各中心每日办件量（近 {days} 天）</h2>{chart}</div>
<div class="cols"><div class="card"><h2 style="margin-top:0">按中心</h2>{by_center}</div>
<div class="card"><h2 style="margin-top:0">按状态</h2>{by_status}</div></div>
<div class="cols"><div class="card"><h2 style="margin-top:0">按事项（前 {top} 项）</h2>{by_item}</div>
<div class="card"><h2 style="margin-top:0">按部门</h2>{by_dept}</div></div>
<div class="cols"><div class="card"><h2 style="margin-top:0">已超期</h2>{overdue_table}</div>
<div class="card"><h2 style="margin-top:0">临近超期</h2>{near_table}</div></div>{truncated}
<div class="card"><h2 style="margin-top:0">节点同步状况</h2>{fleet}</div>"#,
        total = d.total,
        overdue = d.overdue.len(),
        near = d.near_overdue.len(),
        days = d.daily.days.len(),
        chart = volume_chart(&d.daily),
        by_center = count_table("by-center", "中心", &d.by_center),
        by_status = count_table("by-status", "状态", &d.by_status),
        top = crate::store::dashboard::TOP_ITEMS,
        by_item = count_table("by-item", "事项", &d.by_item),
        by_dept = count_table("by-department", "部门", &d.by_department),
        overdue_table = deadline_table("overdue-list", &d.overdue, true),
        near_table = deadline_table("near-list", &d.near_overdue, false),
        fleet = fleet_table(&sync),
    );
    layout(&state, &user, Nav::Dashboard, "全区看板", &body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::dashboard::CenterSeries;

    #[test]
    fn chart_has_round_ticks_one_bar_per_count_and_a_legend() {
        let daily = DailyVolume {
            days: vec!["20261127".into(), "20261128".into()],
            centers: vec![
                CenterSeries {
                    center: "003".into(),
                    label: "桐湾<街道>".into(),
                    counts: vec![0, 7],
                },
                CenterSeries {
                    center: "005".into(),
                    label: "碧澜".into(),
                    counts: vec![3, 0],
                },
            ],
        };
        let svg = volume_chart(&daily);
        assert_eq!(svg.matches("<rect").count(), 2, "zero days draw no bar");
        for tick in [">0<", ">2<", ">4<", ">6<", ">8<", ">10<"] {
            assert!(svg.contains(tick), "{tick} missing");
        }
        assert!(svg.contains("桐湾&lt;街道&gt;") && !svg.contains("<街道>"));
        assert!(svg.contains("11/28"));
        let empty = volume_chart(&DailyVolume {
            days: vec!["20261128".into()],
            centers: vec![],
        });
        assert!(empty.contains("近期没有登记办件"));
    }
}
