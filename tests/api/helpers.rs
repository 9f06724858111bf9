//! Test harness: each test gets its own database and RabbitMQ vhost, and
//! starts the roles it needs in-process on a random port.

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Command,
    sync::Arc,
    time::Duration,
};

use flash_sale::{
    api::{self, AppState},
    broker::Broker,
    config::Settings,
    db,
    scheduler::SchedulerStatus,
    startup, telemetry,
};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use sqlx::MySqlPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const WEBHOOK_SECRET: &str = "test-webhook-secret";
/// Every test stack checks buyer tokens with this key.
pub const BUYER_JWT_SECRET: &str = "test-buyer-jwt-secret";
/// Where test apis listen: a free port of the loopback address.
pub const LOCALHOST_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// The MySQL server the tests use, without a database name.
fn server_url() -> String {
    std::env::var("TEST_MYSQL_SERVER").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

fn amqp_server() -> String {
    std::env::var("TEST_AMQP_SERVER").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".into())
}

/// A fresh database and vhost, dropped when the value is dropped.
pub struct Isolation {
    pub db_name: String,
    pub vhost: String,
}

impl Isolation {
    pub fn new() -> Self {
        let tag = Uuid::new_v4().simple().to_string();
        let iso = Self {
            db_name: format!("fs_test_{}", &tag[..16]),
            vhost: format!("fs-test-{}", &tag[..16]),
        };
        rabbitmqctl(&["add_vhost", &iso.vhost]);
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &iso.vhost,
            "guest",
            ".*",
            ".*",
            ".*",
        ]);
        iso
    }

    pub fn database_url(&self) -> String {
        format!("{}/{}", server_url(), self.db_name)
    }

    pub fn amqp_url(&self) -> String {
        format!("{}/{}", amqp_server(), self.vhost)
    }

    /// Settings for this test's stack, with `extra` variables on top.
    pub fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        let database_url = self.database_url();
        let amqp_url = self.amqp_url();
        let mut vars: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), database_url),
            ("AMQP_URL".into(), amqp_url),
            ("API_ADDR".into(), "127.0.0.1:0".into()),
            ("ADMIN_TOKEN".into(), ADMIN_TOKEN.into()),
            ("WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into()),
            ("BUYER_JWT_SECRET".into(), BUYER_JWT_SECRET.into()),
            ("PARTITIONS".into(), "4".into()),
        ];
        vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Settings::from_lookup(|name| {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
        .expect("test settings are valid")
    }
}

impl Drop for Isolation {
    fn drop(&mut self) {
        rabbitmqctl(&["delete_vhost", &self.vhost]);
        let url = server_url();
        let db_name = self.db_name.clone();
        // Drop runs inside the test's runtime; a blocking helper thread with
        // its own runtime avoids nesting one.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let pool = MySqlPool::connect(&format!("{url}/mysql")).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS `{db_name}`"
                )))
                .execute(&pool)
                .await?;
                pool.close().await;
                Ok::<_, sqlx::Error>(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.db_name);
        }
    }
}

/// A buyer token for `sub`, valid for an hour, signed with the test key.
pub fn buyer_token(sub: &str) -> String {
    buyer_token_with(
        &serde_json::json!({"sub": sub, "exp": chrono::Utc::now().timestamp() + 3600}),
        BUYER_JWT_SECRET,
    )
}

/// A buyer token with these claims, signed HS256 with `secret`.
pub fn buyer_token_with(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        // jsonwebtoken 12 refuses an empty key here.
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).expect("a non-empty key"),
    )
    .expect("token")
}

pub fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl must be installed for the tests");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The queues of `vhost` that hold messages, ready or unacknowledged, as
/// (name, ready, unacked).
fn queue_depths(vhost: &str) -> Vec<(String, u64, u64)> {
    let out = Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "-p", vhost, "--no-table-headers"])
        .args(["name", "messages_ready", "messages_unacknowledged"])
        .output()
        .expect("rabbitmqctl must be installed for the tests");
    assert!(
        out.status.success(),
        "rabbitmqctl list_queues failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let name = cols.next()?.to_owned();
            let ready = cols.next()?.parse().ok()?;
            let unacked = cols.next()?.parse().ok()?;
            Some((name, ready, unacked))
        })
        .filter(|(_, ready, unacked)| ready + unacked > 0)
        .collect()
}

