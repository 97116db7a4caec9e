//! Case operations on the store: register, advance, edit, resolve, show and list.
//! Each write is one immediate transaction: read, change, file, index, commit.

use std::collections::BTreeMap;

use automerge::AutoCommit;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use yichuang_shared::case::{
    ApplicantKind, CaseDoc, CaseView, EventKind, MaterialSpec, NewCase, NewEvent, Party, Stamp,
};
use yichuang_shared::hlc::Hlc;
use yichuang_shared::ids::{DocId, case_number};
use yichuang_shared::validate;

use super::docs::{fresh_doc, write_changes};
use super::rules::{RulesContext, rule_columns};
use super::{Store, StoreError, Tx, now_ms, random_bytes};

/// Most rows one list call returns; a page, not a dump.
pub const LIST_LIMIT_MAX: usize = 1_000;
/// China Standard Time, UTC+8 all year: case numbers carry the local date.
const CHINA_OFFSET_MS: i64 = 8 * 3_600_000;
/// Catalog materials needed only when an agent acts (授权委托书及代办人身份证明).
const AGENT_MATERIAL_MARK: &str = "代办人";

/// A clerk's request to register a case.
#[derive(Clone, Debug)]
pub struct CreateCase {
    /// The item's implementation code or its exact name.
    pub item: String,
    pub applicant_kind: ApplicantKind,
    pub applicant: Party,
    pub agent: Option<Party>,
    /// Codes of the materials received at the counter.
    pub materials_received: Vec<String>,
    pub delivery_method: Option<String>,
    /// Where results are posted; required for postal delivery.
    pub delivery_address: String,
    pub clerk: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Created {
    pub doc_id: DocId,
    pub case_no: String,
    pub case: CaseView,
}

/// A row of the case index, as lists and searches return it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseRow {
    pub doc_id: String,
    pub case_no: String,
    pub status: String,
    pub item_code: String,
    pub item_name: String,
    pub department: String,
    pub home_center: String,
    pub current_center: String,
    pub assigned_staff: String,
    pub applicant_name: String,
    /// First 6 and last 4 characters; the index never holds the full number.
    pub applicant_id: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub conflicts: i64,
    /// `known`, `not_accepted`, `calendar_unknown` or `unavailable`.
    pub deadline_state: String,
    /// End of the promised deadline day as last indexed (a paused case's moves on).
    pub promised_ms: Option<i64>,
}

#[derive(Clone, Debug, Default)]
pub struct CaseFilter {
    pub status: Option<String>,
    pub search: Option<String>,
    pub limit: usize,
}

/// `yyyymmdd` of a UTC millisecond instant in China time.
pub fn china_day(ms: i64) -> String {
    let days = (ms + CHINA_OFFSET_MS).div_euclid(86_400_000);
    let date = time::Date::from_julian_day(2_440_588 + days as i32).unwrap_or(time::Date::MIN);
    format!(
        "{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

fn next_hlc(conn: &Connection, now: i64) -> Result<Hlc, StoreError> {
    let last: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'hlc'", [], |r| r.get(0))
        .optional()?;
    let last = Hlc(last.and_then(|s| s.parse().ok()).unwrap_or(0));
    let next = Hlc::tick(last, now);
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('hlc', ?1) ON CONFLICT (key) DO UPDATE SET value = ?1",
        [next.0.to_string()],
    )?;
    Ok(next)
}

fn next_case_seq(conn: &Connection, day: &str) -> Result<u64, StoreError> {
    let seq: i64 = conn.query_row(
        "INSERT INTO case_seq (day, next) VALUES (?1, 1) ON CONFLICT (day) DO UPDATE SET next = next + 1 RETURNING next",
        [day],
        |r| r.get(0),
    )?;
    Ok(seq as u64)
}

pub(super) fn index_case(
    conn: &Connection,
    doc_id: &DocId,
    view: &CaseView,
    rules: &RulesContext,
    now: i64,
) -> Result<(), StoreError> {
    // The rules' columns ride in the same statement: registration is the clerk's
    // critical path, and one statement costs less than two.
    let r = rule_columns(view, rules, now)?;
    conn.prepare_cached(
        "INSERT INTO case_index (doc_id, case_no, item_code, item_name, department, home_center, current_center,
             assigned_staff, status, applicant_name, applicant_id_masked, created_ms, updated_ms, conflicts,
             deadline_state, promised_ms, statutory_ms, calendar_version, rules_first_ms, rules_last_ms, rules)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)
         ON CONFLICT (doc_id) DO UPDATE SET current_center = ?7, assigned_staff = ?8, status = ?9,
             applicant_name = ?10, applicant_id_masked = ?11, updated_ms = ?13, conflicts = ?14,
             deadline_state = ?15, promised_ms = ?16, statutory_ms = ?17, calendar_version = ?18,
             rules_first_ms = ?19, rules_last_ms = ?20, rules = ?21",
    )?
    .execute(params![
            doc_id.as_str(),
            view.case_no,
            view.item_code,
            view.item_name,
            view.department,
            view.home_center,
            view.current_center,
            view.assigned_staff,
            view.status.map(|s| s.as_str()).unwrap_or(""),
            view.applicant.name,
            validate::mask_id(&view.applicant.id_no),
            view.created_ms,
            now,
            view.conflict_count as i64,
            r.state,
            r.promised_ms,
            r.statutory_ms,
            r.calendar_version,
            r.first_ms,
            r.last_ms,
            r.json,
        ])?;
    Ok(())
}

