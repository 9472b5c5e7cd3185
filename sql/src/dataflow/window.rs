//! Window assignment: which windows an event time belongs to.

use crate::parser::WindowKind;

/// Default grace period when none is given: 24 hours, as in ksqlDB.
pub const DEFAULT_GRACE_MS: i64 = 24 * 3600 * 1000;

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
}
