//! The one error type of the storage layer.
//!
//! Every failure of the state store or the embedded log ends up here, so the
//! server has a single place to turn a storage failure into a SQLSTATE.

use std::path::{Path, PathBuf};

/// Why a storage operation failed.
///
/// Errors from sled that are really I/O failures or detected corruption are
/// converted to [`StorageError::Io`] and [`StorageError::Corrupt`] when they
/// are raised (see [`StorageError::from_sled`]), so that the same kind of
/// failure gets the same SQLSTATE whichever component saw it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A failure inside sled that is neither I/O nor corruption (a sled bug,
    /// an unsupported use). Nothing the user can fix.
    #[error("state store error: {0}")]
    Sled(sled::Error),

    /// The file system refused a read, write, fsync or rename. Usually a full
    /// disk, missing permissions, or another process holding the data dir.
    #[error("i/o error on \"{}\": {source}", path.display())]
    Io {
        /// The file or directory the operation was about.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// Stored bytes do not decode: a bad checksum or an impossible length
    /// outside the tail that recovery may cut, or a value of the wrong size.
    #[error("corrupt data in {what}: {detail}")]
    Corrupt {
        /// Where the bad bytes are (a file path, or a store key kind).
        what: String,
        /// What exactly is wrong with them.
        detail: String,
    },

    /// A topic was used that the log does not have.
    #[error("topic \"{topic}\" does not exist")]
    UnknownTopic {
        /// The requested topic name.
        topic: String,
    },

    /// A partition number past the topic's partition count was used.
    #[error("partition {partition} of topic \"{topic}\" does not exist; the topic has {partitions} partitions")]
    UnknownPartition {
        /// The topic name.
        topic: String,
        /// The requested partition.
        partition: u32,
        /// How many partitions the topic really has.
        partitions: u32,
    },

    /// `create_topic` was asked for a topic that exists with another
    /// partition count; silently using the old count would misroute keys.
    #[error("topic \"{topic}\" already exists with {existing} partitions, not {requested}")]
    TopicExists {
        /// The topic name.
        topic: String,
        /// Its partition count on disk.
        existing: u32,
        /// The partition count asked for.
        requested: u32,
    },

    /// A topic name that cannot be used as a directory name (or that Kafka
    /// would also reject), so the same statement works on both backends.
    #[error("invalid topic name \"{topic}\": {reason}")]
    InvalidTopicName {
        /// The rejected name.
        topic: String,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// An argument that is out of its domain, e.g. zero partitions.
    #[error("{0}")]
    InvalidArgument(String),

    /// A record whose key and value do not fit the log's 32-bit lengths.
    #[error("record of {bytes} bytes is larger than the log's limit of {limit} bytes")]
    RecordTooLarge {
        /// Size of the rejected record's key and value.
        bytes: u64,
        /// The largest size the log format can store.
        limit: u64,
    },

    /// The log's cluster cannot be reached right now (brokers down, a
    /// request timed out). Nothing was changed; the same call may succeed
    /// later, so readers wait and retry.
    #[error("log unavailable: {0}")]
    Unavailable(String),

    /// An internal invariant broke (a poisoned lock, a partition left in an
    /// unknown state by a failed write). Reopening the data dir recovers.
    #[error("internal storage error: {0}")]
    Internal(String),
}

/// Every fallible storage operation returns this.
pub type Result<T> = std::result::Result<T, StorageError>;

impl StorageError {
    /// The Postgres error code a client should see, so drivers and tools can
    /// tell a full disk (53100) or another I/O failure (58030) from
    /// corruption (XX001) from a typo in a topic name (42P01).
    pub fn sqlstate(&self) -> &'static str {
        match self {
            // disk_full: the user can free space and retry.
            StorageError::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => {
                "53100"
            }
            StorageError::Io { .. } => "58030",
            StorageError::Corrupt { .. } => "XX001",
            StorageError::UnknownTopic { .. } => "42P01",
            StorageError::UnknownPartition { .. } => "42P01",
            StorageError::TopicExists { .. } => "42P07",
            StorageError::InvalidTopicName { .. } => "42602",
            StorageError::InvalidArgument(_) => "22023",
            StorageError::RecordTooLarge { .. } => "54000",
            StorageError::Sled(_) => "XX000",
            StorageError::Unavailable(_) => "08006",
            StorageError::Internal(_) => "XX000",
        }
    }

    /// Wraps an I/O error with the path it concerns, because "permission
    /// denied" alone does not tell an operator which file to look at.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> StorageError {
        StorageError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    /// Converts a sled error raised while working on the store at `path`,
    /// moving I/O failures and corruption into their own variants.
    pub fn from_sled(path: &Path, error: sled::Error) -> StorageError {
        match error {
            sled::Error::Io(source) => StorageError::io(path, source),
            sled::Error::Corruption { at, .. } => StorageError::Corrupt {
                what: path.display().to_string(),
                detail: format!("sled detected corruption at {at:?}"),
            },
            other => StorageError::Sled(other),
        }
    }

    /// Builds a [`StorageError::Corrupt`].
    pub(crate) fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_distinguish_what_the_user_can_fix() {
        let io = StorageError::io("/x", std::io::Error::other("bad sector"));
        assert_eq!(io.sqlstate(), "58030");
        let full = StorageError::io("/x", std::io::ErrorKind::StorageFull.into());
        assert_eq!(full.sqlstate(), "53100");
        assert!(io.to_string().contains("\"/x\""));
        assert_eq!(StorageError::corrupt("f", "bad crc").sqlstate(), "XX001");
        let unknown = StorageError::UnknownTopic { topic: "t".into() };
        assert_eq!(unknown.sqlstate(), "42P01");
        assert_eq!(unknown.to_string(), "topic \"t\" does not exist");
    }

    #[test]
    fn sled_io_errors_become_io_errors_with_the_path() {
        let err = StorageError::from_sled(
            Path::new("/data/state"),
            sled::Error::Io(std::io::Error::other("locked")),
        );
        assert_eq!(err.sqlstate(), "58030");
        assert!(err.to_string().contains("/data/state"));
        let bug = StorageError::from_sled(Path::new("/s"), sled::Error::ReportableBug("x".into()));
        assert_eq!(bug.sqlstate(), "XX000");
    }
}
