//! The collections behind the aggregates that remember values: a counted
//! multiset (MIN/MAX with retraction, HISTOGRAM), TOPK, an ordered counted
//! set (COLLECT_SET) and the window of values `*_BY_OFFSET` keeps.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::value::Value;

/// Values with multiplicities, in value order.
///
/// # Invariants
/// Every count is at least 1; `len` is the sum of the counts.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Multiset {
    counts: BTreeMap<Value, u64>,
    len: u64,
}

impl Multiset {
    pub(super) fn insert(&mut self, v: &Value, n: u64) {
        if n == 0 {
            return;
        }
        match self.counts.get_mut(v) {
            Some(c) => *c += n,
            None => {
                self.counts.insert(v.clone(), n);
            }
        }
        self.len += n;
    }

    /// Removes up to `n` copies of `v`.
    pub(super) fn remove(&mut self, v: &Value, n: u64) {
        if let Some(c) = self.counts.get_mut(v) {
            if *c <= n {
                self.len -= *c;
                self.counts.remove(v);
            } else {
                *c -= n;
                self.len -= n;
            }
        }
    }

    pub(super) fn merge(&mut self, other: &Multiset) {
        for (v, c) in &other.counts {
            self.insert(v, *c);
        }
    }

    pub(super) fn first(&self) -> Option<&Value> {
        self.counts.keys().next()
    }

    pub(super) fn last(&self) -> Option<&Value> {
        self.counts.keys().next_back()
    }

    /// Distinct values with their counts, smallest first.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = (&Value, u64)> {
        self.counts.iter().map(|(v, c)| (v, *c))
    }

    fn contains(&self, v: &Value) -> bool {
        self.counts.contains_key(v)
    }

    fn distinct(&self) -> usize {
        self.counts.len()
    }
}

/// TOPK and TOPKDISTINCT: the k largest non-NULL values, largest first.
///
/// # Invariants
/// When `bounded` (an insert-only input), `values` holds at most k values
/// (k distinct values, each counted once, for TOPKDISTINCT): exactly the
/// answer. Otherwise it holds every live value, so any can be retracted.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct TopK {
    k: usize,
    distinct: bool,
    bounded: bool,
    values: Multiset,
}

impl TopK {
    pub(super) fn new(k: usize, distinct: bool, bounded: bool) -> TopK {
        TopK {
            k,
            distinct,
            bounded,
            values: Multiset::default(),
        }
    }

    pub(super) fn is_bounded(&self) -> bool {
        self.bounded
    }

    /// Adds `n` copies of `v`.
    pub(super) fn add(&mut self, v: &Value, n: u64) {
        if !self.bounded {
            self.values.insert(v, n);
        } else if self.distinct {
            if self.values.contains(v) {
                return;
            }
            if self.values.distinct() >= self.k {
                match self.values.first() {
                    Some(min) if min < v => {
                        let min = min.clone();
                        self.values.remove(&min, u64::MAX);
                    }
                    _ => return,
                }
            }
            self.values.insert(v, 1);
        } else {
            let k = self.k as u64;
            for _ in 0..n.min(k) {
                if self.values.len >= k {
                    match self.values.first() {
                        Some(min) if min < v => {
                            let min = min.clone();
                            self.values.remove(&min, 1);
                        }
                        _ => return,
                    }
                }
                self.values.insert(v, 1);
            }
        }
    }

    pub(super) fn retract(&mut self, v: &Value) {
        if self.bounded {
            super::misuse("retract on an insert-only TOPK");
        } else {
            self.values.remove(v, 1);
        }
    }

    pub(super) fn merge(&mut self, other: &TopK) {
        for (v, c) in other.values.iter() {
            self.add(v, c);
        }
    }

