//! `/metrics` in the Prometheus text format: cases by status, sync lag, bytes and
//! changes exchanged, rejections, conflicts. No personal data: counts and node ids.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::store::{LivePeer, Store, StoreError, now_ms};

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.0, "{name}");
        if !labels.is_empty() {
            let inner: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                .collect();
            let _ = write!(self.0, "{{{}}}", inner.join(","));
        }
        let _ = writeln!(self.0, " {value}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// Renders every metric from one consistent read of the store.
pub fn render(s: &mut Store, live: Option<&[LivePeer]>) -> Result<String, StoreError> {
    let now = now_ms();
    let mut out = Out(String::new());
    let node = s.settings().clone();
    out.family("yichuang_node_info", "gauge", "This node's identity.");
    out.sample(
        "yichuang_node_info",
        &[
            ("node", &node.node_id.to_string()),
            ("role", node.role.as_str()),
            ("center", &node.center),
        ],
        1,
    );
    out.family("yichuang_cases", "gauge", "Cases on this node by status.");
    for (status, n) in s.status_counts()? {
        out.sample("yichuang_cases", &[("status", &status)], n);
    }
    let sync = match live {
        Some(peers) => s.sync_status()?.with_live(peers),
        None => s.sync_status()?,
    };
    out.single(
        "yichuang_sync_connected",
        "gauge",
        "1 when the hub (on the hub: any peer) was heard from recently.",
        u8::from(sync.connected),
    );
    out.single(
        "yichuang_sync_unsynced_changes",
        "gauge",
        "Case changes stored here that the hub has not acknowledged.",
        sync.unsynced_changes,
    );
    out.single(
        "yichuang_sync_unsynced_cases",
        "gauge",
        "Cases with changes the hub has not acknowledged.",
        sync.unsynced_cases,
    );
    let lag_s = sync
        .oldest_unsynced_ms
        .map(|t| (now - t).max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    out.single(
        "yichuang_sync_lag_seconds",
        "gauge",
        "Age of the oldest change the hub has not acknowledged (0 when none).",
        lag_s,
    );
    out.single(
        "yichuang_sync_last_contact_timestamp_seconds",
        "gauge",
        "When the hub was last heard from (0 = never).",
        sync.last_contact_ms as f64 / 1000.0,
    );
    out.single(
        "yichuang_sync_pending_changes",
        "gauge",
        "Received changes waiting for their dependencies.",
        sync.pending_changes,
    );
    out.single(
        "yichuang_sync_rejections_total",
        "counter",
        "Changes this node refused.",
        sync.rejections,
    );
    let (received, received_bytes) = s.received_totals()?;
    out.single(
        "yichuang_sync_changes_received_total",
        "counter",
        "Changes received from peers and stored.",
        received,
    );
    out.single(
        "yichuang_sync_bytes_received_total",
        "counter",
        "Bytes of the changes received from peers and stored.",
        received_bytes,
    );
    let (acked, acked_bytes) = s.acked_totals()?;
    out.single(
        "yichuang_sync_changes_sent_total",
        "counter",
        "Changes written here that a peer acknowledged.",
        acked,
    );
    out.single(
        "yichuang_sync_bytes_sent_total",
        "counter",
        "Bytes of the changes written here that a peer acknowledged.",
        acked_bytes,
    );
    out.family(
        "yichuang_sync_peer_unacked_changes",
        "gauge",
        "Changes after what each peer acknowledged.",
    );
    for p in &sync.peers {
        out.sample(
            "yichuang_sync_peer_unacked_changes",
            &[("peer", &p.peer)],
            p.unacked_changes,
        );
    }
    out.family(
        "yichuang_sync_peer_last_contact_timestamp_seconds",
        "gauge",
        "When each peer was last heard from.",
    );
    for p in &sync.peers {
        out.sample(
            "yichuang_sync_peer_last_contact_timestamp_seconds",
            &[("peer", &p.peer)],
            p.last_contact_ms as f64 / 1000.0,
        );
    }
    out.family(
        "yichuang_sync_peer_rejected_total",
        "counter",
        "Changes from each peer that this node refused.",
    );
    for p in &sync.peers {
        out.sample(
            "yichuang_sync_peer_rejected_total",
            &[("peer", &p.peer)],
            p.rejected,
        );
    }
    let (conflicted, conflicts) = s.conflict_totals()?;
    out.single(
        "yichuang_conflicts",
        "gauge",
        "Unresolved conflicts (field and event) across all cases.",
        conflicts,
    );
    out.single(
        "yichuang_conflicted_cases",
        "gauge",
        "Cases holding at least one unresolved conflict.",
        conflicted,
    );
    Ok(out.0)
}

/// Prometheus scrape endpoint. Open like `/api/health`: it carries counts only, and
/// the server listens on loopback unless an operator chose otherwise.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let live = state.live.as_deref().map(super::live_peers);
    let text = state
        .store
        .call(move |s| render(s, live.as_deref()))
        .await??;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
