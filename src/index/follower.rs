//! Keeping the snapshot in step with the store's change log.
//!
//! Every instance applies the change log in `seq` order, from the version of
//! its current snapshot: its own writes (right after they commit, see
//! [`catch_up`]) and other instances' writes sharing the same database
//! (pushed by the store where it can, e.g. PostgreSQL LISTEN/NOTIFY, and
//! polled as the fallback). Each step re-reads only the jurisdictions the
//! changes touch; a very long gap (a new instance, a bulk import) is cheaper
//! as one full reload. If the store is unreachable the current snapshot keeps
//! answering, and the next successful poll catches up.

use super::{load_snapshot, refresh, IndexError, IndexHandle};
use crate::store::DynStore;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// More pending changes than this are applied as a full reload.
const FULL_RELOAD_AFTER: i64 = 5_000;

/// Applies every change after the current snapshot's version and publishes
/// the result. Returns the version now applied. Callers serialise calls
/// (the instance's write lock) so snapshots are published in `seq` order.
pub async fn catch_up(handle: &Arc<IndexHandle>, store: &DynStore) -> Result<i64, IndexError> {
    loop {
        let current = handle.current();
        let from = current.version();
        let changes = store.changes_since(from, FULL_RELOAD_AFTER).await?;
        let Some(last) = changes.last().map(|c| c.seq) else { return Ok(from) };
        if changes.len() as i64 >= FULL_RELOAD_AFTER {
            tracing::info!(from, "long change-log gap: reloading the whole index");
            let snapshot = load_snapshot(store).await?;
            let version = snapshot.version();
            handle.publish(snapshot);
            return Ok(version);
        }
        // Jurisdictions whose entry must be rebuilt: the changed ones (read
        // whole), and the owners (old and new) of changed endpoints (only
        // their endpoints are read again).
        let mut ids = BTreeSet::new();
        let mut owners = BTreeSet::new();
        for c in &changes {
            match c.entity.as_str() {
                "jurisdiction" => {
                    ids.insert(c.entity_id.clone());
                }
                "endpoint" => {
                    if let Some(owner) = current.endpoint_owner(&c.entity_id) {
                        owners.insert(owner.to_owned());
                    }
                    if let Some(ep) = store.get_endpoint(&c.entity_id).await? {
                        owners.insert(ep.jurisdiction_id);
                    }
                }
                other => tracing::warn!(entity = other, seq = c.seq, "unknown entity in change log; ignored"),
            }
        }
        let endpoints_only: Vec<String> = owners.difference(&ids).cloned().collect();
        let ids: Vec<String> = ids.into_iter().collect();
        refresh(handle, store, &ids, &endpoints_only, last).await?;
        tracing::debug!(from, to = last, jurisdictions = ids.len() + endpoints_only.len(), "applied changes");
    }
}

/// Follows the change log in the background: waits for a store notification
/// or the poll interval, then catches up under `lock`. Runs until the task is
/// dropped or aborted.
pub fn spawn(
    handle: Arc<IndexHandle>,
    store: DynStore,
    lock: Arc<tokio::sync::Mutex<()>>,
    poll: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut notifications = match store.subscribe().await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "change notifications unavailable; polling only");
                None
            }
        };
        let mut failing = false;
        loop {
            match notifications.as_mut() {
                Some(rx) => {
                    tokio::select! {
                        got = rx.recv() => if got.is_none() { notifications = None },
                        _ = tokio::time::sleep(poll) => {}
                    }
                }
                None => tokio::time::sleep(poll).await,
            }
            let result = {
                let _guard = lock.lock().await;
                catch_up(&handle, &store).await
            };
            match result {
                Ok(_) if failing => {
                    tracing::info!(version = handle.current().version(), "store reachable again; caught up");
                    failing = false;
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "cannot follow the change log; answering from the last snapshot");
                    failing = true;
                }
                Err(e) => tracing::debug!(error = %e, "still cannot follow the change log"),
            }
        }
    })
}
