//! Tests of the log through its public interface, including crashes
//! simulated by damaging files between a drop and a reopen.

#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;
use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Barrier;
use std::time::SystemTime;

fn small() -> LogOptions {
    LogOptions {
        segment_bytes: 1024,
    }
}

fn value(i: u64) -> Vec<u8> {
    format!("value-{i}").into_bytes()
}

/// Appends records `from..to` (value derived from the offset) one batch of
/// `batch` at a time.
fn append_range(log: &Log, topic: &str, p: u32, from: u64, to: u64, batch: u64) {
    let mut i = from;
    while i < to {
        let n = batch.min(to - i);
        let values: Vec<Vec<u8>> = (i..i + n).map(value).collect();
        let keys: Vec<Vec<u8>> = (i..i + n).map(|k| k.to_be_bytes().to_vec()).collect();
        let recs: Vec<RecordRef<'_>> = (0..n as usize)
            .map(|j| RecordRef {
                timestamp: (i as i64 + j as i64) * 10,
                key: Some(&keys[j]),
                value: Some(&values[j]),
            })
            .collect();
        let end = log.append(topic, p, &recs).unwrap();
        i += n;
        assert_eq!(end, i);
    }
}

fn read_all(log: &Log, topic: &str, p: u32, from: u64) -> Vec<Record> {
    let mut out = Vec::new();
    loop {
        let before = out.len();
        let next = out.last().map_or(from, |r: &Record| r.offset + 1);
        log.read(topic, p, next, 100, &mut out).unwrap();
        if out.len() == before {
            return out;
        }
    }
}

fn assert_values(records: &[Record], from: u64, to: u64) {
    let offsets: Vec<u64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (from..to).collect::<Vec<_>>());
    for r in records {
        assert_eq!(r.value.as_deref(), Some(value(r.offset).as_slice()));
        assert_eq!(r.key.as_deref(), Some(r.offset.to_be_bytes().as_slice()));
        assert_eq!(r.timestamp, r.offset as i64 * 10);
    }
}

fn segment_files(dir: &Path, topic: &str, p: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir.join("log").join(topic).join(p.to_string()))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    files.sort();
    files
}

#[test]
fn log_and_store_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Log>();
    shareable::<crate::Store>();
}

#[test]
fn round_trip_across_segment_rolls_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open_with(dir.path(), small()).unwrap();
        log.create_topic("t", 2).unwrap();
        append_range(&log, "t", 0, 0, 500, 7);
        append_range(&log, "t", 1, 0, 3, 3);
        assert!(
            segment_files(dir.path(), "t", 0).len() > 5,
            "segments should roll"
        );
        assert_values(&read_all(&log, "t", 0, 0), 0, 500);
        assert_values(&read_all(&log, "t", 0, 321), 321, 500);
        assert_eq!(log.end_offset("t", 0).unwrap(), 500);
    }
    let log = Log::open_with(dir.path(), small()).unwrap();
    assert_eq!(log.topics(), vec![("t".to_string(), 2)]);
    assert_values(&read_all(&log, "t", 0, 0), 0, 500);
    assert_values(&read_all(&log, "t", 0, 499), 499, 500);
    assert_values(&read_all(&log, "t", 1, 0), 0, 3);
    assert_eq!(log.end_offset("t", 0).unwrap(), 500);
    assert_eq!(log.start_offset("t", 0).unwrap(), 0);
    append_range(&log, "t", 0, 500, 600, 13);
    assert_values(&read_all(&log, "t", 0, 450), 450, 600);
}

#[test]
fn reads_respect_max_records_and_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", 1).unwrap();
    append_range(&log, "t", 0, 0, 10, 10);
    let mut out = Vec::new();
    log.read("t", 0, 2, 3, &mut out).unwrap();
    assert_values(&out, 2, 5);
    log.read("t", 0, 10, 3, &mut out).unwrap();
    log.read("t", 0, 0, 0, &mut out).unwrap();
    assert_eq!(
        out.len(),
        3,
        "nothing at or past the end, nothing for max 0"
    );
}

