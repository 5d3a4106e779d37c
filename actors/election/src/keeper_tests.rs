//! One test per rule of the [`LeaseKeeper`].

use super::*;

const JOB: &str = "gc";
const NODE: u64 = 7;

/// Small numbers, so each rule's instant is easy to read: renew at +300, stop at +800.
fn config() -> ElectionConfig {
    ElectionConfig {
        lease_duration_ms: 1_000,
        renew_after_ms: 300,
        safety_margin_ms: 200,
        retry_interval_ms: 100,
        request_timeout_ms: 250,
        tick_ms: 10,
    }
}

fn keeper() -> LeaseKeeper {
    LeaseKeeper::new(JOB, NODE, config(), &LeaseLimits::default()).expect("valid keeper")
}

/// The one proposal among `effects`: its id and request.
fn proposal(effects: &[Effect]) -> (u64, LeaseRequest) {
    let proposals: Vec<_> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Propose {
                request_id,
                request,
            } => Some((*request_id, request.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(proposals.len(), 1, "expected one proposal in {effects:?}");
    proposals[0].clone()
}

fn granted(epoch: u64, expires_at_ms: u64) -> LeaseAnswer {
    LeaseAnswer::Granted {
        epoch,
        expires_at_ms,
    }
}

fn refused(kind: &str) -> LeaseAnswer {
    LeaseAnswer::Refused {
        kind: kind.to_string(),
    }
}

fn unknown() -> LeaseAnswer {
    LeaseAnswer::Failed(ProposalFailure::OutcomeUnknown {
        reason: "timeout".into(),
    })
}

fn not_applied() -> LeaseAnswer {
    LeaseAnswer::Failed(ProposalFailure::NotApplied {
        reason: "no leader".into(),
    })
}

/// A keeper that acquired epoch `epoch` at time 0 (expires 1000, renews at 300, stops at
/// 800) and runs the job.
fn running(epoch: u64) -> LeaseKeeper {
    let mut keeper = keeper();
    let (id, _) = proposal(&keeper.tick(0));
    let effects = keeper.answer(5, id, granted(epoch, 1_000));
    assert_eq!(effects, vec![Effect::StartJob { epoch }]);
    keeper
}

#[test]
fn the_first_tick_proposes_an_acquire_stamped_with_now() {
    let mut keeper = keeper();
    let (_, request) = proposal(&keeper.tick(42));
    assert_eq!(
        request,
        LeaseRequest::Acquire {
            job: JOB.into(),
            holder: NODE,
            duration_ms: 1_000,
            now_ms: 42,
        }
    );
}

#[test]
fn nothing_more_is_proposed_while_a_request_is_in_flight() {
    let mut keeper = keeper();
    proposal(&keeper.tick(0));
    for now_ms in (10..250).step_by(10) {
        assert_eq!(keeper.tick(now_ms), vec![], "at {now_ms}");
    }
}

#[test]
fn a_refused_acquire_is_retried_after_the_retry_interval() {
    let mut keeper = keeper();
    let (id, _) = proposal(&keeper.tick(0));
    assert_eq!(keeper.answer(20, id, refused("lease_held")), vec![]);
    assert_eq!(keeper.tick(119), vec![]);
    let (_, request) = proposal(&keeper.tick(120));
    assert!(matches!(request, LeaseRequest::Acquire { now_ms: 120, .. }));
}

#[test]
fn a_grant_starts_the_job_with_its_epoch() {
    let keeper = running(3);
    assert_eq!(keeper.running_epoch(), Some(3));
}

#[test]
fn the_lease_is_renewed_renew_after_ms_after_its_start() {
    let mut keeper = running(3);
    assert_eq!(keeper.tick(299), vec![]);
    let (_, request) = proposal(&keeper.tick(300));
    assert_eq!(
        request,
        LeaseRequest::Renew {
            job: JOB.into(),
            holder: NODE,
            epoch: 3,
            duration_ms: 1_000,
            now_ms: 300,
        }
    );
}

#[test]
fn a_renewal_moves_the_local_deadline() {
    let mut keeper = running(3);
    let (id, _) = proposal(&keeper.tick(300));
    assert_eq!(keeper.answer(310, id, granted(3, 1_300)), vec![]);
    // The old deadline (800) passes; the new one is 1100, and the next renewal is at 600.
    let (_, request) = proposal(&keeper.tick(600));
    assert!(matches!(request, LeaseRequest::Renew { epoch: 3, .. }));
    assert_eq!(keeper.running_epoch(), Some(3));
}

#[test]
fn the_job_stops_at_the_local_deadline_when_no_renewal_came() {
    let mut keeper = running(3);
    let (id, _) = proposal(&keeper.tick(300));
    let mut answered_at = 310;
    assert_eq!(keeper.answer(answered_at, id, not_applied()), vec![]);
    // Retries every 100 ms are not applied either.
    while answered_at + 100 < 800 {
        let (id, _) = proposal(&keeper.tick(answered_at + 100));
        answered_at += 105;
        assert_eq!(keeper.answer(answered_at, id, not_applied()), vec![]);
    }
    assert_eq!(keeper.tick(799), vec![]);
    let effects = keeper.tick(800);
    assert_eq!(effects[0], Effect::StopJob { epoch: 3 });
    assert_eq!(keeper.running_epoch(), None);
}

#[test]
fn a_refused_renewal_stops_the_job_at_once() {
    for kind in ["lease_expired", "lease_not_held"] {
        let mut keeper = running(3);
        let (id, _) = proposal(&keeper.tick(300));
        assert_eq!(
            keeper.answer(320, id, refused(kind)),
            vec![Effect::StopJob { epoch: 3 }],
            "{kind}"
        );
        assert!(!keeper.status(320).holding);
        // Then it tries to acquire again after the retry interval.
        let (_, request) = proposal(&keeper.tick(420));
        assert!(matches!(request, LeaseRequest::Acquire { .. }));
    }
}

#[test]
fn a_renewal_not_applied_keeps_the_job_and_is_retried() {
    let mut keeper = running(3);
    let (id, _) = proposal(&keeper.tick(300));
    assert_eq!(keeper.answer(330, id, not_applied()), vec![]);
    assert_eq!(keeper.running_epoch(), Some(3));
    assert_eq!(keeper.tick(429), vec![]);
    let (_, request) = proposal(&keeper.tick(430));
    assert!(matches!(request, LeaseRequest::Renew { now_ms: 430, .. }));
}

#[test]
fn an_unknown_renewal_stops_the_job_and_waits_for_the_proposal_to_settle() {
    let mut keeper = running(3);
    let (id, _) = proposal(&keeper.tick(300));
    assert_eq!(
        keeper.answer(320, id, unknown()),
        vec![Effect::StopJob { epoch: 3 }]
    );
    // Nothing until 250 ms after the renewal was sent: it may still reach the log.
    assert_eq!(keeper.tick(549), vec![]);
    // It may still hold epoch 3, which it already ran: it gives that lease back first.
    let (_, request) = proposal(&keeper.tick(550));
    assert!(matches!(request, LeaseRequest::Release { epoch: 3, .. }));
}

#[test]
fn an_unanswered_request_times_out_as_unknown_and_its_late_answer_is_ignored() {
    let mut keeper = running(3);
    let (late, _) = proposal(&keeper.tick(300));
    let effects = keeper.tick(550);
    assert_eq!(effects[0], Effect::StopJob { epoch: 3 });
    let (_, request) = proposal(&effects);
    assert!(matches!(request, LeaseRequest::Release { epoch: 3, .. }));
    // The renewal's answer arrives after all: it belongs to a request given up on.
    assert_eq!(keeper.answer(560, late, granted(3, 1_300)), vec![]);
    assert_eq!(keeper.running_epoch(), None);
}

#[test]
fn a_grant_past_the_local_deadline_does_not_start_the_job() {
    let mut keeper = keeper();
    let (id, _) = proposal(&keeper.tick(0));
    // An expiry this close (counted from an older clock reading) leaves no time to run.
    let effects = keeper.answer(100, id, granted(4, 300));
    assert!(
        !effects.contains(&Effect::StartJob { epoch: 4 }),
        "{effects:?}"
    );
    // It acquires again at once: the epoch never ran, so a renewed grant may run it.
    let (again, request) = proposal(&effects);
    assert!(matches!(request, LeaseRequest::Acquire { now_ms: 100, .. }));
    assert_eq!(
        keeper.answer(110, again, granted(4, 1_100)),
        vec![Effect::StartJob { epoch: 4 }]
    );
}

#[test]
fn a_regranted_epoch_is_released_and_a_fresh_one_acquired() {
    let mut keeper = running(3);
    // Stop at the deadline (the renewal was not applied); the lease (until 1000) is stale.
    let (id, _) = proposal(&keeper.tick(300));
    keeper.answer(310, id, not_applied());
    let effects = keeper.tick(800);
    assert_eq!(effects[0], Effect::StopJob { epoch: 3 });
    let (release, request) = proposal(&effects);
    assert!(matches!(request, LeaseRequest::Release { epoch: 3, .. }));
    let (acquire, request) = proposal(&keeper.answer(810, release, LeaseAnswer::Released));
    assert!(matches!(request, LeaseRequest::Acquire { .. }));
    // An acquire that returns the epoch already run is given back too.
    let (release, request) = proposal(&keeper.answer(820, acquire, granted(3, 1_820)));
    assert!(matches!(request, LeaseRequest::Release { epoch: 3, .. }));
    let (acquire, _) = proposal(&keeper.answer(830, release, refused("lease_not_held")));
    assert_eq!(
        keeper.answer(840, acquire, granted(5, 1_840)),
        vec![Effect::StartJob { epoch: 5 }]
    );
}

#[test]
fn shutdown_stops_the_job_and_releases_the_lease() {
    let mut keeper = running(3);
    let effects = keeper.shutdown(100);
    assert_eq!(effects[0], Effect::StopJob { epoch: 3 });
    let (_, request) = proposal(&effects);
    assert_eq!(
        request,
        LeaseRequest::Release {
            job: JOB.into(),
            holder: NODE,
            epoch: 3,
        }
    );
}

#[test]
fn shutdown_releases_even_with_a_renewal_in_flight() {
    let mut keeper = running(3);
    let (renewal, _) = proposal(&keeper.tick(300));
    let effects = keeper.shutdown(310);
    assert_eq!(effects[0], Effect::StopJob { epoch: 3 });
    let (_, request) = proposal(&effects);
    assert!(matches!(request, LeaseRequest::Release { epoch: 3, .. }));
    // The renewal's answer no longer starts anything.
    assert_eq!(keeper.answer(320, renewal, granted(3, 1_300)), vec![]);
}

#[test]
fn shutdown_without_a_lease_proposes_nothing_and_gives_back_later_grants() {
    let mut keeper = keeper();
    let (acquire, _) = proposal(&keeper.tick(0));
    assert_eq!(keeper.shutdown(10), vec![]);
    let (_, request) = proposal(&keeper.answer(20, acquire, granted(2, 1_000)));
    assert!(matches!(request, LeaseRequest::Release { epoch: 2, .. }));
    assert_eq!(keeper.running_epoch(), None);
}

#[test]
fn status_reports_the_lease_and_the_job() {
    let keeper = running(3);
    assert_eq!(
        keeper.status(100),
        JobStatus {
            job: JOB.into(),
            holding: true,
            epoch: Some(3),
            expires_at_ms: Some(1_000),
            running: true,
        }
    );
    let status = LeaseKeeper::new(JOB, NODE, config(), &LeaseLimits::default())
        .expect("valid keeper")
        .status(0);
    assert!(!status.holding && !status.running && status.epoch.is_none());
}

#[test]
fn invalid_job_names_and_configurations_are_refused() {
    let limits = LeaseLimits::default();
    for job in ["", "GC", "a b"] {
        assert_eq!(
            LeaseKeeper::new(job, NODE, config(), &limits).map(|_| ()),
            Err(ElectionError::JobInvalid { job: job.into() })
        );
    }
    let mut broken = config();
    broken.safety_margin_ms = 1_000;
    assert!(matches!(
        LeaseKeeper::new(JOB, NODE, broken, &limits),
        Err(ElectionError::Config(_))
    ));
}

#[test]
fn requests_become_the_matching_shard_commands() {
    let release = LeaseRequest::Release {
        job: JOB.into(),
        holder: NODE,
        epoch: 9,
    };
    assert_eq!(release.job(), JOB);
    assert_eq!(
        release.to_command(),
        ShardCommand::ReleaseLease {
            job: JOB.into(),
            holder: NODE,
            epoch: 9,
        }
    );
    let renew = LeaseRequest::Renew {
        job: JOB.into(),
        holder: NODE,
        epoch: 9,
        duration_ms: 1_000,
        now_ms: 5,
    };
    assert!(matches!(
        renew.to_command(),
        ShardCommand::RenewLease {
            epoch: 9,
            now_ms: 5,
            ..
        }
    ));
}
