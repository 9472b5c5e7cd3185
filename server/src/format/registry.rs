//! A client of a Confluent-compatible schema registry (`--schema-registry`):
//! the REST calls the AVRO and PROTOBUF formats need, with caches so that a
//! schema is fetched once per process and registering an unchanged schema
//! costs no request. Schemas travel as text; each format parses its own.
//!
//! Subjects follow Confluent's default TopicNameStrategy: `<topic>-value`
//! and `<topic>-key`. Calls block (ureq); they run at statement time and when
//! a query meets a schema id it has not seen, never per record.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Deserialize;

use super::FormatError;

/// How long one registry request may take before it fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The subject a topic's key or value schema is registered under.
pub fn subject(topic: &str, key: bool) -> String {
    format!("{topic}-{}", if key { "key" } else { "value" })
}

/// The kinds of schema a registry holds that rill reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    Avro,
    Protobuf,
}

impl SchemaType {
    /// The registry's `schemaType` name.
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

/// A registered schema as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawSchema {
    pub schema_type: SchemaType,
    pub text: String,
}

/// A schema registry at one base URL, shared by every query and session.
pub struct SchemaRegistry {
    base: String,
    agent: ureq::Agent,
    /// Schemas by id. Ids are immutable in a registry, so entries never go
    /// stale.
    by_id: Mutex<HashMap<u32, Arc<RawSchema>>>,
    /// (subject, schema) -> id, for schemas this process registered.
    registered: Mutex<HashMap<(String, RawSchema), u32>>,
}

/// `GET /schemas/ids/{id}`, `GET /subjects/{s}/versions/latest`.
#[derive(Deserialize)]
struct SchemaReply {
    id: Option<u32>,
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
}

/// `POST /subjects/{s}/versions`.
#[derive(Deserialize)]
struct IdReply {
    id: u32,
}

/// A registry error body.
#[derive(Deserialize)]
struct ErrorReply {
    error_code: Option<i64>,
    message: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SchemaRegistry {
    /// A client of the registry at `url` (`http://host:port`, a path prefix
    /// is kept). Nothing is requested until a schema is needed.
    pub fn new(url: &str) -> SchemaRegistry {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .new_agent();
        SchemaRegistry {
            base: url.trim_end_matches('/').to_string(),
            agent,
            by_id: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashMap::new()),
        }
    }

    /// The base URL, for messages.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The schema with id `id`.
    pub fn schema(&self, id: u32) -> Result<Arc<RawSchema>, FormatError> {
        if let Some(s) = lock(&self.by_id).get(&id) {
            return Ok(Arc::clone(s));
        }
        let reply: SchemaReply = self.read(
            self.agent
                .get(format!("{}/schemas/ids/{id}", self.base))
                .call(),
            &format!("schema id {id}"),
        )?;
        let schema = Arc::new(raw(reply, &format!("schema id {id}"))?);
        lock(&self.by_id).insert(id, Arc::clone(&schema));
        Ok(schema)
    }

    /// The id and schema of the latest version under `subject`.
    pub fn latest(&self, subject: &str) -> Result<(u32, Arc<RawSchema>), FormatError> {
        let what = format!("subject \"{subject}\"");
        let reply: SchemaReply = self.read(
            self.agent
                .get(format!(
                    "{}/subjects/{}/versions/latest",
                    self.base,
                    path_segment(subject)
                ))
                .call(),
            &what,
        )?;
        let id = reply.id.ok_or_else(|| FormatError::Registry {
            reason: format!("the registry's answer for {what} has no id"),
        })?;
        let schema = Arc::new(raw(reply, &what)?);
        lock(&self.by_id).insert(id, Arc::clone(&schema));
        Ok((id, schema))
    }

    /// Registers `schema` under `subject` (a no-op at the registry when it
    /// is already there) and returns its id.
    pub fn register(&self, subject: &str, schema: &RawSchema) -> Result<u32, FormatError> {
        let cache_key = (subject.to_string(), schema.clone());
        if let Some(id) = lock(&self.registered).get(&cache_key) {
            return Ok(*id);
        }
        let body = match schema.schema_type {
            SchemaType::Avro => serde_json::json!({ "schema": schema.text }),
            other => serde_json::json!({ "schema": schema.text, "schemaType": other.name() }),
        };
        let reply: IdReply = self.read(
            self.agent
                .post(format!(
                    "{}/subjects/{}/versions",
                    self.base,
                    path_segment(subject)
                ))
                .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                .send_json(body),
            &format!("a schema under subject \"{subject}\""),
        )?;
        lock(&self.by_id).insert(reply.id, Arc::new(schema.clone()));
        lock(&self.registered).insert(cache_key, reply.id);
        Ok(reply.id)
    }

    /// Reads the JSON reply to a request, turning HTTP and registry errors
    /// into messages that name the registry and `what`.
    fn read<T: for<'de> Deserialize<'de>>(
        &self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        what: &str,
    ) -> Result<T, FormatError> {
        let unavailable = |e: ureq::Error| FormatError::RegistryUnavailable {
            url: self.base.clone(),
            reason: e.to_string(),
        };
        let mut response = response.map_err(unavailable)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(unavailable)?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| FormatError::Registry {
                reason: format!("unreadable answer for {what}: {e}"),
            });
        }
        let reply: Option<ErrorReply> = serde_json::from_str(&text).ok();
        let code = reply.as_ref().and_then(|r| r.error_code);
        let message = reply
            .and_then(|r| r.message)
            .unwrap_or_else(|| text.chars().take(200).collect());
        // 40401 subject, 40402 version, 40403 schema not found.
        if status == 404 && matches!(code, Some(40401..=40403) | None) {
            return Err(FormatError::NoSchema {
                what: what.to_string(),
            });
        }
        Err(FormatError::Registry {
            reason: format!("{what}: HTTP {status}: {message}"),
        })
    }
}

/// The schema of a reply, refusing kinds rill does not read (JSON).
fn raw(reply: SchemaReply, what: &str) -> Result<RawSchema, FormatError> {
    let schema_type = match reply.schema_type.as_deref() {
        None | Some("AVRO") => SchemaType::Avro,
        Some("PROTOBUF") => SchemaType::Protobuf,
        Some(other) => {
            return Err(FormatError::Registry {
                reason: format!("{what} is a {other} schema, which rill cannot read"),
            })
        }
    };
    Ok(RawSchema {
        schema_type,
        text: reply.schema,
    })
}

/// Percent-encodes what a subject may hold that a URL path may not.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_topic_name_strategy() {
        assert_eq!(subject("orders", false), "orders-value");
        assert_eq!(subject("orders", true), "orders-key");
        assert_eq!(path_segment("a b/c-value"), "a%20b%2Fc-value");
    }

    #[test]
    fn an_unreachable_registry_is_a_clear_error() {
        // Port 9 (discard) on loopback: nothing listens there.
        let r = SchemaRegistry::new("http://127.0.0.1:9/");
        let err = r.latest("t-value").unwrap_err();
        assert!(
            matches!(&err, FormatError::RegistryUnavailable { url, .. } if url == "http://127.0.0.1:9"),
            "{err}"
        );
    }
}