#[test]
fn tombstones_absent_keys_and_records_larger_than_a_read_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open_with(dir.path(), small()).unwrap();
    log.create_topic("t", 1).unwrap();
    let big = vec![7u8; 3 * segment::READ_CHUNK + 5];
    let recs = [
        RecordRef {
            timestamp: 1,
            key: None,
            value: Some(&big),
        },
        RecordRef {
            timestamp: 2,
            key: Some(b"k"),
            value: None,
        },
        RecordRef {
            timestamp: 3,
            key: Some(b""),
            value: Some(b""),
        },
    ];
    assert_eq!(log.append("t", 0, &recs).unwrap(), 3);
    let out = read_all(&log, "t", 0, 0);
    let back: Vec<RecordRef<'_>> = out.iter().map(Record::as_record_ref).collect();
    assert_eq!(back, recs);
    let mut one = Vec::new();
    log.read("t", 0, 1, 10, &mut one).unwrap();
    assert_eq!(one.first().map(|r| r.offset), Some(1));
}

/// Writes `bytes` at the end of the last segment of partition 0 of "t".
fn damage_tail(dir: &Path, f: impl FnOnce(&Path)) {
    let files = segment_files(dir, "t", 0);
    f(files.last().unwrap());
}

#[test]
fn garbage_after_the_last_record_is_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open_with(dir.path(), small()).unwrap();
        log.create_topic("t", 1).unwrap();
        append_range(&log, "t", 0, 0, 100, 9);
    }
    damage_tail(dir.path(), |path| {
        let mut f = OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(&[0xAB; 37]).unwrap();
    });
    let log = Log::open_with(dir.path(), small()).unwrap();
    assert_eq!(log.end_offset("t", 0).unwrap(), 100);
    append_range(&log, "t", 0, 100, 130, 4);
    assert_values(&read_all(&log, "t", 0, 0), 0, 130);
}

#[test]
fn a_record_cut_in_half_is_dropped_and_appends_reuse_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open_with(dir.path(), small()).unwrap();
        log.create_topic("t", 1).unwrap();
        append_range(&log, "t", 0, 0, 100, 1);
    }
    damage_tail(dir.path(), |path| {
        let len = std::fs::metadata(path).unwrap().len();
        let f = OpenOptions::new().write(true).open(path).unwrap();
        f.set_len(len - 5).unwrap();
    });
    let log = Log::open_with(dir.path(), small()).unwrap();
    assert_eq!(log.end_offset("t", 0).unwrap(), 99);
    append_range(&log, "t", 0, 99, 120, 5);
    assert_values(&read_all(&log, "t", 0, 0), 0, 120);
}

#[test]
fn a_last_record_with_a_bad_checksum_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("t", 1).unwrap();
        append_range(&log, "t", 0, 0, 10, 10);
    }
    damage_tail(dir.path(), |path| {
        let mut bytes = std::fs::read(path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        std::fs::write(path, bytes).unwrap();
    });
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.end_offset("t", 0).unwrap(), 9);
    assert_values(&read_all(&log, "t", 0, 0), 0, 9);
}

#[test]
fn corruption_inside_a_sealed_segment_is_reported_not_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open_with(dir.path(), small()).unwrap();
        log.create_topic("t", 1).unwrap();
        append_range(&log, "t", 0, 0, 200, 10);
    }
    let first = segment_files(dir.path(), "t", 0).remove(0);
    let mut bytes = std::fs::read(&first).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(&first, bytes).unwrap();
    let log = Log::open_with(dir.path(), small()).unwrap();
    let mut out = Vec::new();
    let err = log.read("t", 0, 0, 1000, &mut out).err().unwrap();
    assert_eq!(err.sqlstate(), "XX001", "{err}");
}

