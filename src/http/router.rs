//! The router and its layers, built by one function so tests can drive it directly.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodFilter, MethodRouter, on};
use axum::{Extension, middleware as axum_middleware};
use metrics_exporter_prometheus::PrometheusHandle;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use super::error::ApiError;
use super::extract::BodyLimit;
use super::{middleware, routes};
use crate::bundle::ModelStore;

/// Default most events in one batch request.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = 10_000;
/// Default body limit of `POST /v1/score`.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 64 * 1024;
/// Default body limit of `POST /v1/score/batch`.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Default most scoring requests in flight before new ones are shed with 503.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// Default longest time a request may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP method the service routes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteMethod {
    /// GET.
    Get,
    /// POST.
    Post,
}

impl RouteMethod {
    /// The method's name, as in an HTTP request line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }

    const fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
        }
    }
}

/// What a route does; [`build_router`] maps each to its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// Score one event.
    ScoreOne,
    /// Score a batch of events.
    ScoreBatch,
    /// Describe the served model.
    ModelInfo,
    /// Liveness probe.
    Healthz,
    /// Readiness probe.
    Readyz,
    /// Prometheus metrics.
    Metrics,
    /// Re-scan the model root now.
    AdminReload,
}

impl Endpoint {
    /// Scoring routes sit behind the in-flight limit and the request timeout.
    const fn is_scoring(self) -> bool {
        matches!(self, Self::ScoreOne | Self::ScoreBatch)
    }
}

/// Which routes one listener serves: all of them, or, with a separate admin listener
/// (`--admin-listen`), the public API on one and `/admin/*` on the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Exposure {
    /// Every route.
    #[default]
    All,
    /// Every route but `/admin/*`.
    Public,
    /// `/admin/*` and the liveness probe only.
    Admin,
}

impl Exposure {
    const fn serves(self, endpoint: Endpoint) -> bool {
        match self {
            Self::All => true,
            Self::Public => !matches!(endpoint, Endpoint::AdminReload),
            Self::Admin => matches!(endpoint, Endpoint::AdminReload | Endpoint::Healthz),
        }
    }
}

/// One route: method, path and what answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The method.
    pub method: RouteMethod,
    /// The path.
    pub path: &'static str,
    /// What answers it.
    pub endpoint: Endpoint,
}

/// Every route the service answers. [`build_router`] registers exactly these, and
/// `tests/openapi_contract.rs` checks that `openapi.yaml` documents the same set.
pub const ROUTES: &[Route] = &[
    Route::new(RouteMethod::Post, "/v1/score", Endpoint::ScoreOne),
    Route::new(RouteMethod::Post, "/v1/score/batch", Endpoint::ScoreBatch),
    Route::new(RouteMethod::Get, "/v1/model", Endpoint::ModelInfo),
    Route::new(RouteMethod::Get, "/healthz", Endpoint::Healthz),
    Route::new(RouteMethod::Get, "/readyz", Endpoint::Readyz),
    Route::new(RouteMethod::Get, "/metrics", Endpoint::Metrics),
    Route::new(RouteMethod::Post, "/admin/reload", Endpoint::AdminReload),
];

impl Route {
    const fn new(method: RouteMethod, path: &'static str, endpoint: Endpoint) -> Route {
        Route {
            method,
            path,
            endpoint,
        }
    }

    /// The handler, with the body limit of the scoring routes.
    fn method_router(self, config: &HttpConfig) -> MethodRouter<AppState> {
        let method = self.method.filter();
        let with_body_limit = |router: MethodRouter<AppState>, limit: usize| {
            router
                .layer::<_, Infallible>(DefaultBodyLimit::max(limit))
                .layer::<_, Infallible>(Extension(BodyLimit(limit)))
        };
        match self.endpoint {
            Endpoint::ScoreOne => {
                with_body_limit(on(method, routes::score::score_one), config.max_event_bytes)
            }
            Endpoint::ScoreBatch => with_body_limit(
                on(method, routes::score::score_batch),
                config.max_batch_bytes,
            ),
            Endpoint::ModelInfo => on(method, routes::model::model_info),
            Endpoint::Healthz => on(method, routes::health::healthz),
            Endpoint::Readyz => on(method, routes::health::readyz),
            Endpoint::Metrics => on(method, routes::health::metrics),
            Endpoint::AdminReload => on(method, routes::admin::reload),
        }
    }
}

