//! Equi-joins of two inputs, on one value computed from each side's row.
//! What a join keeps depends on what it joins (see [`JoinShape`]):
//!
//! - two tables: every live row of each side by join value; a change on
//!   either side emits the changes of the joined rows it touches, so
//!   updates, deletes and foreign keys that move retract what they joined;
//! - a stream and a table: the table's versions by event time; a stream
//!   record joins the version current at its own event time, and table
//!   changes emit nothing;
//! - two streams: each side's records while a record of the other side
//!   could still fall into their window; pairs are emitted as they meet,
//!   and, for outer joins, a record that met nothing when it expires.
//!
//! A joined row is the left row, then the right row (NULLs for a missing
//! side), then for a FULL OUTER join the join value (ROWKEY). A NULL join
//! value never matches. State lives in memory; only entries changed since
//! the last [`Join::drain_dirty`] are written at commit.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};

use super::{Change, Metrics, StateWrite};
use crate::binder::{JoinKind, JoinShape};
use crate::codec::{self, CodecError};
use crate::expr::Expr;
use crate::value::{Row, Value};

/// Which input of a join a change comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    fn tag(self) -> u8 {
        match self {
            Side::Left => b'l',
            Side::Right => b'r',
        }
    }

    fn of_tag(tag: u8) -> Option<Side> {
        match tag {
            b'l' => Some(Side::Left),
            b'r' => Some(Side::Right),
            _ => None,
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Left => Side::Right,
            Side::Right => Side::Left,
        }
    }
}

/// State-key tags inside the operator's namespace (besides the sides').
const VERSION_TAG: u8 = b'v';
const META_TAG: u8 = b'm';

#[derive(Debug)]
pub struct Join {
    shape: Shape,
    pub(super) left_key: Expr,
    pub(super) right_key: Expr,
    state: State,
}

#[derive(Debug)]
enum State {
    Tables(Box<TableState>),
    Versions(Box<VersionState>),
    Windows(Box<WindowState>),
}

impl Join {
    pub fn new(
        kind: JoinKind,
        shape: JoinShape,
        left_key: Expr,
        right_key: Expr,
        left_width: usize,
        right_width: usize,
    ) -> Join {
        let state = match shape {
            JoinShape::TableTable { .. } => State::Tables(Box::default()),
            JoinShape::StreamTable { grace } => State::Versions(Box::new(VersionState {
                grace,
                stream_time: i64::MIN,
                versions: HashMap::new(),
                count: 0,
                prunable: BTreeSet::new(),
                dirty: HashSet::new(),
                meta_dirty: false,
            })),
            JoinShape::StreamStream {
                before,
                after,
                grace,
            } => State::Windows(Box::new(WindowState {
                before,
                after,
                grace,
                stream_time: i64::MIN,
                next_id: 0,
                records: HashMap::new(),
                counts: [0, 0],
                by_key: [HashMap::new(), HashMap::new()],
                expiry: BTreeSet::new(),
                dirty: HashSet::new(),
                meta_dirty: false,
            })),
        };
        Join {
            shape: Shape {
                kind,
                left_width,
                right_width,
            },
            left_key,
            right_key,
            state,
        }
    }

    /// Width of the left row.
    pub(super) fn left_width(&self) -> usize {
        self.shape.left_width
    }

    /// Joins a batch of changes from one side, appending to `out`.
    pub fn process(
        &mut self,
        side: Side,
        input: &mut Vec<Change>,
        out: &mut Vec<Change>,
        metrics: &mut Metrics,
    ) {
        let shape = &self.shape;
        let key_expr = match side {
            Side::Left => &self.left_key,
            Side::Right => &self.right_key,
        };
        for c in input.drain(..) {
            let key = match key_expr.eval(&c.row) {
                Ok(k) => k,
                Err(e) => {
                    metrics.error(e);
                    continue;
                }
            };
            match &mut self.state {
                State::Tables(s) => s.change(shape, side, key, c, out),
                State::Versions(s) => s.change(shape, side, key, c, out),
                State::Windows(s) => s.record(shape, side, key, c, out, metrics),
            }
        }
        if let State::Windows(s) = &mut self.state {
            s.expire(shape, out);
        }
    }