#[test]
fn truncate_then_append_within_and_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open_with(dir.path(), small()).unwrap();
    log.create_topic("t", 1).unwrap();
    append_range(&log, "t", 0, 0, 300, 10);
    let before = segment_files(dir.path(), "t", 0).len();
    log.truncate("t", 0, 400).unwrap();
    assert_eq!(
        log.end_offset("t", 0).unwrap(),
        300,
        "past the end is a no-op"
    );
    log.truncate("t", 0, 123).unwrap();
    assert!(
        segment_files(dir.path(), "t", 0).len() < before,
        "later segments removed"
    );
    assert_eq!(log.end_offset("t", 0).unwrap(), 123);
    assert_values(&read_all(&log, "t", 0, 0), 0, 123);
    append_range(&log, "t", 0, 123, 150, 4);
    assert_values(&read_all(&log, "t", 0, 100), 100, 150);
    drop(log);

    let log = Log::open_with(dir.path(), small()).unwrap();
    assert_values(&read_all(&log, "t", 0, 0), 0, 150);
    log.truncate("t", 0, 0).unwrap();
    assert_eq!(log.end_offset("t", 0).unwrap(), 0);
    assert_eq!(log.start_offset("t", 0).unwrap(), 0);
    assert!(read_all(&log, "t", 0, 0).is_empty());
    append_range(&log, "t", 0, 0, 5, 5);
    assert_values(&read_all(&log, "t", 0, 0), 0, 5);
}

#[test]
fn concurrent_appenders_get_contiguous_offsets_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        Log::open_with(
            dir.path(),
            LogOptions {
                segment_bytes: 16 << 10,
            },
        )
        .unwrap(),
    );
    log.create_topic("t", 1).unwrap();
    let threads = 6;
    let batches = 200;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let log = Arc::clone(&log);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut ends = Vec::new();
                for b in 0..batches {
                    let vals: Vec<Vec<u8>> = (0..3)
                        .map(|i| format!("{t}/{b}/{i}").into_bytes())
                        .collect();
                    let recs: Vec<RecordRef<'_>> = vals
                        .iter()
                        .map(|v| RecordRef {
                            timestamp: 0,
                            key: None,
                            value: Some(v),
                        })
                        .collect();
                    ends.push(log.append("t", 0, &recs).unwrap());
                }
                ends
            })
        })
        .collect();
    let mut ends: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    ends.sort_unstable();
    let total = (threads * batches * 3) as u64;
    assert_eq!(
        ends,
        (1..=(threads * batches) as u64)
            .map(|i| i * 3)
            .collect::<Vec<_>>()
    );
    let out = read_all(&log, "t", 0, 0);
    assert_eq!(out.len() as u64, total);
    assert!(out.iter().enumerate().all(|(i, r)| r.offset == i as u64));
    // Each batch stayed together, and every value arrived exactly once.
    for chunk in out.chunks(3) {
        let prefixes: Vec<String> = chunk
            .iter()
            .map(|r| {
                let v = String::from_utf8(r.value.clone().unwrap()).unwrap();
                v.rsplit_once('/').unwrap().0.to_string()
            })
            .collect();
        assert!(prefixes.iter().all(|p| *p == prefixes[0]));
    }
    let mut values: Vec<Vec<u8>> = out.into_iter().map(|r| r.value.unwrap()).collect();
    values.sort();
    values.dedup();
    assert_eq!(values.len() as u64, total);
}

#[test]
fn readers_running_alongside_appends_see_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        Log::open_with(
            dir.path(),
            LogOptions {
                segment_bytes: 8 << 10,
            },
        )
        .unwrap(),
    );
    log.create_topic("t", 1).unwrap();
    let total = 3000u64;
    let reader = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut next = 0;
            while next < total {
                let generation = log.appended();
                let before = seen.len();
                log.read("t", 0, next, 64, &mut seen).unwrap();
                if seen.len() == before {
                    log.wait_for_append(generation, Duration::from_secs(5));
                }
                next = seen.last().map_or(0, |r: &Record| r.offset + 1);
            }
            seen
        })
    };
    append_range(&log, "t", 0, 0, total, 3);
    let seen = reader.join().unwrap();
    assert_values(&seen, 0, total);
}

#[test]
fn sync_fsyncs_only_what_is_not_covered_yet() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("t", 1).unwrap();
    append_range(&log, "t", 0, 0, 10, 10);
    log.sync("t", 0, 5).unwrap();
    assert_eq!(log.fsyncs(), 1);
    log.sync("t", 0, 10).unwrap();
    assert_eq!(
        log.fsyncs(),
        1,
        "the first sync already covered everything appended"
    );
    log.sync("t", 0, 1000).unwrap();
    assert_eq!(log.fsyncs(), 1, "nothing past the end to sync");
    append_range(&log, "t", 0, 10, 11, 1);
    log.sync("t", 0, 11).unwrap();
    assert_eq!(log.fsyncs(), 2);
}

