//! Helpers of the rules tests: nodes whose clocks the test sets, cases worked through
//! the real `yichuang` binary, deadlines read back as China dates.

use serde_json::Value;
use time::Date;
use time::macros::format_description;
use yichuang_shared::deadline::{china_date, end_of_china_day_ms};
use yichuang_tests::{fails_with, init_node, json_with};

/// 高龄津贴申领 (民政局): promised 10, statutory 20 working days; window or post.
pub const ELDERLY: &str = "11440399070576072E0054803800001";
/// 失业保险金申领 (人社局): promised 5, statutory 20 working days.
pub const JOBLESS: &str = "11440399793729888R0057783180001";
/// 个体工商户设立登记 (市场监管局): 即办件.
pub const INSTANT: &str = "11440399688143770G0017847270001";
/// A resident ID with a valid check digit (the standard's example).
pub const ID: &str = "11010519491231002X";
pub const DAY_MS: i64 = 86_400_000;

/// An instant, as China time.
#[derive(Clone, Debug)]
pub struct At {
    pub rfc3339: String,
    pub ms: i64,
}

/// `date` (YYYY-MM-DD) at `hh:mm` China time.
pub fn at(date: &str, hh_mm: &str) -> At {
    let day = Date::parse(date, format_description!("[year]-[month]-[day]")).expect("a date");
    let (h, m) = hh_mm.split_once(':').expect("hh:mm");
    let minutes: i64 = h.parse::<i64>().expect("hours") * 60 + m.parse::<i64>().expect("minutes");
    At {
        rfc3339: format!("{date}T{hh_mm}:00+08:00"),
        ms: end_of_china_day_ms(day) + 1 - DAY_MS + minutes * 60_000,
    }
}

/// The China date of a UTC millisecond time, as text.
pub fn day(ms: &Value) -> String {
    china_date(ms.as_i64().expect("ms"))
        .expect("a date")
        .to_string()
}

/// A node whose clock runs `offset_ms` off the true time.
pub struct Node {
    pub dir: String,
    pub offset_ms: i64,
}

impl Node {
    pub fn init(path: &std::path::Path, role: &str, center: Option<&str>, offset_ms: i64) -> Node {
        Node {
            dir: init_node(path, role, center),
            offset_ms,
        }
    }

    /// The environment that sets this node's clock to the true time `now` plus its offset.
    fn env(&self, now: &At) -> Vec<(&'static str, String)> {
        vec![
            ("YICHUANG_NOW", now.rfc3339.clone()),
            ("YICHUANG_CLOCK_OFFSET_MS", self.offset_ms.to_string()),
            ("YICHUANG_LOG", "error".to_owned()),
        ]
    }

    /// Runs a command (with `--dir` appended) at true time `now`; parses its JSON.
    pub fn json(&self, now: &At, args: &[&str]) -> Value {
        let env = self.env(now);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut all = args.to_vec();
        all.extend(["--dir", &self.dir]);
        json_with(&env, &all)
    }

    /// Runs a command that must fail; returns its standard error.
    pub fn fails(&self, now: &At, args: &[&str]) -> String {
        let env = self.env(now);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut all = args.to_vec();
        all.extend(["--dir", &self.dir]);
        fails_with(&env, &all)
    }

    /// Registers a case; returns (case number, document id).
    pub fn new_case(&self, now: &At, item: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec![
            "case",
            "new",
            "--item",
            item,
            "--applicant-name",
            "测试甲",
            "--applicant-id",
            ID,
            "--json",
        ];
        args.extend(extra);
        let v = self.json(now, &args);
        (
            v["case_no"].as_str().expect("case_no").to_owned(),
            v["doc_id"].as_str().expect("doc_id").to_owned(),
        )
    }

    /// Records a step with `key=value` data; returns the case view.
    pub fn step(&self, now: &At, case: &str, kind: &str, data: &[&str]) -> Value {
        let mut args = vec!["case", "event", case, kind, "--json"];
        for kv in data {
            args.extend(["--data", kv]);
        }
        self.json(now, &args)
    }

    /// A step that must be refused; returns the message.
    pub fn refused(&self, now: &At, case: &str, kind: &str, data: &[&str]) -> String {
        let mut args = vec!["case", "event", case, kind];
        for kv in data {
            args.extend(["--data", kv]);
        }
        self.fails(now, &args)
    }

    pub fn show(&self, now: &At, case: &str) -> Value {
        self.json(now, &["case", "show", case, "--json"])
    }
}

/// A resident ID other than [`ID`], with its check digit computed.
pub fn agent_id() -> String {
    let first17 = "44030519850315001";
    let check = yichuang_shared::validate::resident_id_check_char(first17).expect("17 digits");
    format!("{first17}{check}")
}
