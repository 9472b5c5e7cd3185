//! Window assignment (which windows an event time belongs to) and the
//! time rules of a window clause: span, grace period and retention.

use crate::parser::{WindowClause, WindowKind};

/// Default grace period when none is given: 24 hours, as in ksqlDB.
pub const DEFAULT_GRACE_MS: i64 = 24 * 3600 * 1000;

/// The least time a windowed table keeps a window's row when RETENTION is
/// not given: one day, Kafka Streams' default for window stores.
pub const DEFAULT_RETENTION_MS: i64 = 24 * 3600 * 1000;

/// How long a window can take records after it starts, grace aside: the
/// size of a tumbling or hopping window, the gap of a session.
pub fn span_ms(kind: &WindowKind) -> i64 {
    match *kind {
        WindowKind::Tumbling { size } | WindowKind::Hopping { size, .. } => size,
        WindowKind::Session { gap } => gap,
    }
}

/// The grace period of a window clause: `GRACE PERIOD`, else 24 hours.
pub fn grace_ms(w: &WindowClause) -> i64 {
    w.grace.unwrap_or(DEFAULT_GRACE_MS)
}

/// How long (ms of event time) a windowed table keeps a row after its
/// WINDOWEND: `RETENTION`, else the larger of one day and span plus grace,
/// so a default never drops a window that can still change.
pub fn retention_ms(w: &WindowClause) -> i64 {
    w.retention
        .unwrap_or_else(|| DEFAULT_RETENTION_MS.max(span_ms(&w.kind).saturating_add(grace_ms(w))))
}

/// The `[start, end)` windows of a tumbling or hopping window that contain
/// `t`, earliest first. Session windows are not fixed: see the aggregate.
pub fn assign(kind: &WindowKind, t: i64, out: &mut Vec<(i64, i64)>) {
    out.clear();
    let (size, advance) = match *kind {
        WindowKind::Tumbling { size } => (size, size),
        WindowKind::Hopping { size, advance } => (size, advance),
        WindowKind::Session { .. } => return,
    };
    // The last window starting at or before t, then step back while the
    // window still contains t.
    let last = t.div_euclid(advance) * advance;
    let mut start = last;
    while start > t.saturating_sub(size) {
        start -= advance;
    }
    start += advance;
    while start <= last {
        out.push((start, start + size));
        start += advance;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(kind: WindowKind, t: i64) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        assign(&kind, t, &mut out);
        out
    }

    #[test]
    fn tumbling() {
        let k = WindowKind::Tumbling { size: 10 };
        assert_eq!(windows(k, 0), vec![(0, 10)]);
        assert_eq!(windows(k, 9), vec![(0, 10)]);
        assert_eq!(windows(k, 10), vec![(10, 20)]);
        assert_eq!(windows(k, -1), vec![(-10, 0)]);
    }

    #[test]
    fn hopping() {
        let k = WindowKind::Hopping {
            size: 10,
            advance: 5,
        };
        assert_eq!(windows(k, 7), vec![(0, 10), (5, 15)]);
        assert_eq!(windows(k, 5), vec![(0, 10), (5, 15)]);
        assert_eq!(windows(k, 4), vec![(-5, 5), (0, 10)]);
        let k = WindowKind::Hopping {
            size: 10,
            advance: 3,
        };
        // Starts 0, 3, 6, 9 contain 9; -3 does not (ends at 7).
        assert_eq!(windows(k, 9), vec![(0, 10), (3, 13), (6, 16), (9, 19)]);
    }

    fn clause(kind: WindowKind, grace: Option<i64>, retention: Option<i64>) -> WindowClause {
        WindowClause {
            kind,
            grace,
            retention,
        }
    }

    #[test]
    fn retention_defaults_to_a_day_or_span_plus_grace() {
        const DAY: i64 = 86_400_000;
        let minute = WindowKind::Tumbling { size: 60_000 };
        // Default grace (a day) plus the size is more than a day.
        assert_eq!(retention_ms(&clause(minute, None, None)), DAY + 60_000);
        // A short grace: a day wins.
        assert_eq!(retention_ms(&clause(minute, Some(0), None)), DAY);
        let week = WindowKind::Hopping {
            size: 7 * DAY,
            advance: DAY,
        };
        assert_eq!(retention_ms(&clause(week, Some(0), None)), 7 * DAY);
        let session = WindowKind::Session { gap: 2 * DAY };
        assert_eq!(retention_ms(&clause(session, Some(1), None)), 2 * DAY + 1);
        // RETENTION given: taken as is (the binder checks its lower bound).
        assert_eq!(retention_ms(&clause(minute, Some(0), Some(5_000))), 5_000);
    }
}