#[test]
fn syncs_waiting_behind_one_fsync_are_covered_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    log.create_topic("t", 1).unwrap();
    let threads = 8;
    let appended = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let log = Arc::clone(&log);
            let appended = Arc::clone(&appended);
            std::thread::spawn(move || {
                let end = log
                    .append(
                        "t",
                        0,
                        &[RecordRef {
                            timestamp: 0,
                            key: None,
                            value: Some(b"x"),
                        }],
                    )
                    .unwrap();
                // Every session has appended before any syncs: the first
                // fsync covers all of them.
                appended.wait();
                log.sync("t", 0, end).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(log.fsyncs(), 1);
}

#[test]
fn concurrent_append_and_sync_sessions_finish_with_everything_appended() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    log.create_topic("t", 1).unwrap();
    let threads = 8;
    let rounds = 25;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let log = Arc::clone(&log);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                for _ in 0..rounds {
                    let end = log
                        .append(
                            "t",
                            0,
                            &[RecordRef {
                                timestamp: 0,
                                key: None,
                                value: Some(b"x"),
                            }],
                        )
                        .unwrap();
                    log.sync("t", 0, end).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let calls = (threads * rounds) as u64;
    assert_eq!(log.end_offset("t", 0).unwrap(), calls);
    assert_eq!(read_all(&log, "t", 0, 0).len() as u64, calls);
}

#[test]
fn topics_are_created_idempotently_listed_sorted_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("b", 3).unwrap();
    log.create_topic("a", 1).unwrap();
    log.create_topic("b", 3).unwrap();
    let err = log.create_topic("b", 4).err().unwrap();
    assert_eq!(err.sqlstate(), "42P07");
    assert_eq!(
        log.topics(),
        vec![("a".to_string(), 1), ("b".to_string(), 3)]
    );
    assert_eq!(log.topic_partitions("b"), Some(3));
    assert_eq!(log.topic_partitions("c"), None);
    assert_eq!(log.create_topic("a", 0).err().unwrap().sqlstate(), "22023");
    for bad in ["", "..", "a/b", "a b", "é"] {
        assert_eq!(
            log.create_topic(bad, 1).err().unwrap().sqlstate(),
            "42602",
            "{bad:?}"
        );
    }

    append_range(&log, "b", 2, 0, 5, 5);
    let mut out = Vec::new();
    assert_eq!(
        log.read("c", 0, 0, 1, &mut out).err().unwrap().sqlstate(),
        "42P01"
    );
    let err = log.append("b", 3, &[]).err().unwrap();
    assert!(
        matches!(err, StorageError::UnknownPartition { partitions: 3, .. }),
        "{err}"
    );

    log.delete_topic("b").unwrap();
    assert!(!dir.path().join("log").join("b").exists());
    assert_eq!(log.topic_partitions("b"), None);
    assert_eq!(log.delete_topic("b").err().unwrap().sqlstate(), "42P01");
    log.create_topic("b", 1).unwrap();
    assert_eq!(
        log.end_offset("b", 0).unwrap(),
        0,
        "a recreated topic starts empty"
    );
    drop(log);

    let log = Log::open(dir.path()).unwrap();
    assert_eq!(
        log.topics(),
        vec![("a".to_string(), 1), ("b".to_string(), 1)]
    );
}

#[test]
fn leftovers_of_interrupted_creation_or_deletion_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("log").join("~new-x").join("0");
    std::fs::create_dir_all(&scratch).unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert!(log.topics().is_empty());
    assert!(!dir.path().join("log").join("~new-x").exists());
}

#[test]
fn an_appended_record_wakes_a_waiting_reader() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    log.create_topic("t", 1).unwrap();
    let seen = log.appended();
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            append_range(&log, "t", 0, 0, 1, 1);
        })
    };
    let now = log.wait_for_append(seen, Duration::from_secs(30));
    assert_ne!(now, seen);
    writer.join().unwrap();
    assert_eq!(log.wait_for_append(now, Duration::from_millis(1)), now);
}

