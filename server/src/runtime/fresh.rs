//! Read-your-writes: before a pull query reads a table, wait until every
//! query upstream of it has processed its source up to the source's end as
//! of now, upstream first.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::{Catalog, Engine, QueryDesc};
use crate::error::Result;

/// Upstream queries of `relation`, the most upstream first.
fn upstream(catalog: &Catalog, relation: &str) -> Vec<QueryDesc> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    fn visit(c: &Catalog, rel: &str, seen: &mut HashSet<String>, order: &mut Vec<QueryDesc>) {
        for q in c.writers_of(rel) {
            if seen.insert(q.id.clone()) {
                let q = q.clone();
                for s in q.sources() {
                    visit(c, s, seen, order);
                }
                order.push(q);
            }
        }
    }
    if relation == crate::engine::PROCESSING_LOG {
        // Every query may write to the processing log.
        let mut all: Vec<(u64, QueryDesc)> = catalog.queries.values().cloned().collect();
        all.sort_by_key(|(id, _)| *id);
        for (_, q) in all {
            if seen.insert(q.id.clone()) {
                for s in q.sources() {
                    visit(catalog, s, &mut seen, &mut order);
                }
                order.push(q);
            }
        }
        return order;
    }
    visit(catalog, relation, &mut seen, &mut order);
    order
}

/// Waits (at most `timeout` in all) until each query feeding `relation` has
/// committed its source up to the source's end, taking each end only after
/// the step upstream of it caught up, so a chain of queries is waited
/// through. A stopped or failed query is not waited for.
pub async fn wait_fresh(engine: &Arc<Engine>, relation: &str, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let catalog = engine.catalog();
    for q in upstream(&catalog, relation) {
        let Some(status) = engine.runtime.status(&q.id) else {
            continue;
        };
        if status.state() != super::QueryState::Running {
            continue;
        }
        // Per source, in the order of the committed offsets: each
        // partition's end (none for a relation that is gone).
        let mut targets = Vec::new();
        for source in q.sources() {
            let mut ends = Vec::new();
            if let Some(topic) = catalog.relation(source).map(|r| r.topic.clone()) {
                for p in 0..engine.log.topic_partitions(&topic).unwrap_or(0) {
                    ends.push(engine.log.end_offset(&topic, p)?);
                }
            }
            targets.push(ends);
        }
        let mut rx = status.committed.subscribe();
        let caught_up = |offs: &Vec<Vec<u64>>| {
            offs.len() >= targets.len()
                && offs.iter().zip(&targets).all(|(offs, ends)| {
                    offs.len() >= ends.len() && offs.iter().zip(ends).all(|(o, t)| o >= t)
                })
        };
        let _ = tokio::time::timeout_at(deadline, rx.wait_for(caught_up)).await;
    }
    Ok(())
}
