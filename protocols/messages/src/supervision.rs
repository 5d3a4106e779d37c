//! Restart intensity, as a pure type: at most `max_restarts` restarts within `within_ms`,
//! then the supervisor gives up on the child and escalates (fails itself).

use std::collections::VecDeque;

/// What a supervisor does about a child that stopped abnormally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartDecision {
    /// Start the child again.
    Restart,
    /// Too many restarts in the window: give up and fail the supervisor.
    Escalate,
}

/// How often a child may be restarted: at most `max_restarts` within `within_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartIntensity {
    /// Restarts allowed within the window.
    pub max_restarts: u32,
    /// The window.
    pub within_ms: u64,
}

/// Counts one child's recent restarts against its restart intensity.
#[derive(Clone, Debug)]
pub struct RestartTracker {
    max_restarts: u32,
    within_ms: u64,
    recent_ms: VecDeque<u64>,
}

impl RestartTracker {
    /// A tracker for `intensity`.
    pub fn with_intensity(intensity: RestartIntensity) -> RestartTracker {
        RestartTracker::new(intensity.max_restarts, intensity.within_ms)
    }

    /// A tracker allowing `max_restarts` restarts within any `within_ms` window.
    pub fn new(max_restarts: u32, within_ms: u64) -> RestartTracker {
        RestartTracker {
            max_restarts,
            within_ms,
            recent_ms: VecDeque::new(),
        }
    }

    /// Decides what to do about a failure at `now_ms`, and counts the restart if it is one.
    pub fn on_failure(&mut self, now_ms: u64) -> RestartDecision {
        while let Some(&oldest) = self.recent_ms.front() {
            if now_ms.saturating_sub(oldest) >= self.within_ms {
                self.recent_ms.pop_front();
            } else {
                break;
            }
        }
        if self.recent_ms.len() >= self.max_restarts as usize {
            return RestartDecision::Escalate;
        }
        self.recent_ms.push_back(now_ms);
        RestartDecision::Restart
    }
}

/// Longest a supervisor waits for a dead incarnation (and its children) to release its
/// name before starting the next one.
pub const UNREGISTER_WAIT_MS: u64 = 5_000;

/// Waits (bounded) until no actor is registered under `name`: a dead incarnation
/// unregisters only after its supervisor was told of its end, and the children of a killed
/// supervisor stop after it. Anything still registered under the name is stopped first.
pub async fn wait_until_unregistered(name: &str) {
    let Some(old) = ractor::registry::where_is(name.to_string()) else {
        return;
    };
    old.stop(Some("replaced by a restart".to_string()));
    // The name is released a little after the actor reports its end; poll (bounded) rather
    // than race the registry.
    let attempts = UNREGISTER_WAIT_MS / UNREGISTER_POLL_MS;
    for _ in 0..attempts {
        if ractor::registry::where_is(name.to_string()).is_none() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(UNREGISTER_POLL_MS)).await;
    }
}

/// How often, and how far apart, [`spawn_under_name`] tries again while a dead
/// incarnation still holds the name.
pub const SPAWN_ATTEMPTS: u32 = 200;
/// See [`SPAWN_ATTEMPTS`].
pub const SPAWN_RETRY_MS: u64 = 5;

/// Starts an actor under the stable `name` of a previous incarnation: waits until the name
/// is free, then runs `spawn`, trying again (bounded) while the registry still answers
/// `ActorAlreadyRegistered` (the name is released a little after the actor's end is
/// reported). `spawn` builds its arguments afresh on every attempt.
pub async fn spawn_under_name<T, E, F, Fut>(name: &str, mut spawn: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: AlreadyRegistered,
{
    let mut attempt = 1;
    loop {
        wait_until_unregistered(name).await;
        match spawn().await {
            Err(error) if error.already_registered() && attempt < SPAWN_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(SPAWN_RETRY_MS)).await;
            }
            other => return other,
        }
    }
}

/// An error that may say "the name is still taken".
pub trait AlreadyRegistered {
    /// Whether the spawn failed only because the name is still registered.
    fn already_registered(&self) -> bool;
}

impl AlreadyRegistered for ractor::SpawnErr {
    fn already_registered(&self) -> bool {
        matches!(self, ractor::SpawnErr::ActorAlreadyRegistered(_))
    }
}

impl AlreadyRegistered for ractor::ActorProcessingErr {
    fn already_registered(&self) -> bool {
        self.downcast_ref::<ractor::SpawnErr>()
            .is_some_and(AlreadyRegistered::already_registered)
    }
}

/// How often [`wait_until_unregistered`] looks again.
const UNREGISTER_POLL_MS: u64 = 5;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn restarts_until_the_window_is_full_then_escalates() {
        let mut tracker = RestartTracker::new(3, 1_000);
        assert_eq!(tracker.on_failure(0), RestartDecision::Restart);
        assert_eq!(tracker.on_failure(10), RestartDecision::Restart);
        assert_eq!(tracker.on_failure(20), RestartDecision::Restart);
        assert_eq!(tracker.on_failure(30), RestartDecision::Escalate);
        // Once the first restart leaves the window, one more is allowed.
        assert_eq!(tracker.on_failure(1_000), RestartDecision::Restart);
    }

    #[test]
    fn zero_restarts_always_escalates() {
        let mut tracker = RestartTracker::new(0, 1_000);
        assert_eq!(tracker.on_failure(5), RestartDecision::Escalate);
    }

    proptest! {
        /// Against a direct count: a failure is restarted exactly when fewer than
        /// `max_restarts` granted restarts lie within the window before it.
        #[test]
        fn matches_a_direct_count(
            max_restarts in 0u32..5,
            within_ms in 1u64..100,
            gaps in proptest::collection::vec(0u64..60, 1..40),
        ) {
            let mut tracker = RestartTracker::new(max_restarts, within_ms);
            let mut granted: Vec<u64> = Vec::new();
            let mut now = 0;
            for gap in gaps {
                now += gap;
                let in_window = granted.iter().filter(|&&at| now - at < within_ms).count();
                let expected = if in_window < max_restarts as usize {
                    granted.push(now);
                    RestartDecision::Restart
                } else {
                    RestartDecision::Escalate
                };
                prop_assert_eq!(tracker.on_failure(now), expected);
            }
        }
    }
}
