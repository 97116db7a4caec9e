//! `yichuang case …`: the counter's work from a terminal.

use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use yichuang_shared::case::{ApplicantKind, CaseView, EventKind, Party};

use super::{DirArg, print_json, table};
use crate::store::{CaseFilter, CreateCase, Due, Store};

/// Most rows a deadline list prints, as for any list.
const LIST_LIMIT_MAX: usize = 1_000;

/// Longest line `case import` reads; a case record is a few hundred bytes.
const IMPORT_LINE_MAX_BYTES: usize = 64 * 1024;

#[derive(Debug, Args, Clone)]
pub struct ClerkArg {
    /// The clerk doing the work; recorded in every event.
    #[arg(long, env = "YICHUANG_CLERK", default_value = "clerk")]
    pub clerk: String,
}

#[derive(Debug, Subcommand)]
pub enum CaseCommand {
    /// Register a new case.
    New(NewArgs),
    /// List cases, newest first.
    List {
        #[command(flatten)]
        dir: DirArg,
        /// Only cases in this status (submitted, accepted, handling, completed …).
        #[arg(long)]
        status: Option<String>,
        /// A case-number prefix, an applicant's name, or an item code or name.
        #[arg(long)]
        search: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only open cases past their promised deadline (超期), soonest first.
        #[arg(long, conflicts_with_all = ["near_overdue", "status", "search"])]
        overdue: bool,
        /// Only open cases with under one working day left (临近超期).
        #[arg(long, conflicts_with_all = ["status", "search"])]
        near_overdue: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one case with its events and conflicts.
    Show {
        #[command(flatten)]
        dir: DirArg,
        /// Case number or document id.
        case: String,
        /// Show full ID and phone numbers (the reveal is recorded in the case).
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        clerk: ClerkArg,
        #[arg(long)]
        json: bool,
    },
    /// Advance a case: accepted, forwarded, approved, completed, delivered …
    Event {
        #[command(flatten)]
        dir: DirArg,
        case: String,
        /// The event kind.
        kind: String,
        #[arg(long, default_value = "")]
        note: String,
        /// Extra data as key=value (for example to_center=003, staff=S01, level=满意).
        #[arg(long = "data", value_name = "KEY=VALUE")]
        data: Vec<String>,
        #[command(flatten)]
        clerk: ClerkArg,
        #[arg(long)]
        json: bool,
    },
    /// Edit fields: --set applicant.phone=13800138000
    Edit {
        #[command(flatten)]
        dir: DirArg,
        case: String,
        #[arg(long = "set", value_name = "PATH=VALUE", required = true)]
        sets: Vec<String>,
        #[command(flatten)]
        clerk: ClerkArg,
        #[arg(long)]
        json: bool,
    },
    /// Resolve a conflict: pick one of a field's values or give a new one, or
    /// acknowledge a conflicting event.
    Resolve {
        #[command(flatten)]
        dir: DirArg,
        case: String,
        /// The conflicting field's path, as `case show` lists it.
        #[arg(long, conflicts_with = "event")]
        field: Option<String>,
        /// Keep the value with this number (1 = first listed).
        #[arg(long, requires = "field", conflicts_with = "value")]
        pick: Option<usize>,
        /// Write this value instead of any listed one.
        #[arg(long, requires = "field")]
        value: Option<String>,
        /// Acknowledge the conflicting event with this id.
        #[arg(long)]
        event: Option<String>,
        #[command(flatten)]
        clerk: ClerkArg,
        #[arg(long)]
        json: bool,
    },
    /// Add a free-text note to a case.
    Note {
        #[command(flatten)]
        dir: DirArg,
        case: String,
        text: String,
        #[command(flatten)]
        clerk: ClerkArg,
    },
    /// Register cases from JSON lines on standard input (one object per line, as
    /// `case new` takes them); prints one JSON line per case once it is durable.
    Import {
        #[command(flatten)]
        dir: DirArg,
        #[command(flatten)]
        clerk: ClerkArg,
    },
}

#[derive(Debug, Args)]
pub struct NewArgs {
    #[command(flatten)]
    dir: DirArg,
    /// The item's implementation code (or its exact name).
    #[arg(long)]
    item: String,
    #[arg(long)]
    applicant_name: String,
    /// Resident ID (natural persons) or unified social credit code (organisations).
    #[arg(long)]
    applicant_id: String,
    #[arg(long, default_value = "")]
    applicant_phone: String,
    #[arg(long, default_value = "")]
    applicant_address: String,
    /// natural_person, enterprise_legal_person, public_institution, social_organisation,
    /// non_legal_person_enterprise, administrative_organ or other.
    #[arg(long, default_value = "natural_person")]
    applicant_kind: String,
    /// An agent (代办人) acting for the applicant.
    #[arg(long, requires = "agent_id")]
    agent_name: Option<String>,
    #[arg(long, requires = "agent_name")]
    agent_id: Option<String>,
    #[arg(long, default_value = "")]
    agent_phone: String,
    /// A material received at the counter, by code (repeatable).
    #[arg(long = "material")]
    materials: Vec<String>,
    /// window, post or locker.
    #[arg(long)]
    delivery: Option<String>,
    /// The postal address (required with --delivery post).
    #[arg(long, default_value = "")]
    delivery_address: String,
    #[command(flatten)]
    clerk: ClerkArg,
    #[arg(long)]
    json: bool,
}

/// One line of `case import`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportLine {
    item: String,
    applicant_name: String,
    applicant_id: String,
    #[serde(default)]
    applicant_phone: String,
    #[serde(default)]
    applicant_kind: Option<String>,
    #[serde(default)]
    materials: Vec<String>,
}

