//! Reading a relation's topic: records past per-partition offsets, decoded
//! into changes. Shared by persistent and push queries.

use rill_sql::catalog::{RelationDesc, PSEUDO_COLUMNS};
use rill_sql::dataflow::{Change, Pipeline};
use rill_sql::parser::RelationKind;
use rill_storage::Record;

use crate::backend::LogBackend;
use crate::engine::Engine;
use crate::error::Result;
use crate::record::RecordCodec;

/// A record that could not be decoded (it is skipped).
pub struct BadRecord {
    pub partition: u32,
    pub offset: u64,
    pub error: String,
    /// The start of the record's value (lossy UTF-8), for the processing log.
    pub excerpt: String,
}

/// How much of a bad record the processing log keeps.
const EXCERPT_BYTES: usize = 256;

/// The read position of one query in one source topic.
pub struct SourceReader {
    topic: String,
    /// Next offset to read, one per partition.
    pub offsets: Vec<u64>,
    codec: RecordCodec,
    records: Vec<Record>,
    /// Offsets moved past offsets without records (see `take_skipped`).
    skipped: bool,
    /// Whether the last read came up short in every partition (it may
    /// have reached their ends).
    short: bool,
    /// Changes keep the value bytes of canonical records ([`Change::raw`]).
    keep_raw: bool,
}

