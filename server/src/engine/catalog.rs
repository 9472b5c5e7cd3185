//! The catalog: streams, tables and persistent queries, kept in memory and
//! persisted as JSON entries in the store (one key per object, in creation
//! order), so a restart rebuilds it exactly.

use std::collections::BTreeMap;

use rill_sql::catalog::{Catalog as CatalogRead, RelationDesc};
use serde::{Deserialize, Serialize};

/// What a persistent query does with its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryKind {
    /// `CREATE STREAM .. AS SELECT`.
    CreateStreamAs,
    /// `CREATE TABLE .. AS SELECT`.
    CreateTableAs,
    /// `INSERT INTO stream SELECT`.
    InsertInto,
    /// Materializes a source table (`CREATE TABLE t (...)`) from its topic
    /// into the store so pull queries can read it (ksqlDB's CST_ queries).
    SourceTable,
}

/// A persistent query as the catalog keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryDesc {
    pub id: String,
    pub kind: QueryKind,
    /// The statement that created it (for SourceTable, the CREATE TABLE).
    pub sql: String,
    /// The first relation it reads; `joined` are the others, in FROM order.
    pub source: String,
    #[serde(default)]
    pub joined: Vec<String>,
    pub sink: String,
    /// Started at the earliest offset rather than the latest.
    pub earliest: bool,
    /// Kafka: outputs, state and offsets commit in one transaction
    /// (`processing.guarantee` = `exactly_once`).
    #[serde(default)]
    pub exactly_once: bool,
}

impl QueryDesc {
    /// Every relation the query reads, in FROM order.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.source.as_str()).chain(self.joined.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CatalogEntry {
    Relation(RelationDesc),
    Query(QueryDesc),
}

/// The in-memory catalog. Each object remembers the id of its store entry.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    pub relations: BTreeMap<String, (u64, RelationDesc)>,
    pub queries: BTreeMap<String, (u64, QueryDesc)>,
    pub next_id: u64,
}

impl Catalog {
    pub fn relation(&self, name: &str) -> Option<&RelationDesc> {
        self.relations.get(name).map(|(_, r)| r)
    }

    pub fn query(&self, id: &str) -> Option<&QueryDesc> {
        self.queries.get(id).map(|(_, q)| q)
    }

    /// Queries reading `relation`.
    pub fn readers_of(&self, relation: &str) -> Vec<&QueryDesc> {
        self.queries
            .values()
            .map(|(_, q)| q)
            .filter(|q| q.sources().any(|s| s == relation) && q.kind != QueryKind::SourceTable)
            .collect()
    }

    /// Queries writing `relation`.
    pub fn writers_of(&self, relation: &str) -> Vec<&QueryDesc> {
        self.queries
            .values()
            .map(|(_, q)| q)
            .filter(|q| q.sink == relation)
            .collect()
    }

    /// Applies an entry loaded from the store (startup).
    pub fn load(&mut self, id: u64, entry: CatalogEntry) {
        self.next_id = self.next_id.max(id + 1);
        match entry {
            CatalogEntry::Relation(r) => {
                self.relations.insert(r.name.clone(), (id, r));
            }
            CatalogEntry::Query(q) => {
                self.queries.insert(q.id.clone(), (id, q));
            }
        }
    }
}

impl CatalogRead for Catalog {
    fn relation(&self, name: &str) -> Option<&RelationDesc> {
        Catalog::relation(self, name)
    }

    fn relation_names(&self) -> Vec<String> {
        self.relations.keys().cloned().collect()
    }
}
