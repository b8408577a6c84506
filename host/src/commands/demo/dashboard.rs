//! The `host demo` web dashboard: the page (one HTML file embedded in the
//! binary, no front-end build) and the JSON API it drives. Every route maps
//! onto one [`Demo`] method; `/metrics` is served beside them. Every call
//! but GET needs the run's token in `X-Host-Token` ([`crate::web::guard`]); the
//! page carries it, embedded as it is served.
//!
//! | route | action |
//! |---|---|
//! | `GET /` | the dashboard page |
//! | `GET /api/state` | stream, tail, groups, consumers, pending, plugins, dead letters |
//! | `POST /api/produce` `{count, kind}` | XADD orders |
//! | `POST /api/groups/{g}/consumers` `{name}` | add a consumer |
//! | `DELETE /api/groups/{g}/consumers/{c}` | remove it (hands its PEL over) |
//! | `POST /api/groups/{g}/consumers/{c}/crash` `{count}` | drop its next N deliveries |
//! | `POST /api/groups/{g}/consumers/{c}/claim` | claim idle entries to it |
//! | `GET /api/groups/{g}/pending?count=N` | XPENDING |
//! | `GET /api/replay?from=&to=&count=` | XRANGE |
//! | `POST /api/trim` `{maxlen}` or `{minid}` | XTRIM ~ |
//! | `POST /api/reset` | start the stream over |
//! | `GET /api/plugins` | plugins panel |
//! | `GET /api/dead-letters?count=N` | dead-letter panel |
//! | `POST /api/dead-letters/requeue` `{ids}` (none: all) | requeue |
//! | `POST /api/sink` | the webhook the notifier posts to (with the sink's own token, not the dashboard's) |
//! | `GET /api/sink` | notifications panel |
//! | `POST /api/sink/switches` `{down, slow}` | sink down (503) / slow sink (3 s) |
//! | `POST /api/sessions` `{count}` | start sessions (stream ownership panel) |
//! | `POST /api/sessions/workers/{w}/kill` | drop a sessions worker at once (its leases expire) |
//! | `POST /api/sessions/workers/{w}/restart` | start it again |

use crate::commands::demo::Demo;
use crate::commands::demo::actions::{ActionError, trim_of};
use crate::commands::demo::sink::{Answer, SLOW};
use crate::web::guard::Token;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// The page: HTML, CSS and script in one file.
const PAGE: &str = include_str!("../../../assets/dashboard.html");
/// Where the page takes the token (a `<meta>` its script reads).
const TOKEN_SLOT: &str = "{{HOST_TOKEN}}";

/// The dashboard's routes (and `/metrics`); the page carries `token`.
pub fn router(demo: Arc<Demo>, token: &Token) -> Router {
    let page: Arc<str> = PAGE.replace(TOKEN_SLOT, token.as_str()).into();
    let api = Router::new()
        .route("/", get(move || serve_page(page.clone())))
        .route("/api/state", get(state))
        .route("/api/produce", post(produce))
        .route("/api/groups/{group}/consumers", post(add_consumer))
        .route("/api/groups/{group}/consumers/{name}", delete(remove_consumer))
        .route("/api/groups/{group}/consumers/{name}/crash", post(crash))
        .route("/api/groups/{group}/consumers/{name}/claim", post(claim))
        .route("/api/groups/{group}/pending", get(pending))
        .route("/api/replay", get(replay))
        .route("/api/trim", post(trim))
        .route("/api/reset", post(reset))
        .route("/api/plugins", get(plugins))
        .route("/api/dead-letters", get(dead_letters))
        .route("/api/dead-letters/requeue", post(requeue))
        .route(crate::commands::demo::sink::PATH, post(sink).get(notifications))
        .route("/api/sink/switches", post(switch_sink))
        .route("/api/sessions", post(start_sessions))
        .route("/api/sessions/workers/{id}/kill", post(kill_worker))
        .route("/api/sessions/workers/{id}/restart", post(restart_worker))
        .with_state(demo);
    api.merge(crate::web::metrics_route())
}

impl IntoResponse for ActionError {
    fn into_response(self) -> Response {
        let status = match &self {
            ActionError::Invalid(_) => StatusCode::BAD_REQUEST,
            ActionError::NotFound(_) => StatusCode::NOT_FOUND,
            ActionError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!("dashboard action failed: {self}");
        }
        (status, Json(serde_json::json!({"error": self.to_string()}))).into_response()
    }
}

type Reply = Result<Json<Value>, ActionError>;
type Shared = State<Arc<Demo>>;

/// The page, never cached (it holds the run's token) nor framed by another page.
async fn serve_page(page: Arc<str>) -> impl IntoResponse {
    let headers = [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
    ];
    (headers, Html(page.to_string()))
}

async fn state(State(demo): Shared) -> Reply {
    demo.state().await.map(Json)
}

#[derive(Deserialize)]
struct ProduceBody {
    count: usize,
    #[serde(default = "random")]
    kind: String,
}

fn random() -> String {
    "random".into()
}

