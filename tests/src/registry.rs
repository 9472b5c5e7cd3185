//! A small Confluent-compatible schema registry for tests, served over real
//! HTTP/1.1 on 127.0.0.1, because no Confluent Schema Registry (or Karapace)
//! can be installed where the tests run.
//!
//! It speaks the subset of the Confluent REST API that serializers and rill
//! use, with the same JSON shapes, status codes and `error_code`s as
//! Confluent's documentation:
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /subjects/{s}/versions` `{"schema", "schemaType"?, "references"?}` | `{"id": N}`; 422/42201 for a schema that is not JSON (AVRO, JSON) |
//! | `POST /subjects/{s}` (lookup) | `{"subject", "id", "version", "schema"}`; 404/40401, 404/40403 |
//! | `GET /subjects` | `["a-value", ...]` |
//! | `GET /subjects/{s}/versions` | `[1, 2]`; 404/40401 |
//! | `GET /subjects/{s}/versions/{v\|latest}` | `{"subject", "id", "version", "schema"}`; 404/40401, 404/40402, 422/42202 |
//! | `... ?format=serialized` (the two GETs of one schema) | a PROTOBUF schema as a base64 `FileDescriptorProto`, when the test gave that form (see below) |
//! | `GET /subjects/{s}/versions/{v\|latest}/schema` | the schema itself |
//! | `GET /schemas/ids/{id}` | `{"schema"}`; 404/40403 |
//! | `GET /schemas/ids/{id}/schema` | the schema itself |
//! | `GET /schemas/ids/{id}/versions` | `[{"subject", "version"}]` |
//! | `GET /schemas/types` | `["AVRO", "PROTOBUF", "JSON"]` |
//! | `GET /config`, `GET /config/{s}` | `{"compatibilityLevel": "NONE"}` |
//! | `DELETE /subjects/{s}` | `[1, 2]` (the versions deleted); 404/40401 |
//!
//! `"schemaType"` is in an answer only when it is not AVRO, and
//! `"references"` only when there are some, as Confluent does.
//!
//! Deliberate simplifications:
//! - **No compatibility checks**: every schema is accepted as a new version
//!   (as with compatibility level `NONE`), whatever the subject held before.
//! - An AVRO or JSON schema is checked only for being JSON; whether it is a
//!   valid Avro schema is not checked. Two schemas are "the same" when they
//!   parse to equal JSON values (so whitespace and key order do not matter)
//!   with the same type and references; PROTOBUF schemas compare as text.
//! - Confluent's registry parses a PROTOBUF schema, so it accepts one as
//!   `.proto` text or as a base64 `FileDescriptorProto` (what Confluent's
//!   serializers send) and hands out either form (`?format=serialized`).
//!   This registry has no `.proto` parser: a test that needs the second form
//!   gives it with [`Registry::set_serialized`] (computed by protoc), and
//!   from then on both spellings name the one schema.
//! - Ids are global: one schema registered under two subjects has one id,
//!   as in Confluent. Versions count from 1 in each subject.
//! - `DELETE /subjects/{s}` is a hard delete (the subject is gone, its ids
//!   still resolve); query parameters such as `normalize` or `deleted` are
//!   ignored.
//!
//! Every request is served on a thread of its own connection; connections
//! are kept alive as HTTP/1.1 says (until the client sends
//! `Connection: close`, an HTTP/1.0 request does not ask for keep-alive, or
//! the registry stops). Dropping the [`Registry`] stops it and joins every
//! thread.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

/// The media type of every answer, as Confluent's registry sends it.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

/// Largest request body accepted.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// How often a blocked connection or the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// A running in-memory schema registry, owned by one test.
///
/// # Invariants
/// While `acceptor` is `Some`, the accept thread runs and owns the
/// connection threads; `Drop` sets `stop`, wakes it and joins it, which
/// joins them.
pub struct Registry {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

/// One stored schema; its id is its index in [`State::schemas`] plus one.
#[derive(Debug, Clone)]
struct StoredSchema {
    /// The schema text exactly as first registered.
    text: String,
    /// `AVRO`, `PROTOBUF` or `JSON`.
    schema_type: String,
    /// The parsed schema for AVRO and JSON (what identity compares), or the
    /// text as a JSON string for PROTOBUF.
    canonical: Value,
    /// The `references` array as registered (`[]` when none).
    references: Value,
    /// For PROTOBUF, the base64 `FileDescriptorProto` of the same schema,
    /// when a test gave it ([`Registry::set_serialized`]).
    serialized: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    schemas: Vec<StoredSchema>,
    /// Subject -> schema id of each version (version = index + 1).
    subjects: BTreeMap<String, Vec<u32>>,
    /// `METHOD /path` of every request served, in order.
    requests: Vec<String>,
}

/// An HTTP answer: status, reason phrase, JSON body.
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer { status: 200, body }
    }

    fn error(status: u16, error_code: u32, message: impl Into<String>) -> Answer {
        Answer {
            status,
            body: json!({ "error_code": error_code, "message": message.into() }),
        }
    }
}

impl Registry {
    /// Binds 127.0.0.1 on a free port and serves on background threads.
    ///
    /// Panics if the socket cannot be bound: a test cannot go on without it.
    pub fn start() -> Registry {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("bind the test schema registry on 127.0.0.1");
        let addr = listener
            .local_addr()
            .expect("local address of the registry");
        listener
            .set_nonblocking(true)
            .expect("non-blocking registry listener");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("test-registry".into())
                .spawn(move || accept_loop(listener, state, stop))
                .expect("spawn the registry thread")
        };
        Registry {
            addr,
            state,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT`, what `--schema-registry` and serializers take.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address the registry listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Registers an AVRO schema under `subject` as a client would, and
    /// returns its id (the existing id when the same schema is registered).
    ///
    /// Panics when `schema_json` is not JSON: a test's schema is a constant.
    pub fn register(&self, subject: &str, schema_json: &str) -> u32 {
        let answer = lock(&self.state).register(subject, schema_json, "AVRO", json!([]));
        match answer.body.get("id").and_then(Value::as_u64) {
            Some(id) if answer.status == 200 => id as u32,
            _ => panic!(
                "registering under {subject:?} failed: {} {}",
                answer.status, answer.body
            ),
        }
    }

    /// Registers a PROTOBUF schema (`.proto` text) under `subject`, and
    /// returns its id (the existing id when the same text is registered).
    pub fn register_protobuf(&self, subject: &str, proto: &str) -> u32 {
        let answer = lock(&self.state).register(subject, proto, "PROTOBUF", json!([]));
        match answer.body.get("id").and_then(Value::as_u64) {
            Some(id) if answer.status == 200 => id as u32,
            _ => panic!(
                "registering under {subject:?} failed: {} {}",
                answer.status, answer.body
            ),
        }
    }

    /// Gives the base64 `FileDescriptorProto` form of PROTOBUF schema `id`:
    /// registering or looking up that form then finds `id`, and
    /// `?format=serialized` answers with it, as Confluent's registry does
    /// for the schema it parsed. Panics when `id` is not a PROTOBUF schema.
    pub fn set_serialized(&self, id: u32, base64: &str) {
        let mut state = lock(&self.state);
        let Some(schema) = (id as usize)
            .checked_sub(1)
            .and_then(|i| state.schemas.get_mut(i))
        else {
            panic!("no schema with id {id}");
        };
        assert_eq!(
            schema.schema_type, "PROTOBUF",
            "schema {id} is not PROTOBUF"
        );
        schema.serialized = Some(base64.to_string());
    }

    /// The `schemaType` of schema `id` (`AVRO`, `PROTOBUF` or `JSON`).
    pub fn schema_type(&self, id: u32) -> Option<String> {
        lock(&self.state).schema(id).map(|s| s.schema_type.clone())
    }

    /// The id and schema text of the latest version of `subject`.
    pub fn latest(&self, subject: &str) -> Option<(u32, String)> {
        let state = lock(&self.state);
        let id = *state.subjects.get(subject)?.last()?;
        let schema = state.schema(id)?;
        Some((id, schema.text.clone()))
    }

    /// The schema text with global id `id`.
    pub fn schema_by_id(&self, id: u32) -> Option<String> {
        lock(&self.state).schema(id).map(|s| s.text.clone())
    }

    /// Every subject, sorted.
    pub fn subjects(&self) -> Vec<String> {
        lock(&self.state).subjects.keys().cloned().collect()
    }

    /// The versions of `subject` as schema ids, oldest first (empty when
    /// there is no such subject).
    pub fn versions(&self, subject: &str) -> Vec<u32> {
        lock(&self.state)
            .subjects
            .get(subject)
            .cloned()
            .unwrap_or_default()
    }

    /// `METHOD /path` of every request served so far, oldest first.
    pub fn requests(&self) -> Vec<String> {
        lock(&self.state).requests.clone()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking test thread cannot leave the maps half-updated: each
    // change is one push or insert.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: TcpListener, state: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    let mut connections: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let state = Arc::clone(&state);
                let stop = Arc::clone(&stop);
                let spawned = std::thread::Builder::new()
                    .name("test-registry-conn".into())
                    .spawn(move || serve_connection(stream, &state, &stop));
                if let Ok(handle) = spawned {
                    connections.push(handle);
                }
                connections.retain(|h| !h.is_finished());
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL / 5),
            Err(_) => std::thread::sleep(POLL),
        }
    }
    for handle in connections {
        let _ = handle.join();
    }
}

