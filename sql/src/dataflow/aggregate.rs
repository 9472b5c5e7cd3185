//! GROUP BY with aggregates, unwindowed or over tumbling, hopping and
//! session windows, with grace periods, late-record counting, retraction
//! (table sources) and EMIT CHANGES / EMIT FINAL.
//!
//! Output rows are `[group values.., (WINDOWSTART, WINDOWEND)?, results..]`.
//! With EMIT CHANGES, each batch emits, per group touched, the retraction of
//! its previous row and its new row (nothing when unchanged); a persistent
//! query's aggregate holds these back until the flush before its commit
//! ([`Aggregate::coalesce_changes`]), so a group emits once per commit. With
//! EMIT FINAL, a window emits one row when it closes.
//!
//! State lives in memory; [`Aggregate::drain_dirty`] yields only the
//! entries changed since the last commit, so the store sees one write per
//! group per commit, not per event. Closed windows are dropped.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;

// foldhash, seeded per process: several lookups per record and window, where
// SipHash was a tenth of the time.
use foldhash::{HashMap, HashMapExt};
use smallvec::SmallVec;

use super::window::{assign, DEFAULT_GRACE_MS};
use super::{Change, Metrics, StateWrite};
use crate::binder::AggCall;
use crate::codec::{self, CodecError};
use crate::expr::agg::Accumulator;
use crate::expr::Expr;
use crate::parser::{WindowClause, WindowKind};
use crate::value::{Row, Value};

/// A group's values: inline for one GROUP BY expression, the usual case,
/// so that a lookup compares the key where the map keeps it rather than
/// behind a pointer, and a copy of the key allocates nothing.
type GroupValues = SmallVec<[Value; 1]>;

/// Group values plus window start (0 when unwindowed).
type GroupKey = (GroupValues, i64);

/// What a batch remembers of a group it changed (EMIT CHANGES).
#[derive(Debug, Clone)]
struct Touch {
    /// The group's output before the batch, if it had one.
    old: Option<Row>,
    /// The latest event time that changed it.
    time: i64,
}

#[derive(Debug, Clone)]
struct Group {
    /// Window end (exclusive for tumbling/hopping; the last event time for
    /// sessions). Unused when unwindowed.
    end: i64,
    /// Live input rows (inserts minus retractions).
    rows: i64,
    /// Latest event time that contributed: the output's ROWTIME.
    max_time: i64,
    accs: Vec<Accumulator>,
    /// Set while the current batch has changed it; its key is in
    /// `Aggregate::touched`.
    touch: Option<Touch>,
    /// Changed since the last commit; its key is in `Aggregate::dirty`.
    dirty: bool,
}

impl Group {
    fn new(end: i64, accs: Vec<Accumulator>) -> Group {
        Group {
            end,
            rows: 0,
            max_time: i64::MIN,
            accs,
            touch: None,
            dirty: false,
        }
    }
}

/// State-key tags inside the operator's namespace.
const GROUP_TAG: u8 = b'g';
const META_TAG: u8 = b'm';

#[derive(Debug)]
pub struct Aggregate {
    group_by: Vec<Expr>,
    calls: Vec<AggCall>,
    window: Option<WindowKind>,
    grace: i64,
    emit_final: bool,
    /// EMIT CHANGES: changes wait for [`Aggregate::flush`] instead of
    /// going out at the end of each batch, so a group changed by many
    /// batches between two commits emits once (as Kafka Streams' record
    /// cache does).
    coalesce: bool,
    /// Fresh accumulators, cloned for each new group.
    proto: Vec<Accumulator>,
    /// Each record looks its group up once per window: the group itself
    /// says whether this batch or commit already changed it.
    groups: HashMap<GroupKey, Group>,
    /// Session windows per group value: start -> end.
    sessions: HashMap<GroupValues, BTreeMap<i64, i64>>,
    /// Keys of windows by the stream time at which they close: a push per
    /// new window, as windows share few close times. A group removed, or
    /// made again with another end, leaves its entry: it counts only while
    /// its group is there and still closes at that time.
    closing: BTreeMap<i64, Vec<GroupKey>>,
    /// Max event time seen; -inf before the first record.
    stream_time: i64,
    /// Keys changed since the last commit: of the groups marked dirty, and
    /// of groups removed since. A key removed and made again is here twice.
    dirty: Vec<GroupKey>,
    meta_dirty: bool,
    // Changes not emitted yet (EMIT CHANGES only): of this batch, or since
    // the last flush when coalescing.
    /// Keys of the groups changed.
    touched: Vec<GroupKey>,
    /// Groups changed and then removed (sessions merged into one at
    /// another start), with what they output before it.
    gone: HashMap<GroupKey, Touch>,
    args: Vec<Vec<Value>>,
    windows: Vec<(i64, i64)>,
}