/// Which roles a test wants running.
#[derive(Clone, Copy)]
pub struct Roles {
    pub apis: usize,
    pub workers: usize,
    pub scheduler: bool,
}

impl Roles {
    /// Nothing running: the test drives the library itself.
    pub const NONE: Roles = Roles {
        apis: 0,
        workers: 0,
        scheduler: false,
    };
    /// An api with no worker: commands stay queued.
    pub const API_ONLY: Roles = Roles {
        apis: 1,
        workers: 0,
        scheduler: false,
    };
    /// Every role once: api, worker and the scheduler.
    pub const ALL: Roles = Roles {
        apis: 1,
        workers: 1,
        scheduler: true,
    };
}

impl Default for Roles {
    fn default() -> Self {
        Self {
            apis: 1,
            workers: 1,
            scheduler: false,
        }
    }
}

pub struct TestApp {
    /// Base URL of each api replica, e.g. `http://127.0.0.1:41234`.
    pub apis: Vec<String>,
    pub client: Client,
    pub pool: MySqlPool,
    pub settings: Arc<Settings>,
    pub broker: Broker,
    pub shutdown: CancellationToken,
    pub tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    pub isolation: Isolation,
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Roles::default(), &[]).await
}

pub async fn spawn_with(roles: Roles, extra: &[(&str, &str)]) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        telemetry::init(flash_sale::config::LogFormat::Text);
    }
    let isolation = Isolation::new();
    let settings = Arc::new(isolation.settings(extra));
    let pool = db::connect_and_migrate(settings.database_url.expose(), 16)
        .await
        .expect("test database");
    let broker = Broker::connect(&settings.amqp, settings.partitions, "test")
        .await
        .expect("test broker");
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut apis = Vec::new();
    for _ in 0..roles.apis {
        let listener = api::bind(LOCALHOST_ANY_PORT).expect("bind");
        apis.push(format!("http://{}", listener.local_addr().expect("addr")));
        tasks.push(tokio::spawn(startup::run_api(
            settings.clone(),
            pool.clone(),
            broker.clone(),
            listener,
            shutdown.clone(),
        )));
    }
    for _ in 0..roles.workers {
        tasks.push(start_worker(&settings, &pool, shutdown.clone()).await);
    }
    if roles.scheduler {
        tasks.push(tokio::spawn(startup::run_scheduler(
            settings.clone(),
            pool.clone(),
            broker.clone(),
            Arc::default(),
            shutdown.clone(),
        )));
    }
    TestApp {
        apis,
        client: Client::builder()
            .timeout(Duration::from_secs(30))
            // Under the api's idle keep-alive limit (HTTP_HEADER_TIMEOUT_SECS).
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("client"),
        pool,
        settings,
        broker,
        shutdown,
        tasks,
        isolation,
    }
}

/// A worker replica with its own broker connection, as a separate process
/// would have; it stops when `shutdown` is cancelled.
pub async fn start_worker(
    settings: &Arc<Settings>,
    pool: &MySqlPool,
    shutdown: CancellationToken,
) -> JoinHandle<anyhow::Result<()>> {
    let broker = Broker::connect(&settings.amqp, settings.partitions, "test-worker")
        .await
        .expect("worker broker");
    let (settings, pool) = (settings.clone(), pool.clone());
    tokio::spawn(async move {
        let result = startup::run_worker(&settings, pool, broker.clone(), shutdown).await;
        broker.close().await;
        result
    })
}

impl TestApp {
    /// Starts one more worker replica for the rest of the test.
    pub async fn add_worker(&mut self) {
        let task = start_worker(&self.settings, &self.pool, self.shutdown.clone()).await;
        self.tasks.push(task);
    }

