//! Reading a relation's topic: records past per-partition offsets, decoded
//! into changes. Shared by persistent and push queries.

use rill_sql::catalog::{RelationDesc, PSEUDO_COLUMNS};
use rill_sql::dataflow::{Change, Pipeline};
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
}

impl SourceReader {
    /// A reader for `pipeline`: it decodes only the columns the pipeline
    /// reads, where the format allows.
    pub fn try_new(
        engine: &Engine,
        rel: &RelationDesc,
        offsets: Vec<u64>,
        pipeline: &Pipeline,
    ) -> Result<SourceReader> {
        let width = rel.columns.len() + PSEUDO_COLUMNS.len();
        let read = pipeline.columns_read(width);
        Ok(SourceReader {
            topic: rel.topic.clone(),
            offsets,
            codec: RecordCodec::try_new_reading(rel, engine.registry.as_ref(), read.as_deref())?,
            records: Vec::new(),
            skipped: false,
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
            for rec in &self.records {
                *offset = rec.offset + 1;
                got += 1;
                match self.codec.decode(p, rec) {
                    Ok(Some(c)) => out.push(c),
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
