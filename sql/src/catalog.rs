//! What the binder needs to know about streams and tables. The server owns
//! the catalog and persists these descriptors; this crate only reads them.

use serde::{Deserialize, Serialize};

use crate::parser::{RelationKind, WindowKind};
use crate::types::DataType;

/// One column of a stream or table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDesc {
    pub name: String,
    pub data_type: DataType,
    /// Part of the record key (`KEY`, `PRIMARY KEY`, or a windowed table's
    /// WINDOWSTART/WINDOWEND).
    pub key: bool,
}

impl ColumnDesc {
    pub fn new(name: impl Into<String>, data_type: DataType, key: bool) -> ColumnDesc {
        ColumnDesc {
            name: name.into(),
            data_type,
            key,
        }
    }
}

/// The columns every record has besides its declared ones, in this order
/// after them. `SELECT *` does not show them.
pub const PSEUDO_COLUMNS: [(&str, DataType); 3] = [
    ("ROWTIME", DataType::BigInt),
    ("ROWPARTITION", DataType::Int),
    ("ROWOFFSET", DataType::BigInt),
];

/// How records of a relation's topic are serialized; interpreted by the
/// server's format module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatSpec {
    pub key_format: String,
    pub value_format: String,
    /// `VALUE_DELIMITER` for DELIMITED.
    pub value_delimiter: Option<String>,
    /// `WRAP_SINGLE_VALUE`.
    pub wrap_single_value: Option<bool>,
    /// The registered schema the key is written with (`KEY_SCHEMA_ID`;
    /// schema-registry formats only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_schema_id: Option<u32>,
    /// The registered schema the value is written with (`VALUE_SCHEMA_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_schema_id: Option<u32>,
}

/// A stream or table as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelationDesc {
    pub name: String,
    pub kind: RelationKind,
    /// Visible columns in order. A windowed table has WINDOWSTART and
    /// WINDOWEND (BIGINT, key) right after its key columns.
    pub columns: Vec<ColumnDesc>,
    /// Set for windowed tables (the output of a windowed aggregate).
    pub window: Option<WindowKind>,
    pub topic: String,
    pub partitions: u32,
    pub format: FormatSpec,
    /// The column event time comes from (`timestamp=`), else ROWTIME.
    pub timestamp_column: Option<String>,
    /// `timestamp_format=` for a STRING timestamp column (Java pattern).
    pub timestamp_format: Option<String>,
    /// `CREATE SOURCE ...`: INSERT is refused.
    pub read_only: bool,
    /// The persistent query that writes this relation, if any.
    pub written_by: Option<String>,
    /// Windowed tables: how long (ms of event time) a window's row stays
    /// after its WINDOWEND (`RETENTION`, else the default of
    /// [`crate::dataflow::window::retention_ms`]). Unset only in catalogs
    /// written before the default existed: such rows are kept forever.
    #[serde(default)]
    pub retention_ms: Option<i64>,
}

impl RelationDesc {
    /// Columns as a query over this relation sees them: the visible ones,
    /// then [`PSEUDO_COLUMNS`].
    pub fn query_schema(&self) -> Vec<ColumnDesc> {
        let mut cols = self.columns.clone();
        cols.extend(
            PSEUDO_COLUMNS
                .iter()
                .map(|(n, t)| ColumnDesc::new(*n, t.clone(), false)),
        );
        cols
    }

    /// Indexes of the key columns, in order.
    pub fn key_indices(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.key)
            .map(|(i, _)| i)
            .collect()
    }

    /// Index of a visible column by (normalized) name.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// Read access to the catalog during binding.
pub trait Catalog {
    fn relation(&self, name: &str) -> Option<&RelationDesc>;
    /// All relation names, for "did you mean" hints.
    fn relation_names(&self) -> Vec<String>;
}