impl Aggregate {
    /// `insert_only` when the input never retracts (a stream source): lets
    /// MIN/MAX/TOPK keep bounded state.
    pub fn try_new(
        group_by: Vec<Expr>,
        calls: Vec<AggCall>,
        window: Option<&WindowClause>,
        emit_final: bool,
        insert_only: bool,
    ) -> Result<Aggregate, String> {
        let proto = calls
            .iter()
            .map(|c| {
                if insert_only {
                    Accumulator::try_new_insert_only(c.func, &c.arg_types, &c.params)
                } else {
                    Accumulator::try_new(c.func, &c.arg_types, &c.params)
                }
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Aggregate {
            args: vec![Vec::new(); calls.len()],
            group_by,
            calls,
            window: window.map(|w| w.kind),
            grace: window.and_then(|w| w.grace).unwrap_or(DEFAULT_GRACE_MS),
            emit_final,
            coalesce: false,
            proto,
            groups: HashMap::new(),
            sessions: HashMap::new(),
            closing: BTreeMap::new(),
            stream_time: i64::MIN,
            dirty: Vec::new(),
            meta_dirty: false,
            touched: Vec::new(),
            gone: HashMap::new(),
            windows: Vec::new(),
        })
    }

    /// From now on, EMIT CHANGES output waits for [`Aggregate::flush`].
    pub fn coalesce_changes(&mut self) {
        self.coalesce = true;
    }

    /// Emits the changes held back since the last flush (see
    /// [`Aggregate::coalesce_changes`]).
    pub fn flush(&mut self, out: &mut Vec<Change>) {
        if !self.emit_final {
            self.emit_changes(out);
        }
    }

    /// The expressions it evaluates over its input rows.
    pub fn inputs(&self) -> impl Iterator<Item = &Expr> {
        self.group_by
            .iter()
            .chain(self.calls.iter().flat_map(|c| c.args.iter()))
    }

    /// Groups (windows) held in memory.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The stream time at which a window stops accepting records.
    fn close_at(&self, end: i64) -> i64 {
        match self.window {
            // A later record can still merge while it is within the gap.
            Some(WindowKind::Session { gap }) => end
                .saturating_add(gap)
                .saturating_add(self.grace)
                .saturating_add(1),
            _ => end.saturating_add(self.grace),
        }
    }

    pub fn process(
        &mut self,
        input: &mut Vec<Change>,
        out: &mut Vec<Change>,
        metrics: &mut Metrics,
    ) {
        for c in input.drain(..) {
            let mut key_values = GroupValues::with_capacity(self.group_by.len());
            let mut failed = None;
            for e in &self.group_by {
                match e.eval(&c.row) {
                    Ok(v) => key_values.push(v),
                    Err(err) => {
                        failed = Some(err);
                        break;
                    }
                }
            }
            if failed.is_none() {
                'calls: for (i, call) in self.calls.iter().enumerate() {
                    self.args[i].clear();
                    for a in &call.args {
                        match a.eval(&c.row) {
                            Ok(v) => self.args[i].push(v),
                            Err(err) => {
                                failed = Some(err);
                                break 'calls;
                            }
                        }
                    }
                }
            }
            if let Some(err) = failed {
                metrics.error(err);
                continue;
            }
            // ksqlDB drops records whose group key is NULL.
            if key_values.iter().any(Value::is_null) {
                continue;
            }
            match self.window {
                None => {
                    self.apply(key_values, 0, 0, c.time, c.diff);
                }
                Some(WindowKind::Session { gap }) => {
                    self.advance_time(c.time);
                    self.apply_session(key_values, gap, c.time, c.diff, metrics)
                }
                Some(kind) => {
                    self.advance_time(c.time);
                    let mut windows = std::mem::take(&mut self.windows);
                    assign(&kind, c.time, &mut windows);
                    let mut accepted = false;
                    let mut key_values = key_values;
                    for &(start, end) in &windows {
                        if self.stream_time >= self.close_at(end) {
                            continue; // this window has closed
                        }
                        accepted = true;
                        key_values = self.apply(key_values, start, end, c.time, c.diff);
                    }
                    self.windows = windows;
                    if !accepted {
                        metrics.late_drops += 1;
                    }
                }
            }
        }
        if !self.coalesce {
            self.flush(out);
        }
        self.close_windows(out);
    }