    pub fn drain_dirty(&mut self, out: &mut Vec<StateWrite>) {
        match &mut self.state {
            State::Tables(s) => s.drain_dirty(out),
            State::Versions(s) => s.drain_dirty(out),
            State::Windows(s) => s.drain_dirty(out),
        }
    }

    pub fn snapshot(&self, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        match &self.state {
            State::Tables(s) => s.snapshot(out),
            State::Versions(s) => s.snapshot(out),
            State::Windows(s) => s.snapshot(out),
        }
    }

    pub fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), CodecError> {
        match &mut self.state {
            State::Tables(s) => s.restore(key, value),
            State::Versions(s) => s.restore(key, value),
            State::Windows(s) => s.restore(key, value),
        }
    }

    /// Entries held for each side: (left, right). A stream-table join
    /// keeps nothing of the stream.
    pub fn sizes(&self) -> (usize, usize) {
        match &self.state {
            State::Tables(s) => (s.counts[0], s.counts[1]),
            State::Versions(s) => (0, s.count),
            State::Windows(s) => (s.counts[0], s.counts[1]),
        }
    }

    pub fn len(&self) -> usize {
        let (l, r) = self.sizes();
        l + r
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How joined rows are built.
#[derive(Debug)]
struct Shape {
    kind: JoinKind,
    left_width: usize,
    right_width: usize,
}

impl Shape {
    /// The row for `row` of `side` met with `other` (NULLs when `None`).
    fn joined(&self, side: Side, row: &Row, other: Option<&Row>, key: &Value) -> Row {
        let (l, r) = match side {
            Side::Left => (Some(row), other),
            Side::Right => (other, Some(row)),
        };
        let mut out = Vec::with_capacity(self.left_width + self.right_width + 1);
        match l {
            Some(l) => out.extend_from_slice(l),
            None => out.resize(self.left_width, Value::Null),
        }
        match r {
            Some(r) => out.extend_from_slice(r),
            None => out.resize(self.left_width + self.right_width, Value::Null),
        }
        if self.kind == JoinKind::Full {
            out.push(key.clone());
        }
        out
    }

    fn keeps(&self, side: Side) -> bool {
        match side {
            Side::Left => self.kind.keeps_left(),
            Side::Right => self.kind.keeps_right(),
        }
    }
}

fn index(side: Side) -> usize {
    match side {
        Side::Left => 0,
        Side::Right => 1,
    }
}

fn emit(out: &mut Vec<Change>, row: Row, time: i64, diff: i32) {
    out.push(Change::new(row, time, diff));
}

// ---------------------------------------------------------------- tables

/// Live rows of each side by join value, with their multiplicity.
#[derive(Debug, Default)]
struct TableState {
    rows: [HashMap<Value, HashMap<Row, i64>>; 2],
    /// Distinct rows per side.
    counts: [usize; 2],
    dirty: HashSet<(Side, Value, Row)>,
}

impl TableState {
    /// Retractions go out before insertions of the same key, so a table
    /// sink applying them in order ends at the right row.
    fn change(&mut self, shape: &Shape, side: Side, key: Value, c: Change, out: &mut Vec<Change>) {
        if key.is_null() {
            if shape.keeps(side) {
                emit(out, shape.joined(side, &c.row, None, &key), c.time, c.diff);
            }
            return;
        }
        let mine = &mut self.rows[index(side)];
        let was_empty = !mine.contains_key(&key);
        let bucket = mine.entry(key.clone()).or_default();
        let count = bucket.entry(c.row.clone()).or_insert_with(|| {
            self.counts[index(side)] += 1;
            0
        });
        let diff = c.diff.signum();
        *count += i64::from(diff);
        if *count <= 0 {
            bucket.remove(&c.row);
            self.counts[index(side)] -= 1;
        }
        if bucket.is_empty() {
            mine.remove(&key);
        }
        let now_empty = !mine.contains_key(&key);
        self.dirty.insert((side, key.clone(), c.row.clone()));
        let others = self.rows[index(side.other())].get(&key);
        let other_unmatched = |out: &mut Vec<Change>, diff: i32| {
            if let Some(others) = others.filter(|_| shape.keeps(side.other())) {
                for (r, &n) in others {
                    for _ in 0..n {
                        emit(out, shape.joined(side.other(), r, None, &key), c.time, diff);
                    }
                }
            }
        };
        if diff > 0 && was_empty && !now_empty {
            other_unmatched(out, -1);
        }
        match others {
            Some(others) => {
                for (r, &n) in others {
                    for _ in 0..n {
                        emit(out, shape.joined(side, &c.row, Some(r), &key), c.time, diff);
                    }
                }
            }
            None if shape.keeps(side) => {
                emit(out, shape.joined(side, &c.row, None, &key), c.time, diff);
            }
            None => {}
        }
        if diff < 0 && !was_empty && now_empty {
            other_unmatched(out, 1);
        }
    }

    fn state_key(side: Side, key: &Value, row: &Row) -> Vec<u8> {
        let mut k = vec![side.tag()];
        codec::encode_key(std::slice::from_ref(key), &mut k);
        codec::encode_key(row, &mut k);
        k
    }

    fn drain_dirty(&mut self, out: &mut Vec<StateWrite>) {
        for (side, key, row) in self.dirty.drain() {
            let n = self.rows[index(side)]
                .get(&key)
                .and_then(|b| b.get(&row))
                .copied();
            out.push((
                Self::state_key(side, &key, &row),
                n.map(|n| n.to_be_bytes().to_vec()),
            ));
        }
    }

    fn snapshot(&self, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        for side in [Side::Left, Side::Right] {
            for (key, bucket) in &self.rows[index(side)] {
                for (row, n) in bucket {
                    out.push((Self::state_key(side, key, row), n.to_be_bytes().to_vec()));
                }
            }
        }
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), CodecError> {
        let Some((&tag, rest)) = key.split_first() else {
            return Ok(());
        };
        let Some(side) = Side::of_tag(tag) else {
            return Ok(());
        };
        let mut values = codec::decode_key(rest)?;
        if values.is_empty() {
            return Err(CodecError::Corrupt(
                "join state key without a join value".into(),
            ));
        }
        let row = values.split_off(1);
        let n = i64::from_be_bytes(
            value
                .try_into()
                .map_err(|_| CodecError::Corrupt("join state count is not 8 bytes".into()))?,
        );
        let bucket = self.rows[index(side)].entry(values.remove(0)).or_default();
        if bucket.insert(row, n).is_none() {
            self.counts[index(side)] += 1;
        }
        Ok(())
    }
}

// ------------------------------------------------------- stream x table

/// The table side's versions by join value (its primary key), oldest
/// first; `None` is a deletion.
#[derive(Debug)]
struct VersionState {
    grace: i64,
    /// Max event time of the stream side's records.
    stream_time: i64,
    versions: HashMap<Value, Vec<(i64, Option<Row>)>>,
    /// Versions held.
    count: usize,
    /// Keys that may have versions to forget, by the time from which they
    /// do (the second version's, or a lone deletion's).
    prunable: BTreeSet<(i64, KeyOrd)>,
    dirty: HashSet<(Value, i64)>,
    meta_dirty: bool,
}

/// A join value in an ordered set: by its key encoding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KeyOrd(Vec<u8>);

impl KeyOrd {
    fn of(key: &Value) -> KeyOrd {
        let mut k = Vec::new();
        codec::encode_key(std::slice::from_ref(key), &mut k);
        KeyOrd(k)
    }
}

fn prunable_from(versions: &[(i64, Option<Row>)]) -> Option<i64> {
    match versions {
        [_, (t, _), ..] => Some(*t),
        [(t, None)] => Some(*t),
        _ => None,
    }
}

impl VersionState {
    fn change(&mut self, shape: &Shape, side: Side, key: Value, c: Change, out: &mut Vec<Change>) {
        match side {
            Side::Left => self.lookup(shape, key, c, out),
            Side::Right => {
                if key.is_null() {
                    return;
                }
                // The table's topic as written (no upsert before the join:
                // it would collapse writes in arrival order, not by time):
                // an upsert is a version, a tombstone a deletion.
                let row = (c.diff > 0).then_some(c.row);
                self.set_version(key, c.time, row);
                self.prune();
            }
        }
    }

    fn lookup(&mut self, shape: &Shape, key: Value, c: Change, out: &mut Vec<Change>) {
        if c.diff <= 0 {
            return; // streams only insert
        }
        if c.time > self.stream_time {
            self.stream_time = c.time;
            self.meta_dirty = true;
            self.prune();
        }
        // The newest version at or before the record's time. A record
        // further behind stream time than the grace period may find the
        // version it needed forgotten: it sees what is kept.
        let version = self.versions.get(&key).and_then(|vs| {
            vs.iter()
                .rev()
                .find(|(t, _)| *t <= c.time)
                .and_then(|(_, row)| row.as_ref())
        });
        match version {
            Some(r) => emit(
                out,
                shape.joined(Side::Left, &c.row, Some(r), &key),
                c.time,
                1,
            ),
            None if shape.kind.keeps_left() => {
                emit(out, shape.joined(Side::Left, &c.row, None, &key), c.time, 1)
            }
            None => {}
        }
    }

    fn cutoff(&self) -> i64 {
        self.stream_time.saturating_sub(self.grace)
    }

    fn set_version(&mut self, key: Value, time: i64, row: Option<Row>) {
        let vs = self.versions.entry(key.clone()).or_default();
        let before = prunable_from(vs);
        match vs.binary_search_by_key(&time, |(t, _)| *t) {
            Ok(i) => vs[i].1 = row,
            Err(i) => {
                vs.insert(i, (time, row));
                self.count += 1;
            }
        }
        let after = prunable_from(vs);
        if before != after {
            let k = KeyOrd::of(&key);
            if let Some(t) = before {
                self.prunable.remove(&(t, k.clone()));
            }
            if let Some(t) = after {
                self.prunable.insert((t, k));
            }
        }
        self.dirty.insert((key, time));
    }

    /// Forgets the versions no stream record within the grace period can
    /// need: those older than each key's newest version at or before the
    /// cutoff, and keys whose only version left is a deletion.
    fn prune(&mut self) {
        let cutoff = self.cutoff();
        while let Some((t, k)) = self.prunable.first().cloned() {
            if t > cutoff {
                break;
            }
            self.prunable.pop_first();
            let key = match codec::decode_key(&k.0) {
                Ok(mut v) if v.len() == 1 => v.remove(0),
                _ => continue,
            };
            let Some(vs) = self.versions.get_mut(&key) else {
                continue;
            };
            let keep_from = vs.iter().rposition(|(t, _)| *t <= cutoff).unwrap_or(0);
            for (t, _) in vs.drain(..keep_from) {
                self.dirty.insert((key.clone(), t));
                self.count -= 1;
            }
            if matches!(vs.as_slice(), [(t, None)] if *t <= cutoff) {
                let (t, _) = vs.remove(0);
                self.dirty.insert((key.clone(), t));
                self.count -= 1;
            }
            match prunable_from(vs) {
                Some(t) => {
                    self.prunable.insert((t, k));
                }
                None if vs.is_empty() => {
                    self.versions.remove(&key);
                }
                None => {}
            }
        }
    }

    fn state_key(key: &Value, time: i64) -> Vec<u8> {
        let mut k = vec![VERSION_TAG];
        codec::encode_key(&[key.clone(), Value::BigInt(time)], &mut k);
        k
    }

    /// A version's stored value: its row, or nothing for a deletion.
    fn version_value(row: &Option<Row>) -> Vec<u8> {
        let mut v = Vec::new();
        if let Some(row) = row {
            codec::encode_row(row, &mut v);
        }
        v
    }

    fn drain_dirty(&mut self, out: &mut Vec<StateWrite>) {
        for (key, time) in self.dirty.drain() {
            let v = self.versions.get(&key).and_then(|vs| {
                vs.binary_search_by_key(&time, |(t, _)| *t)
                    .ok()
                    .map(|i| Self::version_value(&vs[i].1))
            });
            out.push((Self::state_key(&key, time), v));
        }
        if std::mem::take(&mut self.meta_dirty) {
            out.push((
                vec![META_TAG],
                Some(self.stream_time.to_be_bytes().to_vec()),
            ));
        }
    }

    fn snapshot(&self, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        for (key, vs) in &self.versions {
            for (t, row) in vs {
                out.push((Self::state_key(key, *t), Self::version_value(row)));
            }
        }
        // Written once a stream record set it, as `drain_dirty` does.
        if self.stream_time != i64::MIN {
            out.push((vec![META_TAG], self.stream_time.to_be_bytes().to_vec()));
        }
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), CodecError> {
        match key.split_first() {
            Some((&META_TAG, _)) => {
                self.stream_time =
                    i64::from_be_bytes(value.try_into().map_err(|_| {
                        CodecError::Corrupt("join stream time is not 8 bytes".into())
                    })?);
            }
            Some((&VERSION_TAG, rest)) => {
                let kv = codec::decode_key(rest)?;
                let [key, Value::BigInt(time)] = <[Value; 2]>::try_from(kv)
                    .map_err(|_| CodecError::Corrupt("join version key".into()))?
                else {
                    return Err(CodecError::Corrupt("join version key".into()));
                };
                let row = if value.is_empty() {
                    None
                } else {
                    Some(codec::decode_row(value)?)
                };
                self.set_version(key, time, row);
                self.dirty.clear();
            }
            _ => {}
        }
        Ok(())
    }
}

// ------------------------------------------------------ stream x stream

#[derive(Debug, Clone)]
struct Buffered {
    side: Side,
    key: Value,
    time: i64,
    row: Row,
    matched: bool,
}

/// Each side's records still in reach of the other side's.
#[derive(Debug)]
///
/// Stream time minus the grace period is the watermark: a record older
/// than it is late (dropped), and a record expires once the watermark
/// passes the end of its window, when no record that is not late can
/// still fall into it.
struct WindowState {
    before: i64,
    after: i64,
    grace: i64,
    /// Max event time across both sides.
    stream_time: i64,
    next_id: u64,
    records: HashMap<u64, Buffered>,
    /// Records held per side.
    counts: [usize; 2],
    /// Ids of each side's records by join value.
    by_key: [HashMap<Value, Vec<u64>>; 2],
    /// (expiry time, id), soonest first.
    expiry: BTreeSet<(i64, u64)>,
    dirty: HashSet<u64>,
    meta_dirty: bool,
}

impl WindowState {
    fn record(
        &mut self,
        shape: &Shape,
        side: Side,
        key: Value,
        c: Change,
        out: &mut Vec<Change>,
        metrics: &mut Metrics,
    ) {
        if c.diff <= 0 {
            return; // streams only insert
        }
        if c.time < self.watermark() {
            metrics.late_drops += 1;
            return;
        }
        if c.time > self.stream_time {
            self.stream_time = c.time;
            self.meta_dirty = true;
        }
        if key.is_null() {
            // Can never match.
            if shape.keeps(side) {
                emit(out, shape.joined(side, &c.row, None, &key), c.time, 1);
            }
            return;
        }
        // The other side's time must be within [lo, hi] of this record's.
        let (lo, hi) = match side {
            Side::Left => (
                c.time.saturating_sub(self.before),
                c.time.saturating_add(self.after),
            ),
            Side::Right => (
                c.time.saturating_sub(self.after),
                c.time.saturating_add(self.before),
            ),
        };
        let mut matched = false;
        if let Some(ids) = self.by_key[index(side.other())].get(&key) {
            for id in ids {
                let Some(o) = self.records.get_mut(id) else {
                    continue;
                };
                if o.time < lo || o.time > hi {
                    continue;
                }
                matched = true;
                if !o.matched {
                    o.matched = true;
                    self.dirty.insert(*id);
                }
                let row = shape.joined(side, &c.row, Some(&o.row), &key);
                emit(out, row, c.time.max(o.time), 1);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.meta_dirty = true;
        self.insert(
            id,
            Buffered {
                side,
                key,
                time: c.time,
                row: c.row,
                matched,
            },
        );
        self.dirty.insert(id);
    }

    fn watermark(&self) -> i64 {
        self.stream_time.saturating_sub(self.grace)
    }

    /// The end of a record's window: the latest time of the other side's
    /// records it joins.
    fn window_end(&self, side: Side, time: i64) -> i64 {
        time.saturating_add(match side {
            Side::Left => self.after,
            Side::Right => self.before,
        })
    }

    fn insert(&mut self, id: u64, b: Buffered) {
        self.by_key[index(b.side)]
            .entry(b.key.clone())
            .or_default()
            .push(id);
        self.expiry.insert((self.window_end(b.side, b.time), id));
        self.counts[index(b.side)] += 1;
        self.records.insert(id, b);
    }

    /// Drops the records whose window the watermark has passed; outer
    /// sides emit theirs that met nothing.
    fn expire(&mut self, shape: &Shape, out: &mut Vec<Change>) {
        let watermark = self.watermark();
        while let Some(&(end, id)) = self.expiry.first() {
            if end >= watermark {
                break;
            }
            self.expiry.pop_first();
            let Some(b) = self.records.remove(&id) else {
                continue;
            };
            self.dirty.insert(id);
            self.counts[index(b.side)] -= 1;
            let ids = self.by_key[index(b.side)].get_mut(&b.key);
            if let Some(ids) = ids {
                ids.retain(|i| *i != id);
                if ids.is_empty() {
                    self.by_key[index(b.side)].remove(&b.key);
                }
            }
            if !b.matched && shape.keeps(b.side) {
                emit(out, shape.joined(b.side, &b.row, None, &b.key), b.time, 1);
            }
        }
    }

    fn state_key(id: u64) -> Vec<u8> {
        let mut k = vec![b'b'];
        k.extend_from_slice(&id.to_be_bytes());
        k
    }

    fn record_value(b: &Buffered) -> Vec<u8> {
        let mut row = Vec::with_capacity(b.row.len() + 4);
        row.push(Value::str(if b.side == Side::Left { "l" } else { "r" }));
        row.push(b.key.clone());
        row.push(Value::BigInt(b.time));
        row.push(Value::Boolean(b.matched));
        row.extend_from_slice(&b.row);
        let mut v = Vec::new();
        codec::encode_row(&row, &mut v);
        v
    }

    fn meta(&self) -> Vec<u8> {
        let mut v = self.stream_time.to_be_bytes().to_vec();
        v.extend_from_slice(&self.next_id.to_be_bytes());
        v
    }

    fn drain_dirty(&mut self, out: &mut Vec<StateWrite>) {
        for id in self.dirty.drain() {
            out.push((
                Self::state_key(id),
                self.records.get(&id).map(Self::record_value),
            ));
        }
        if std::mem::take(&mut self.meta_dirty) {
            out.push((vec![META_TAG], Some(self.meta())));
        }
    }

    fn snapshot(&self, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        for (id, b) in &self.records {
            out.push((Self::state_key(*id), Self::record_value(b)));
        }
        // Written once a record set it, as `drain_dirty` does.
        if self.stream_time != i64::MIN {
            out.push((vec![META_TAG], self.meta()));
        }
    }

    fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), CodecError> {
        let corrupt = |what: &str| CodecError::Corrupt(format!("bad stream join {what}"));
        match key.split_first() {
            Some((&META_TAG, _)) => {
                let (t, n) = value.split_at_checked(8).ok_or_else(|| corrupt("meta"))?;
                self.stream_time = i64::from_be_bytes(t.try_into().map_err(|_| corrupt("meta"))?);
                self.next_id = u64::from_be_bytes(n.try_into().map_err(|_| corrupt("meta"))?);
            }
            Some((&b'b', id)) => {
                let id = u64::from_be_bytes(id.try_into().map_err(|_| corrupt("record key"))?);
                let mut row = codec::decode_row(value)?;
                if row.len() < 4 {
                    return Err(corrupt("record"));
                }
                let rest = row.split_off(4);
                let (side, key, time, matched) = match &row[..] {
                    [Value::String(s), key, Value::BigInt(t), Value::Boolean(m)] => (
                        if &**s == "l" { Side::Left } else { Side::Right },
                        key.clone(),
                        *t,
                        *m,
                    ),
                    _ => return Err(corrupt("record")),
                };
                self.insert(
                    id,
                    Buffered {
                        side,
                        key,
                        time,
                        row: rest,
                        matched,
                    },
                );
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "join_tests.rs"]
mod tests;