impl SourceReader {
    /// A reader for `pipeline`: it decodes only the columns the pipeline
    /// reads, where the format allows.
    fn try_new(
        engine: &Engine,
        rel: &RelationDesc,
        offsets: Vec<u64>,
        read: Option<Vec<bool>>,
    ) -> Result<SourceReader> {
        Ok(SourceReader {
            topic: rel.topic.clone(),
            offsets,
            codec: RecordCodec::try_new_reading(rel, engine.registry.as_ref(), read.as_deref())?,
            records: Vec::new(),
            skipped: false,
            short: false,
            keep_raw: false,
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether the reader has reached the end of every partition (a
    /// failure to tell counts as no).
    fn at_end(&self, log: &dyn LogBackend) -> bool {
        self.short
            && self.offsets.iter().enumerate().all(|(p, &offset)| {
                log.end_offset(&self.topic, p as u32)
                    .is_ok_and(|end| offset >= end)
            })
    }

    /// Reads up to `max` records per partition, appending their changes to
    /// `out` and reporting undecodable ones to `on_bad`. Returns how many
    /// records were consumed (zero: nothing new). A failed read fails only
    /// when nothing was consumed, so `offsets` always match `out`.
    pub fn read(
        &mut self,
        log: &dyn LogBackend,
        max: usize,
        out: &mut Vec<Change>,
        mut on_bad: impl FnMut(BadRecord),
    ) -> Result<u64> {
        let mut got = 0;
        self.short = true;
        for (p, offset) in self.offsets.iter_mut().enumerate() {
            let p = p as u32;
            self.records.clear();
            let next = match log.read(&self.topic, p, *offset, max, &mut self.records) {
                Ok(next) => next,
                // What earlier partitions gave is consistent with the
                // offsets: hand it on; the error comes back next time.
                Err(_) if got > 0 => return Ok(got),
                Err(e) => return Err(e.into()),
            };
            self.short &= self.records.len() < max;
            for rec in &mut self.records {
                *offset = rec.offset + 1;
                got += 1;
                match self.codec.decode(p, rec) {
                    Ok(Some(mut c)) => {
                        if self.keep_raw && self.codec.value_canonical() {
                            c.raw = rec.value.take();
                        }
                        out.push(c);
                    }
                    Ok(None) => {}
                    Err(error) => on_bad(BadRecord {
                        partition: p,
                        offset: rec.offset,
                        error,
                        excerpt: rec
                            .value
                            .as_deref()
                            .map(|v| {
                                String::from_utf8_lossy(&v[..v.len().min(EXCERPT_BYTES)])
                                    .into_owned()
                            })
                            .unwrap_or_default(),
                    }),
                }
            }
            if next > *offset {
                // Offsets without records (transaction markers): passed, so
                // the committed offsets reach the partition's end.
                *offset = next;
                self.skipped = true;
            }
        }
        Ok(got)
    }

    /// Whether offsets moved past offsets without records since the last
    /// call: worth a commit even though no record was read.
    pub fn take_skipped(&mut self) -> bool {
        std::mem::take(&mut self.skipped)
    }
}

/// A query's inputs: a reader per relation it reads, in FROM order.
pub struct Inputs {
    pub readers: Vec<SourceReader>,
    /// Reading order: tables first (see [`Inputs::read`]).
    order: Vec<usize>,
    is_table: Vec<bool>,
    /// How many inputs are streams.
    streams: usize,
    /// Scratch: the streams' changes of a round, by input.
    merged: Vec<(usize, Change)>,
}

impl Inputs {
    /// Readers for `pipeline`'s inputs `rels`, from `offsets` (one list
    /// per input). Each decodes only the columns the pipeline reads, where
    /// the format allows.
    pub fn try_new(
        engine: &Engine,
        rels: &[RelationDesc],
        offsets: Vec<Vec<u64>>,
        pipeline: &Pipeline,
    ) -> Result<Inputs> {
        let mut readers = Vec::with_capacity(rels.len());
        for (i, (rel, offsets)) in rels.iter().zip(offsets).enumerate() {
            let width = rel.columns.len() + PSEUDO_COLUMNS.len();
            let read = pipeline.columns_read(i, width);
            readers.push(SourceReader::try_new(engine, rel, offsets, read)?);
        }
        let is_table: Vec<bool> = rels.iter().map(|r| r.kind == RelationKind::Table).collect();
        let mut order: Vec<usize> = (0..rels.len()).collect();
        order.sort_by_key(|&i| !is_table[i]);
        Ok(Inputs {
            readers,
            order,
            streams: is_table.iter().filter(|t| !**t).count(),
            is_table,
            merged: Vec::new(),
        })
    }

    /// Makes the only input's changes keep the value bytes of records
    /// that are exactly what `sink`'s encoder writes for them, for a query
    /// whose output records are its input's unchanged (see
    /// [`Change::raw`]). Returns whether they will (one input, of the same
    /// value encoding as the sink, in a format that can tell).
    pub fn keep_raw_values(&mut self, rels: &[RelationDesc], sink: &RelationDesc) -> bool {
        let [rel] = rels else {
            return false;
        };
        let [reader] = self.readers.as_mut_slice() else {
            return false;
        };
        reader.keep_raw =
            crate::record::same_value_encoding(rel, sink) && reader.codec.check_canonical_values();
        reader.keep_raw
    }

    /// Reads one round: up to `max` records per partition of each input,
    /// handing each input's changes to `each` (with its index) and its
    /// undecodable records to `on_bad`. Table inputs are read first, and
    /// streams only once every table input has reached its end, so a
    /// stream record always meets the table rows written before it.
    /// Several streams' records are handed on in event-time order across
    /// them, so what one stream reads ahead does not make the other's
    /// records late. Returns how many records were consumed; fails only
    /// when nothing was, so the offsets always match what `each` was given.
    pub fn read(
        &mut self,
        log: &dyn LogBackend,
        max: usize,
        changes: &mut Vec<Change>,
        mut each: impl FnMut(usize, &mut Vec<Change>),
        mut on_bad: impl FnMut(usize, BadRecord),
    ) -> Result<u64> {
        let merging = self.streams > 1;
        let mut got = 0;
        let mut tables_at_end = true;
        for &i in &self.order {
            let reader = &mut self.readers[i];
            let is_stream = !self.is_table[i];
            if is_stream && !tables_at_end {
                break;
            }
            match reader.read(log, max, changes, |bad| on_bad(i, bad)) {
                Ok(n) => got += n,
                // What was read is consistent with the offsets: hand it
                // on; the error comes back next time.
                Err(_) if got > 0 => break,
                Err(e) => return Err(e),
            }
            if !is_stream && self.streams > 0 {
                tables_at_end = tables_at_end && reader.at_end(log);
            }
            if is_stream && merging {
                self.merged.extend(changes.drain(..).map(|c| (i, c)));
            } else if !changes.is_empty() {
                each(i, changes);
            }
        }
        // A stable sort: each stream's records keep their order.
        self.merged.sort_by_key(|(_, c)| c.time);
        let mut merged = self.merged.drain(..).peekable();
        while let Some((i, c)) = merged.next() {
            changes.push(c);
            while let Some((_, c)) = merged.next_if(|(j, _)| *j == i) {
                changes.push(c);
            }
            each(i, changes);
        }
        Ok(got)
    }

    /// Each input's next offsets, per partition.
    pub fn offsets(&self) -> Vec<Vec<u64>> {
        self.readers.iter().map(|r| r.offsets.clone()).collect()
    }

    /// See [`SourceReader::take_skipped`], for any input.
    pub fn take_skipped(&mut self) -> bool {
        let mut any = false;
        for r in &mut self.readers {
            any |= r.take_skipped();
        }
        any
    }
}
