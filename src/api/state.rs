//! What every handler may touch: the api's shared state.

use std::{
    ops::Deref,
    sync::{Arc, OnceLock},
};

use sqlx::MySqlPool;

use super::{
    buyer::BuyerTokens, publisher::CommandPublisher, rate_limit::RateLimiter, recorder::JobRecorder,
};
use crate::{
    broker::Broker,
    cache::ProductCache,
    config::{Secret, Settings},
    overview::OverviewFeed,
    waiters::JobWaiters,
    waiting_room::WaitingRoom,
};

/// Everything a handler may touch. Cheap to clone: every request clones
/// it (axum's `State`), so it is one `Arc`, not one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] shares.
pub struct Shared {
    pub pool: MySqlPool,
    pub broker: Broker,
    pub cache: ProductCache,
    pub waiters: JobWaiters,
    /// Places in line and job streams.
    pub room: WaitingRoom,
    pub recorder: JobRecorder,
    pub publisher: CommandPublisher,
    pub settings: Arc<Settings>,
    pub admin_token: Secret,
    pub webhook_secret: Secret,
    /// `None`: buyer tokens are off (`BUYER_JWT_SECRET` unset).
    pub buyer_tokens: Option<Arc<BuyerTokens>>,
    /// The OpenAPI document, rendered once when the router is built.
    pub openapi: OnceLock<serde_json::Value>,
    /// The admin overview, computed at most once a second and shared by
    /// every caller (`GET /api/v1/admin/overview`, the operator console).
    pub overview: OverviewFeed,
    /// This replica's buckets; `None` when `RATE_LIMIT_PER_SEC=0`.
    pub rate_limiter: Option<Arc<RateLimiter>>,
}

impl AppState {
    /// State over these dependencies, with an empty cache and no waiters;
    /// starts the job recorder and the command publisher.
    pub fn new(pool: MySqlPool, broker: Broker, settings: Arc<Settings>) -> anyhow::Result<Self> {
        let (admin_token, webhook_secret) = settings.require_secrets()?;
        Ok(Self(Arc::new(Shared {
            recorder: JobRecorder::start(pool.clone()),
            publisher: CommandPublisher::start(broker.clone()),
            room: WaitingRoom::new(pool.clone()),
            overview: OverviewFeed::new(pool.clone(), broker.clone()),
            pool,
            broker,
            cache: ProductCache::new(),
            waiters: JobWaiters::new(),
            rate_limiter: RateLimiter::new(settings.rate_limit).map(Arc::new),
            admin_token,
            webhook_secret,
            buyer_tokens: match &settings.buyer_jwt {
                Some(jwt) => Some(Arc::new(BuyerTokens::new(jwt)?)),
                None => None,
            },
            openapi: OnceLock::new(),
            settings,
        })))
    }
}