    /// Starts a worker replica that stops (gracefully) when the returned
    /// token is cancelled; the handle ends when it has stopped.
    pub async fn add_stoppable_worker(
        &self,
    ) -> (CancellationToken, JoinHandle<anyhow::Result<()>>) {
        let stop = self.shutdown.child_token();
        let task = start_worker(&self.settings, &self.pool, stop.clone()).await;
        (stop, task)
    }

    /// Serves one more api replica over the given pool and broker (which may
    /// point at dead dependencies) and returns its base URL.
    pub async fn serve_api_with(&self, pool: MySqlPool, broker: Broker) -> String {
        let state = AppState::new(pool, broker, self.settings.clone()).expect("state");
        let _ = state.cache.reload_all(&state.pool).await;
        let listener = api::bind(LOCALHOST_ANY_PORT).expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(api::serve(listener, state, self.shutdown.clone()));
        base
    }

    /// Starts one more api replica as `run_api` does (its event listener
    /// and job streams included), adds its base URL to `apis`, and returns
    /// its state, whose counters a test reads.
    pub async fn start_api(&mut self) -> AppState {
        let state = AppState::new(
            self.pool.clone(),
            self.broker.clone(),
            self.settings.clone(),
        )
        .expect("state");
        let listener = api::bind(LOCALHOST_ANY_PORT).expect("bind");
        self.apis
            .push(format!("http://{}", listener.local_addr().expect("addr")));
        self.tasks.push(tokio::spawn(startup::serve_api(
            state.clone(),
            listener,
            self.shutdown.clone(),
        )));
        state
    }

    /// Starts a scheduler replica with its own stop token (a child of the
    /// app's) and returns its status and that token.
    pub async fn start_scheduler(&mut self) -> (Arc<SchedulerStatus>, CancellationToken) {
        let status = Arc::new(SchedulerStatus::default());
        let stop = self.shutdown.child_token();
        let broker = Broker::connect(
            &self.settings.amqp,
            self.settings.partitions,
            "test-scheduler",
        )
        .await
        .expect("scheduler broker");
        let (settings, pool, task_status, task_stop) = (
            self.settings.clone(),
            self.pool.clone(),
            status.clone(),
            stop.clone(),
        );
        self.tasks.push(tokio::spawn(async move {
            let result =
                startup::run_scheduler(settings, pool, broker.clone(), task_status, task_stop)
                    .await;
            broker.close().await;
            result
        }));
        (status, stop)
    }

    /// Records a queued hold job without publishing it (what a crash between
    /// the api's commit and its publish leaves behind) and returns its
    /// command.
    pub async fn record_unpublished_hold(
        &self,
        product_id: i64,
        qty: i64,
    ) -> flash_sale::commands::Command {
        let job_id = Uuid::now_v7();
        let command = flash_sale::commands::Command::Hold(flash_sale::worker::HoldRequest {
            job_id,
            product_id,
            qty,
            customer_id: None,
        });
        flash_sale::db::jobs::insert_all(&[flash_sale::db::jobs::NewJob {
            id: job_id,
            kind: flash_sale::domain::JobKind::Hold,
            lane: command.lane(self.settings.partitions),
            command: command.clone(),
            created_at: flash_sale::time::now(),
        }])
        .execute(&self.pool)
        .await
        .expect("job");
        command
    }

    /// GET /api/v1/jobs/{id}, which must be 200.
    pub async fn job(&self, id: &str) -> Value {
        let response = self.get(&format!("/api/v1/jobs/{id}")).await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        response.json().await.expect("job json")
    }

    /// Publishes `body` straight to the dead-letter exchange, as the broker
    /// does with a message past its delivery limit.
    pub async fn dead_letter(&self, body: &[u8]) {
        let channel = self.broker.channel().await.expect("channel");
        channel
            .basic_publish(
                flash_sale::broker::DEAD_LETTER_EXCHANGE.into(),
                "".into(),
                lapin::options::BasicPublishOptions::default(),
                body,
                lapin::BasicProperties::default(),
            )
            .await
            .expect("publish");
    }

