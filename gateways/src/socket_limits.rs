//! How many game sockets a process holds, in all and per client address. Each costs a file
//! descriptor and memory for as long as it lives; without a cap one address could take them
//! all and nobody else could connect. Checked at the upgrade, so a refused client gets an HTTP
//! answer that says why (503 when the process is full, 429 when its address is).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The caps, shared by every gateway of a process.
#[derive(Debug, Default)]
pub struct SocketLimits {
    /// 0: no cap.
    max_total: usize,
    /// 0: no cap.
    max_per_address: usize,
    total: AtomicUsize,
    /// Sockets per client address; an address leaves the map with its last socket, so it
    /// holds no more entries than there are sockets.
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a socket was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketRefused {
    ProcessFull(usize),
    AddressFull(usize),
}

/// One socket's place, given back when it is dropped (when the connection ends).
#[derive(Debug)]
pub(crate) struct SocketPermit {
    limits: Arc<SocketLimits>,
    address: IpAddr,
}

impl SocketLimits {
    #[must_use]
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self { max_total, max_per_address, ..Self::default() })
    }

    pub(crate) fn acquire(self: &Arc<Self>, address: IpAddr) -> Result<SocketPermit, SocketRefused> {
        let mut per_address = self.per_address.lock().unwrap();
        let held = per_address.get(&address).copied().unwrap_or(0);
        if self.max_per_address > 0 && held >= self.max_per_address {
            return Err(SocketRefused::AddressFull(self.max_per_address));
        }
        if self.max_total > 0 && self.total.load(Ordering::Relaxed) >= self.max_total {
            return Err(SocketRefused::ProcessFull(self.max_total));
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        per_address.insert(address, held + 1);
        Ok(SocketPermit { limits: Arc::clone(self), address })
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut per_address = self.limits.per_address.lock().unwrap();
        if let Some(held) = per_address.get_mut(&self.address) {
            *held -= 1;
            if *held == 0 {
                per_address.remove(&self.address);
            }
        }
        self.limits.total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_all_and_per_address_and_places_come_back() {
        let limits = SocketLimits::new(3, 2);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap(), "192.0.2.3".parse().unwrap());
        let a1 = limits.acquire(a).unwrap();
        let _a2 = limits.acquire(a).unwrap();
        assert_eq!(limits.acquire(a).unwrap_err(), SocketRefused::AddressFull(2));
        let _b1 = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(c).unwrap_err(), SocketRefused::ProcessFull(3));
        drop(a1);
        assert!(limits.acquire(c).is_ok(), "a place came back");
        assert_eq!(limits.per_address.lock().unwrap().len(), 2, "c's permit was dropped at once");
        let unlimited = SocketLimits::new(0, 0);
        let permits: Vec<_> = (0..1000).map(|_| unlimited.acquire(a).unwrap()).collect();
        drop(permits);
        assert!(unlimited.per_address.lock().unwrap().is_empty());
    }
}