/// A parsed HTTP request.
struct Request {
    method: String,
    /// The path without the query string, percent-decoded per segment later.
    target: String,
    body: Vec<u8>,
    /// Whether the connection stays open after the answer.
    keep_alive: bool,
}

fn serve_connection(mut stream: TcpStream, state: &Mutex<State>, stop: &AtomicBool) {
    // Accepted sockets may inherit non-blocking mode on some systems.
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let request = match read_request(&mut stream, &mut buf, stop) {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(message) => {
                let answer = Answer::error(400, 400, message);
                let _ = write_answer(&mut stream, &answer, false);
                return;
            }
        };
        let answer = {
            let mut state = lock(state);
            state
                .requests
                .push(format!("{} {}", request.method, request.target));
            route(&mut state, &request)
        };
        if write_answer(&mut stream, &answer, request.keep_alive).is_err() || !request.keep_alive {
            return;
        }
    }
}

/// Reads one request from `stream`, using and refilling `buf` (which may
/// hold bytes of the next pipelined request). `Ok(None)` when the client
/// closed the connection between requests or the registry is stopping;
/// `Err` for a request that cannot be parsed.
fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<Option<Request>, String> {
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err("request head too large".into());
        }
        if !fill(stream, buf, stop)? {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err("connection closed inside a request head".into())
            };
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line {request_line:?}"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(format!("unsupported protocol {version:?}"));
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line {line:?}"));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let connection = header("connection").map(str::to_ascii_lowercase);
    let keep_alive = match connection.as_deref() {
        Some(c) if c.split(',').any(|t| t.trim() == "close") => false,
        Some(c) if c.split(',').any(|t| t.trim() == "keep-alive") => true,
        _ => version == "HTTP/1.1",
    };
    if header("expect").is_some_and(|e| e.eq_ignore_ascii_case("100-continue")) {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let chunked =
        header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        read_chunked(stream, buf, stop)?
    } else {
        let length = match header("content-length") {
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| format!("bad Content-Length {v:?}"))?,
            None => 0,
        };
        if length > MAX_BODY {
            return Err("request body too large".into());
        }
        while buf.len() < length {
            if !fill(stream, buf, stop)? {
                return Err("connection closed inside a request body".into());
            }
        }
        buf.drain(..length).collect()
    };
    Ok(Some(Request {
        method: method.to_string(),
        target: target.to_string(),
        body,
        keep_alive,
    }))
}

