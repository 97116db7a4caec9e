//! The counter's pages: the case list, registering a case, a case's detail with
//! its history and legal next steps, and the conflict queue.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use yichuang_shared::case::{EventKind, Status};

use super::super::api::{self, CaseDetail, CaseQuery, ConflictItem, OverdueFilter};
use super::super::auth::PageUser;
use super::super::error::ApiQuery;
use super::super::roles::{Action, may};
use super::super::{ApiError, AppState};
use super::{Nav, error_page, esc, layout, script_json, time};
use crate::store::Store;

fn status_class(status: &str) -> &'static str {
    match status.parse::<Status>() {
        Ok(s) if s.is_open() => "st-open",
        Ok(Status::Completed) | Ok(Status::Delivered) => "st-done",
        _ => "st-end",
    }
}

/// The two marks of a case's sync state; the banner script flips them live.
fn sync_marks(case_no: &str, at_hub: bool, id: &str) -> String {
    let no = esc(case_no);
    format!(
        r#"<span class="badge pending-mark{p}" data-sync-case="{no}" id="{id}-pending">未上传区中心</span><span class="badge hub-mark{h}" data-sync-case="{no}" id="{id}-hub">已到区中心</span>"#,
        p = if at_hub { " hidden" } else { "" },
        h = if at_hub { "" } else { " hidden" },
    )
}

/// Node ids shown as something a person recognises: this node, a registered peer.
fn node_names(s: &mut Store) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let me = s.settings().clone();
    names.insert(
        me.node_id.to_string(),
        format!(
            "本节点（{}）",
            crate::store::dashboard::center_label(&me.center)
        ),
    );
    if let Ok(status) = s.sync_status() {
        for p in status.peers {
            let short = &p.peer[..p.peer.len().min(8)];
            // The registry lists every node the hub enrolled; an unlisted peer of a
            // center or laptop is the hub itself (as `Store::sync_status` counts it).
            let label = match (p.name.is_empty(), status.is_hub) {
                (false, _) => p.name,
                (true, false) => format!("区中心（{short}）"),
                (true, true) => format!("节点 {short}"),
            };
            names.entry(p.peer).or_insert(label);
        }
    }
    names
}

fn node_label(names: &BTreeMap<String, String>, id: &str) -> String {
    names
        .get(id)
        .cloned()
        .unwrap_or_else(|| format!("节点 {}", &id[..id.len().min(8)]))
}

