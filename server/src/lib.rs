//! rill-server: the `rill` binary's library. The Postgres-wire front end
//! ([`pgwire`]) hands statements to sessions, which execute them against the
//! catalog and the query runtime; log backends carry topics and [`format`]
//! turns records into rows and back.

pub mod format;