/// Reads a `Transfer-Encoding: chunked` body (trailers are skipped).
fn read_chunked(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    stop: &AtomicBool,
) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(pos) = find(buf, b"\r\n") {
                break pos;
            }
            if !fill(stream, buf, stop)? {
                return Err("connection closed inside a chunk size".into());
            }
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).into_owned();
        buf.drain(..line_end + 2);
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = loop {
                    if let Some(pos) = find(buf, b"\r\n") {
                        break pos;
                    }
                    if !fill(stream, buf, stop)? {
                        return Err("connection closed inside chunk trailers".into());
                    }
                };
                buf.drain(..end + 2);
                if end == 0 {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err("request body too large".into());
        }
        while buf.len() < size + 2 {
            if !fill(stream, buf, stop)? {
                return Err("connection closed inside a chunk".into());
            }
        }
        body.extend(buf.drain(..size));
        buf.drain(..2);
    }
}

/// Reads more bytes into `buf`. `Ok(false)` at end of stream or when the
/// registry is stopping.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, stop: &AtomicBool) -> Result<bool, String> {
    let mut chunk = [0u8; 8192];
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Ok(false),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn write_answer(stream: &mut TcpStream, answer: &Answer, keep_alive: bool) -> std::io::Result<()> {
    let body = answer.body.to_string();
    let reason = match answer.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        422 => "Unprocessable Entity",
        _ => "Error",
    };
    let head = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        answer.status,
        body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    stream.write_all(&bytes)?;
    stream.flush()
}

