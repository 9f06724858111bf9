//! Lanes: the queued jobs of one product's holds or one partition's orders,
//! as one shared snapshot per lane in the api. A place in line is
//! 1 + the snapshot's ids below the job's own (ids are time-ordered), so
//! however many clients ask, a lane costs one indexed range read at most
//! every [`REFRESH_EVERY`], and only while someone asks: a poll that finds
//! the snapshot older reads it again (one reader at a time, the others wait
//! for its result); open streams keep a lane fresh through one driver task.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError, atomic::Ordering},
    time::{Duration, Instant},
};

use sqlx::MySqlPool;
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    rate::{Decisions, Rate},
    reads::Reads,
    streams::Streams,
};
use crate::{
    db::queue,
    domain::{JobKind, job::QueuePlace},
};

/// The most often a lane is read.
pub const REFRESH_EVERY: Duration = Duration::from_millis(250);
/// The most ids one snapshot holds. A job past them is told the place just
/// after them until the lane shortens; a sale's queue is bounded by its
/// stock well before this.
const SNAPSHOT_LIMIT: u32 = 100_000;
/// A streamed job missing from a snapshot is handed to the final-state
/// reader; if it is still queued there (it cannot be, but a row moved by
/// hand could), it is handed again no sooner than this.
const VANISHED_AGAIN_AFTER: Duration = Duration::from_secs(2);
/// A lane nobody asked about for this long is forgotten.
const IDLE: Duration = Duration::from_secs(60);

/// Which queue a job waits in: its kind and `jobs.lane`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LaneKey {
    pub kind: JobKind,
    pub lane: i64,
}

/// The lanes asked about, each with its snapshot. Cheap to clone.
#[derive(Clone)]
pub struct Lanes {
    inner: Arc<Inner>,
}

struct Inner {
    pool: MySqlPool,
    reads: Arc<Reads>,
    streams: Streams,
    decisions: Arc<Decisions>,
    lanes: Mutex<(HashMap<LaneKey, Arc<Lane>>, Instant)>,
}

pub struct Lane {
    key: LaneKey,
    /// Jobs decided everywhere: the rate before this lane's is measured.
    decisions: Arc<Decisions>,
    state: Mutex<State>,
    /// Held while the lane is read: the single flight.
    reading: tokio::sync::Mutex<()>,
    /// Bumped when a snapshot changes the ids.
    changed: watch::Sender<u64>,
}

struct State {
    snapshot: Option<Snapshot>,
    /// When the last read started, whether or not it succeeded.
    attempted: Option<Instant>,
    rate: Rate,
    /// Polled jobs: the place each was last told, and when, so a job
    /// recorded late with a lower id cannot push a polled job back.
    told: HashMap<Uuid, (u64, Instant)>,
    /// Streamed jobs: since when each is known queued, and by how many
    /// streams.
    watched: HashMap<Uuid, (Instant, usize)>,
    /// A driver task keeps the lane fresh for its streams.
    driven: bool,
    asked: Instant,
}

struct Snapshot {
    ids: Vec<Uuid>,
    started: Instant,
    /// False when cut at [`SNAPSHOT_LIMIT`]: it says nothing past its last id.
    complete: bool,
}

impl Snapshot {
    fn ahead_of(&self, id: &Uuid) -> u64 {
        self.ids.partition_point(|other| other < id) as u64
    }

    fn contains(&self, id: &Uuid) -> bool {
        self.ids.binary_search(id).is_ok()
    }