fn applicant_kind(s: &str) -> Result<ApplicantKind> {
    ApplicantKind::parse(s).ok_or_else(|| anyhow!("unknown applicant kind {s:?}"))
}

fn key_values(items: &[String], what: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow!("{what} {kv:?} is not KEY=VALUE"))?;
            if k.trim().is_empty() {
                bail!("{what} {kv:?} has an empty key");
            }
            Ok((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

pub fn run(command: CaseCommand) -> Result<()> {
    match command {
        CaseCommand::New(args) => new(args),
        CaseCommand::List {
            dir,
            status: _,
            search: _,
            limit,
            overdue,
            near_overdue,
            json,
        } if overdue || near_overdue => {
            let due = if overdue {
                Due::Overdue
            } else {
                Due::NearOverdue
            };
            let mut store = Store::open(&dir.dir)?;
            let rows = store.due_cases(due, limit.clamp(1, LIST_LIMIT_MAX))?;
            if json {
                return print_json(&rows);
            }
            let table_rows: Vec<Vec<String>> = rows
                .iter()
                .map(|d| {
                    let k = d.deadlines.known();
                    vec![
                        d.row.case_no.clone(),
                        d.row
                            .status
                            .parse::<yichuang_shared::case::Status>()
                            .map(|s| s.label_zh().to_owned())
                            .unwrap_or(d.row.status.clone()),
                        d.row.item_name.clone(),
                        d.row.current_center.clone(),
                        k.map(|k| day_of(k.promised_ms)).unwrap_or_default(),
                        k.map(|k| k.remaining_working_days.to_string())
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            crate::out!(
                "{}",
                table::render(
                    &[
                        "办件编号",
                        "状态",
                        "事项",
                        "所在中心",
                        "承诺时限",
                        "剩余工作日"
                    ],
                    &table_rows
                )
            );
            Ok(())
        }
        CaseCommand::List {
            dir,
            status,
            search,
            limit,
            json,
            ..
        } => {
            if let Some(s) = &status {
                s.parse::<yichuang_shared::case::Status>()?;
            }
            let mut store = Store::open(&dir.dir)?;
            let rows = store.list_cases(&CaseFilter {
                status,
                search,
                limit,
            })?;
            if json {
                return print_json(&rows);
            }
            let table_rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        r.case_no.clone(),
                        r.status
                            .parse::<yichuang_shared::case::Status>()
                            .map(|s| s.label_zh().to_owned())
                            .unwrap_or(r.status.clone()),
                        r.item_name.clone(),
                        r.applicant_name.clone(),
                        r.applicant_id.clone(),
                        r.current_center.clone(),
                        if r.conflicts > 0 {
                            format!("⚠ {}", r.conflicts)
                        } else {
                            String::new()
                        },
                    ]
                })
                .collect();
            crate::out!(
                "{}",
                table::render(
                    &[
                        "办件编号",
                        "状态",
                        "事项",
                        "申请人",
                        "证件号",
                        "所在中心",
                        "冲突"
                    ],
                    &table_rows
                )
            );
            Ok(())
        }
        CaseCommand::Show {
            dir,
            case,
            reveal,
            clerk,
            json,
        } => {
            let mut store = Store::open(&dir.dir)?;
            let view = store.case_view(&case, reveal, &clerk.clerk)?;
            if json {
                print_json(&view)
            } else {
                print_case(&view)
            }
        }
        CaseCommand::Event {
            dir,
            case,
            kind,
            note,
            data,
            clerk,
            json,
        } => {
            let kind: EventKind = kind.parse()?;
            if !kind.is_step() {
                bail!("{kind} is recorded by other commands, not requested as a step");
            }
            let data: BTreeMap<String, String> = key_values(&data, "--data")?.into_iter().collect();
            let mut store = Store::open(&dir.dir)?;
            let view = store.case_event(&case, kind, &clerk.clerk, &note, data)?;
            if json {
                print_json(&view)
            } else {
                print_case(&view)
            }
        }
        CaseCommand::Edit {
            dir,
            case,
            sets,
            clerk,
            json,
        } => {
            let sets = key_values(&sets, "--set")?;
            let mut store = Store::open(&dir.dir)?;
            let view = store.case_edit(&case, &clerk.clerk, &sets)?;
            if json {
                print_json(&view)
            } else {
                print_case(&view)
            }
        }
        CaseCommand::Resolve {
            dir,
            case,
            field,
            pick,
            value,
            event,
            clerk,
            json,
        } => {
            let mut store = Store::open(&dir.dir)?;
            let view = match (field, event) {
                (Some(path), None) => {
                    let chosen = match (pick, value) {
                        (Some(n), None) => {
                            let current = store.case_view(&case, true, &clerk.clerk)?;
                            let conflict = current
                                .field_conflicts
                                .iter()
                                .find(|c| c.path == path)
                                .ok_or_else(|| {
                                    anyhow!("field {path:?} has no conflict to resolve")
                                })?;
                            conflict
                                .values
                                .get(n.wrapping_sub(1))
                                .map(|v| v.value.clone())
                                .ok_or_else(|| {
                                    anyhow!(
                                        "--pick must be between 1 and {}",
                                        conflict.values.len()
                                    )
                                })?
                        }
                        (None, Some(v)) => v,
                        _ => bail!("give --pick N or --value V"),
                    };
                    store.case_resolve_field(&case, &clerk.clerk, &path, &chosen)?
                }
                (None, Some(event)) => store.case_acknowledge(&case, &clerk.clerk, &event)?,
                _ => bail!("give --field PATH (with --pick or --value) or --event ID"),
            };
            if json {
                print_json(&view)
            } else {
                print_case(&view)
            }
        }
        CaseCommand::Note {
            dir,
            case,
            text,
            clerk,
        } => {
            let mut store = Store::open(&dir.dir)?;
            store.case_note(&case, &clerk.clerk, &text)?;
            crate::outln!("note added");
            Ok(())
        }
        CaseCommand::Import { dir, clerk } => import(&dir, &clerk.clerk),
    }
}

fn new(args: NewArgs) -> Result<()> {
    let req = CreateCase {
        item: args.item,
        applicant_kind: applicant_kind(&args.applicant_kind)?,
        applicant: Party {
            name: args.applicant_name,
            id_no: args.applicant_id,
            phone: args.applicant_phone,
            address: args.applicant_address,
        },
        agent: args.agent_name.map(|name| Party {
            name,
            id_no: args.agent_id.unwrap_or_default(),
            phone: args.agent_phone,
            address: String::new(),
        }),
        materials_received: args.materials,
        delivery_method: args.delivery,
        delivery_address: args.delivery_address,
        clerk: args.clerk.clerk,
    };
    let mut store = Store::open(&args.dir.dir)?;
    let created = store.create_case(&req)?;
    if args.json {
        return print_json(&serde_json::json!({
            "case_no": created.case_no,
            "doc_id": created.doc_id,
            "status": created.case.status,
            "case": created.case,
        }));
    }
    crate::outln!(
        "registered {} ({}) — {}",
        created.case_no,
        created.case.item_name,
        created.case.status_label
    );
    Ok(())
}

fn import(dir: &DirArg, clerk: &str) -> Result<()> {
    let mut store = Store::open(&dir.dir)?;
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    let mut line = String::new();
    let mut reader = stdin.lock();
    for number in 1.. {
        line.clear();
        let read = reader
            .by_ref()
            .take(IMPORT_LINE_MAX_BYTES as u64 + 1)
            .read_line(&mut line)?;
        if read == 0 {
            break;
        }
        if read > IMPORT_LINE_MAX_BYTES {
            bail!("line {number} is longer than {IMPORT_LINE_MAX_BYTES} bytes");
        }
        if line.trim().is_empty() {
            continue;
        }
        let rec: ImportLine = serde_json::from_str(&line)
            .with_context(|| format!("line {number} is not a case record"))?;
        let req = CreateCase {
            item: rec.item,
            applicant_kind: applicant_kind(
                rec.applicant_kind.as_deref().unwrap_or("natural_person"),
            )?,
            applicant: Party {
                name: rec.applicant_name,
                id_no: rec.applicant_id,
                phone: rec.applicant_phone,
                address: String::new(),
            },
            agent: None,
            materials_received: rec.materials,
            delivery_method: None,
            delivery_address: String::new(),
            clerk: clerk.to_owned(),
        };
        let created = store
            .create_case(&req)
            .with_context(|| format!("line {number}"))?;
        // Printed only after the commit returned: a printed line is a durable case.
        writeln!(
            stdout,
            "{}",
            serde_json::json!({ "line": number, "case_no": created.case_no, "doc_id": created.doc_id })
        )?;
        stdout.flush()?;
    }
    Ok(())
}

fn print_case(v: &CaseView) -> Result<()> {
    crate::outln!("办件 {}  {}  [{}]", v.case_no, v.item_name, v.status_label);
    crate::outln!("事项编码 {}  部门 {}", v.item_code, v.department);
    crate::outln!(
        "中心 {} (受理 {})  指派 {}",
        v.current_center,
        v.home_center,
        if v.assigned_staff.is_empty() {
            "-"
        } else {
            &v.assigned_staff
        }
    );
    crate::outln!(
        "申请人 {}  证件 {}  电话 {}",
        v.applicant.name,
        v.applicant.id_no,
        v.applicant.phone
    );
    if let Some(a) = &v.agent {
        crate::outln!("代办人 {}  证件 {}  电话 {}", a.name, a.id_no, a.phone);
    }
    crate::outln!(
        "送达 {} {} {}",
        v.delivery.method,
        v.delivery.address,
        v.delivery.tracking_no
    );
    print_deadlines(v);
    let f = &v.facts;
    crate::outln!(
        "到场 {} 次  补正 {} 次  退回 {} 次  转办 {} 次",
        f.visits,
        f.supplements,
        f.returns,
        f.transfers
    );
    for e in &f.evaluations {
        let follow = match (e.level.is_bad(), e.followed_up_ms) {
            (false, _) => String::new(),
            (true, Some(ms)) => format!("  已整改 {}", crate::store::cases_fmt_time(ms)),
            (true, None) => "  ⚠ 差评待整改".to_owned(),
        };
        crate::outln!(
            "评价 {} ({})  事件 {}{}",
            e.level.label_zh(),
            e.channel,
            e.event_id,
            follow
        );
    }
    let mats: Vec<Vec<String>> = v
        .materials
        .iter()
        .map(|m| {
            vec![
                m.code.clone(),
                m.name.clone(),
                if m.required { "必需" } else { "" }.into(),
                if m.received { "已收" } else { "未收" }.into(),
            ]
        })
        .collect();
    if !mats.is_empty() {
        crate::out!("{}", table::render(&["材料", "名称", "", "状态"], &mats));
    }
    let evs: Vec<Vec<String>> = v
        .events
        .iter()
        .map(|e| {
            let conflict = v.event_conflicts.iter().any(|c| c.event_id == e.id);
            vec![
                e.id.clone(),
                e.kind
                    .parse::<EventKind>()
                    .map(|k| k.label_zh().to_owned())
                    .unwrap_or(e.kind.clone()),
                crate::store::cases_fmt_time(e.wall_ms),
                e.clerk.clone(),
                e.node.clone(),
                if conflict {
                    "⚠ 冲突".into()
                } else {
                    String::new()
                },
                e.note.clone(),
            ]
        })
        .collect();
    crate::out!(
        "{}",
        table::render(
            &["事件", "类型", "时间", "经办人", "节点", "", "备注"],
            &evs
        )
    );
    for s in &v.skewed_events {
        let direction = match s.direction {
            yichuang_shared::case::clock::SkewDirection::Ahead => "超前",
            yichuang_shared::case::clock::SkewDirection::Behind => "滞后",
        };
        crate::outln!(
            "⚠ 时钟偏差: 事件 {} (节点 {}) 时钟{}, 记为 {}, 按 {} 计",
            s.event_id,
            s.node,
            direction,
            crate::store::cases_fmt_time(s.stamped_ms),
            crate::store::cases_fmt_time(s.effective_ms)
        );
    }
    for c in &v.event_conflicts {
        crate::outln!(
            "⚠ 事件冲突: {} ({}) 在 {} 状态下不合法 — `case resolve --event {}`",
            c.event_id,
            c.kind,
            c.status_at.map(|s| s.as_str()).unwrap_or("-"),
            c.event_id
        );
    }
    for c in &v.field_conflicts {
        crate::outln!("⚠ 字段冲突: {}", c.path);
        for (i, val) in c.values.iter().enumerate() {
            crate::outln!(
                "    {}. {:?}  (节点 {} 经办人 {})",
                i + 1,
                val.value,
                val.node,
                val.clerk
            );
        }
    }
    let next: Vec<&str> = v.next_steps.iter().map(|k| k.as_str()).collect();
    crate::outln!("下一步 next steps: {}", next.join(", "));
    Ok(())
}

/// The China date of a deadline.
fn day_of(ms: i64) -> String {
    yichuang_shared::deadline::china_date(ms)
        .map(|d| d.to_string())
        .unwrap_or_else(|_| "-".into())
}

fn print_deadlines(v: &CaseView) {
    use yichuang_shared::case::deadlines::CaseDeadlines;
    match &v.deadlines {
        None => {}
        Some(CaseDeadlines::NotAccepted) => crate::outln!("时限 未受理, 不计时"),
        Some(CaseDeadlines::CalendarUnknown { year }) => {
            crate::outln!("时限 无法计算: {}", super::calendar::unknown_year(*year))
        }
        Some(CaseDeadlines::Unavailable { reason }) => crate::outln!("时限 无法计算: {reason}"),
        Some(CaseDeadlines::Known(k)) => {
            // A completed case is judged once, as of its completion.
            let state = match (k.on_time, k.overdue, k.near_overdue, k.paused) {
                (Some(true), ..) => "按时办结".to_owned(),
                (Some(false), ..) => "超期办结".to_owned(),
                (None, true, _, _) => format!("⚠ 超期 {} 个工作日", -k.remaining_working_days),
                (None, false, _, true) => {
                    format!("暂停计时, 剩余 {} 个工作日", k.remaining_working_days)
                }
                (None, false, true, false) => "⚠ 临近超期 (今日到期)".to_owned(),
                (None, false, false, false) => {
                    format!("剩余 {} 个工作日", k.remaining_working_days)
                }
            };
            crate::outln!(
                "时限 承诺 {}  法定 {}  {}  日历 {}",
                day_of(k.promised_ms),
                day_of(k.statutory_ms),
                state,
                k.calendar_version
            );
        }
    }
}