/// Decodes `%XX` escapes (subjects may hold any character).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(state: &mut State, request: &Request) -> Answer {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((request.target.as_str(), ""));
    let serialized = query.split('&').any(|p| p == "format=serialized");
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = request.method.as_str();
    let body = || -> Result<Value, Answer> {
        serde_json::from_slice::<Value>(&request.body)
            .map_err(|e| Answer::error(400, 400, format!("unrecognized request body: {e}")))
    };
    match (method, segs.as_slice()) {
        ("GET", ["subjects"]) => Answer::ok(json!(state.subjects.keys().collect::<Vec<_>>())),
        ("POST", ["subjects", subject, "versions"]) => match body() {
            Ok(body) => match parse_schema_body(&body) {
                Ok((text, schema_type, references)) => {
                    state.register(subject, &text, &schema_type, references)
                }
                Err(answer) => answer,
            },
            Err(answer) => answer,
        },
        ("POST", ["subjects", subject]) => match body() {
            Ok(body) => match parse_schema_body(&body) {
                Ok((text, schema_type, references)) => {
                    state.lookup(subject, &text, &schema_type, references)
                }
                Err(answer) => answer,
            },
            Err(answer) => answer,
        },
        ("GET", ["subjects", subject, "versions"]) => match state.subjects.get(*subject) {
            Some(ids) => Answer::ok(json!((1..=ids.len()).collect::<Vec<_>>())),
            None => subject_not_found(subject),
        },
        ("GET", ["subjects", subject, "versions", version]) => {
            match state.version(subject, version) {
                Ok((v, id)) => {
                    let mut out = state.version_json(subject, v, id);
                    match state.schema(id).and_then(|s| s.serialized.as_ref()) {
                        Some(form) if serialized => out["schema"] = json!(form),
                        _ => {}
                    }
                    Answer::ok(out)
                }
                Err(answer) => answer,
            }
        }
        ("GET", ["subjects", subject, "versions", version, "schema"]) => {
            match state.version(subject, version) {
                Ok((_, id)) => state.raw_schema(id),
                Err(answer) => answer,
            }
        }
        ("DELETE", ["subjects", subject]) => match state.subjects.remove(*subject) {
            Some(ids) => Answer::ok(json!((1..=ids.len()).collect::<Vec<_>>())),
            None => subject_not_found(subject),
        },
        ("GET", ["schemas", "types"]) => Answer::ok(json!(["AVRO", "PROTOBUF", "JSON"])),
        ("GET", ["schemas", "ids", id]) => match id.parse::<u32>().ok().and_then(|id| {
            state.schema(id).map(|s| {
                let text = match &s.serialized {
                    Some(form) if serialized => form,
                    _ => &s.text,
                };
                let mut out = json!({ "schema": text });
                decorate(&mut out, s);
                out
            })
        }) {
            Some(body) => Answer::ok(body),
            None => schema_not_found(id),
        },
        ("GET", ["schemas", "ids", id, "schema"]) => match id.parse::<u32>() {
            Ok(n) if state.schema(n).is_some() => state.raw_schema(n),
            _ => schema_not_found(id),
        },
        ("GET", ["schemas", "ids", id, "versions"]) => match id.parse::<u32>() {
            Ok(n) if state.schema(n).is_some() => {
                let uses: Vec<Value> = state
                    .subjects
                    .iter()
                    .flat_map(|(subject, ids)| {
                        ids.iter()
                            .enumerate()
                            .filter(move |(_, i)| **i == n)
                            .map(move |(v, _)| json!({ "subject": subject, "version": v + 1 }))
                    })
                    .collect();
                Answer::ok(json!(uses))
            }
            _ => schema_not_found(id),
        },
        ("GET", ["config"]) | ("GET", ["config", _]) => {
            Answer::ok(json!({ "compatibilityLevel": "NONE" }))
        }
        (
            _,
            ["subjects"]
            | ["subjects", _]
            | ["subjects", _, "versions"]
            | ["subjects", _, "versions", _]
            | ["schemas", "ids", _],
        ) => Answer::error(405, 405, "HTTP 405 Method Not Allowed"),
        _ => Answer::error(404, 404, "HTTP 404 Not Found"),
    }
}

fn subject_not_found(subject: &str) -> Answer {
    Answer::error(404, 40401, format!("Subject '{subject}' not found."))
}

fn schema_not_found(id: &str) -> Answer {
    Answer::error(404, 40403, format!("Schema {id} not found"))
}

/// Adds `schemaType` (when not AVRO) and `references` (when any) to an
/// answer about `schema`.
fn decorate(out: &mut Value, schema: &StoredSchema) {
    if schema.schema_type != "AVRO" {
        out["schemaType"] = json!(schema.schema_type);
    }
    if schema.references.as_array().is_some_and(|r| !r.is_empty()) {
        out["references"] = schema.references.clone();
    }
}