    fn advance_time(&mut self, t: i64) {
        if t > self.stream_time {
            self.stream_time = t;
            self.meta_dirty = true;
        }
    }

    /// Adds the record's arguments to (or retracts them from) the group of
    /// `values` in the window at `start`; gives `values` back for the next
    /// window.
    fn apply(
        &mut self,
        values: GroupValues,
        start: i64,
        end: i64,
        time: i64,
        diff: i32,
    ) -> GroupValues {
        let key = (values, start);
        let windowed = self.window.is_some();
        // Out of `self` while `g` borrows it.
        let args = std::mem::take(&mut self.args);
        let g = match self.groups.get_mut(&key) {
            Some(g) => {
                if g.rows == 0 && g.max_time != i64::MIN {
                    // Emptied by retractions and kept only until its
                    // change is emitted: it starts again as a new group.
                    g.max_time = i64::MIN;
                    g.accs.clone_from(&self.proto);
                }
                if g.touch.is_none() && !self.emit_final {
                    let old = (g.rows > 0).then(|| output_row(windowed, &key, g));
                    g.touch = Some(Touch { old, time });
                    self.touched.push(key.clone());
                }
                if !g.dirty {
                    g.dirty = true;
                    self.dirty.push(key.clone());
                }
                g
            }
            None => {
                let g = Group::new(end, self.proto.clone());
                self.insert_group(key.clone(), g, time)
            }
        };
        if let Some(t) = &mut g.touch {
            t.time = t.time.max(time);
        }
        for (acc, args) in g.accs.iter_mut().zip(&args) {
            if diff > 0 {
                acc.add(args);
            } else {
                acc.retract(args);
            }
        }
        g.rows += i64::from(diff.signum());
        g.max_time = g.max_time.max(time);
        self.args = args;
        key.0
    }

    /// Adds a group that is not there, marked changed by this batch (taking
    /// over what a group removed under its key earlier in the batch had
    /// output) and dirty.
    fn insert_group(&mut self, key: GroupKey, mut g: Group, time: i64) -> &mut Group {
        if !self.emit_final {
            let earlier = if self.gone.is_empty() {
                None
            } else {
                self.gone.remove(&key)
            };
            g.touch = Some(earlier.unwrap_or_else(|| {
                self.touched.push(key.clone());
                Touch { old: None, time }
            }));
        }
        if self.window.is_some() {
            self.closing
                .entry(self.close_at(g.end))
                .or_default()
                .push(key.clone());
        }
        g.dirty = true;
        self.dirty.push(key.clone());
        // A closed session not purged yet may still be there: replaced.
        match self.groups.entry(key) {
            Entry::Occupied(mut o) => {
                o.insert(g);
                o.into_mut()
            }
            Entry::Vacant(v) => v.insert(g),
        }
    }

