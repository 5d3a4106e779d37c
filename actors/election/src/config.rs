//! [`ElectionConfig`]: the lease timings every singleton job of a node runs with, and the
//! rules they must follow (see the crate documentation for why each rule exists).

use inferadb_shard::LeaseLimits;

/// How long a granted or renewed lease lasts, unless configured.
pub const DEFAULT_LEASE_DURATION_MS: u64 = 15_000;

/// How long after a lease's start its holder renews it, unless configured: a third of the
/// default duration, so a renewal that is not applied can be retried before the lease lapses.
pub const DEFAULT_RENEW_AFTER_MS: u64 = 5_000;

/// How long before the lease's expiry (by its own clock) a holder stops the job, unless
/// configured: the budget for clock skew and a late tick.
pub const DEFAULT_SAFETY_MARGIN_MS: u64 = 3_000;

/// How long a node waits between two attempts to acquire a lease it does not hold, unless
/// configured.
pub const DEFAULT_RETRY_INTERVAL_MS: u64 = 1_000;

/// How long a lease proposal may go unanswered before its outcome is treated as unknown,
/// unless configured.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 5_000;

/// The period of the election actor's timer, unless configured.
pub const DEFAULT_TICK_MS: u64 = 100;

/// The lease timings of a node's singleton jobs (every job uses the same). All in
/// milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ElectionConfig {
    /// How long a granted or renewed lease lasts in shard 0's table (from the proposal's
    /// clock reading). How long a crashed holder blocks its job.
    pub lease_duration_ms: u64,
    /// How long after a lease's start the holder proposes its renewal.
    pub renew_after_ms: u64,
    /// How long before the lease's expiry, by the holder's own clock, the holder stops the
    /// job if no renewal came: the budget for clock skew between nodes plus the delay of
    /// the tick that notices the deadline.
    pub safety_margin_ms: u64,
    /// How long a node that does not hold a lease waits between acquire attempts, and
    /// before retrying a renewal or release that was not applied.
    pub retry_interval_ms: u64,
    /// How long a lease proposal may go unanswered before its outcome is treated as
    /// unknown. Also the longest a proposal is assumed to take to reach shard 0's log.
    pub request_timeout_ms: u64,
    /// The period of the election actor's timer: deadlines are noticed at most this late.
    pub tick_ms: u64,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        Self {
            lease_duration_ms: DEFAULT_LEASE_DURATION_MS,
            renew_after_ms: DEFAULT_RENEW_AFTER_MS,
            safety_margin_ms: DEFAULT_SAFETY_MARGIN_MS,
            retry_interval_ms: DEFAULT_RETRY_INTERVAL_MS,
            request_timeout_ms: DEFAULT_REQUEST_TIMEOUT_MS,
            tick_ms: DEFAULT_TICK_MS,
        }
    }
}

/// Why an [`ElectionConfig`] was refused. The message names the field and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ElectionConfigError {
    /// A field breaks a rule.
    #[error("election.{field} = {value} ms: {rule}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The rule it breaks.
        rule: String,
    },
}

impl ElectionConfig {
    /// Checks every rule against shard 0's lease `limits`; the first one broken is
    /// reported.
    pub fn validate(&self, limits: &LeaseLimits) -> Result<(), ElectionConfigError> {
        let max_ms = limits.lease_duration_max_ms;
        let usable_ms = self.lease_duration_ms.saturating_sub(self.safety_margin_ms);
        let rules = [
            (
                "lease_duration_ms",
                self.lease_duration_ms,
                (1..=max_ms).contains(&self.lease_duration_ms),
                format!("must be between 1 and the lease table's limit of {max_ms} ms"),
            ),
            (
                "safety_margin_ms",
                self.safety_margin_ms,
                self.safety_margin_ms < self.lease_duration_ms,
                "must be less than lease_duration_ms".to_string(),
            ),
            (
                "tick_ms",
                self.tick_ms,
                self.tick_ms >= 1 && self.tick_ms < self.safety_margin_ms,
                // A deadline is noticed up to one tick late: the margin must cover it.
                "must be at least 1 and less than safety_margin_ms".to_string(),
            ),
            (
                "retry_interval_ms",
                self.retry_interval_ms,
                self.retry_interval_ms >= 1,
                "must be at least 1".to_string(),
            ),
            (
                "request_timeout_ms",
                self.request_timeout_ms,
                self.request_timeout_ms >= 1,
                "must be at least 1".to_string(),
            ),
            (
                "renew_after_ms",
                self.renew_after_ms,
                self.renew_after_ms >= 1
                    && self.renew_after_ms.saturating_add(self.request_timeout_ms) < usable_ms,
                // Otherwise a renewal could time out only after the job had to stop anyway.
                format!(
                    "must be at least 1, and renew_after_ms + request_timeout_ms must be less \
                     than lease_duration_ms - safety_margin_ms ({usable_ms} ms)"
                ),
            ),
        ];
        match rules.into_iter().find(|(_, _, holds, _)| !holds) {
            Some((field, value, _, rule)) => {
                Err(ElectionConfigError::Invalid { field, value, rule })
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_pass() {
        assert_eq!(
            ElectionConfig::default().validate(&LeaseLimits::default()),
            Ok(())
        );
    }

    #[test]
    fn each_rule_is_reported_with_its_field() {
        let broken = |change: fn(&mut ElectionConfig)| {
            let mut config = ElectionConfig::default();
            change(&mut config);
            config
        };
        let cases: [(ElectionConfig, &str); 9] = [
            (broken(|c| c.lease_duration_ms = 0), "lease_duration_ms"),
            (
                broken(|c| c.lease_duration_ms = 60_001),
                "lease_duration_ms",
            ),
            (broken(|c| c.safety_margin_ms = 15_000), "safety_margin_ms"),
            (broken(|c| c.tick_ms = 0), "tick_ms"),
            (broken(|c| c.tick_ms = 3_000), "tick_ms"),
            (broken(|c| c.retry_interval_ms = 0), "retry_interval_ms"),
            (broken(|c| c.request_timeout_ms = 0), "request_timeout_ms"),
            (broken(|c| c.renew_after_ms = 0), "renew_after_ms"),
            (broken(|c| c.renew_after_ms = 7_000), "renew_after_ms"),
        ];
        for (config, field) in cases {
            let error = config
                .validate(&LeaseLimits::default())
                .expect_err("the rule must be broken");
            let ElectionConfigError::Invalid { field: named, .. } = &error;
            assert_eq!(*named, field, "{error}");
            assert!(error
                .to_string()
                .starts_with(&format!("election.{field} = ")));
        }
    }
}