/// The `schema`, `schemaType` and `references` of a register or lookup
/// request body.
fn parse_schema_body(body: &Value) -> Result<(String, String, Value), Answer> {
    let Some(text) = body.get("schema").and_then(Value::as_str) else {
        return Err(Answer::error(422, 42201, "Empty schema"));
    };
    let schema_type = match body.get("schemaType") {
        None | Some(Value::Null) => "AVRO".to_string(),
        Some(Value::String(t)) if ["AVRO", "PROTOBUF", "JSON"].contains(&t.as_str()) => t.clone(),
        Some(other) => {
            return Err(Answer::error(
                422,
                42201,
                format!("Invalid schema type {other}"),
            ))
        }
    };
    let references = match body.get("references") {
        None | Some(Value::Null) => json!([]),
        Some(r @ Value::Array(_)) => r.clone(),
        Some(other) => {
            return Err(Answer::error(
                422,
                42201,
                format!("Invalid references {other}"),
            ))
        }
    };
    Ok((text.to_string(), schema_type, references))
}

impl State {
    fn schema(&self, id: u32) -> Option<&StoredSchema> {
        self.schemas.get((id as usize).checked_sub(1)?)
    }

    /// The parsed form two schemas compare by, or the 42201 answer.
    fn canonical(text: &str, schema_type: &str) -> Result<Value, Answer> {
        if schema_type == "PROTOBUF" {
            return Ok(Value::String(text.to_string()));
        }
        serde_json::from_str::<Value>(text)
            .map_err(|e| Answer::error(422, 42201, format!("Invalid schema {text}, details: {e}")))
    }

    /// The id of an identical stored schema.
    fn find_id(&self, canonical: &Value, schema_type: &str, references: &Value) -> Option<u32> {
        self.schemas
            .iter()
            .position(|s| {
                let same_text = &s.canonical == canonical
                    || s.serialized
                        .as_deref()
                        .is_some_and(|f| canonical.as_str() == Some(f));
                s.schema_type == schema_type && same_text && &s.references == references
            })
            .map(|i| i as u32 + 1)
    }

    fn register(
        &mut self,
        subject: &str,
        text: &str,
        schema_type: &str,
        references: Value,
    ) -> Answer {
        let canonical = match State::canonical(text, schema_type) {
            Ok(c) => c,
            Err(answer) => return answer,
        };
        let id = match self.find_id(&canonical, schema_type, &references) {
            Some(id) => id,
            None => {
                self.schemas.push(StoredSchema {
                    text: text.to_string(),
                    schema_type: schema_type.to_string(),
                    canonical,
                    references,
                    serialized: None,
                });
                self.schemas.len() as u32
            }
        };
        let versions = self.subjects.entry(subject.to_string()).or_default();
        if !versions.contains(&id) {
            versions.push(id);
        }
        Answer::ok(json!({ "id": id }))
    }

    fn lookup(&self, subject: &str, text: &str, schema_type: &str, references: Value) -> Answer {
        let Some(ids) = self.subjects.get(subject) else {
            return subject_not_found(subject);
        };
        let canonical = match State::canonical(text, schema_type) {
            Ok(c) => c,
            Err(answer) => return answer,
        };
        match self
            .find_id(&canonical, schema_type, &references)
            .and_then(|id| ids.iter().position(|i| *i == id).map(|v| (v + 1, id)))
        {
            Some((version, id)) => Answer::ok(self.version_json(subject, version, id)),
            None => Answer::error(404, 40403, "Schema not found"),
        }
    }

    /// Resolves `version` (`latest`, `-1` or 1..) of `subject` to
    /// (version, id).
    fn version(&self, subject: &str, version: &str) -> Result<(usize, u32), Answer> {
        let Some(ids) = self.subjects.get(subject) else {
            return Err(subject_not_found(subject));
        };
        let wanted = match version {
            "latest" | "-1" => ids.len(),
            v => match v.parse::<i64>() {
                Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => n as usize,
                _ => {
                    return Err(Answer::error(
                        422,
                        42202,
                        format!(
                            "The specified version '{v}' is not a valid version id. Allowed values \
                             are between [1, 2^31-1] and the string \"latest\""
                        ),
                    ))
                }
            },
        };
        match ids.get(wanted.wrapping_sub(1)) {
            Some(id) => Ok((wanted, *id)),
            None => Err(Answer::error(
                404,
                40402,
                format!("Version {version} not found."),
            )),
        }
    }

    fn version_json(&self, subject: &str, version: usize, id: u32) -> Value {
        let mut out = json!({ "subject": subject, "version": version, "id": id });
        if let Some(s) = self.schema(id) {
            out["schema"] = json!(s.text);
            decorate(&mut out, s);
        }
        out
    }