pub(super) fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseRow> {
    Ok(CaseRow {
        doc_id: r.get(0)?,
        case_no: r.get(1)?,
        status: r.get(2)?,
        item_code: r.get(3)?,
        item_name: r.get(4)?,
        department: r.get(5)?,
        home_center: r.get(6)?,
        current_center: r.get(7)?,
        assigned_staff: r.get(8)?,
        applicant_name: r.get(9)?,
        applicant_id: r.get(10)?,
        created_ms: r.get(11)?,
        updated_ms: r.get(12)?,
        conflicts: r.get(13)?,
        deadline_state: r.get(14)?,
        promised_ms: r.get(15)?,
    })
}

pub(super) const ROW_COLUMNS: &str = "doc_id, case_no, status, item_code, item_name, department, home_center, current_center, \
     assigned_staff, applicant_name, applicant_id_masked, created_ms, updated_ms, conflicts, deadline_state, promised_ms";

pub(super) fn stamp(
    conn: &Connection,
    node: yichuang_shared::ids::NodeId,
    clerk: &str,
) -> Result<Stamp, StoreError> {
    stamp_at(conn, node, clerk, now_ms())
}

/// A stamp for a write at `now` (the caller's clock reading).
pub(super) fn stamp_at(
    conn: &Connection,
    node: yichuang_shared::ids::NodeId,
    clerk: &str,
    now: i64,
) -> Result<Stamp, StoreError> {
    Ok(Stamp {
        node,
        clerk: clerk.to_owned(),
        hlc: next_hlc(conn, now)?,
        event_id: format!(
            "e{}",
            yichuang_shared::ids::encode_hex(&random_bytes::<8>())
        ),
    })
}

impl Store {
    /// Checks a request against the catalog and builds the case it describes.
    fn prepare_case(&mut self, req: &CreateCase) -> Result<NewCase, StoreError> {
        let item = {
            let catalog = self.catalog()?;
            catalog
                .get(&req.item)
                .or_else(|| catalog.values().find(|i| i.name == req.item))
                .cloned()
                .ok_or_else(|| StoreError::UnknownItem(req.item.clone()))?
        };
        for code in &req.materials_received {
            if !item.materials.iter().any(|m| &m.code == code) {
                return Err(StoreError::Invalid(format!(
                    "item {} has no material {code:?}",
                    item.code
                )));
            }
        }
        let delivery = req
            .delivery_method
            .clone()
            .unwrap_or_else(|| "window".into());
        if let Some(agent) = &req.agent {
            let same = validate::normalize_resident_id(&agent.id_no)
                == validate::normalize_resident_id(&req.applicant.id_no);
            if same {
                return Err(StoreError::Invalid(
                    "an agent (代办人) acts for someone else: the agent's ID is the applicant's"
                        .into(),
                ));
            }
        }
        if !item.delivery.contains(&delivery) {
            return Err(StoreError::Invalid(format!(
                "item {} is not delivered by {delivery:?}; it offers {}",
                item.code,
                item.delivery.join(", ")
            )));
        }
        let new = NewCase {
            case_no: String::new(),
            district: self.settings.district.clone(),
            home_center: self.settings.center.clone(),
            item_code: item.code.clone(),
            item_name: item.name.clone(),
            department: item.department.clone(),
            applicant_kind: req.applicant_kind,
            applicant: req.applicant.clone(),
            agent: req.agent.clone(),
            materials: item
                .materials
                .iter()
                .map(|m| MaterialSpec {
                    code: m.code.clone(),
                    name: m.name.clone(),
                    // With an agent, the power of attorney and the agent's ID become
                    // required (the catalog marks them "委托办理时提供").
                    required: m.required
                        || (req.agent.is_some() && m.name.contains(AGENT_MATERIAL_MARK)),
                    received: req.materials_received.contains(&m.code),
                })
                .collect(),
            delivery_method: delivery,
            delivery_address: req.delivery_address.clone(),
        };
        // Checked before a case number is spent on it.
        new.validate()?;
        Ok(new)
    }

