//! Whether a role can do its work now: what `/readyz` answers. The role sets it (a tick
//! generator once it joined its group); the HTTP layer reads it. No I/O: a shared flag.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One role's readiness, shared by the role (which sets it) and `/readyz` (which reads it).
#[derive(Debug, Clone)]
pub struct Readiness {
    /// Shared by every clone: set by the role's task, read by the HTTP handlers.
    ready: Arc<AtomicBool>,
    /// What the role waits for while it is not ready, for operators.
    waiting_for: &'static str,
}

impl Readiness {
    /// A role that is not ready yet, waiting for `waiting_for` (e.g. "the tick generators'
    /// group to be joined").
    #[must_use]
    pub fn new(waiting_for: &'static str) -> Self {
        Self { ready: Arc::new(AtomicBool::new(false)), waiting_for }
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// The role can no longer work (it is stopping): `/readyz` answers 503 again.
    pub fn set_not_ready(&self) {
        self.ready.store(false, Ordering::Release);
    }

    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// What it is waiting for, while not ready.
    #[must_use]
    pub const fn waiting_for(&self) -> &'static str {
        self.waiting_for
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_clone_sees_the_role_become_ready() {
        let role = Readiness::new("its group to be joined");
        let served = role.clone();
        assert!(!served.is_ready());
        assert_eq!(served.waiting_for(), "its group to be joined");
        role.set_ready();
        assert!(served.is_ready());
    }
}
