//! The node's wall clock, with two overrides for fault injection and reproducible
//! runs: `YICHUANG_NOW` fixes the time (RFC 3339, e.g. `2026-03-02T10:00:00+08:00`),
//! `YICHUANG_CLOCK_OFFSET_MS` shifts it (a node a day fast is `86400000`). Tests use
//! them to play nodes with wrong clocks; an operator never needs them.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Fixes the clock at an instant.
pub const NOW_ENV: &str = "YICHUANG_NOW";
/// Shifts the clock by milliseconds (negative for slow).
pub const OFFSET_ENV: &str = "YICHUANG_CLOCK_OFFSET_MS";

#[derive(Debug, Clone, Copy, Default)]
struct Overrides {
    fixed_ms: Option<i64>,
    offset_ms: i64,
}

fn overrides() -> Overrides {
    static OVERRIDES: OnceLock<Overrides> = OnceLock::new();
    *OVERRIDES.get_or_init(|| {
        let fixed_ms = std::env::var(NOW_ENV).ok().and_then(|text| {
            let parsed =
                time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339);
            match parsed {
                Ok(t) => Some((t.unix_timestamp_nanos() / 1_000_000) as i64),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring {NOW_ENV}: not an RFC 3339 time");
                    None
                }
            }
        });
        let offset_ms = std::env::var(OFFSET_ENV)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        if fixed_ms.is_some() || offset_ms != 0 {
            tracing::warn!(fixed_ms, offset_ms, "the node's clock is overridden");
        }
        Overrides {
            fixed_ms,
            offset_ms,
        }
    })
}

/// Milliseconds since the Unix epoch, as this node's clock (and its overrides) says.
pub fn now_ms() -> i64 {
    let o = overrides();
    let base = o.fixed_ms.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    });
    base.saturating_add(o.offset_ms)
}