#[derive(Debug, Deserialize, Default)]
pub struct ListForm {
    q: Option<String>,
    status: Option<String>,
    overdue: Option<String>,
    unsynced: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    ApiQuery(form): ApiQuery<ListForm>,
) -> Response {
    let overdue = match form.overdue.as_deref() {
        Some("overdue") => Some(OverdueFilter::Overdue),
        Some("near") => Some(OverdueFilter::Near),
        Some("any") => Some(OverdueFilter::Any),
        _ => None,
    };
    let query = CaseQuery {
        q: form.q.clone(),
        status: form.status.clone().filter(|s| !s.is_empty()),
        item: None,
        overdue,
        unsynced: Some(form.unsynced.as_deref() == Some("1")),
        limit: Some(api::LIST_LIMIT_DEFAULT),
    };
    let rows = match state
        .store
        .call(move |s| api::query_cases(s, &query))
        .await
        .map_err(ApiError::from)
        .and_then(|r| r)
    {
        Ok(rows) => rows,
        Err(e) => return error_page(&state, &user, e),
    };
    let status_opts: String = std::iter::once(r#"<option value="">全部状态</option>"#.to_owned())
        .chain(Status::ALL.iter().map(|s| {
            format!(
                r#"<option value="{}"{}>{}</option>"#,
                s.as_str(),
                if form.status.as_deref() == Some(s.as_str()) {
                    " selected"
                } else {
                    ""
                },
                s.label_zh()
            )
        }))
        .collect();
    let overdue_opts: String = [
        ("", "不限时限"),
        ("any", "超期及临近超期"),
        ("overdue", "已超期"),
        ("near", "临近超期"),
    ]
    .iter()
    .map(|(v, l)| {
        format!(
            r#"<option value="{v}"{}>{l}</option>"#,
            if form.overdue.as_deref().unwrap_or("") == *v {
                " selected"
            } else {
                ""
            }
        )
    })
    .collect();
    let mut table = String::new();
    for r in &rows {
        let conflict = if r.conflicts > 0 {
            format!(
                r#" <span class="badge conflict-mark">{} 个冲突</span>"#,
                r.conflicts
            )
        } else {
            String::new()
        };
        table.push_str(&format!(
            r#"<tr data-case-no="{no}"><td><a href="/cases/{no}" class="case-link">{no}</a></td><td>{item}<div class="muted">{dept}</div></td><td>{name}<div class="muted">{id}</div></td><td><span class="badge {cls}">{label}</span>{conflict}</td><td>{marks}</td><td>{created}</td></tr>"#,
            no = esc(&r.case_no),
            item = esc(&r.item_name),
            dept = esc(&r.department),
            name = esc(&r.applicant_name),
            id = esc(&r.applicant_id),
            cls = status_class(&r.status),
            label = esc(&r.status_label),
            marks = sync_marks(&r.case_no, r.at_hub, &format!("row-{}", esc(&r.case_no))),
            created = time(r.created_ms),
        ));
    }
    if rows.is_empty() {
        table.push_str(r#"<tr><td colspan="6" class="muted">没有符合条件的办件。</td></tr>"#);
    }
    let body = format!(
        r#"<h1>办件列表</h1>
<form class="filters" method="get" action="/cases">
<div><label for="q">搜索</label><input type="search" id="q" name="q" value="{q}" placeholder="办件编号、申请人姓名或事项"></div>
<div><label for="status">状态</label><select id="status" name="status">{status_opts}</select></div>
<div><label for="overdue">时限</label><select id="overdue" name="overdue">{overdue_opts}</select></div>
<div><label class="materials" style="margin:0 0 9px"><input type="checkbox" name="unsynced" value="1" id="unsynced"{unsynced_checked}> 只看未上传区中心的</label></div>
<div><button type="submit">查询</button></div>
<div style="margin-left:auto"><a class="btn" href="/cases/new" id="new-case">＋ 登记办件</a></div>
</form>
<div class="card" style="padding:0"><table id="case-table"><thead><tr><th>办件编号</th><th>事项</th><th>申请人</th><th>状态</th><th>同步</th><th>登记时间</th></tr></thead><tbody>{table}</tbody></table></div>
<p class="muted">共 {n} 件（最多显示 {max} 件）。证件号码默认隐藏中间位。</p>"#,
        q = esc(form.q.as_deref().unwrap_or("")),
        unsynced_checked = if form.unsynced.as_deref() == Some("1") {
            " checked"
        } else {
            ""
        },
        n = rows.len(),
        max = api::LIST_LIMIT_DEFAULT,
    );
    layout(&state, &user, Nav::Cases, "办件列表", &body).into_response()
}

/// What the registration page's script needs of each catalog item.
#[derive(Serialize)]
struct ItemJs {
    code: String,
    name: String,
    department: String,
    promised: String,
    visits: u32,
    delivery: Vec<String>,
    materials: Vec<(String, String, bool)>,
}

const NEW_JS: &str = r#"
(function(){
  var items = JSON.parse(document.getElementById('catalog-data').textContent);
  var search = document.getElementById('item-search'), list = document.getElementById('item-suggest');
  var chosen = null, active = 0, shown = [];
  var deliveryNames = {window:'窗口领取', post:'邮寄送达', locker:'智能柜自取'};
  function render(){
    var q = search.value.trim();
    shown = !q ? [] : items.filter(function(i){ return i.name.indexOf(q) >= 0 || i.code.indexOf(q) >= 0 || i.department.indexOf(q) >= 0; }).slice(0, 10);
    list.innerHTML = '';
    shown.forEach(function(it, n){
      var li = document.createElement('li'); li.className = n===active ? 'active' : '';
      li.textContent = it.name; var sm = document.createElement('small'); sm.textContent = it.department; li.appendChild(sm);
      li.addEventListener('mousedown', function(e){ e.preventDefault(); choose(it); });
      list.appendChild(li);
    });
    list.classList.toggle('hidden', shown.length === 0);
  }
  function choose(it){
    chosen = it; search.value = it.name; list.classList.add('hidden');
    document.getElementById('item-code').value = it.code;
    document.getElementById('item-info').innerHTML = '';
    var info = document.getElementById('item-info');
    [['实施编码', it.code], ['办理部门', it.department], ['承诺时限', it.promised], ['到现场次数', String(it.visits)]].forEach(function(kv){
      var dt = document.createElement('dt'); dt.textContent = kv[0]; var dd = document.createElement('dd'); dd.textContent = kv[1]; info.appendChild(dt); info.appendChild(dd);
    });
    var mats = document.getElementById('materials'); mats.innerHTML = '';
    it.materials.forEach(function(m){
      var l = document.createElement('label'); var cb = document.createElement('input'); cb.type = 'checkbox'; cb.value = m[0]; cb.name = 'material';
      if (m[2]) cb.dataset.required = '1';
      l.appendChild(cb); l.appendChild(document.createTextNode(m[1])); if (m[2]) { var s = document.createElement('span'); s.className='req'; s.textContent=' *必需'; l.appendChild(s); }
      mats.appendChild(l);
    });
    if (!it.materials.length) mats.textContent = '本事项无需材料。';
    var del = document.getElementById('delivery'); del.innerHTML = '';
    it.delivery.forEach(function(d, n){
      var l = document.createElement('label'); var r = document.createElement('input'); r.type='radio'; r.name='delivery'; r.value=d; r.id='delivery-'+d; if (n===0) r.checked = true;
      l.appendChild(r); l.appendChild(document.createTextNode(deliveryNames[d] || d)); del.appendChild(l);
      r.addEventListener('change', function(){ document.getElementById('post-address').classList.toggle('hidden', r.value !== 'post'); });
    });
    document.getElementById('post-address').classList.add('hidden');
    document.getElementById('step2').classList.remove('hidden');
    document.getElementById('applicant-name').focus();
  }
  search.addEventListener('input', function(){ active = 0; chosen = null; document.getElementById('item-code').value=''; render(); });
  search.addEventListener('keydown', function(e){
    if (e.key === 'ArrowDown') { active = Math.min(active+1, shown.length-1); render(); e.preventDefault(); }
    else if (e.key === 'ArrowUp') { active = Math.max(active-1, 0); render(); e.preventDefault(); }
    else if (e.key === 'Enter') { if (shown[active]) choose(shown[active]); e.preventDefault(); }
  });
  function showErrors(field, msg){
    document.querySelectorAll('.err').forEach(function(e){ e.textContent=''; });
    var box = document.getElementById('form-error'); box.textContent = msg; box.classList.remove('hidden');
    var slot = field && document.querySelector('[data-err-for="'+field+'"]'); if (slot) slot.textContent = msg;
  }
  document.getElementById('case-form').addEventListener('submit', function(e){
    e.preventDefault();
    var btn = document.getElementById('submit'); btn.disabled = true; btn.textContent = '正在登记…';
    var body = {
      item_code: document.getElementById('item-code').value,
      applicant: { name: document.getElementById('applicant-name').value.trim(), id_no: document.getElementById('applicant-id').value.trim(),
                   phone: document.getElementById('applicant-phone').value.trim(), address: document.getElementById('applicant-address').value.trim() },
      materials_received: Array.prototype.map.call(document.querySelectorAll('input[name=material]:checked'), function(c){ return c.value; }),
    };
    var d = document.querySelector('input[name=delivery]:checked'); if (d) body.delivery = d.value;
    if (d && d.value === 'post') body.delivery_address = document.getElementById('delivery-address').value.trim();
    fetch('/api/cases', {method:'POST', headers:{'Content-Type':'application/json'}, credentials:'same-origin', body: JSON.stringify(body)})
      .then(function(r){ return r.json().then(function(j){ return [r.status, j]; }); })
      .then(function(res){
        if (res[0] === 201) { location.href = '/cases/' + encodeURIComponent(res[1].case_no) + '?registered=1'; return; }
        btn.disabled = false; btn.textContent = '登记';
        var err = res[1].error || {message:'登记失败'}; showErrors(err.field, err.message);
      })
      .catch(function(){ btn.disabled = false; btn.textContent = '登记'; showErrors(null, '无法连接本节点服务，请重试'); });
  });
})();
"#;

pub async fn new_form(State(state): State<AppState>, PageUser(user): PageUser) -> Response {
    let items = match state
        .store
        .call(|s| -> Result<Vec<ItemJs>, ApiError> {
            Ok(s.catalog()?
                .values()
                .map(|i| ItemJs {
                    code: i.code.clone(),
                    name: i.name.clone(),
                    department: i.department.clone(),
                    promised: format!(
                        "{} {}",
                        i.promised_limit.value,
                        i.promised_limit.unit.label_zh()
                    ),
                    visits: i.visits,
                    delivery: i.delivery.clone(),
                    materials: i
                        .materials
                        .iter()
                        .map(|m| (m.code.clone(), m.name.clone(), m.required))
                        .collect(),
                })
                .collect())
        })
        .await
        .map_err(ApiError::from)
        .and_then(|r| r)
    {
        Ok(items) => items,
        Err(e) => return error_page(&state, &user, e),
    };
    let body = format!(
        r#"<h1>登记办件</h1>
<div id="form-error" class="errbox hidden"></div>
<form id="case-form" autocomplete="off">
<div class="card"><h2 style="margin-top:0">① 选择事项</h2>
<div class="field"><label for="item-search">输入事项名称、编码或部门查找</label><input type="search" id="item-search" placeholder="例如：营业执照、电梯、补贴" autofocus>
<ul id="item-suggest" class="suggest hidden"></ul><div class="err" data-err-for="item_code"></div></div>
<input type="hidden" id="item-code"><dl class="kv" id="item-info"></dl></div>
<div id="step2" class="hidden">
<div class="card"><h2 style="margin-top:0">② 申请人</h2><div class="grid">
<div class="field"><label for="applicant-name">姓名</label><input type="text" id="applicant-name" required><div class="err" data-err-for="applicant.name"></div></div>
<div class="field"><label for="applicant-id">身份证号码</label><input type="text" id="applicant-id" maxlength="18" required><div class="err" data-err-for="applicant.id_no"></div></div>
<div class="field"><label for="applicant-phone">联系电话</label><input type="text" id="applicant-phone" maxlength="20"><div class="err" data-err-for="applicant.phone"></div></div>
<div class="field"><label for="applicant-address">地址</label><input type="text" id="applicant-address"><div class="err" data-err-for="applicant.address"></div></div>
</div></div>
<div class="cols"><div class="card"><h2 style="margin-top:0">③ 已收材料</h2><div id="materials" class="materials"></div><div class="err" data-err-for="materials_received"></div></div>
<div class="card"><h2 style="margin-top:0">④ 送达方式</h2><div id="delivery" class="materials"></div><div class="err" data-err-for="delivery"></div>
<div class="field hidden" id="post-address"><label for="delivery-address">邮寄地址</label><input type="text" id="delivery-address"><div class="err" data-err-for="delivery_address"></div><div class="err" data-err-for="delivery.address"></div></div></div></div>
<button type="submit" id="submit" style="font-size:16px;padding:10px 34px">登记</button>
<span class="muted" style="margin-left:12px">登记后立即保存在本节点，联网后自动上传区中心。</span>
</div></form>
<script type="application/json" id="catalog-data">{catalog}</script>
<script>{NEW_JS}</script>"#,
        catalog = script_json(&items),
    );
    layout(&state, &user, Nav::New, "登记办件", &body).into_response()
}

const DETAIL_JS: &str = r#"
(function(){
  var no = document.body.querySelector('[data-case]').getAttribute('data-case');
  function post(url, body){
    return fetch(url, {method:'POST', headers:{'Content-Type':'application/json'}, credentials:'same-origin', body: JSON.stringify(body)})
      .then(function(r){ return r.json().then(function(j){ return [r.status, j]; }); });
  }
  function fail(msg){ var b = document.getElementById('action-error'); b.textContent = msg; b.classList.remove('hidden'); }
  document.querySelectorAll('button[data-step]').forEach(function(btn){
    btn.addEventListener('click', function(){
      var kind = btn.getAttribute('data-step'), data = {};
      if (kind === 'transferred') { var c = prompt('转办至（中心编码）'); if (!c) return; data.to_center = c; }
      if (kind === 'assigned') { var s = prompt('指派给（工作人员编号）'); if (!s) return; data.staff = s; }
      if (kind === 'evaluated') { var l = prompt('评价等级（非常满意/满意/基本满意/不满意/非常不满意）', '满意'); if (!l) return; data.level = l; }
      btn.disabled = true;
      post('/api/cases/' + encodeURIComponent(no) + '/events', {kind: kind, data: data}).then(function(res){
        if (res[0] === 200) location.reload(); else { btn.disabled = false; fail((res[1].error||{}).message || '操作失败'); }
      }).catch(function(){ btn.disabled = false; fail('无法连接本节点服务'); });
    });
  });
  var rev = document.getElementById('reveal');
  if (rev) rev.addEventListener('click', function(){
    if (!confirm('查看完整证件号码将记入办件审计记录，确定查看？')) return;
    fetch('/api/cases/' + encodeURIComponent(no) + '?reveal=true', {credentials:'same-origin'})
      .then(function(r){ return r.json(); })
      .then(function(j){ if (j.case) { document.getElementById('applicant-id').textContent = j.case.applicant.id_no; document.getElementById('applicant-phone').textContent = j.case.applicant.phone; rev.remove(); } else fail((j.error||{}).message || '查看失败'); });
  });
})();
"#;

fn status_badge(view: &yichuang_shared::case::CaseView) -> String {
    let key = view.status.map(Status::as_str).unwrap_or("");
    format!(
        r#"<span class="badge {}" id="case-status">{}</span>"#,
        status_class(key),
        esc(&view.status_label)
    )
}

fn delivery_label(method: &str) -> &str {
    match method {
        "window" => "窗口领取",
        "post" => "邮寄送达",
        "locker" => "智能柜自取",
        other => other,
    }
}

pub async fn detail(
    State(state): State<AppState>,
    PageUser(user): PageUser,
    Path(key): Path<String>,
) -> Response {
    let lookup = key.clone();
    let result = state
        .store
        .call(
            move |s| -> Result<(CaseDetail, BTreeMap<String, String>), ApiError> {
                let view = s.case_view(&lookup, false, "")?;
                let detail = api::case_detail(s, &lookup, view)?;
                Ok((detail, node_names(s)))
            },
        )
        .await
        .map_err(ApiError::from)
        .and_then(|r| r);
    let (d, names) = match result {
        Ok(x) => x,
        Err(e) => return error_page(&state, &user, e),
    };
    let v = &d.case;
    let may_reveal = may(user.role, Action::Reveal);
    let steps: String = v
        .next_steps
        .iter()
        .filter(|k| k.is_step())
        .map(|k| {
            let class = match k {
                EventKind::Rejected
                | EventKind::Denied
                | EventKind::Cancelled
                | EventKind::Terminated => "danger",
                EventKind::Transferred
                | EventKind::Assigned
                | EventKind::Visited
                | EventKind::Evaluated
                | EventKind::Extended => "secondary",
                _ => "",
            };
            format!(
                r#"<button type="button" class="{class}" data-step="{}" id="step-{}">{}</button>"#,
                k.as_str(),
                k.as_str(),
                k.label_zh()
            )
        })
        .collect();
    let steps = if steps.is_empty() {
        r#"<p class="muted">本办件已终结，没有可办理的下一步。</p>"#.to_owned()
    } else {
        steps
    };
    let materials: String = v
        .materials
        .iter()
        .map(|m| {
            format!(
                "<tr><td>{}{}</td><td>{}</td></tr>",
                esc(&m.name),
                if m.required {
                    r#" <span class="req">*</span>"#
                } else {
                    ""
                },
                if m.received {
                    "✔ 已收"
                } else {
                    r#"<span class="req">未收</span>"#
                }
            )
        })
        .collect();
    let conflicted: std::collections::BTreeSet<&str> = v
        .event_conflicts
        .iter()
        .map(|c| c.event_id.as_str())
        .collect();
    let events: String = v
        .events
        .iter()
        .map(|e| {
            let label = e
                .kind
                .parse::<EventKind>()
                .map(|k| k.label_zh().to_owned())
                .unwrap_or_else(|_| e.kind.clone());
            let flag = if conflicted.contains(e.id.as_str()) {
                r#" <span class="badge conflict-mark">冲突</span>"#
            } else {
                ""
            };
            let data: String = e
                .data
                .iter()
                .map(|(k, v)| format!("{}={} ", esc(k), esc(v)))
                .collect();
            format!(
                "<tr><td>{}</td><td>{}{flag}</td><td>{}</td><td>{}</td><td>{}{}</td></tr>",
                time(e.wall_ms),
                esc(&label),
                esc(&e.clerk),
                esc(&node_label(&names, &e.node)),
                esc(&e.note),
                if data.is_empty() {
                    String::new()
                } else {
                    format!(r#" <span class="muted">{data}</span>"#)
                }
            )
        })
        .collect();
    let deadline = match &d.deadline {
        Some(dl) if dl.overdue => format!(
            r#"<span class="badge overdue">已超期</span> 承诺办结：{}"#,
            time(dl.promised_ms)
        ),
        Some(dl) if dl.near_overdue => format!(
            r#"<span class="badge near">临近超期</span> 承诺办结：{}"#,
            time(dl.promised_ms)
        ),
        Some(dl) => format!(
            "承诺办结：{}（剩余 {} 个工作日{}）",
            time(dl.promised_ms),
            dl.remaining_working_days,
            if dl.paused { "，计时暂停" } else { "" }
        ),
        None => r#"<span class="muted">受理后开始计时</span>"#.to_owned(),
    };
    let conflicts = if v.conflict_count > 0 {
        format!(
            r#"<div class="errbox">本办件有 {} 个冲突需要人工处理。<a href="/conflicts#c-{}">前往冲突队列</a></div>"#,
            v.conflict_count,
            esc(&v.case_no)
        )
    } else {
        String::new()
    };
    let body = format!(
        r#"<div data-case="{no}"></div>
<h1><span id="case-no">{no}</span> {badge} {marks}</h1>
{conflicts}<div id="action-error" class="errbox hidden"></div>
<div class="cols"><div class="card"><h2 style="margin-top:0">{item}</h2><dl class="kv">
<dt>办理部门</dt><dd>{dept}</dd><dt>事项编码</dt><dd class="muted">{code}</dd><dt>时限</dt><dd>{deadline}</dd>
<dt>登记</dt><dd>{created} · {clerk}</dd><dt>所在中心</dt><dd>{center}</dd><dt>送达方式</dt><dd>{delivery}</dd></dl></div>
<div class="card"><h2 style="margin-top:0">申请人</h2><dl class="kv">
<dt>姓名</dt><dd id="applicant-name">{aname}</dd><dt>证件号码</dt><dd><span id="applicant-id">{aid}</span>{reveal}</dd>
<dt>联系电话</dt><dd id="applicant-phone">{aphone}</dd><dt>地址</dt><dd>{aaddr}</dd></dl>
<p class="muted" id="reveal-note">{reveal_note}</p></div></div>
<div class="card"><h2 style="margin-top:0">下一步办理</h2><div class="steps" id="steps">{steps}</div></div>
<div class="cols"><div class="card"><h2 style="margin-top:0">材料</h2><table>{materials}</table></div>
<div class="card"><h2 style="margin-top:0">备注</h2>{notes}</div></div>
<div class="card"><h2 style="margin-top:0">办理记录</h2><table id="events"><thead><tr><th>时间</th><th>环节</th><th>经办人</th><th>节点</th><th>说明</th></tr></thead><tbody>{events}</tbody></table></div>
<script>{DETAIL_JS}</script>"#,
        no = esc(&v.case_no),
        badge = status_badge(v),
        marks = sync_marks(&v.case_no, d.at_hub, "case"),
        item = esc(&v.item_name),
        dept = esc(&v.department),
        code = esc(&v.item_code),
        created = time(v.created_ms),
        clerk = esc(&v.created_clerk),
        center = esc(&crate::store::dashboard::center_label(&v.current_center)),
        delivery = esc(delivery_label(&v.delivery.method)),
        aname = esc(&v.applicant.name),
        aid = esc(&v.applicant.id_no),
        aphone = esc(&v.applicant.phone),
        aaddr = esc(&v.applicant.address),
        reveal = if may_reveal {
            r#" <button type="button" class="secondary" id="reveal" style="padding:2px 10px;font-size:13px">查看完整号码</button>"#
        } else {
            ""
        },
        reveal_note = if may_reveal {
            "查看完整证件号码会记入审计记录。"
        } else {
            "查看完整证件号码需要主管权限，并会记入审计记录。"
        },
        notes = if v.notes.is_empty() {
            r#"<p class="muted">无</p>"#.to_owned()
        } else {
            v.notes
                .iter()
                .map(|n| format!("<p>{}</p>", esc(n)))
                .collect()
        },
    );
    layout(&state, &user, Nav::Cases, &v.case_no, &body).into_response()
}

const CONFLICTS_JS: &str = r#"
(function(){
  document.querySelectorAll('button[data-resolve]').forEach(function(btn){
    btn.addEventListener('click', function(){
      var body = JSON.parse(btn.getAttribute('data-resolve')), no = btn.getAttribute('data-case');
      btn.disabled = true;
      fetch('/api/cases/' + encodeURIComponent(no) + '/resolve', {method:'POST', headers:{'Content-Type':'application/json'}, credentials:'same-origin', body: JSON.stringify(body)})
        .then(function(r){ return r.json().then(function(j){ return [r.status, j]; }); })
        .then(function(res){ if (res[0] === 200) location.reload(); else { btn.disabled = false; alert((res[1].error||{}).message || '处理失败'); } });
    });
  });
})();
"#;

fn field_label(path: &str) -> String {
    let known = [
        ("applicant.name", "申请人姓名"),
        ("applicant.id_no", "申请人证件号码"),
        ("applicant.phone", "申请人电话"),
        ("applicant.address", "申请人地址"),
        ("agent.name", "代办人姓名"),
        ("agent.id_no", "代办人证件号码"),
        ("agent.phone", "代办人电话"),
        ("delivery.method", "送达方式"),
        ("delivery.address", "送达地址"),
        ("delivery.tracking_no", "快递单号"),
    ];
    known
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, l)| format!("{l}（{path}）"))
        .unwrap_or_else(|| path.to_owned())
}

pub async fn conflicts(State(state): State<AppState>, PageUser(user): PageUser) -> Response {
    let result = state
        .store
        .call(
            |s| -> Result<(Vec<ConflictItem>, BTreeMap<String, String>), ApiError> {
                Ok((api::conflict_queue(s)?, node_names(s)))
            },
        )
        .await
        .map_err(ApiError::from)
        .and_then(|r| r);
    let (items, names) = match result {
        Ok(x) => x,
        Err(e) => return error_page(&state, &user, e),
    };
    let may_resolve = may(user.role, Action::Resolve);
    let mut body = String::from(
        r#"<h1>冲突待处理</h1><p class="muted">网络中断期间，不同节点对同一办件的修改无法自动合并时，会在这里等待人工确认。每个取值都保留，不会被静默丢弃。</p>"#,
    );
    if !may_resolve && !items.is_empty() {
        body.push_str(
            r#"<div class="errbox" id="resolve-needs-supervisor">处理冲突需要主管权限，请联系主管确认采用哪个取值。</div>"#,
        );
    }
    // The buttons only for a role that may press them; the API refuses the rest anyway.
    let button = |class: &str, no: &str, body: &str, text: &str| {
        if may_resolve {
            format!(
                r#"<button type="button"{class} data-case="{no}" data-resolve="{}">{text}</button>"#,
                esc(body)
            )
        } else {
            String::new()
        }
    };
    if items.is_empty() {
        body.push_str(r#"<div class="card" id="no-conflicts">目前没有待处理的冲突。</div>"#);
    }
    for c in &items {
        let no = esc(&c.case_no);
        body.push_str(&format!(
            r#"<div class="card" id="c-{no}"><h2 style="margin-top:0"><a href="/cases/{no}">{no}</a> · {item} · {name} <span class="badge st-open">{status}</span></h2>"#,
            item = esc(&c.item_name),
            name = esc(&c.applicant_name),
            status = esc(&c.status_label),
        ));
        for f in &c.field_conflicts {
            body.push_str(&format!(
                r#"<p><b>{}</b> 有 {} 个并存取值：</p><table class="conf-values"><thead><tr><th>取值</th><th>填写人</th><th>节点</th><th></th></tr></thead><tbody>"#,
                esc(&field_label(&f.path)),
                f.values.len()
            ));
            for (i, val) in f.values.iter().enumerate() {
                let pick = serde_json::json!({"field": f.path, "pick": i + 1}).to_string();
                body.push_str(&format!(
                    r#"<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                    esc(&val.value),
                    esc(&val.clerk),
                    esc(&node_label(&names, &val.node)),
                    button("", &no, &pick, "采用此值"),
                ));
            }
            body.push_str("</tbody></table>");
        }
        for e in &c.event_conflicts {
            let ack = serde_json::json!({"event_id": e.event_id}).to_string();
            body.push_str(&format!(
                r#"<p><b>环节冲突：</b>{} — {}（{} · {} · {}） {}</p>"#,
                esc(&e.kind_label),
                esc(&e.reason),
                esc(&e.clerk),
                esc(&node_label(&names, &e.node)),
                time(e.wall_ms),
                button(r#" class="secondary""#, &no, &ack, "确认知悉"),
            ));
        }
        body.push_str("</div>");
    }
    body.push_str(&format!("<script>{CONFLICTS_JS}</script>"));
    layout(&state, &user, Nav::Conflicts, "冲突待处理", &body).into_response()
}