    fn apply_session(
        &mut self,
        key_values: GroupValues,
        gap: i64,
        time: i64,
        diff: i32,
        metrics: &mut Metrics,
    ) {
        let sessions = self.sessions.entry(key_values.clone()).or_default();
        // Sessions this record touches: start - gap <= t <= end + gap.
        // Sessions closed earlier in this batch are gone, even if not purged yet.
        let (stream_time, grace) = (self.stream_time, self.grace);
        let closed = |end: i64| {
            stream_time
                >= end
                    .saturating_add(gap)
                    .saturating_add(grace)
                    .saturating_add(1)
        };
        let overlapping: Vec<(i64, i64)> = sessions
            .range(..=time.saturating_add(gap))
            .filter(|(_, &end)| end.saturating_add(gap) >= time && !closed(end))
            .map(|(&s, &e)| (s, e))
            .collect();
        let start = overlapping
            .iter()
            .map(|w| w.0)
            .min()
            .unwrap_or(time)
            .min(time);
        let end = overlapping
            .iter()
            .map(|w| w.1)
            .max()
            .unwrap_or(time)
            .max(time);
        // An old record may join an open session where it already reaches
        // (from its start to its last event plus the gap), but not start a
        // session or move one's start earlier: that could revive a session
        // that closed (and, with EMIT FINAL, was final) at the same start.
        let moves_start = overlapping.first().is_none_or(|w| time < w.0);
        if moves_start && time < self.stream_time.saturating_sub(self.grace) {
            metrics.late_drops += 1;
            return;
        }
        // Merge the old sessions into one at `start`.
        let windowed = self.window.is_some();
        let mut merged = Group::new(end, self.proto.clone());
        for &(s, _) in &overlapping {
            let k = (key_values.clone(), s);
            if let Some(mut g) = self.groups.remove(&k) {
                for (a, b) in merged.accs.iter_mut().zip(&g.accs) {
                    a.merge(b);
                }
                merged.rows += g.rows;
                merged.max_time = merged.max_time.max(g.max_time);
                if !self.emit_final {
                    let touch = match g.touch.take() {
                        Some(t) => Touch {
                            time: t.time.max(time),
                            ..t
                        },
                        None => {
                            self.touched.push(k.clone());
                            let old = (g.rows > 0).then(|| output_row(windowed, &k, &g));
                            Touch { old, time }
                        }
                    };
                    self.gone.insert(k.clone(), touch);
                }
                if !g.dirty {
                    self.dirty.push(k.clone());
                }
            }
            if let Some(map) = self.sessions.get_mut(&key_values) {
                map.remove(&s);
            }
        }
        self.insert_group((key_values.clone(), start), merged, time);
        self.sessions
            .entry(key_values.clone())
            .or_default()
            .insert(start, end);
        self.apply(key_values, start, end, time, diff);
    }

    fn emit_changes(&mut self, out: &mut Vec<Change>) {
        let mut touched = std::mem::take(&mut self.touched);
        for key in touched.drain(..) {
            self.emit_change(&key, out);
            // A group with no rows left is gone (tables only).
            if self.groups.get(&key).is_some_and(|g| g.rows <= 0) {
                self.remove_group(&key);
            }
        }
        self.touched = touched;
        // Each was in `touched`, so emitted above.
        self.gone.clear();
    }

    /// The retraction of a changed group's old row and its new row, if
    /// they differ; nothing if the group has no change waiting (a key in
    /// `touched` twice, or emitted as its window closed).
    fn emit_change(&mut self, key: &GroupKey, out: &mut Vec<Change>) {
        let windowed = self.window.is_some();
        let (touch, new) = match self.groups.get_mut(key) {
            Some(g) => {
                let Some(touch) = g.touch.take() else {
                    return;
                };
                let new = (g.rows > 0).then(|| (output_row(windowed, key, g), g.max_time));
                (touch, new)
            }
            None => match self.gone.remove(key) {
                Some(touch) => (touch, None),
                None => return,
            },
        };
        let Touch {
            old,
            time: touched_at,
        } = touch;
        match (old, new) {
            (Some(o), Some((n, _))) if o == n => {}
            (old, new) => {
                let time = new.as_ref().map(|n| n.1).unwrap_or(touched_at);
                if let Some(o) = old {
                    out.push(Change::retract(o, time));
                }
                if let Some((n, t)) = new {
                    out.push(Change::insert(n, t));
                }
            }
        }
    }

    fn remove_group(&mut self, key: &GroupKey) {
        if let Some(g) = self.groups.remove(key) {
            if let Some(map) = self.sessions.get_mut(&key.0) {
                map.remove(&key.1);
                if map.is_empty() {
                    self.sessions.remove(&key.0);
                }
            }
            if !g.dirty {
                self.dirty.push(key.clone());
            }
        }
    }

    /// Drops windows whose close time has passed, emitting them first with
    /// EMIT FINAL.
    fn close_windows(&mut self, out: &mut Vec<Change>) {
        if self.window.is_none() {
            return;
        }
        while let Some(due) = self.closing.first_entry() {
            if *due.key() > self.stream_time {
                break;
            }
            let (close, mut keys) = due.remove_entry();
            if self.emit_final {
                keys.sort_unstable();
            }
            for key in keys {
                let Some(g) = self.groups.get(&key) else {
                    continue;
                };
                if self.close_at(g.end) != close {
                    continue; // a stale entry: the window moved on
                }
                if self.emit_final && g.rows > 0 {
                    out.push(Change::insert(output_row(true, &key, g), g.max_time));
                }
                if self.coalesce {
                    // A change held back for a flush goes out before its group.
                    self.emit_change(&key, out);
                }
                self.remove_group(&key);
            }
        }
    }

