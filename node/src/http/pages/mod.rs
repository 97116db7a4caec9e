//! The clerks' pages and the hub dashboard: server-rendered HTML in Simplified
//! Chinese, CSS embedded, a little vanilla JavaScript for the item typeahead, the
//! buttons that call the JSON API, and the live sync banner.

mod cases;
mod dashboard;

use axum::Form;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use yichuang_shared::ids::Role;

use super::auth::{self, PageUser};
use super::{ApiError, AppState};
use crate::store::{SyncStatus, User, cases_fmt_time};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login_submit))
        .route("/logout", axum::routing::post(logout))
        .route("/cases", get(cases::list))
        .route("/cases/new", get(cases::new_form))
        .route("/cases/{case}", get(cases::detail))
        .route("/conflicts", get(cases::conflicts))
        .route("/dashboard", get(dashboard::page))
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON for a `<script type="application/json">` block: `<` escaped so no value can
/// close the script element.
pub fn script_json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
}

pub fn time(ms: i64) -> String {
    if ms <= 0 {
        return "—".into();
    }
    cases_fmt_time(ms)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Cases,
    New,
    Conflicts,
    Dashboard,
    None,
}

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font-family:"Noto Sans CJK SC","Source Han Sans SC","PingFang SC","Microsoft YaHei","WenQuanYi Micro Hei",sans-serif;background:#f3f5f9;color:#1d2733;font-size:15px}
a{color:#1f5fbf;text-decoration:none}a:hover{text-decoration:underline}
header.top{background:#173a6a;color:#fff;display:flex;align-items:center;gap:28px;padding:0 28px;height:56px}
header.top .brand{font-size:19px;font-weight:700;letter-spacing:1px}
header.top .brand small{font-weight:400;opacity:.75;margin-left:8px;font-size:13px}
header.top nav{display:flex;gap:4px;flex:1}
header.top nav a{color:#dbe6f7;padding:8px 14px;border-radius:6px}
header.top nav a.on,header.top nav a:hover{background:#2b5591;color:#fff;text-decoration:none}
header.top .who{font-size:13px;opacity:.9;display:flex;gap:10px;align-items:center}
header.top .who button{background:none;border:1px solid #8fa9d1;color:#fff;border-radius:5px;padding:3px 10px;cursor:pointer}
#sync-banner{display:flex;gap:22px;align-items:center;padding:9px 28px;font-size:14px;border-bottom:1px solid #d9dee7}
#sync-banner.online{background:#e7f6ec;color:#17603a}
#sync-banner.offline{background:#fff1e0;color:#8a4b00}
#sync-banner .dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:6px;vertical-align:middle}
#sync-banner.online .dot{background:#22a35a}#sync-banner.offline .dot{background:#e08a00}
#sync-banner b{font-weight:700}
main{padding:22px 28px;max-width:1280px}
h1{font-size:22px;margin:4px 0 18px}
h2{font-size:17px;margin:22px 0 10px}
.card{background:#fff;border:1px solid #dde3ec;border-radius:10px;padding:18px 20px;margin-bottom:18px;box-shadow:0 1px 2px rgba(20,40,80,.04)}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{text-align:left;padding:9px 10px;border-bottom:1px solid #e6eaf0;font-size:14px;vertical-align:top}
th{background:#f0f3f8;color:#4a5a70;font-weight:600}
tr:hover td{background:#fafcff}
.badge{display:inline-block;padding:2px 9px;border-radius:11px;font-size:12.5px;white-space:nowrap}
.st-open{background:#e6effc;color:#1f4f99}.st-done{background:#e4f5ea;color:#1b6b3d}.st-end{background:#eceff3;color:#5b6675}
.pending-mark{background:#fff0d6;color:#8a4b00;border:1px solid #f0c580}
.hub-mark{background:#e4f5ea;color:#1b6b3d}
.conflict-mark{background:#fde8e8;color:#a32020;border:1px solid #f3b3b3}
.overdue{background:#fde8e8;color:#a32020}.near{background:#fff4d6;color:#8a5a00}
.hidden{display:none!important}
form.filters{display:flex;gap:10px;align-items:end;flex-wrap:wrap;margin-bottom:16px}
label{display:block;font-size:13px;color:#4a5a70;margin-bottom:4px}
input[type=text],input[type=password],input[type=search],select,textarea{font:inherit;padding:8px 10px;border:1px solid #c5cfdd;border-radius:6px;background:#fff;min-width:180px}
input:focus,select:focus{outline:2px solid #8fb3ea;border-color:#5a8ad6}
button,.btn{font:inherit;background:#1f5fbf;color:#fff;border:0;border-radius:6px;padding:8px 16px;cursor:pointer;display:inline-block}
button:hover,.btn:hover{background:#184f9f;text-decoration:none}
button.secondary{background:#fff;color:#1f5fbf;border:1px solid #9bb6e0}
button.danger{background:#c03434}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:14px 22px}
.field{margin-bottom:14px}.field input{width:100%}
.err{color:#b42318;font-size:13px;margin-top:4px;min-height:1em}
.errbox{background:#fde8e8;border:1px solid #f3b3b3;color:#8c1d18;padding:10px 14px;border-radius:8px;margin-bottom:14px}
.muted{color:#6a788c;font-size:13px}
.kv{display:grid;grid-template-columns:120px 1fr;gap:8px 14px;font-size:14.5px}.kv dt{color:#6a788c}.kv dd{margin:0}
.steps{display:flex;gap:10px;flex-wrap:wrap}
.suggest{list-style:none;margin:4px 0 0;padding:0;border:1px solid #c5cfdd;border-radius:6px;background:#fff;max-height:320px;overflow:auto}
.suggest li{padding:8px 12px;cursor:pointer;border-bottom:1px solid #eef1f5}
.suggest li:hover,.suggest li.active{background:#eaf1fc}
.suggest li small{color:#6a788c;margin-left:8px}
.materials label{display:flex;gap:8px;align-items:center;font-size:14.5px;color:#1d2733;margin:6px 0}
.req{color:#b42318}
.stats{display:grid;grid-template-columns:repeat(5,1fr);gap:14px;margin-bottom:18px}
.stat{background:#fff;border:1px solid #dde3ec;border-radius:10px;padding:14px 18px}
.stat .n{font-size:28px;font-weight:700;color:#173a6a}.stat .l{color:#6a788c;font-size:13px}
.stat.red .n{color:#b42318}.stat.amber .n{color:#a86400}
.cols{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.bar{background:#dce7f8;height:10px;border-radius:5px;position:relative}
.bar span{position:absolute;left:0;top:0;bottom:0;background:#3a78d4;border-radius:5px}
.login{max-width:380px;margin:90px auto}
#q{min-width:300px}
.login h1{text-align:center}
.conf-values td:first-child{font-family:monospace;font-size:14px}
"#;

const BANNER_JS: &str = r#"
(function(){
  function hhmmss(ms){ if(!ms) return '从未'; var d=new Date(ms+8*3600e3).toISOString(); return d.slice(5,10)+' '+d.slice(11,19); }
  function apply(s){
    var b=document.getElementById('sync-banner'); if(!b) return;
    b.className = s.connected ? 'online' : 'offline';
    document.getElementById('sync-state').textContent = s.is_hub
      ? (s.connected ? '区中心在线' : '区中心 · 暂无节点连接')
      : (s.connected ? '已连接区中心' : '离线：未连接区中心');
    document.getElementById('sync-unsynced').textContent = s.is_hub
      ? (s.peers.length + ' 个节点')
      : (s.unsynced_changes===0 ? '所有变更均已到达区中心' : (s.unsynced_cases+' 件办件的 '+s.unsynced_changes+' 项变更未到达区中心'));
    document.getElementById('sync-last').textContent = '最近联系：'+hhmmss(s.last_contact_ms);
    b.dataset.unsynced = s.unsynced_changes;
    var listed = {}; s.unsynced_case_nos.forEach(function(n){ listed[n]=1; });
    var complete = s.unsynced_case_nos.length >= s.unsynced_cases;
    document.querySelectorAll('[data-sync-case]').forEach(function(el){
      var no = el.getAttribute('data-sync-case');
      var pending = !!listed[no] || (!complete && el.classList.contains('pending-mark'));
      var isPendingMark = el.classList.contains('pending-mark');
      if (isPendingMark) el.classList.toggle('hidden', !pending);
      else el.classList.toggle('hidden', pending);
    });
  }
  window.ycApplySync = apply;
  if (window.EventSource) {
    var es = new EventSource('/api/sync/stream');
    es.addEventListener('sync', function(e){ try { apply(JSON.parse(e.data)); } catch(_){} });
    es.onerror = function(){ var b=document.getElementById('sync-banner'); if(b && b.dataset.stream!=='lost'){ b.dataset.stream='lost'; } };
  }
})();
"#;

fn banner(s: &SyncStatus) -> String {
    let class = if s.connected { "online" } else { "offline" };
    let state = match (s.is_hub, s.connected) {
        (true, true) => "区中心在线",
        (true, false) => "区中心 · 暂无节点连接",
        (false, true) => "已连接区中心",
        (false, false) => "离线：未连接区中心",
    };
    let unsynced = if s.is_hub {
        format!("{} 个节点", s.peers.len())
    } else if s.unsynced_changes == 0 {
        "所有变更均已到达区中心".to_owned()
    } else {
        format!(
            "{} 件办件的 {} 项变更未到达区中心",
            s.unsynced_cases, s.unsynced_changes
        )
    };
    let last = if s.last_contact_ms > 0 {
        time(s.last_contact_ms)
    } else {
        "从未".into()
    };
    format!(
        r#"<div id="sync-banner" class="{class}" data-unsynced="{n}"><span><span class="dot"></span><b id="sync-state">{state}</b></span><a id="sync-unsynced" href="/cases?unsynced=1" style="color:inherit">{unsynced}</a><span id="sync-last">最近联系：{last}</span></div>"#,
        n = s.unsynced_changes
    )
}

/// A whole page: header with navigation, the live sync banner, the body.
pub fn layout(state: &AppState, user: &User, nav: Nav, title: &str, body: &str) -> Html<String> {
    let sync = state.sync.borrow().clone();
    let node = &state.node;
    let where_ = match node.role {
        Role::Hub => "区政务服务中心".to_owned(),
        _ => crate::store::dashboard::center_label(&node.center),
    };
    let link = |n: Nav, href: &str, text: &str| {
        format!(
            r#"<a href="{href}"{}>{text}</a>"#,
            if n == nav { r#" class="on""# } else { "" }
        )
    };
    let links = [
        link(Nav::Cases, "/cases", "办件列表"),
        link(Nav::New, "/cases/new", "登记办件"),
        link(Nav::Conflicts, "/conflicts", "冲突待处理"),
        link(Nav::Dashboard, "/dashboard", "全区看板"),
    ]
    .join("");
    Html(format!(
        r#"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{title} · 一窗</title><style>{CSS}</style></head><body>
<header class="top"><div class="brand">一窗受理<small>{where_}</small></div><nav>{links}</nav>
<div class="who"><span id="who">{user} · {role}</span><form method="post" action="/logout" style="margin:0"><button type="submit">退出</button></form></div></header>
{banner}
<main>{body}</main>
<script>{BANNER_JS}</script></body></html>"#,
        title = esc(title),
        where_ = esc(&where_),
        user = esc(&user.name),
        role = user.role.label_zh(),
        banner = banner(&sync),
    ))
}

/// An error shown as a page rather than JSON.
pub fn error_page(state: &AppState, user: &User, err: ApiError) -> Response {
    let body = format!(
        r#"<h1>出错了</h1><div class="errbox">{}</div><p><a href="/cases">返回办件列表</a></p>"#,
        esc(&err.message)
    );
    (err.status, layout(state, user, Nav::None, "出错了", &body)).into_response()
}

async fn home(State(state): State<AppState>, PageUser(_): PageUser) -> Redirect {
    match state.node.role {
        Role::Hub => Redirect::to("/dashboard"),
        _ => Redirect::to("/cases"),
    }
}

fn login_html(state: &AppState, error: Option<&str>, name: &str) -> Html<String> {
    let err = error
        .map(|e| format!(r#"<div class="errbox" id="login-error">{}</div>"#, esc(e)))
        .unwrap_or_default();
    let where_ = match state.node.role {
        Role::Hub => "区政务服务中心".to_owned(),
        _ => crate::store::dashboard::center_label(&state.node.center),
    };
    Html(format!(
        r#"<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>登录 · 一窗</title><style>{CSS}</style></head><body>
<header class="top"><div class="brand">一窗受理<small>{where_}</small></div></header>
<div class="login card"><h1>窗口人员登录</h1>{err}
<form method="post" action="/login" id="login-form">
<div class="field"><label for="name">用户名</label><input type="text" id="name" name="name" value="{name}" autocomplete="username" autofocus required></div>
<div class="field"><label for="password">密码</label><input type="password" id="password" name="password" autocomplete="current-password" required></div>
<button type="submit" id="login-submit" style="width:100%">登录</button></form>
<p class="muted" style="margin-top:16px">账号由管理员用 <code>yichuang user add</code> 创建。</p></div></body></html>"#,
        where_ = esc(&where_),
        name = esc(name),
    ))
}

async fn login_page(State(state): State<AppState>) -> Html<String> {
    login_html(&state, None, "")
}

#[derive(Deserialize)]
struct LoginForm {
    name: String,
    password: String,
}

async fn login_submit(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let name = form.name.clone();
    match auth::login(&state, form.name, form.password).await {
        Ok(session) => {
            let mut resp = Redirect::to("/").into_response();
            resp.headers_mut()
                .insert(header::SET_COOKIE, auth::session_cookie(&session.token));
            resp
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => (
            StatusCode::UNAUTHORIZED,
            login_html(&state, Some("用户名或密码错误"), &name),
        )
            .into_response(),
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => {
            let minutes = e.retry_after_s.unwrap_or(0).div_ceil(60).max(1);
            let text = format!("该用户名密码错误次数过多，已暂时锁定，请 {minutes} 分钟后再试。");
            (e.status, login_html(&state, Some(&text), &name)).into_response()
        }
        Err(e) => (e.status, login_html(&state, Some(&e.message), &name)).into_response(),
    }
}

async fn logout(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = auth::token_of(&headers) {
        let _ = state.store.call(move |s| s.session_delete(&token)).await;
    }
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, auth::clear_cookie());
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(esc("王小明"), "王小明");
        assert_eq!(script_json(&"</script><b>"), r#""\u003c/script>\u003cb>""#);
    }
}
