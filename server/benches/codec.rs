//! Per-record cost of the JSON codec on Nexmark bids, without a server:
//! `cargo bench -p rill-server --bench codec [-- N]` (N bids, default
//! 300,000). Prints nanoseconds per record, the best of three passes, for
//! bids as an outside producer writes them (lower-case names) and as rill
//! writes them, against serde_json decoding into a plain struct.

use std::hint::black_box;
use std::time::Instant;

use rill_server::record::RecordCodec;
use rill_sql::catalog::{ColumnDesc, FormatSpec, RelationDesc};
use rill_sql::parser::RelationKind;
use rill_sql::DataType;
use rill_storage::Record;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct Bid {
    auction: i64,
    bidder: i64,
    price: i64,
    channel: String,
    url: String,
    date_time: i64,
    extra: String,
}

fn bids_relation() -> RelationDesc {
    let columns = [
        ("AUCTION", DataType::BigInt),
        ("BIDDER", DataType::BigInt),
        ("PRICE", DataType::BigInt),
        ("CHANNEL", DataType::String),
        ("URL", DataType::String),
        ("DATE_TIME", DataType::BigInt),
        ("EXTRA", DataType::String),
    ];
    RelationDesc {
        name: "BIDS".into(),
        kind: RelationKind::Stream,
        columns: columns
            .into_iter()
            .map(|(name, t)| ColumnDesc::new(name, t, false))
            .collect(),
        window: None,
        topic: "bids".into(),
        partitions: 1,
        format: FormatSpec {
            key_format: "KAFKA".into(),
            value_format: "JSON".into(),
            value_delimiter: None,
            wrap_single_value: None,
            key_schema_id: None,
            value_schema_id: None,
        },
        timestamp_column: Some("DATE_TIME".into()),
        timestamp_format: None,
        read_only: false,
        written_by: None,
        retention_ms: None,
    }
}

/// Nanoseconds per record of `pass`, the best of three.
fn time(n: usize, mut pass: impl FnMut()) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            pass();
            start.elapsed().as_secs_f64() * 1e9 / n as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300_000);
    let rel = bids_relation();
    let mut codec = RecordCodec::try_new(&rel, None)?;
    // AUCTION and DATE_TIME only, as the windowed queries read them.
    let mut read = vec![false; rel.columns.len() + 3];
    read[0] = true;
    let mut two = RecordCodec::try_new_reading(&rel, None, Some(&read))?;
    let record = |offset: usize, value: Vec<u8>| Record {
        offset: offset as u64,
        timestamp: 0,
        key: None,
        value: Some(value),
    };
    let outside: Vec<Record> = rill_tests::nexmark::bids(n)
        .enumerate()
        .map(|(i, b)| record(i, rill_tests::nexmark::bid_json(&b).into_bytes()))
        .collect();
    let mut written = Vec::with_capacity(outside.len());
    for r in &outside {
        let change = codec.decode(0, r)?.ok_or("a bid decoded to nothing")?;
        let (_, value) = codec.encode(&change.row, false)?;
        written.push(record(
            written.len(),
            value.ok_or("a bid encoded to nothing")?,
        ));
    }
    let bytes: usize = written
        .iter()
        .filter_map(|r| r.value.as_ref())
        .map(Vec::len)
        .sum();
    println!(
        "{n} Nexmark bids, {} bytes each as rill writes them; ns per record",
        bytes / written.len()
    );
    println!("{:<22}{:>14}{:>14}", "", "outside JSON", "rill's JSON");
    let row = |name: &str, outside: f64, written: f64| {
        println!("{name:<22}{outside:>14.0}{written:>14.0}");
    };
    row(
        "serde_json struct",
        struct_pass(&outside),
        struct_pass(&written),
    );
    row(
        "decode, 7 columns",
        decode_pass(&mut codec, &outside),
        decode_pass(&mut codec, &written),
    );
    row(
        "decode, 2 columns",
        decode_pass(&mut two, &outside),
        decode_pass(&mut two, &written),
    );
    let mut encoder = RecordCodec::try_new(&rel, None)?;
    row(
        "decode + encode",
        round_trip_pass(&mut codec, &mut encoder, &outside),
        round_trip_pass(&mut codec, &mut encoder, &written),
    );
    Ok(())
}

fn struct_pass(recs: &[Record]) -> f64 {
    time(recs.len(), || {
        for r in recs {
            let bid: Option<Bid> =
                serde_json::from_slice(r.value.as_deref().unwrap_or_default()).ok();
            black_box(bid);
        }
    })
}

fn decode_pass(codec: &mut RecordCodec, recs: &[Record]) -> f64 {
    time(recs.len(), || {
        for r in recs {
            black_box(codec.decode(0, r).ok());
        }
    })
}

/// Decode, then encode into one reused buffer, as a sink does.
fn round_trip_pass(codec: &mut RecordCodec, encoder: &mut RecordCodec, recs: &[Record]) -> f64 {
    let mut out = Vec::new();
    time(recs.len(), || {
        for r in recs {
            if let Ok(Some(c)) = codec.decode(0, r) {
                out.clear();
                black_box(encoder.encode_into(&c.row, false, &mut out).ok());
            }
        }
    })
}