    fn covers(&self, id: &Uuid) -> bool {
        self.complete || self.ids.last().is_some_and(|last| id <= last)
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Lanes {
    pub fn new(
        pool: MySqlPool,
        reads: Arc<Reads>,
        streams: Streams,
        decisions: Arc<Decisions>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                reads,
                streams,
                decisions,
                lanes: Mutex::new((HashMap::new(), Instant::now())),
            }),
        }
    }

    fn lane(&self, key: LaneKey) -> Arc<Lane> {
        let mut guard = locked(&self.inner.lanes);
        let (lanes, swept) = &mut *guard;
        if swept.elapsed() > IDLE {
            *swept = Instant::now();
            // Held only by the map: no stream, no driver, no poll under way.
            lanes.retain(|_, lane| {
                Arc::strong_count(lane) > 1 || locked(&lane.state).asked.elapsed() < IDLE
            });
        }
        let lane = lanes.entry(key).or_insert_with(|| {
            Arc::new(Lane {
                key,
                decisions: self.inner.decisions.clone(),
                state: Mutex::new(State {
                    snapshot: None,
                    attempted: None,
                    rate: Rate::default(),
                    told: HashMap::new(),
                    watched: HashMap::new(),
                    driven: false,
                    asked: Instant::now(),
                }),
                reading: tokio::sync::Mutex::new(()),
                changed: watch::Sender::new(0),
            })
        });
        locked(&lane.state).asked = Instant::now();
        lane.clone()
    }

    /// The place of `job_id`, known queued in `key`, for a poll: never
    /// more than this replica told it before.
    pub async fn place(&self, key: LaneKey, job_id: Uuid) -> sqlx::Result<QueuePlace> {
        let lane = self.lane(key);
        self.refresh(&lane).await?;
        let mut state = locked(&lane.state);
        let mut position = state.position(&job_id);
        if let Some((told, _)) = state.told.get(&job_id) {
            position = position.min(*told);
        }
        state.told.insert(job_id, (position, Instant::now()));
        Ok(state.place_at(position, &lane.decisions))
    }

    /// Follows `job_id`, known queued in `key` as of now, for a stream:
    /// the lane stays fresh while it is followed, and a job that leaves the
    /// lane is handed to the streams' final-state reader.
    pub async fn follow(&self, key: LaneKey, job_id: Uuid) -> sqlx::Result<Following> {
        let lane = self.lane(key);
        let drive = {
            let mut state = locked(&lane.state);
            let entry = state.watched.entry(job_id).or_insert((Instant::now(), 0));
            entry.1 += 1;
            !std::mem::replace(&mut state.driven, true)
        };
        let following = Following {
            changed: lane.changed.subscribe(),
            lane: lane.clone(),
            job_id,
        };
        if drive {
            tokio::spawn(self.clone().drive(lane.clone()));
        }
        self.refresh(&lane).await?;
        Ok(following)
    }

    /// Reads the lane again each time its snapshot is [`REFRESH_EVERY`]
    /// old, as long as streams follow it.
    async fn drive(self, lane: Arc<Lane>) {
        loop {
            let next = {
                let mut state = locked(&lane.state);
                if state.watched.is_empty() {
                    state.driven = false;
                    return;
                }
                state.attempted.map(|at| at + REFRESH_EVERY)
            };
            if let Some(next) = next {
                tokio::time::sleep_until(next.into()).await;
            }
            if let Err(e) = self.refresh(&lane).await {
                tracing::warn!(error = %e, lane = ?lane.key, "lane not read; streams keep their last place");
            }
        }
    }

    /// Reads the lane unless a read started less than [`REFRESH_EVERY`]
    /// ago; concurrent callers share one read. Fails only when there is no
    /// snapshot at all to answer from.
    async fn refresh(&self, lane: &Lane) -> sqlx::Result<()> {
        if lane.fresh() {
            return Ok(());
        }
        let _reading = lane.reading.lock().await;
        if lane.fresh() {
            return Ok(());
        }
        let started = Instant::now();
        locked(&lane.state).attempted = Some(started);
        self.inner
            .reads
            .lane_snapshots
            .fetch_add(1, Ordering::Relaxed);
        let read = queue::lane_queued(lane.key.kind, lane.key.lane, SNAPSHOT_LIMIT)
            .fetch(&self.inner.pool)
            .await;
        match read {
            Ok(ids) => {
                let vanished = lane.install(ids, started);
                self.inner.streams.check(vanished);
                Ok(())
            }
            Err(e) if locked(&lane.state).snapshot.is_some() => {
                tracing::warn!(error = %e, lane = ?lane.key, "lane not read; answering from its last snapshot");
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl Lane {
    /// A snapshot read began less than [`REFRESH_EVERY`] ago (a failed
    /// read counts when an older snapshot can answer).
    fn fresh(&self) -> bool {
        let state = locked(&self.state);
        state.snapshot.is_some()
            && state
                .attempted
                .is_some_and(|at| at.elapsed() < REFRESH_EVERY)
    }

    /// Takes `ids`, read by a statement begun at `started`, as the lane's
    /// snapshot; returns the streamed jobs that left the lane.
    fn install(&self, ids: Vec<Uuid>, started: Instant) -> Vec<Uuid> {
        let snapshot = Snapshot {
            complete: ids.len() < SNAPSHOT_LIMIT as usize,
            ids,
            started,
        };
        let mut state = locked(&self.state);
        let changed = match &state.snapshot {
            Some(old) => {
                let departed = old
                    .ids
                    .iter()
                    .filter(|id| snapshot.covers(id) && !snapshot.contains(id))
                    .count() as u64;
                let span = started.saturating_duration_since(old.started);
                let changed = old.ids != snapshot.ids;
                state.rate.record(departed, span, started);
                changed
            }
            None => true,
        };
        // A polled job out of the snapshot left the lane, unless it was
        // told its place after the read began (recorded after it).
        state
            .told
            .retain(|id, (_, at)| snapshot.contains(id) || *at > started || !snapshot.covers(id));
        // A streamed job known queued before the read began and missing
        // from it was decided (the fallback for a lost event).
        let mut vanished = Vec::new();
        for (id, (since, _)) in state.watched.iter_mut() {
            if *since <= started && snapshot.covers(id) && !snapshot.contains(id) {
                vanished.push(*id);
                *since = started + VANISHED_AGAIN_AFTER;
            }
        }
        state.snapshot = Some(snapshot);
        drop(state);
        if changed {
            self.changed.send_modify(|version| *version += 1);
        }
        vanished
    }
}

impl State {
    fn position(&self, job_id: &Uuid) -> u64 {
        1 + self.snapshot.as_ref().map_or(0, |s| s.ahead_of(job_id))
    }

    fn place_at(&self, position: u64, decisions: &Decisions) -> QueuePlace {
        QueuePlace {
            position,
            eta_ms: self
                .rate
                .eta_ms(position, decisions.per_sec(Instant::now())),
        }
    }
}

/// A stream's hold on a lane; dropping it lets the lane go idle.
pub struct Following {
    lane: Arc<Lane>,
    job_id: Uuid,
    changed: watch::Receiver<u64>,
}

impl Following {
    /// The job's place in the current snapshot, at most `at_most`.
    pub fn place(&self, at_most: Option<u64>) -> QueuePlace {
        let state = locked(&self.lane.state);
        let position = state.position(&self.job_id);
        state.place_at(
            at_most.map_or(position, |most| position.min(most)),
            &self.lane.decisions,
        )
    }

    /// Waits for a snapshot that changes the lane.
    pub async fn changed(&mut self) {
        if self.changed.changed().await.is_err() {
            // The lane (the sender) outlives this value; never reached.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let mut state = locked(&self.lane.state);
        if let Some((_, streams)) = state.watched.get_mut(&self.job_id) {
            *streams -= 1;
            if *streams == 0 {
                state.watched.remove(&self.job_id);
            }
        }
    }
}
