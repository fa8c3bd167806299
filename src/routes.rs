//! The routes every HTTP role serves besides its own: `/healthz`, `/readyz`, `/metrics`
//! (Prometheus text), the player page, `/lite` and JSON 404s.

use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tickcast_schemas::health::Readiness;

/// The common routes. The player page is the built web client in `web_dir` (`index.html` and
/// `assets/`); without a build, `/` says how to make one. `/lite` is a minimal page that needs
/// no build. `/metrics` is here unless it was moved to an admin listener (`metrics` is `None`).
pub(crate) fn common_routes(
    metrics: Option<PrometheusHandle>,
    readiness: Vec<Readiness>,
    web_dir: &std::path::Path,
) -> Router {
    let index = web_dir.join("index.html");
    let router =
        admin_routes(metrics, readiness).route("/lite", get(|| async { Html(include_str!("play.html")) }));
    let router = if index.is_file() {
        router
            .route_service("/", tower_http::services::ServeFile::new(index))
            .nest_service("/assets", tower_http::services::ServeDir::new(web_dir.join("assets")))
    } else {
        let page = include_str!("unbuilt.html").replace("{web_dir}", &web_dir.display().to_string());
        router.route("/", get(move || std::future::ready(Html(page.clone()))))
    };
    router.fallback(not_found)
}

/// `/healthz` (the process answers), `/readyz` (every role of the process can do its work:
/// 200, else 503 with what they wait for) and `/metrics` (Prometheus text) when `metrics` is
/// given: what an admin listener serves.
pub(crate) fn admin_routes(metrics: Option<PrometheusHandle>, readiness: Vec<Readiness>) -> Router {
    let router =
        Router::new().route("/healthz", get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }));
    let router = match metrics {
        Some(handle) => {
            let readiness = readiness.clone();
            router.route(
                "/metrics",
                get(move || {
                    // What /readyz would answer, as a series alerts can watch.
                    let all = readiness.iter().all(Readiness::is_ready);
                    metrics::gauge!(READY).set(f64::from(u8::from(all)));
                    std::future::ready(handle.render())
                }),
            )
        }
        None => router,
    };
    let router = router.route("/readyz", get(move || std::future::ready(ready(&readiness))));
    router.fallback(not_found)
}

/// 1 when every role of the process is ready (what `/readyz` answers with 200), else 0.
pub(crate) const READY: &str = "tickcast_ready";

fn ready(readiness: &[Readiness]) -> axum::response::Response {
    let waiting: Vec<&str> = readiness.iter().filter(|r| !r.is_ready()).map(Readiness::waiting_for).collect();
    if waiting.is_empty() {
        return axum::Json(serde_json::json!({ "status": "ready" })).into_response();
    }
    let body = serde_json::json!({ "status": "not_ready", "waitingFor": waiting });
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

async fn not_found() -> axum::response::Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({ "error": "not_found", "message": "no such endpoint" })),
    )
        .into_response()
}
