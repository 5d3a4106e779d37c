//! The election actor over tokio's paused clock: two nodes' actors compete for one job
//! through a fake shard 0 (a [`LeaseTable`] behind a mutex, reached through a
//! [`LeaseProposer`], or through a real [`Mailbox`] to a fake shard actor).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use inferadb_election::{
    lease_answer, BoxFuture, ElectionActor, ElectionArguments, ElectionConfig, ElectionMsg,
    JobRunner, JobStatus, LeaseAnswer, LeaseProposer,
};
use inferadb_messages::{ActorDirectory, Mailbox, ProposalFailure, ShardMsg};
use inferadb_protocols::Clock;
use inferadb_shard::{LeaseLimits, LeaseTable, ShardAnswer, ShardCommand};
use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef};

const JOB: &str = "gc";

fn config() -> ElectionConfig {
    ElectionConfig {
        lease_duration_ms: 3_000,
        renew_after_ms: 1_000,
        safety_margin_ms: 500,
        retry_interval_ms: 200,
        request_timeout_ms: 1_000,
        tick_ms: 50,
    }
}

/// tokio's (paused) clock as Unix milliseconds, offset per node to model skew.
struct TestClock {
    start: tokio::time::Instant,
    offset_ms: u64,
}

impl TestClock {
    fn new(offset_ms: u64) -> Arc<TestClock> {
        Arc::new(TestClock {
            start: tokio::time::Instant::now(),
            offset_ms,
        })
    }
}

impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        1_000_000 + self.offset_ms + self.start.elapsed().as_millis() as u64
    }
}

/// Shard 0's lease table, shared by every node.
#[derive(Clone)]
struct Shard0(Arc<Mutex<LeaseTable>>);

impl Shard0 {
    fn new() -> Shard0 {
        Shard0(Arc::new(Mutex::new(
            LeaseTable::new(LeaseLimits::default()),
        )))
    }

    /// Applies an encoded lease command as the shard machine would.
    fn apply(&self, data: &[u8]) -> Vec<u8> {
        let mut table = self.0.lock();
        let outcome = match ShardCommand::decode(data).expect("a shard command") {
            ShardCommand::AcquireLease {
                job,
                holder,
                duration_ms,
                now_ms,
            } => table
                .acquire(&job, holder, duration_ms, now_ms)
                .map(granted),
            ShardCommand::RenewLease {
                job,
                holder,
                epoch,
                duration_ms,
                now_ms,
            } => table
                .renew(&job, holder, epoch, duration_ms, now_ms)
                .map(granted),
            ShardCommand::ReleaseLease { job, holder, epoch } => table
                .release(&job, holder, epoch)
                .map(|()| ShardAnswer::LeaseReleased),
            other => panic!("not a lease command: {other:?}"),
        };
        outcome
            .unwrap_or_else(|error| ShardAnswer::refused(error.kind(), error.to_string()))
            .encode()
    }

    fn lease(&self) -> Option<inferadb_shard::Lease> {
        self.0.lock().get(JOB).copied()
    }
}

fn granted(lease: inferadb_shard::Lease) -> ShardAnswer {
    ShardAnswer::LeaseGranted {
        epoch: lease.epoch,
        expires_at_ms: lease.expires_at_ms,
    }
}

impl LeaseProposer for Shard0 {
    fn propose(&self, data: Vec<u8>) -> BoxFuture<'static, Result<Vec<u8>, ProposalFailure>> {
        let answer = self.apply(&data);
        Box::pin(async move { Ok(answer) })
    }
}

/// What every node's job did, in order.
#[derive(Default)]
struct JobLog {
    /// node → the epoch it runs.
    running: BTreeMap<u64, u64>,
    /// (node, epoch, the node's clock) of every start.
    starts: Vec<(u64, u64, u64)>,
    /// Starts while another node ran the job.
    overlaps: u32,
}

struct Recorder {
    node: u64,
    clock: Arc<TestClock>,
    log: Arc<Mutex<JobLog>>,
}

impl JobRunner for Recorder {
    fn start(&self, epoch: u64) {
        let mut log = self.log.lock();
        if !log.running.is_empty() {
            log.overlaps += 1;
        }
        log.running.insert(self.node, epoch);
        log.starts.push((self.node, epoch, self.clock.now_ms()));
    }