    /// The `/schema` endpoints: the schema itself as the body (parsed JSON
    /// for AVRO and JSON schemas, a JSON string for PROTOBUF).
    fn raw_schema(&self, id: u32) -> Answer {
        match self.schema(id) {
            Some(s) => Answer::ok(s.canonical.clone()),
            None => schema_not_found(&id.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// One answer read off a socket: status, headers (lower-cased names),
    /// body.
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Reads one HTTP answer with a Content-Length body.
    fn read_reply(reader: &mut std::io::BufReader<TcpStream>) -> Reply {
        let mut line = String::new();
        reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h).expect("header line");
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (n, v) = h.split_once(':').expect("header colon");
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .map(|(_, v)| v.parse().expect("content-length"))
            .expect("a content-length header");
        let mut body = vec![0; length];
        reader.read_exact(&mut body).expect("body");
        Reply {
            status,
            headers,
            body: serde_json::from_slice(&body).expect("a JSON body"),
        }
    }

    /// Sends one request on a fresh connection with `Connection: close`.
    fn call(registry: &Registry, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let stream = TcpStream::connect(registry.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut writer = stream.try_clone().expect("clone");
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            writer,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {CONTENT_TYPE}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut reader = std::io::BufReader::new(stream);
        let reply = read_reply(&mut reader);
        assert_eq!(reply.header("connection"), Some("close"));
        let mut rest = Vec::new();
        reader
            .read_to_end(&mut rest)
            .expect("closed after the answer");
        assert!(rest.is_empty(), "bytes after the answer: {rest:?}");
        reply
    }

    const USER: &str =
        r#"{"type":"record","name":"User","fields":[{"name":"id","type":"string"}]}"#;
    const USER_SPACED: &str =
        r#"{ "fields": [ {"type": "string", "name": "id"} ], "name": "User", "type": "record" }"#;
    const ORDER: &str = r#"{"type":"record","name":"Order","fields":[{"name":"n","type":"long"}]}"#;

    #[test]
    fn register_returns_global_ids_and_reuses_identical_schemas() {
        let r = Registry::start();
        let reply = call(
            &r,
            "POST",
            "/subjects/users-value/versions",
            Some(&json!({ "schema": USER })),
        );
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some(CONTENT_TYPE));
        assert_eq!(reply.body, json!({ "id": 1 }));
        // The same schema, spelled differently: same id, no new version.
        let reply = call(
            &r,
            "POST",
            "/subjects/users-value/versions?normalize=false",
            Some(&json!({ "schema": USER_SPACED, "schemaType": "AVRO", "references": [] })),
        );
        assert_eq!(reply.body, json!({ "id": 1 }));
        // Under another subject: the same global id.
        let reply = call(
            &r,
            "POST",
            "/subjects/other-value/versions",
            Some(&json!({ "schema": USER })),
        );
        assert_eq!(reply.body, json!({ "id": 1 }));
        // A different schema: a new id and a second version.
        let reply = call(
            &r,
            "POST",
            "/subjects/users-value/versions",
            Some(&json!({ "schema": ORDER })),
        );
        assert_eq!(reply.body, json!({ "id": 2 }));
        assert_eq!(
            call(&r, "GET", "/subjects/users-value/versions", None).body,
            json!([1, 2])
        );
        assert_eq!(
            call(&r, "GET", "/subjects", None).body,
            json!(["other-value", "users-value"])
        );
        assert_eq!(r.subjects(), vec!["other-value", "users-value"]);
        assert_eq!(r.latest("users-value"), Some((2, ORDER.to_string())));
        assert_eq!(r.latest("nope"), None);
        assert_eq!(r.register("third-value", USER_SPACED), 1);
        assert_eq!(r.versions("users-value"), vec![1, 2]);
    }

    #[test]
    fn get_by_version_and_by_id() {
        let r = Registry::start();
        r.register("t-value", USER);
        r.register("t-value", ORDER);
        let latest = call(&r, "GET", "/subjects/t-value/versions/latest", None);
        assert_eq!(
            latest.body,
            json!({ "subject": "t-value", "id": 2, "version": 2, "schema": ORDER })
        );
        let first = call(&r, "GET", "/subjects/t-value/versions/1", None);
        assert_eq!(
            first.body,
            json!({ "subject": "t-value", "id": 1, "version": 1, "schema": USER })
        );
        assert_eq!(
            call(&r, "GET", "/subjects/t-value/versions/-1", None).body["version"],
            json!(2)
        );
        assert_eq!(
            call(&r, "GET", "/schemas/ids/1", None).body,
            json!({ "schema": USER })
        );
        let raw = call(&r, "GET", "/schemas/ids/2/schema", None);
        assert_eq!(
            raw.body,
            serde_json::from_str::<Value>(ORDER).expect("json")
        );
        assert_eq!(
            call(&r, "GET", "/schemas/ids/1/versions", None).body,
            json!([{ "subject": "t-value", "version": 1 }])
        );
    }

    #[test]
    fn errors_have_confluent_codes() {
        let r = Registry::start();
        r.register("t-value", USER);
        let cases: [(&str, &str, Option<Value>, u16, u32); 8] = [
            ("GET", "/subjects/x/versions/latest", None, 404, 40401),
            ("GET", "/subjects/x/versions", None, 404, 40401),
            ("GET", "/subjects/t-value/versions/7", None, 404, 40402),
            ("GET", "/subjects/t-value/versions/zero", None, 422, 42202),
            ("GET", "/schemas/ids/9999", None, 404, 40403),
            (
                "POST",
                "/subjects/x",
                Some(json!({ "schema": USER })),
                404,
                40401,
            ),
            (
                "POST",
                "/subjects/t-value",
                Some(json!({ "schema": ORDER })),
                404,
                40403,
            ),
            (
                "POST",
                "/subjects/t-value/versions",
                Some(json!({ "schema": "{not json" })),
                422,
                42201,
            ),
        ];
        for (method, path, body, status, code) in cases {
            let reply = call(&r, method, path, body.as_ref());
            assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
            assert_eq!(reply.body["error_code"], json!(code), "{method} {path}");
            assert!(reply.body["message"].is_string(), "{method} {path}");
        }
        assert_eq!(
            call(&r, "GET", "/subjects/x/versions/1", None).body["message"],
            json!("Subject 'x' not found.")
        );
        // The invalid schema registered nothing.
        assert_eq!(r.versions("t-value"), vec![1]);
        assert_eq!(call(&r, "GET", "/nope", None).status, 404);
    }

    #[test]
    fn lookup_and_delete() {
        let r = Registry::start();
        r.register("t-value", USER);
        r.register("t-value", ORDER);
        let found = call(
            &r,
            "POST",
            "/subjects/t-value",
            Some(&json!({ "schema": USER_SPACED })),
        );
        assert_eq!(
            found.body,
            json!({ "subject": "t-value", "id": 1, "version": 1, "schema": USER })
        );
        assert_eq!(
            call(&r, "DELETE", "/subjects/t-value", None).body,
            json!([1, 2])
        );
        assert_eq!(call(&r, "GET", "/subjects", None).body, json!([]));
        assert_eq!(
            call(&r, "DELETE", "/subjects/t-value", None).body["error_code"],
            json!(40401)
        );
        // Ids still resolve after their subject is gone.
        assert_eq!(call(&r, "GET", "/schemas/ids/2", None).status, 200);
    }

    #[test]
    fn schema_type_is_kept_and_shown_when_not_avro() {
        let r = Registry::start();
        let proto = "syntax = \"proto3\"; message M { int32 a = 1; }";
        let reply = call(
            &r,
            "POST",
            "/subjects/p-value/versions",
            Some(&json!({ "schema": proto, "schemaType": "PROTOBUF" })),
        );
        assert_eq!(reply.body, json!({ "id": 1 }));
        let json_schema = r#"{"type":"object"}"#;
        call(
            &r,
            "POST",
            "/subjects/j-value/versions",
            Some(&json!({ "schema": json_schema, "schemaType": "JSON" })),
        );
        assert_eq!(
            call(&r, "GET", "/schemas/ids/1", None).body,
            json!({ "schema": proto, "schemaType": "PROTOBUF" })
        );
        assert_eq!(
            call(&r, "GET", "/subjects/j-value/versions/latest", None).body,
            json!({ "subject": "j-value", "id": 2, "version": 1, "schema": json_schema, "schemaType": "JSON" })
        );
        // The same text as AVRO is not the same schema as the JSON one.
        let reply = call(
            &r,
            "POST",
            "/subjects/a-value/versions",
            Some(&json!({ "schema": json_schema })),
        );
        assert_eq!(reply.body, json!({ "id": 3 }));
        assert_eq!(
            call(&r, "GET", "/schemas/ids/3", None).body,
            json!({ "schema": json_schema })
        );
    }

    #[test]
    fn a_protobuf_schema_answers_to_its_serialized_form_too() {
        let r = Registry::start();
        let proto = "syntax = \"proto3\"; message M { int32 a = 1; }";
        let id = r.register_protobuf("p-value", proto);
        assert_eq!(r.schema_type(id).as_deref(), Some("PROTOBUF"));
        // Before the test gives the serialized form, it is another schema.
        let other = call(
            &r,
            "POST",
            "/subjects/q-value/versions",
            Some(&json!({ "schema": "CgFt", "schemaType": "PROTOBUF" })),
        );
        assert_eq!(other.body, json!({ "id": id + 1 }));
        r.set_serialized(id, "CgdtLnByb3Rv");
        let again = call(
            &r,
            "POST",
            "/subjects/p-value/versions?normalize=False",
            Some(&json!({ "schema": "CgdtLnByb3Rv", "schemaType": "PROTOBUF" })),
        );
        assert_eq!(again.body, json!({ "id": id }));
        assert_eq!(r.versions("p-value"), vec![id]);
        let by_id = |query: &str| call(&r, "GET", &format!("/schemas/ids/{id}{query}"), None).body;
        assert_eq!(
            by_id("?subject=p-value&format=serialized"),
            json!({ "schema": "CgdtLnByb3Rv", "schemaType": "PROTOBUF" })
        );
        assert_eq!(
            by_id(""),
            json!({ "schema": proto, "schemaType": "PROTOBUF" })
        );
        assert_eq!(
            call(
                &r,
                "GET",
                "/subjects/p-value/versions/latest?format=serialized",
                None
            )
            .body["schema"],
            json!("CgdtLnByb3Rv")
        );
        assert_eq!(r.latest("p-value"), Some((id, proto.to_string())));
    }

    #[test]
    fn keep_alive_serves_several_requests_on_one_connection() {
        let r = Registry::start();
        r.register("t-value", USER);
        let stream = TcpStream::connect(r.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = std::io::BufReader::new(stream);
        // Two requests, the second pipelined in the same write, then a
        // third after the answers, with a body.
        writer
            .write_all(
                b"GET /schemas/ids/1 HTTP/1.1\r\nHost: x\r\n\r\n\
                  GET /subjects HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .expect("write");
        let first = read_reply(&mut reader);
        assert_eq!(first.body, json!({ "schema": USER }));
        assert_eq!(first.header("connection"), Some("keep-alive"));
        let second = read_reply(&mut reader);
        assert_eq!(second.body, json!(["t-value"]));
        let body = json!({ "schema": ORDER }).to_string();
        write!(
            writer,
            "POST /subjects/t-value/versions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        assert_eq!(read_reply(&mut reader).body, json!({ "id": 2 }));
        // A chunked body works too, and `Connection: close` closes.
        let chunked = format!(
            "POST /subjects/c-value/versions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
             Connection: close\r\n\r\n{:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
            5,
            &body[..5],
            body.len() - 5,
            &body[5..]
        );
        writer.write_all(chunked.as_bytes()).expect("write");
        let last = read_reply(&mut reader);
        assert_eq!(last.body, json!({ "id": 2 }));
        assert_eq!(last.header("connection"), Some("close"));
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).expect("eof");
        assert!(rest.is_empty());
        assert_eq!(
            r.requests(),
            vec![
                "GET /schemas/ids/1",
                "GET /subjects",
                "POST /subjects/t-value/versions",
                "POST /subjects/c-value/versions",
            ]
        );
    }

    #[test]
    fn http_1_0_closes_and_garbage_is_a_400() {
        let r = Registry::start();
        let mut stream = TcpStream::connect(r.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream
            .write_all(b"GET /subjects HTTP/1.0\r\n\r\n")
            .expect("write");
        let mut all = String::new();
        stream.read_to_string(&mut all).expect("read until close");
        assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
        assert!(all.ends_with("\r\n\r\n[]"), "{all}");

        let mut stream = TcpStream::connect(r.addr()).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(b"nonsense\r\n\r\n").expect("write");
        let mut all = String::new();
        stream.read_to_string(&mut all).expect("read until close");
        assert!(all.starts_with("HTTP/1.1 400 "), "{all}");
    }

    #[test]
    fn percent_encoded_subjects_and_drop_stops_serving() {
        let r = Registry::start();
        let reply = call(
            &r,
            "POST",
            "/subjects/a%2Fb-value/versions",
            Some(&json!({ "schema": USER })),
        );
        assert_eq!(reply.status, 200);
        assert_eq!(r.subjects(), vec!["a/b-value"]);
        // An idle keep-alive connection does not keep the registry alive.
        let idle = TcpStream::connect(r.addr()).expect("connect");
        let addr = r.addr();
        drop(r);
        drop(idle);
        assert!(
            TcpStream::connect(addr).is_err(),
            "still listening after drop"
        );
    }
}
