//! Per-connection state: properties set with `SET`, and the cancel signal
//! for the statement running on the connection.

use std::collections::BTreeMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::engine::lock;

/// One client connection's session.
pub struct Session {
    props: Mutex<BTreeMap<String, String>>,
    /// Bumped by a cancel request; running statements watch it.
    cancel: watch::Sender<u64>,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            props: Mutex::new(BTreeMap::new()),
            cancel: watch::channel(0).0,
        }
    }
}

impl Session {
    pub fn set(&self, name: &str, value: &str) {
        lock(&self.props).insert(name.to_ascii_lowercase(), value.to_string());
    }

    pub fn unset(&self, name: &str) {
        lock(&self.props).remove(&name.to_ascii_lowercase());
    }

    pub fn get(&self, name: &str) -> Option<String> {
        lock(&self.props).get(&name.to_ascii_lowercase()).cloned()
    }

    pub fn props(&self) -> BTreeMap<String, String> {
        lock(&self.props).clone()
    }

    /// Whether queries start at the earliest offset
    /// (`SET 'auto.offset.reset' = 'earliest'`).
    pub fn earliest(&self) -> bool {
        self.get("auto.offset.reset")
            .is_some_and(|v| v.eq_ignore_ascii_case("earliest"))
    }

    /// Signals the running statement to stop.
    pub fn cancel(&self) {
        self.cancel.send_modify(|g| *g += 1);
    }

    /// A receiver that changes when the session is cancelled from now on.
    pub fn cancelled(&self) -> watch::Receiver<u64> {
        let mut rx = self.cancel.subscribe();
        rx.mark_unchanged();
        rx
    }
}