fn retention(ms: Option<u64>, bytes: Option<u64>) -> Retention {
    Retention { ms, bytes }
}

fn total_bytes(dir: &Path, topic: &str, p: u32) -> u64 {
    segment_files(dir, topic, p)
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "seg"))
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum()
}

#[test]
fn retention_by_size_deletes_the_oldest_segments_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let limit = 4096;
    {
        let log = Log::open_with(dir.path(), small()).unwrap();
        log.create_topic_with("t", 1, retention(None, Some(limit)))
            .unwrap();
        log.create_topic("forever", 1).unwrap();
        append_range(&log, "t", 0, 0, 1000, 5);
        append_range(&log, "forever", 0, 0, 1000, 5);
        let before = total_bytes(dir.path(), "t", 0);
        let deleted = log
            .apply_retention(SystemTime::now(), |_, _| u64::MAX)
            .unwrap();
        let start = log.start_offset("t", 0).unwrap();
        assert_eq!(deleted, start);
        assert!(start > 0, "something is deleted");
        let after = total_bytes(dir.path(), "t", 0);
        // Over the limit by less than one segment (a segment is ~1 KiB).
        assert!(
            after >= limit && after < limit + 2048,
            "{before} -> {after}"
        );
        // Reads from a deleted offset start at the new start.
        assert_values(&read_all(&log, "t", 0, 0), start, 1000);
        assert_values(&read_all(&log, "t", 0, start + 3), start + 3, 1000);
        assert_eq!(log.start_offset("forever", 0).unwrap(), 0);
        assert_eq!(log.topic_retention("t"), Some(retention(None, Some(limit))));
        append_range(&log, "t", 0, 1000, 1010, 5);
    }
    let log = Log::open_with(dir.path(), small()).unwrap();
    assert_eq!(log.topic_retention("t"), Some(retention(None, Some(limit))));
    assert_eq!(log.topic_retention("forever"), Some(Retention::default()));
    let start = log.start_offset("t", 0).unwrap();
    assert!(start > 0);
    assert_values(&read_all(&log, "t", 0, 0), start, 1010);
    assert_values(&read_all(&log, "forever", 0, 0), 0, 1000);
}

#[test]
fn retention_by_age_keeps_the_active_segment_and_uncommitted_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open_with(dir.path(), small()).unwrap();
    log.create_topic_with("t", 1, retention(Some(60_000), None))
        .unwrap();
    append_range(&log, "t", 0, 0, 500, 5);
    let segments = segment_files(dir.path(), "t", 0).len();
    assert!(segments > 3);
    // Nothing is a minute old yet.
    assert_eq!(
        log.apply_retention(SystemTime::now(), |_, _| 500).unwrap(),
        0
    );
    let later = SystemTime::now() + Duration::from_secs(3600);
    // Only what is committed (below 200) may go.
    log.apply_retention(later, |_, _| 200).unwrap();
    let start = log.start_offset("t", 0).unwrap();
    assert!(start > 0 && start <= 200, "start {start}");
    assert_values(&read_all(&log, "t", 0, 0), start, 500);
    // Everything committed: all but the segment being written.
    log.apply_retention(later, |_, _| 500).unwrap();
    assert_eq!(segment_files(dir.path(), "t", 0).len(), 1);
    let start = log.start_offset("t", 0).unwrap();
    assert_values(&read_all(&log, "t", 0, 0), start, 500);
    append_range(&log, "t", 0, 500, 520, 5);
    assert_values(&read_all(&log, "t", 0, 0), start, 520);
}

/// A record to append in the model test: (key, value).
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