    /// Numbers, builds, files and indexes one case inside the caller's transaction.
    fn insert_case(
        conn: &Connection,
        settings: &super::NodeSettings,
        actor: &automerge::ActorId,
        rules: &RulesContext,
        mut new: NewCase,
        clerk: &str,
    ) -> Result<(Created, AutoCommit, i64), StoreError> {
        let doc_id = DocId::new_case(random_bytes());
        let stamp = stamp(conn, settings.node_id, clerk)?;
        let day = china_day(stamp.hlc.wall_ms());
        let seq = next_case_seq(conn, &day)?;
        new.case_no = case_number(
            &settings.district,
            &settings.center,
            &day,
            &settings.case_tag(),
            seq,
        );
        let mut case = CaseDoc::create(&new, actor.clone(), &stamp)?;
        let changes = case.automerge().get_changes(&[]);
        let (last_seq, _) = write_changes(
            conn,
            &doc_id,
            "case",
            &changes,
            case.automerge(),
            None,
            stamp.hlc.wall_ms(),
        )?;
        let mut view = yichuang_shared::case::new_case_view(&new, &stamp);
        index_case(conn, &doc_id, &view, rules, stamp.hlc.wall_ms())?;
        view.deadlines = Some(rules.deadlines(&view.item_code, &view.facts, stamp.hlc.wall_ms()));
        Ok((
            Created {
                doc_id,
                case_no: new.case_no,
                case: view,
            },
            case.into_automerge(),
            last_seq,
        ))
    }

    /// Registers a case. Returns only after the case is durable.
    pub fn create_case(&mut self, req: &CreateCase) -> Result<Created, StoreError> {
        let new = self.prepare_case(req)?;
        let rules = self.rules_context()?;
        let tx = Tx::begin(&self.conn, self.in_group)?;
        let (created, doc, last_seq) =
            Store::insert_case(&tx, &self.settings, &self.actor, &rules, new, &req.clerk)?;
        tx.commit()?;
        self.cache.put(created.doc_id.clone(), doc, last_seq);
        Ok(created)
    }

    /// Registers many cases in one transaction (bulk loads and benchmarks); all or none.
    pub fn create_cases_batch(&mut self, reqs: &[CreateCase]) -> Result<Vec<String>, StoreError> {
        let prepared: Vec<(NewCase, &str)> = reqs
            .iter()
            .map(|r| Ok((self.prepare_case(r)?, r.clerk.as_str())))
            .collect::<Result<_, StoreError>>()?;
        let rules = self.rules_context()?;
        let tx = Tx::begin(&self.conn, self.in_group)?;
        let mut numbers = Vec::with_capacity(prepared.len());
        for (new, clerk) in prepared {
            numbers.push(
                Store::insert_case(&tx, &self.settings, &self.actor, &rules, new, clerk)?
                    .0
                    .case_no,
            );
        }
        tx.commit()?;
        Ok(numbers)
    }