    pub fn drain_dirty(&mut self, out: &mut Vec<StateWrite>) {
        for key in self.dirty.drain(..) {
            let v = match self.groups.get_mut(&key) {
                // Written already: its key was here twice.
                Some(g) if !g.dirty => continue,
                Some(g) => {
                    g.dirty = false;
                    Some(Self::group_state(g))
                }
                None => None,
            };
            out.push((Self::group_state_key(&key), v));
        }
        if self.meta_dirty {
            self.meta_dirty = false;
            out.push((vec![META_TAG], Some(self.meta_state())));
        }
    }

    /// Every live state entry (what [`Aggregate::restore`] rebuilds it from).
    pub fn snapshot(&self, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        for (key, g) in &self.groups {
            out.push((Self::group_state_key(key), Self::group_state(g)));
        }
        if self.stream_time != i64::MIN {
            out.push((vec![META_TAG], self.meta_state()));
        }
    }

    fn group_state_key(key: &GroupKey) -> Vec<u8> {
        let mut k = vec![GROUP_TAG];
        codec::encode_key(&key.0, &mut k);
        codec::encode_key(&[Value::BigInt(key.1)], &mut k);
        k
    }

    fn group_state(g: &Group) -> Vec<u8> {
        let mut fields = vec![
            Value::BigInt(g.end),
            Value::BigInt(g.rows),
            Value::BigInt(g.max_time),
        ];
        fields.extend(g.accs.iter().map(Accumulator::to_state));
        let mut v = Vec::new();
        codec::encode_row(&fields, &mut v);
        v
    }

    fn meta_state(&self) -> Vec<u8> {
        let mut v = Vec::new();
        codec::encode_row(&[Value::BigInt(self.stream_time)], &mut v);
        v
    }

    pub fn restore(&mut self, key: &[u8], value: &[u8]) -> Result<(), CodecError> {
        let fields = codec::decode_row(value)?;
        let bad = || CodecError::Corrupt("aggregate state entry".into());
        match key.split_first() {
            Some((&META_TAG, _)) => {
                self.stream_time = fields.first().and_then(Value::as_i64).ok_or_else(bad)?;
            }
            Some((&GROUP_TAG, rest)) => {
                let mut parts = codec::decode_key(rest)?;
                let start = parts.pop().and_then(|v| v.as_i64()).ok_or_else(bad)?;
                let [end, rows, max_time] =
                    [0, 1, 2].map(|i| fields.get(i).and_then(Value::as_i64));
                let (Some(end), Some(rows), Some(max_time)) = (end, rows, max_time) else {
                    return Err(bad());
                };
                let mut accs = Vec::with_capacity(self.calls.len());
                for (i, c) in self.calls.iter().enumerate() {
                    let state = fields.get(3 + i).ok_or_else(bad)?;
                    let acc = Accumulator::from_state(c.func, &c.arg_types, &c.params, state)
                        .map_err(CodecError::Corrupt)?;
                    accs.push(acc);
                }
                let key = (GroupValues::from_vec(parts), start);
                if self.window.is_some() {
                    self.closing
                        .entry(self.close_at(end))
                        .or_default()
                        .push(key.clone());
                }
                if matches!(self.window, Some(WindowKind::Session { .. })) {
                    self.sessions
                        .entry(key.0.clone())
                        .or_default()
                        .insert(start, end);
                }
                let mut g = Group::new(end, accs);
                g.rows = rows;
                g.max_time = max_time;
                self.groups.insert(key, g);
            }
            _ => return Err(bad()),
        }
        Ok(())
    }
}

/// A group's output row: `[group values.., (WINDOWSTART, WINDOWEND)?,
/// results..]`.
fn output_row(windowed: bool, key: &GroupKey, g: &Group) -> Row {
    let mut row = Vec::with_capacity(key.0.len() + 2 + g.accs.len());
    row.extend(key.0.iter().cloned());
    if windowed {
        row.push(Value::BigInt(key.1));
        row.push(Value::BigInt(g.end));
    }
    row.extend(g.accs.iter().map(Accumulator::result));
    row
}