#[derive(Debug, Clone)]
enum Op {
    Append(u32, Vec<KeyValue>),
    /// An append whose write fails (disk full) after this many bytes.
    FailedAppend(u32, Vec<KeyValue>, usize),
    Read(u32, u64, usize),
    Truncate(u32, u64),
    Sync(u32),
    /// Apply the topic's size retention with everything committed.
    Retain,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let bytes = prop::option::of(prop::collection::vec(any::<u8>(), 0..200));
    prop_oneof![
        6 => (0u32..2, prop::collection::vec((bytes.clone(), bytes.clone()), 0..8))
            .prop_map(|(p, recs)| Op::Append(p, recs)),
        1 => (0u32..2, prop::collection::vec((bytes.clone(), bytes), 1..8), 0usize..2000)
            .prop_map(|(p, recs, cut)| Op::FailedAppend(p, recs, cut)),
        2 => (0u32..2, 0u64..60, 1usize..20).prop_map(|(p, from, max)| Op::Read(p, from, max)),
        1 => (0u32..2, 0u64..60).prop_map(|(p, end)| Op::Truncate(p, end)),
        1 => (0u32..2).prop_map(Op::Sync),
        1 => Just(Op::Retain),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn log_matches_a_vec_of_records_across_reopens(ops in prop::collection::vec(op(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let options = LogOptions { segment_bytes: 512 };
        let mut log = Log::open_with(dir.path(), options).unwrap();
        log.create_topic_with("t", 2, retention(None, Some(1500))).unwrap();
        let mut model: Vec<Vec<Record>> = vec![Vec::new(), Vec::new()];
        // The first offset each partition still holds.
        let mut starts = [0u64; 2];
        let mut clock = 0i64;
        for op in ops {
            match op {
                Op::Append(p, recs) => {
                    let part = &mut model[p as usize];
                    let refs: Vec<RecordRef<'_>> = recs
                        .iter()
                        .map(|(k, v)| {
                            clock += 1;
                            RecordRef { timestamp: clock, key: k.as_deref(), value: v.as_deref() }
                        })
                        .collect();
                    for r in &refs {
                        part.push(Record {
                            offset: part.len() as u64,
                            timestamp: r.timestamp,
                            key: r.key.map(<[u8]>::to_vec),
                            value: r.value.map(<[u8]>::to_vec),
                        });
                    }
                    prop_assert_eq!(log.append("t", p, &refs).unwrap(), part.len() as u64);
                }
                Op::FailedAppend(p, recs, cut) => {
                    let refs: Vec<RecordRef<'_>> = recs
                        .iter()
                        .map(|(k, v)| RecordRef { timestamp: 1, key: k.as_deref(), value: v.as_deref() })
                        .collect();
                    partition::faults::fail_next_write(cut);
                    let err = log.append("t", p, &refs).unwrap_err();
                    prop_assert!(matches!(err, StorageError::Io { .. }), "{}", err);
                    // Nothing of it is kept: the model is unchanged.
                }
                Op::Read(p, from, max) => {
                    let mut out = Vec::new();
                    log.read("t", p, from, max, &mut out).unwrap();
                    let part = &model[p as usize];
                    let skip = from.max(starts[p as usize]) as usize;
                    let expected: Vec<Record> =
                        part.iter().skip(skip).take(max).cloned().collect();
                    prop_assert_eq!(out, expected);
                }
                Op::Truncate(p, end) => {
                    log.truncate("t", p, end).unwrap();
                    model[p as usize].truncate(end as usize);
                    let start = &mut starts[p as usize];
                    *start = (*start).min(end);
                }
                Op::Retain => {
                    log.apply_retention(SystemTime::now(), |_, _| u64::MAX).unwrap();
                    for (p, start) in starts.iter_mut().enumerate() {
                        let now = log.start_offset("t", p as u32).unwrap();
                        prop_assert!(now >= *start && now <= model[p].len() as u64);
                        *start = now;
                    }
                }
                Op::Sync(p) => log.sync("t", p, u64::MAX).unwrap(),
                Op::Reopen => {
                    drop(log);
                    log = Log::open_with(dir.path(), options).unwrap();
                }
            }
            for (p, part) in model.iter().enumerate() {
                let p = p as u32;
                let start = starts[p as usize];
                prop_assert_eq!(log.end_offset("t", p).unwrap(), part.len() as u64);
                prop_assert_eq!(log.start_offset("t", p).unwrap(), start);
                prop_assert_eq!(&read_all(&log, "t", p, 0), &part[start as usize..]);
            }
        }
    }
}