    /// The document id of a case given its number or its id.
    pub fn resolve_case(&self, key: &str) -> Result<DocId, StoreError> {
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT doc_id FROM case_index WHERE case_no = ?1 OR doc_id = ?1 LIMIT 1",
                [key],
                |r| r.get(0),
            )
            .optional()?;
        let found = found.ok_or_else(|| StoreError::UnknownCase(key.to_owned()))?;
        found
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("document id {found:?}")))
    }

    /// Runs one change on a case inside an immediate transaction. On any failure the
    /// cached copy is dropped, so memory never holds what the disk does not.
    fn modify_case(
        &mut self,
        key: &str,
        clerk: &str,
        change: impl FnOnce(&mut CaseDoc, &Stamp) -> Result<(), yichuang_shared::case::CaseError>,
    ) -> Result<CaseView, StoreError> {
        let doc_id = self.resolve_case(key)?;
        let result = self.modify_case_inner(&doc_id, clerk, change);
        if result.is_err() {
            self.cache.evict(&doc_id);
        }
        result
    }

    fn modify_case_inner(
        &mut self,
        doc_id: &DocId,
        clerk: &str,
        change: impl FnOnce(&mut CaseDoc, &Stamp) -> Result<(), yichuang_shared::case::CaseError>,
    ) -> Result<CaseView, StoreError> {
        let rules = self.rules_context()?;
        let tx = Tx::begin(&self.conn, self.in_group)?;
        let stamp = stamp(&tx, self.settings.node_id, clerk)?;
        let doc = fresh_doc(&tx, &mut self.cache, doc_id)?;
        doc.set_actor(self.actor.clone());
        let before = doc.get_heads();
        let taken = std::mem::replace(doc, AutoCommit::new());
        let mut case = CaseDoc::from_automerge(taken)?;
        let outcome = change(&mut case, &stamp);
        let changes = case.automerge().get_changes(&before);
        let mut view = case.view(false);
        *doc = case.into_automerge();
        outcome?;
        let (last_seq, _) = write_changes(
            &tx,
            doc_id,
            "case",
            &changes,
            doc,
            None,
            stamp.hlc.wall_ms(),
        )?;
        index_case(&tx, doc_id, &view, &rules, stamp.hlc.wall_ms())?;
        tx.commit()?;
        self.cache.set_last_seq(doc_id, last_seq);
        view.deadlines = Some(rules.deadlines(&view.item_code, &view.facts, stamp.hlc.wall_ms()));
        Ok(view)
    }

    /// Advances a case by one lifecycle event.
    pub fn case_event(
        &mut self,
        key: &str,
        kind: EventKind,
        clerk: &str,
        note: &str,
        data: BTreeMap<String, String>,
    ) -> Result<CaseView, StoreError> {
        if kind == EventKind::Transferred {
            let to = data.get("to_center").map(|c| c.trim()).unwrap_or_default();
            let district = super::district();
            let known = to == yichuang_shared::case::rules::DISTRICT_BACK_OFFICE
                || district.center(to).is_some();
            if !to.is_empty() && !known {
                return Err(StoreError::UnknownCenter(to.to_owned(), district.code));
            }
        }
        let ev = NewEvent {
            note: note.to_owned(),
            data,
        };
        self.modify_case(key, clerk, |case, stamp| {
            case.append_event(kind, stamp, &ev)
        })
    }

    /// Sets fields, all or none.
    pub fn case_edit(
        &mut self,
        key: &str,
        clerk: &str,
        sets: &[(String, String)],
    ) -> Result<CaseView, StoreError> {
        let method = sets
            .iter()
            .rev()
            .find(|(path, _)| path == "delivery.method")
            .map(|(_, m)| m.clone());
        // An unknown method is refused by the field's own check, with the list of methods.
        let method =
            method.filter(|m| yichuang_shared::case::DELIVERY_METHODS.contains(&m.as_str()));
        if let Some(method) = method {
            let view = self.case_view(key, false, clerk)?;
            let offered = self
                .rules_context()?
                .items
                .get(&view.item_code)
                .map(|i| i.delivery.clone())
                .unwrap_or_default();
            if !offered.contains(&method) {
                return Err(StoreError::Invalid(format!(
                    "item {} is not delivered by {method:?}; it offers {}",
                    view.item_code,
                    offered.join(", ")
                )));
            }
        }
        self.modify_case(key, clerk, |case, stamp| {
            for (path, value) in sets {
                case.set_field(path, value, stamp)?;
            }
            // Checked after all the fields, so `method=post` and its address may come
            // in either order.
            case.check_delivery()
        })
    }

    pub fn case_resolve_field(
        &mut self,
        key: &str,
        clerk: &str,
        path: &str,
        value: &str,
    ) -> Result<CaseView, StoreError> {
        self.modify_case(key, clerk, |case, stamp| {
            case.resolve_field(path, value, stamp)
        })
    }

    pub fn case_acknowledge(
        &mut self,
        key: &str,
        clerk: &str,
        event_id: &str,
    ) -> Result<CaseView, StoreError> {
        self.modify_case(key, clerk, |case, stamp| {
            case.acknowledge_event(event_id, stamp)
        })
    }

    pub fn case_note(
        &mut self,
        key: &str,
        clerk: &str,
        text: &str,
    ) -> Result<CaseView, StoreError> {
        self.modify_case(key, clerk, |case, stamp| case.add_note(stamp, text))
    }

    /// A case's full view. A reveal of the ID number is recorded as an audit event
    /// in the case before the number is shown.
    pub fn case_view(
        &mut self,
        key: &str,
        reveal: bool,
        clerk: &str,
    ) -> Result<CaseView, StoreError> {
        if reveal {
            self.modify_case(key, clerk, |case, stamp| {
                case.append_audit(EventKind::IdRevealed, stamp, &NewEvent::default())
            })?;
        }
        let doc_id = self.resolve_case(key)?;
        let doc = fresh_doc(&self.conn, &mut self.cache, &doc_id)?;
        let mut case = CaseDoc::from_automerge(doc.clone())?;
        let mut view = case.view(reveal);
        view.deadlines = Some(self.deadlines_of(&view)?);
        Ok(view)
    }

    /// Lists cases from the index, newest first. A search matches a case-number
    /// prefix, an applicant's exact name, or an item's code or part of its name.
    pub fn list_cases(&mut self, filter: &CaseFilter) -> Result<Vec<CaseRow>, StoreError> {
        let limit = filter.limit.clamp(1, LIST_LIMIT_MAX);
        let search = filter
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let Some(text) = search else {
            return match filter.status.as_deref() {
                None => {
                    self.index_query("ORDER BY created_ms DESC LIMIT ?1", params![limit as i64])
                }
                // (status, created_ms) answers this without a sort.
                Some(status) => self.index_query(
                    "WHERE status = ?1 ORDER BY created_ms DESC LIMIT ?2",
                    params![status, limit as i64],
                ),
            };
        };
        let items: Vec<String> = self
            .catalog()?
            .values()
            .filter(|i| i.code == text || i.name.contains(text))
            .map(|i| i.code.clone())
            .collect();
        // One indexed query per way a text can match, each stopping at `limit`, then a
        // merge: a single query with OR, or one sorting every match of a common item,
        // reads far more of a million-case index than a page needs.
        let status = filter.status.as_deref();
        let and_status = if status.is_some() {
            "AND status = ?3"
        } else {
            "AND ?3 IS NULL"
        };
        let mut rows = self.index_query(
            &format!(
                "WHERE case_no >= ?1 AND case_no < ?1 || char(1114111) {and_status} ORDER BY case_no DESC LIMIT ?2"
            ),
            params![text, limit as i64, status],
        )?;
        rows.extend(self.index_query(
            &format!("WHERE applicant_name = ?1 {and_status} ORDER BY created_ms DESC LIMIT ?2"),
            params![text, limit as i64, status],
        )?);
        for code in items {
            rows.extend(self.index_query(
                &format!("WHERE item_code = ?1 {and_status} ORDER BY created_ms DESC LIMIT ?2"),
                params![code, limit as i64, status],
            )?);
        }
        rows.sort_by(|a, b| {
            b.created_ms
                .cmp(&a.created_ms)
                .then_with(|| a.doc_id.cmp(&b.doc_id))
        });
        rows.dedup_by(|a, b| a.doc_id == b.doc_id);
        rows.truncate(limit);
        Ok(rows)
    }

    fn index_query(
        &self,
        tail: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<CaseRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {ROW_COLUMNS} FROM case_index {tail}"))?;
        let rows = stmt
            .query_map(params, row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn case_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM case_index", [], |r| r.get(0))?)
    }
}

/// A wall-clock instant as China time `YYYY-MM-DD HH:MM`.
pub fn fmt_time(ms: i64) -> String {
    let secs = (ms + CHINA_OFFSET_MS).div_euclid(1000);
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => "-".into(),
    }
}
