//! Batch reads from a consumer's queue, which the safe rdkafka API lacks.
//!
//! `BaseConsumer::poll` hands out one message per call, and every call is an
//! event poll (a queue pop, an event object, a reference-counted handle and
//! several clock reads): in Kafka mode that was nearly half of a query
//! thread's time. librdkafka's `rd_kafka_consume_batch_queue` takes every
//! message already fetched in one call, as confluent-kafka-python's
//! `Consumer.consume(num_messages)` does. This is the only `unsafe` in rill.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::raw::c_int;
use std::ptr::NonNull;
use std::time::Duration;

use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;

/// A message (or an error in a message's place) taken from a consumer's
/// queue; destroyed when dropped.
///
/// # Invariants
/// - The pointer came from `rd_kafka_consume_batch_queue`, is non-null and
///   is destroyed exactly once, by `Drop`.
pub(super) struct Fetched(NonNull<rdsys::rd_kafka_message_t>);

impl Drop for Fetched {
    fn drop(&mut self) {
        // SAFETY: the message is owned by this value (invariant) and not
        // used after this.
        unsafe { rdsys::rd_kafka_message_destroy(self.0.as_ptr()) }
    }
}

impl Fetched {
    fn raw(&self) -> &rdsys::rd_kafka_message_t {
        // SAFETY: the message is valid until `Drop` (invariant), and
        // librdkafka does not change a message it handed out.
        unsafe { self.0.as_ref() }
    }

    /// The error this stands for (the end of a partition is one), or
    /// `None` for a record.
    pub(super) fn error(&self) -> Option<RDKafkaErrorCode> {
        let err = self.raw().err;
        (err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR)
            .then(|| RDKafkaErrorCode::from(err))
    }

    /// librdkafka's description of the error, with its details.
    pub(super) fn error_text(&self) -> String {
        // SAFETY: the message is valid (invariant); the returned string is
        // either static or owned by the message, and is copied before the
        // message can be dropped.
        unsafe {
            let text = rdsys::rd_kafka_message_errstr(self.0.as_ptr());
            if text.is_null() {
                return String::new();
            }
            CStr::from_ptr(text).to_string_lossy().into_owned()
        }
    }

    pub(super) fn offset(&self) -> i64 {
        self.raw().offset
    }

    /// The record's timestamp in milliseconds, if it has one.
    pub(super) fn timestamp(&self) -> Option<i64> {
        let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: the message is valid (invariant) and `kind` is a valid
        // place for librdkafka to write the timestamp's type to.
        let millis = unsafe { rdsys::rd_kafka_message_timestamp(self.0.as_ptr(), &mut kind) };
        (kind != rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && millis >= 0)
            .then_some(millis)
    }

    pub(super) fn key(&self) -> Option<&[u8]> {
        let raw = self.raw();
        // SAFETY: librdkafka's key is `key_len` bytes owned by the message,
        // which outlives the borrow of `self`.
        unsafe { bytes(raw.key, raw.key_len) }
    }

    pub(super) fn payload(&self) -> Option<&[u8]> {
        let raw = self.raw();
        // SAFETY: as for the key.
        unsafe { bytes(raw.payload, raw.len) }
    }
}

/// # Safety
/// `ptr` is null or points to `len` initialized bytes that live for `'a`.
unsafe fn bytes<'a>(ptr: *mut std::ffi::c_void, len: usize) -> Option<&'a [u8]> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: the caller's contract.
    Some(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>().cast_const(), len) })
}

/// Appends up to `max` messages from the consumer's queue to `out`, waiting
/// up to `timeout` until there are `max` of them (so a caller that wants
/// whatever is there passes zero).
pub(super) fn consume(
    consumer: &BaseConsumer,
    timeout: Duration,
    max: usize,
    out: &mut Vec<Fetched>,
) {
    if max == 0 {
        return;
    }
    let timeout_ms = c_int::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(c_int::MAX);
    let mut taken: Vec<*mut rdsys::rd_kafka_message_t> = Vec::with_capacity(max);
    // SAFETY: the client pointer is valid while `consumer` is borrowed; the
    // queue handle is a new reference, released below. The batch call
    // writes at most `max` message pointers into `taken`'s spare capacity
    // and returns how many (or -1 on an invalid queue); every message it
    // returns is owned by a `Fetched` from here on.
    unsafe {
        let queue = rdsys::rd_kafka_queue_get_consumer(consumer.client().native_ptr());
        if queue.is_null() {
            return;
        }
        let n = rdsys::rd_kafka_consume_batch_queue(queue, timeout_ms, taken.as_mut_ptr(), max);
        rdsys::rd_kafka_queue_destroy(queue);
        if let Ok(n) = usize::try_from(n) {
            taken.set_len(n.min(max));
        }
    }
    out.extend(taken.into_iter().filter_map(NonNull::new).map(Fetched));
}
