//! Per-record cost of the windowed aggregate on Nexmark bids, without a
//! server or a store: `cargo bench -p rill-server --bench aggregate [-- N]`
//! (N bids, default 1,000,000). Runs the tumble and hop queries' operator
//! (`COUNT(*)` per auction, 30 s grace, EMIT CHANGES) over batches of 4096 bids as a
//! query reads them, drains the changed state every 50,000 bids as its
//! commits do, and prints nanoseconds per bid, the best of three runs.
//! Unlike the Nexmark benchmark this leaves out the JSON, the log and sled,
//! so it is steady enough to compare two versions of the operator.

use std::hint::black_box;
use std::time::Instant;

use rill_sql::binder::AggCall;
use rill_sql::dataflow::{Aggregate, Change, Operator, Pipeline};
use rill_sql::expr::{agg, Expr};
use rill_sql::parser::{WindowClause, WindowKind};
use rill_sql::{DataType, Value};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 4096;
const COMMIT_EVERY: usize = 50_000;

fn count_star() -> AggCall {
    AggCall {
        func: agg::lookup("COUNT").expect("COUNT is built in"),
        args: vec![],
        arg_types: vec![],
        params: vec![],
        return_type: DataType::BigInt,
    }
}

/// The query's aggregate over rows `[auction]`, as the planner builds it.
fn pipeline(kind: WindowKind) -> Result<Pipeline, String> {
    let window = WindowClause {
        kind,
        grace: Some(30_000),
        retention: None,
    };
    let agg = Aggregate::try_new(
        vec![Expr::Column(0)],
        vec![count_star()],
        Some(&window),
        false,
        true,
    )?;
    Ok(Pipeline::new(vec![Operator::Aggregate(Box::new(agg))]))
}

/// One run: returns the changes emitted and the state writes drained.
fn run(kind: WindowKind, bids: &[(i64, i64)]) -> Result<(usize, usize), String> {
    let mut p = pipeline(kind)?;
    let (mut emitted, mut written) = (0, 0);
    let (mut input, mut out, mut writes) = (Vec::new(), Vec::new(), Vec::new());
    let mut since_commit = 0;
    for batch in bids.chunks(BATCH) {
        input.extend(
            batch
                .iter()
                .map(|&(auction, t)| Change::insert(vec![Value::BigInt(auction)], t)),
        );
        p.process(0, &mut input, &mut out);
        emitted += out.len();
        out.clear();
        since_commit += batch.len();
        if since_commit >= COMMIT_EVERY {
            since_commit = 0;
            p.drain_dirty(&mut writes);
            written += writes.len();
            black_box(&writes);
            writes.clear();
        }
    }
    Ok((emitted, written))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let bids: Vec<(i64, i64)> = rill_tests::nexmark::bids(n)
        .map(|b| (b.auction as i64, b.date_time as i64))
        .collect();
    println!("{n} Nexmark bids; ns per bid, best of 3");
    let queries = [
        ("tumble", WindowKind::Tumbling { size: 10_000 }),
        (
            "hop",
            WindowKind::Hopping {
                size: 10_000,
                advance: 2_000,
            },
        ),
    ];
    for (name, kind) in queries {
        let mut best = f64::INFINITY;
        let mut counts = (0, 0);
        for _ in 0..3 {
            let start = Instant::now();
            counts = run(kind, &bids)?;
            best = best.min(start.elapsed().as_secs_f64() * 1e9 / n as f64);
        }
        println!(
            "{name:<8}{best:>8.0} ns   ({} changes emitted, {} state writes)",
            counts.0, counts.1
        );
    }
    Ok(())
}
