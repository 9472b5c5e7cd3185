//! The Nexmark benchmark in its smoke size: every query's output is checked
//! against the answer computed from the same bids, and the serving figures
//! run (pull queries must all be right). No timing is asserted.

use std::time::Duration;

use rill_tests::nexmark::{run, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_smoke_outputs_are_correct() {
    let events = std::env::var("RILL_NEXMARK_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let opts = Options {
        events,
        partitions: 2,
        serving_keys: 10_000,
        serving_time: Duration::from_millis(500),
        ..Options::default()
    };
    let report = run(&opts).await.expect("benchmark run");
    println!("{}", report.table());
    assert_eq!(report.queries.len(), 7);
    for q in &report.queries {
        assert!(q.mismatch.is_none(), "{}: {:?}", q.name, q.mismatch);
        assert!(q.rows > 0, "{} produced nothing", q.name);
    }
    let serving = report.serving.as_ref().expect("serving figures");
    for p in &serving.pull {
        assert!(
            p.qps > 0.0,
            "no pull query answered with {} clients",
            p.clients
        );
        assert_eq!(p.wrong, 0, "wrong pull answers with {} clients", p.clients);
    }
    assert!(report.correct());
}