    /// Messages ready in `queue` (unacked deliveries are not counted).
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        self.queue_state(queue).await.message_count()
    }

    /// Consumers subscribed to `queue`.
    pub async fn queue_consumers(&self, queue: &str) -> u32 {
        self.queue_state(queue).await.consumer_count()
    }

    async fn queue_state(&self, queue: &str) -> lapin::Queue {
        let channel = self.broker.channel().await.expect("channel");
        let state = channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..lapin::options::QueueDeclareOptions::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("passive declare");
        let _ = channel.close(200, "done".into()).await;
        state
    }

    /// Waits until no job is queued (every accepted command decided).
    pub async fn wait_until_idle(&self) {
        let started = std::time::Instant::now();
        loop {
            let queued = self
                .count("SELECT COUNT(*) FROM job_states WHERE status = 'queued'")
                .await;
            if queued == 0 {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{queued} jobs still queued after 60 s"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until every queue of this test's vhost is empty with nothing
    /// unacknowledged: every message published so far (duplicates
    /// included) has been consumed and acked, i.e. applied or ignored.
    pub async fn wait_until_drained(&self) {
        let started = std::time::Instant::now();
        loop {
            let vhost = self.isolation.vhost.clone();
            let pending = tokio::task::spawn_blocking(move || queue_depths(&vhost))
                .await
                .expect("rabbitmqctl task");
            if pending.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "not drained after 60 s: {pending:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POST /api/v1/holds with optional extra headers.
    pub async fn post_hold(&self, body: &Value, headers: &[(&str, &str)]) -> Response {
        let mut request = self.client.post(self.url("/api/v1/holds")).json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("POST hold")
    }

    /// Products' stock, ledger sum and active-hold quantity, for guarantee 1
    /// and 2 checks.
    pub async fn stock_books(&self, product_id: i64) -> (i64, i64, i64) {
        let stock: i64 = sqlx::query_scalar("SELECT stock FROM products WHERE id = ?")
            .bind(product_id)
            .fetch_one(&self.pool)
            .await
            .expect("stock");
        let ledger: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(delta), 0) AS SIGNED) FROM stock_ledger WHERE product_id = ?",
        )
        .bind(product_id)
        .fetch_one(&self.pool)
        .await
        .expect("ledger");
        let held: i64 = sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(qty), 0) AS SIGNED) FROM holds WHERE product_id = ? AND status = 'active'",
        )
        .bind(product_id)
        .fetch_one(&self.pool)
        .await
        .expect("held");
        (stock, ledger, held)
    }

    /// Decides one recorded hold job as a worker would, without one.
    pub async fn decide_hold(
        &self,
        job_id: Uuid,
        product_id: i64,
        qty: i64,
    ) -> flash_sale::worker::Decided {
        let request = flash_sale::worker::HoldRequest {
            job_id,
            product_id,
            qty,
            customer_id: None,
        };
        flash_sale::worker::apply_holds(&self.pool, product_id, &[request], self.settings.hold_ttl)
            .await
            .expect("hold decided")
    }

    /// A granted hold's id (waits for the worker).
    pub async fn granted_hold(&self, product_id: i64, qty: i64) -> String {
        let response = self
            .post_hold(
                &serde_json::json!({"product_id": product_id, "qty": qty}),
                &[("prefer", "wait=10")],
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "hold not granted");
        let hold: Value = response.json().await.expect("hold json");
        hold["id"].as_str().expect("hold id").to_owned()
    }

    /// POST /api/v1/orders with optional extra headers.
    pub async fn post_order(&self, hold_id: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self
            .client
            .post(self.url("/api/v1/orders"))
            .json(&serde_json::json!({ "hold_id": hold_id }));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("POST order")
    }

    /// A signed webhook delivery of `body` (exact bytes).
    pub async fn webhook(&self, body: &str) -> Response {
        let t = chrono::Utc::now().timestamp();
        let signature = flash_sale::signature::sign(WEBHOOK_SECRET, t, body.as_bytes());
        self.webhook_signed(body, Some(&signature)).await
    }

    pub async fn webhook_signed(&self, body: &str, signature: Option<&str>) -> Response {
        let mut request = self
            .client
            .post(self.url("/api/v1/payments/webhook"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header("x-signature", signature);
        }
        request.send().await.expect("POST webhook")
    }

    /// Guarantees 1 and 2 for one product, checked by the scheduler's own
    /// audit: stock ≥ 0, stock = ledger sum, stock + active holds +
    /// pending/paid orders = everything ever stocked.
    pub async fn assert_stock_accounted(&self, product_id: i64) {
        let books = flash_sale::audit::books(&self.pool).await.expect("books");
        let book = books
            .iter()
            .find(|b| b.product_id == product_id)
            .expect("product books");
        assert_eq!(book.problems(), Vec::<String>::new(), "{book:?}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.apis[0], path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(ADMIN_TOKEN)
            .json(body)
            .send()
            .await
            .expect("admin POST")
    }

    /// Writes a product straight to the database (price 100, no limit, no
    /// window), as a test without the api's routes needs; returns its id.
    pub async fn insert_product(&self, name: &str, stock: i64) -> i64 {
        flash_sale::db::products::create(
            &self.pool,
            &flash_sale::domain::NewProduct {
                name: name.into(),
                price: 100,
                stock,
                max_per_customer: None,
                sale_starts_at: None,
                sale_ends_at: None,
            },
        )
        .await
        .expect("product")
        .id
    }

    /// Creates a product through the admin API and returns its id.
    pub async fn create_product(&self, name: &str, price: i64, stock: i64) -> i64 {
        let response = self
            .admin_post(
                "/api/v1/admin/products",
                &serde_json::json!({"name": name, "price": price, "stock": stock}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("product json");
        body["id"].as_i64().expect("product id")
    }

    /// Creates a product with `extra` fields (limit, sale window) besides
    /// its name, price and stock, and returns its id.
    pub async fn create_product_with(&self, stock: i64, extra: Value) -> i64 {
        let mut body = serde_json::json!({"name": "Drop", "price": 500, "stock": stock});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let response = self.admin_post("/api/v1/admin/products", &body).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let product: Value = response.json().await.expect("product");
        product["id"].as_i64().expect("id")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count query")
    }

    /// Stops every role and waits for them to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.broker.close().await;
        self.pool.close().await;
    }
}

/// Reads a problem document and checks its status, content type and code.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.expect("problem json");
    assert_eq!(body["code"], code, "problem code in {body}");
    assert_eq!(body["status"], status);
    for field in ["type", "title", "detail"] {
        assert!(body[field].is_string(), "problem lacks {field}: {body}");
    }
    body
}

/// Grants `count` holds of `qty` directly through the worker's code path
/// (queued job rows, then one batched transaction), without the api or a
/// worker. Returns the holds' ids.
pub async fn grant_directly(
    pool: &MySqlPool,
    hold_ttl: Duration,
    product_id: i64,
    count: usize,
    qty: i64,
) -> Vec<Uuid> {
    let requests = record_queued_holds(pool, product_id, &vec![qty; count]).await;
    flash_sale::worker::apply_holds(pool, product_id, &requests, hold_ttl)
        .await
        .expect("grant");
    requests.iter().map(|r| r.job_id).collect()
}

/// Records one queued hold job per entry of `qtys`, as the api would, and
/// returns them as the worker would take them.
pub async fn record_queued_holds(
    pool: &MySqlPool,
    product_id: i64,
    qtys: &[i64],
) -> Vec<flash_sale::worker::HoldRequest> {
    use flash_sale::{
        commands::Command,
        db::jobs::{self, NewJob},
        domain::JobKind,
        worker::HoldRequest,
    };
    let requests: Vec<HoldRequest> = qtys
        .iter()
        .map(|&qty| HoldRequest {
            job_id: Uuid::now_v7(),
            product_id,
            qty,
            customer_id: None,
        })
        .collect();
    let jobs: Vec<NewJob> = requests
        .iter()
        .map(|request| NewJob {
            id: request.job_id,
            kind: JobKind::Hold,
            lane: Some(request.product_id),
            command: Command::Hold(request.clone()),
            created_at: flash_sale::time::now(),
        })
        .collect();
    jobs::insert_all(&jobs).apply(pool).await.expect("jobs");
    requests
}