async fn produce(State(demo): Shared, Json(body): Json<ProduceBody>) -> Reply {
    demo.produce(body.count, &body.kind).await.map(Json)
}

#[derive(Deserialize)]
struct ConsumerBody {
    name: String,
}

async fn add_consumer(State(demo): Shared, Path(group): Path<String>, Json(body): Json<ConsumerBody>) -> Reply {
    demo.add_consumer(&group, &body.name).map(Json)
}

async fn remove_consumer(State(demo): Shared, Path((group, name)): Path<(String, String)>) -> Reply {
    demo.remove_consumer(&group, &name).map(Json)
}

#[derive(Deserialize)]
struct CrashBody {
    count: u32,
}

async fn crash(State(demo): Shared, Path((group, name)): Path<(String, String)>, Json(body): Json<CrashBody>) -> Reply {
    demo.crash(&group, &name, body.count).map(Json)
}

async fn claim(State(demo): Shared, Path((group, name)): Path<(String, String)>) -> Reply {
    demo.claim(&group, &name).await.map(Json)
}

#[derive(Deserialize)]
struct CountQuery {
    count: Option<usize>,
}

async fn pending(State(demo): Shared, Path(group): Path<String>, Query(q): Query<CountQuery>) -> Reply {
    let entries = demo.pending(&group, q.count.unwrap_or(100)).await?;
    Ok(Json(serde_json::json!({"group": group, "entries": entries})))
}

#[derive(Deserialize)]
struct ReplayQuery {
    from: Option<String>,
    to: Option<String>,
    count: Option<usize>,
}

async fn replay(State(demo): Shared, Query(q): Query<ReplayQuery>) -> Reply {
    let or = |v: Option<String>, d: &str| v.filter(|s| !s.trim().is_empty()).unwrap_or_else(|| d.to_string());
    demo.replay(&or(q.from, "-"), &or(q.to, "+"), q.count.unwrap_or(100)).await.map(Json)
}

#[derive(Deserialize)]
struct TrimBody {
    maxlen: Option<u64>,
    minid: Option<String>,
}

async fn trim(State(demo): Shared, Json(body): Json<TrimBody>) -> Reply {
    demo.trim(trim_of(body.maxlen, body.minid)?).await.map(Json)
}

async fn reset(State(demo): Shared) -> Reply {
    demo.reset().await.map(Json)
}

async fn plugins(State(demo): Shared) -> Reply {
    Ok(Json(Value::from(demo.plugins())))
}

async fn dead_letters(State(demo): Shared, Query(q): Query<CountQuery>) -> Reply {
    demo.dead_letters(q.count.unwrap_or(100)).await.map(Json)
}

#[derive(Deserialize)]
struct RequeueBody {
    #[serde(default)]
    ids: Vec<String>,
}

async fn requeue(State(demo): Shared, Json(body): Json<RequeueBody>) -> Reply {
    demo.requeue(body.ids).await.map(Json)
}

/// The webhook: 200 (after 3 s when slow), 503 when down, 400 for a request
/// that is not a notification.
async fn sink(State(demo): Shared, headers: axum::http::HeaderMap, body: axum::body::Bytes) -> Response {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    match demo.sink.take(key, &body) {
        Answer::Down => (StatusCode::SERVICE_UNAVAILABLE, "sink down (the demo's switch)").into_response(),
        Answer::Invalid(why) => (StatusCode::BAD_REQUEST, why).into_response(),
        Answer::Taken { slow } => {
            if slow {
                tokio::time::sleep(SLOW).await;
            }
            (StatusCode::OK, "taken").into_response()
        }
    }
}

async fn notifications(State(demo): Shared) -> Reply {
    Ok(Json(demo.notifications().await))
}

#[derive(Deserialize)]
struct SwitchBody {
    down: Option<bool>,
    slow: Option<bool>,
}

async fn switch_sink(State(demo): Shared, Json(body): Json<SwitchBody>) -> Reply {
    demo.sink.switch(body.down, body.slow);
    tracing::info!(down = ?body.down, slow = ?body.slow, "webhook sink switched from the dashboard");
    Ok(Json(demo.sink.view()))
}

/// The sessions panel, or a 404 where it does not run (a cluster).
fn sessions(demo: &Demo) -> Result<&crate::commands::demo::sessions::Sessions, ActionError> {
    demo.sessions()
        .ok_or_else(|| ActionError::NotFound("no sessions panel in this demo (it needs one Redis server)".into()))
}

#[derive(Deserialize)]
struct SessionsBody {
    count: usize,
}

async fn start_sessions(State(demo): Shared, Json(body): Json<SessionsBody>) -> Reply {
    sessions(&demo)?.start_sessions(body.count).await.map(Json)
}

async fn kill_worker(State(demo): Shared, Path(id): Path<String>) -> Reply {
    sessions(&demo)?.kill(&id).map(Json)
}

async fn restart_worker(State(demo): Shared, Path(id): Path<String>) -> Reply {
    sessions(&demo)?.restart(&id).await.map(Json)
}