    fn stop(&self, epoch: u64) {
        let mut log = self.log.lock();
        assert_eq!(log.running.remove(&self.node), Some(epoch));
    }
}

async fn spawn(
    node: u64,
    clock: Arc<TestClock>,
    proposer: Arc<dyn LeaseProposer>,
    log: &Arc<Mutex<JobLog>>,
) -> ActorRef<ElectionMsg> {
    let runner = Arc::new(Recorder {
        node,
        clock: Arc::clone(&clock),
        log: Arc::clone(log),
    });
    let arguments = ElectionArguments {
        node_id: node,
        config: config(),
        limits: LeaseLimits::default(),
        jobs: vec![(JOB.to_string(), runner as Arc<dyn JobRunner>)],
        proposer,
        clock,
    };
    let (actor, _) = Actor::spawn(None, ElectionActor, arguments)
        .await
        .expect("the election actor starts");
    actor
}

async fn status(actor: &ActorRef<ElectionMsg>) -> JobStatus {
    let statuses =
        ractor::call!(actor, |reply| ElectionMsg::Status { reply }).expect("the actor answers");
    assert_eq!(statuses.len(), 1);
    statuses[0].clone()
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

/// Two nodes (the second's clock 40 ms ahead) over one table: the holder after `wait_ms`.
async fn two_nodes(
    shard: &Shard0,
    log: &Arc<Mutex<JobLog>>,
    wait_ms: u64,
) -> [(u64, ActorRef<ElectionMsg>); 2] {
    let one = spawn(1, TestClock::new(0), Arc::new(shard.clone()), log).await;
    let two = spawn(2, TestClock::new(40), Arc::new(shard.clone()), log).await;
    sleep_ms(wait_ms).await;
    let holder = shard.lease().expect("someone holds the lease").holder;
    if holder == 1 {
        [(1, one), (2, two)]
    } else {
        [(2, two), (1, one)]
    }
}

#[tokio::test(start_paused = true)]
async fn two_actors_compete_and_only_one_runs_the_job() {
    let shard = Shard0::new();
    let log = Arc::new(Mutex::new(JobLog::default()));
    let [(holder, holder_actor), (_, other_actor)] = two_nodes(&shard, &log, 20_000).await;
    {
        let log = log.lock();
        assert_eq!(log.overlaps, 0);
        // Renewed all along: one start, never a stop.
        assert_eq!(log.starts.len(), 1, "{:?}", log.starts);
        assert_eq!(
            log.running.keys().copied().collect::<Vec<_>>(),
            vec![holder]
        );
    }
    let held = status(&holder_actor).await;
    assert!(held.holding && held.running, "{held:?}");
    assert_eq!(held.epoch, Some(shard.lease().expect("held").epoch));
    let other = status(&other_actor).await;
    assert!(!other.holding && !other.running, "{other:?}");
    other_actor.stop(None);
    holder_actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_killed_holder_is_replaced_after_its_lease_expires() {
    let shard = Shard0::new();
    let log = Arc::new(Mutex::new(JobLog::default()));
    let [(_, holder_actor), (other, other_actor)] = two_nodes(&shard, &log, 5_000).await;
    let lease = shard.lease().expect("held");
    // Killed: no post_stop, so no release; its job stops as its state is dropped.
    holder_actor
        .kill_and_wait(None)
        .await
        .expect("the holder stops");
    assert!(
        log.lock().running.is_empty(),
        "the killed holder's job stopped"
    );
    sleep_ms(5_000).await;
    let log = log.lock();
    assert_eq!(log.overlaps, 0);
    let &(node, epoch, at_ms) = log.starts.last().expect("a takeover");
    assert_eq!(node, other);
    assert!(epoch > lease.epoch);
    // Not before the lease expired (the other's clock is 40 ms ahead of the holder's,
    // within the margin), and soon after: within a retry interval and a tick or two.
    assert!(
        at_ms + 40 >= lease.expires_at_ms,
        "{at_ms} vs {}",
        lease.expires_at_ms
    );
    assert!(at_ms <= lease.expires_at_ms + 40 + 200 + 2 * 50);
    drop(log);
    other_actor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_stopped_holder_releases_and_the_other_takes_over_before_expiry() {
    let shard = Shard0::new();
    let log = Arc::new(Mutex::new(JobLog::default()));
    let [(_, holder_actor), (other, other_actor)] = two_nodes(&shard, &log, 5_000).await;
    let lease = shard.lease().expect("held");
    holder_actor
        .stop_and_wait(None, None)
        .await
        .expect("the holder stops");
    sleep_ms(500).await;
    let log = log.lock();
    let &(node, epoch, at_ms) = log.starts.last().expect("a takeover");
    assert_eq!((node, log.overlaps), (other, 0));
    assert!(epoch > lease.epoch);
    assert!(
        at_ms < lease.expires_at_ms,
        "released, so no wait for the expiry"
    );
    drop(log);
    other_actor.stop(None);
}

/// A fake shard actor: answers `Propose` from the shared table.
struct FakeShard;

impl Actor for FakeShard {
    type Msg = ShardMsg;
    type State = Shard0;
    type Arguments = Shard0;

    async fn pre_start(
        &self,
        _myself: ActorRef<ShardMsg>,
        shard: Shard0,
    ) -> Result<Shard0, ActorProcessingErr> {
        Ok(shard)
    }

    async fn handle(
        &self,
        _myself: ActorRef<ShardMsg>,
        message: ShardMsg,
        shard: &mut Shard0,
    ) -> Result<(), ActorProcessingErr> {
        if let ShardMsg::Propose { data, reply } = message {
            let _ = reply.send(Ok(shard.apply(&data)));
        }
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_mailbox_proposer_reaches_the_shard_actor_by_name() {
    let directory = ActorDirectory::new();
    let name = "election-test/shard/0";
    let mailbox: Mailbox<ShardMsg> = Mailbox::new(directory.record(name, None, "shard"));
    let command = ShardCommand::AcquireLease {
        job: JOB.into(),
        holder: 1,
        duration_ms: 1_000,
        now_ms: 5,
    };
    // Nobody registered under the name yet: not applied, safe to retry.
    let outcome = mailbox.propose(command.encode()).await;
    assert!(matches!(
        lease_answer(outcome),
        LeaseAnswer::Failed(ProposalFailure::NotApplied { .. })
    ));
    let shard = Shard0::new();
    let (shard_actor, _) = Actor::spawn(Some(name.to_string()), FakeShard, shard.clone())
        .await
        .expect("the fake shard starts");
    let outcome = mailbox.propose(command.encode()).await;
    assert_eq!(
        lease_answer(outcome),
        LeaseAnswer::Granted {
            epoch: 1,
            expires_at_ms: 1_005,
        }
    );
    // And a whole election actor over it.
    let log = Arc::new(Mutex::new(JobLog::default()));
    let actor = spawn(2, TestClock::new(0), Arc::new(mailbox), &log).await;
    sleep_ms(3_000).await;
    assert_eq!(log.lock().running.get(&2), Some(&2));
    actor.stop(None);
    shard_actor.stop(None);
}

#[test]
fn shard_answers_map_to_lease_answers() {
    let refused = ShardAnswer::refused("lease_held", "held by node 2").encode();
    assert_eq!(
        lease_answer(Ok(refused)),
        LeaseAnswer::Refused {
            kind: "lease_held".into()
        }
    );
    assert_eq!(
        lease_answer(Ok(ShardAnswer::LeaseReleased.encode())),
        LeaseAnswer::Released
    );
    for odd in [ShardAnswer::AlreadyApplied.encode(), vec![0xff]] {
        assert!(matches!(
            lease_answer(Ok(odd)),
            LeaseAnswer::Failed(ProposalFailure::OutcomeUnknown { .. })
        ));
    }
}

#[tokio::test(start_paused = true)]
async fn a_repeated_or_invalid_job_is_refused_at_start() {
    let log = Arc::new(Mutex::new(JobLog::default()));
    let runner = |node| -> Arc<dyn JobRunner> {
        Arc::new(Recorder {
            node,
            clock: TestClock::new(0),
            log: Arc::clone(&log),
        })
    };
    for jobs in [
        vec![(JOB.to_string(), runner(1)), (JOB.to_string(), runner(1))],
        vec![("Not A Name".to_string(), runner(1))],
    ] {
        let arguments = ElectionArguments {
            node_id: 1,
            config: config(),
            limits: LeaseLimits::default(),
            jobs,
            proposer: Arc::new(Shard0::new()),
            clock: TestClock::new(0),
        };
        assert!(Actor::spawn(None, ElectionActor, arguments).await.is_err());
    }
}
