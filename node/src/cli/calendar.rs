//! `yichuang calendar …`: the working-day calendar this node uses, and (on the hub)
//! the yearly arrangements it publishes to every node.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use time::Date;
use yichuang_shared::calendar::{CalendarError, YearOverride};

use super::{DirArg, print_json};
use crate::store::Store;

/// A year file is a few dozen dates; anything larger is the wrong file.
const YEAR_FILE_MAX_BYTES: u64 = 64 * 1024;

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// The N-th working day after a date (the date itself not counted).
    AddWorkdays {
        #[command(flatten)]
        dir: DirArg,
        /// The starting date, YYYY-MM-DD.
        #[arg(long, value_parser = parse_date)]
        from: Date,
        /// Working days to add.
        #[arg(long)]
        days: u32,
        #[arg(long)]
        json: bool,
    },
    /// A year's holidays, make-up working days (调休) and working-day count.
    Show {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        year: i32,
        #[arg(long)]
        json: bool,
    },
    /// Publish a year's arrangement (hub only): a JSON file
    /// {"year": 2027, "version": "…", "holidays": ["2027-01-01", …], "workdays": […]}.
    SetYear {
        #[command(flatten)]
        dir: DirArg,
        #[arg(long)]
        file: PathBuf,
        /// Who published it; recorded with the change.
        #[arg(long, env = "YICHUANG_CLERK", default_value = "clerk")]
        clerk: String,
        #[arg(long)]
        json: bool,
    },
}

/// A `YYYY-MM-DD` date.
pub fn parse_date(text: &str) -> Result<Date, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text.trim(), format).map_err(|e| format!("expected YYYY-MM-DD: {e}"))
}

/// The message for a year nobody has published, saying what to do about it.
pub fn unknown_year(year: i32) -> String {
    format!(
        "calendar unknown for year {year}: no official calendar and no override from the hub; \
         the hub publishes it with `yichuang calendar set-year`"
    )
}

pub fn run(command: CalendarCommand) -> Result<()> {
    match command {
        CalendarCommand::AddWorkdays {
            dir,
            from,
            days,
            json,
        } => {
            let mut store = Store::open(&dir.dir)?;
            let calendar = store.calendar()?;
            let stamped = match calendar.add_workdays(from, days) {
                Ok(s) => s,
                Err(CalendarError::Unknown { year }) => bail!("{}", unknown_year(year)),
                Err(e) => return Err(e.into()),
            };
            if json {
                return print_json(&serde_json::json!({
                    "date": stamped.value.to_string(),
                    "calendar_version": stamped.calendar_version,
                }));
            }
            crate::outln!("{}  (calendar {})", stamped.value, stamped.calendar_version);
            Ok(())
        }
        CalendarCommand::Show { dir, year, json } => {
            let mut store = Store::open(&dir.dir)?;
            let summary = match store.calendar()?.year_summary(year) {
                Ok(s) => s,
                Err(CalendarError::Unknown { year }) => bail!("{}", unknown_year(year)),
                Err(e) => return Err(e.into()),
            };
            let dates = |list: &[Date]| list.iter().map(Date::to_string).collect::<Vec<_>>();
            if json {
                return print_json(&serde_json::json!({
                    "year": summary.year,
                    "calendar_version": summary.version,
                    "workday_count": summary.workday_count,
                    "holidays": dates(&summary.holidays),
                    "workdays_on_weekends": dates(&summary.workdays_on_weekends),
                }));
            }
            crate::outln!("{} 年日历 calendar {}", summary.year, summary.version);
            crate::outln!("工作日 working days: {}", summary.workday_count);
            crate::outln!(
                "节假日 weekday holidays: {}",
                dates(&summary.holidays).join(" ")
            );
            crate::outln!(
                "调休上班 make-up working days: {}",
                dates(&summary.workdays_on_weekends).join(" ")
            );
            Ok(())
        }
        CalendarCommand::SetYear {
            dir,
            file,
            clerk,
            json,
        } => {
            let mut text = String::new();
            std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?
                .take(YEAR_FILE_MAX_BYTES + 1)
                .read_to_string(&mut text)
                .with_context(|| format!("reading {}", file.display()))?;
            if text.len() as u64 > YEAR_FILE_MAX_BYTES {
                bail!(
                    "{} is larger than {YEAR_FILE_MAX_BYTES} bytes; a year file is a few dozen dates",
                    file.display()
                );
            }
            let year: YearOverride = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a calendar year", file.display()))?;
            let mut store = Store::open(&dir.dir)?;
            let reindexed = store.set_calendar_year(&year, &clerk)?;
            if json {
                return print_json(&serde_json::json!({
                    "year": year.year,
                    "calendar_version": year.version,
                    "cases_reindexed": reindexed,
                }));
            }
            crate::outln!(
                "calendar {} set to {}; {} cases re-indexed",
                year.year,
                year.version,
                reindexed
            );
            Ok(())
        }
    }
}
