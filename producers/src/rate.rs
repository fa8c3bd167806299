//! Games started per client address: each is a durable write and a session that ticks until it
//! ends, so one address may start `per_minute` a minute (a burst of as many, then one every
//! `60 / per_minute` s). The client address is the one the HTTP server resolved (the peer, or
//! the first untrusted `X-Forwarded-For` hop behind a trusted proxy).

use std::net::IpAddr;
use std::num::NonZeroU32;

use axum::http::StatusCode;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::ApiError;

/// Addresses remembered before the ones with a full allowance again are forgotten.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug)]
pub(crate) struct GameRateLimit {
    per_minute: u32,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl GameRateLimit {
    /// `None` for 0 (no limit).
    pub(crate) fn per_minute(per_minute: u32) -> Option<Self> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
        Some(Self { per_minute, limiter: RateLimiter::keyed(quota), clock: DefaultClock::default() })
    }

    /// Takes one game from `ip`'s allowance, or says when the next one is allowed.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), ApiError> {
        if self.limiter.len() > PRUNE_ABOVE {
            // Bounded memory: an address back at its full allowance is as good as a new one.
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&ip).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let retry_after_s = wait.as_secs_f64().ceil().max(1.0) as u32;
            crate::metrics::game_rate_limited("address");
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "this address started {} games in the last minute (TICKCAST_GAME_RATE_PER_IP); retry in {retry_after_s} s",
                    self.per_minute
                ),
            )
            .retry_after(retry_after_s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_allowance_then_a_retry_after() {
        let limit = GameRateLimit::per_minute(3).unwrap();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        for _ in 0..3 {
            assert!(limit.check(a).is_ok());
        }
        let refused = limit.check(a).unwrap_err();
        assert_eq!((refused.status, refused.code), (StatusCode::TOO_MANY_REQUESTS, "rate_limited"));
        let retry = refused.retry_after_s.unwrap();
        assert!((1..=20).contains(&retry), "one game every 20 s: {retry}");
        assert!(limit.check(b).is_ok(), "another address has its own allowance");
        assert!(GameRateLimit::per_minute(0).is_none());
    }
}