    pub(super) fn result(&self) -> Value {
        let mut out = Vec::with_capacity(self.k.min(self.values.len as usize));
        for (v, c) in self.values.iter().rev() {
            let copies = if self.distinct { 1 } else { c };
            for _ in 0..copies {
                if out.len() == self.k {
                    return Value::Array(Arc::new(out));
                }
                out.push(v.clone());
            }
        }
        Value::Array(Arc::new(out))
    }

    pub(super) fn values(&self) -> &Multiset {
        &self.values
    }

    pub(super) fn values_mut(&mut self) -> &mut Multiset {
        &mut self.values
    }
}

/// COLLECT_SET: distinct values in the order they first arrived, each with
/// how many live rows carry it, so a retraction removes a value only when
/// its last row goes.
///
/// # Invariants
/// `order` and `index` hold the same values; `index[v].0` is `v`'s key in
/// `order`; every count is at least 1; every key is below `next`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct OrderedSet {
    order: BTreeMap<u64, Value>,
    index: HashMap<Value, (u64, u64)>,
    next: u64,
}

impl OrderedSet {
    pub(super) fn insert(&mut self, v: &Value, n: u64) {
        if n == 0 {
            return;
        }
        if let Some((_, c)) = self.index.get_mut(v) {
            *c += n;
            return;
        }
        self.order.insert(self.next, v.clone());
        self.index.insert(v.clone(), (self.next, n));
        self.next += 1;
    }

    pub(super) fn remove(&mut self, v: &Value, n: u64) {
        if let Some((seq, c)) = self.index.get_mut(v) {
            if *c <= n {
                let seq = *seq;
                self.index.remove(v);
                self.order.remove(&seq);
            } else {
                *c -= n;
            }
        }
    }

    pub(super) fn merge(&mut self, other: &OrderedSet) {
        for (v, c) in other.iter() {
            self.insert(v, c);
        }
    }

    /// Values with their counts, in first-arrival order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&Value, u64)> {
        self.order
            .values()
            .map(|v| (v, self.index.get(v).map_or(0, |(_, c)| *c)))
    }

    pub(super) fn result(&self) -> Value {
        Value::Array(Arc::new(self.order.values().cloned().collect()))
    }
}

/// EARLIEST_BY_OFFSET and LATEST_BY_OFFSET: the first or last `n` values in
/// arrival (offset) order, or the single first or last value when called
/// without `n`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ByOffset {
    latest: bool,
    /// `Some(n)`: the result is an array of up to n values.
    limit: Option<usize>,
    ignore_nulls: bool,
    /// Oldest first.
    values: VecDeque<Value>,
}

impl ByOffset {
    pub(super) fn new(latest: bool, limit: Option<usize>, ignore_nulls: bool) -> ByOffset {
        ByOffset {
            latest,
            limit,
            ignore_nulls,
            values: VecDeque::new(),
        }
    }

    fn capacity(&self) -> usize {
        self.limit.unwrap_or(1)
    }

    pub(super) fn add(&mut self, v: &Value) {
        if self.ignore_nulls && v.is_null() {
            return;
        }
        if self.latest {
            // Make room first, so a single latest value never regrows.
            while self.values.len() >= self.capacity() {
                self.values.pop_front();
            }
            self.values.push_back(v.clone());
        } else if self.values.len() < self.capacity() {
            self.values.push_back(v.clone());
        }
    }

    /// Adds `other`'s values after this one's: `other` saw later offsets.
    pub(super) fn merge(&mut self, other: &ByOffset) {
        for v in &other.values {
            self.add(v);
        }
    }

    pub(super) fn result(&self) -> Value {
        match self.limit {
            None => self.values.front().cloned().unwrap_or(Value::Null),
            Some(_) => Value::Array(Arc::new(self.values.iter().cloned().collect())),
        }
    }

    pub(super) fn values(&self) -> &VecDeque<Value> {
        &self.values
    }

    /// Replaces the values, from persisted state.
    pub(super) fn set_values(&mut self, values: impl IntoIterator<Item = Value>) {
        self.values.clear();
        for v in values {
            self.add(&v);
        }
    }
}