/// Limits of the HTTP service.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Most events in one batch request.
    pub max_batch_events: usize,
    /// Body limit of a single-event request, in bytes.
    pub max_event_bytes: usize,
    /// Body limit of a batch request, in bytes.
    pub max_batch_bytes: usize,
    /// Most scoring requests in flight; more are shed with 503 and Retry-After.
    pub max_in_flight: usize,
    /// Longest any request may take, body upload included; then 408.
    pub request_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// The admin bearer token. Its `Debug` output is redacted so it never reaches a log.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl AdminToken {
    /// Wraps a token; `None` for an empty one (which would disable the check).
    pub fn new(token: &str) -> Option<AdminToken> {
        (!token.is_empty()).then(|| AdminToken(Arc::from(token)))
    }

    /// Compares in constant time. Both sides are hashed first so that not even the
    /// token's length leaks through timing.
    pub fn matches(&self, presented: &str) -> bool {
        let expected = Sha256::digest(self.0.as_bytes());
        let presented = Sha256::digest(presented.as_bytes());
        expected.ct_eq(&presented).into()
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken([redacted])")
    }
}

impl std::str::FromStr for AdminToken {
    type Err = String;

    fn from_str(token: &str) -> Result<Self, Self::Err> {
        AdminToken::new(token).ok_or_else(|| "the admin token may not be empty".to_owned())
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The served model.
    pub store: Arc<ModelStore>,
    /// Limits.
    pub config: Arc<HttpConfig>,
    /// `None` disables `POST /admin/reload`.
    pub admin_token: Option<AdminToken>,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

/// Builds the router with all routes and layers.
pub fn build_router(state: AppState) -> Router {
    build_router_exposing(state, Exposure::All)
}

/// Builds the router with the routes `exposure` allows, and all layers.
pub fn build_router_exposing(state: AppState, exposure: Exposure) -> Router {
    let config = Arc::clone(&state.config);

    // TODO: the in-flight limit counts requests, not events, so a 10,000-event batch
    // weighs as much as a single event; a weighted semaphore would shed more fairly.
    // Shedding sits in front of the scoring routes only, so probes and /metrics still
    // answer under overload. One semaphore is shared by both scoring routes.
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let shed_when_full = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            ApiError::Overloaded
        }))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(in_flight));
    // Every route answers within the timeout, the admin reload's bundle validation
    // included. A request dropped at the timeout gives its in-flight slot back with it,
    // so a client that stalls mid-body cannot hold one forever.
    let bounded = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
            ApiError::RequestTimeout
        }))
        .timeout(config.request_timeout);

    let routes_where = |scoring: bool| {
        ROUTES
            .iter()
            .filter(move |route| route.endpoint.is_scoring() == scoring)
            .filter(|route| exposure.serves(route.endpoint))
            .fold(Router::new(), |router, route| {
                router.route(route.path, route.method_router(&config))
            })
    };
    // NOTE: axum panics on a route layer over no routes (the admin listener has no
    // scoring route).
    let mut scoring = routes_where(true);
    if scoring.has_routes() {
        scoring = scoring.route_layer(shed_when_full);
    }
    let mut routes = scoring.merge(routes_where(false));
    if routes.has_routes() {
        routes = routes.route_layer(bounded);
    }

    // Outermost first: a panic becomes a JSON 500; the request id is set before the
    // span opens so the span carries it; the response echoes it; metrics see the
    // final status of every route, fallbacks included.
    let layers = ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(middleware::request_span)
                .on_request(())
                .on_response(middleware::record_response)
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(axum_middleware::from_fn(middleware::record_metrics));

    routes
        .fallback(routes::health::not_found)
        .method_not_allowed_fallback(routes::health::method_not_allowed)
        .with_state(state)
        .layer(layers)
}
