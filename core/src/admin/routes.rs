//! What each admin path answers: a pure function of the request line and
//! the gathered state, so it is tested without sockets.

use std::time::Instant;

use hyper::{Method, StatusCode};

use crate::metrics::{self, MetricsHub};

/// An answer: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) content_type: &'static str,
    pub(crate) body: String,
}

const TEXT: &str = "text/plain; charset=utf-8";

fn text(status: StatusCode, body: impl Into<String>) -> Answer {
    Answer {
        status,
        content_type: TEXT,
        body: body.into(),
    }
}

/// True for the paths an orchestrator probes without credentials.
pub(crate) fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// The answer to a request without the admin token.
pub(crate) fn unauthorized() -> Answer {
    text(
        StatusCode::UNAUTHORIZED,
        "this path needs Authorization: Bearer <admin token> (auth.admin_token_hash)\n",
    )
}

/// Answers `method path`. `shutting_down` is true once a graceful stop began.
pub(crate) fn answer(method: &Method, path: &str, hub: &MetricsHub, shutting_down: bool) -> Answer {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    match path {
        // Liveness: the process answers.
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => readiness(hub, shutting_down),
        "/metrics" => match metrics::render(hub.gather(), Instant::now()) {
            Ok(body) => Answer {
                status: StatusCode::OK,
                content_type: metrics::CONTENT_TYPE,
                body,
            },
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "rendering metrics failed\n",
            ),
        },
        "/" => text(
            StatusCode::OK,
            "tidegate admin: /healthz /readyz /metrics (docs/METRICS.md)\n",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /healthz /readyz /metrics\n",
        ),
    }
}

/// Ready once every shard serves; not while the server is stopping.
fn readiness(hub: &MetricsHub, shutting_down: bool) -> Answer {
    if shutting_down {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
    }
    match hub.all_serving() {
        Ok(()) => text(StatusCode::OK, "ready\n"),
        Err(idle) => {
            let shards: Vec<String> = idle.iter().map(usize::to_string).collect();
            let body = format!("not ready: shard {} not serving yet\n", shards.join(", "));
            text(StatusCode::SERVICE_UNAVAILABLE, body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ShardSnapshot;

    fn serving(shard: usize) -> ShardSnapshot {
        ShardSnapshot {
            shard,
            serving: true,
            ..ShardSnapshot::default()
        }
    }

    #[test]
    fn healthz_is_ok_whatever_the_shards_do() {
        let hub = MetricsHub::new(2);
        let a = answer(&Method::GET, "/healthz", &hub, true);
        assert_eq!((a.status, a.body.as_str()), (StatusCode::OK, "ok\n"));
    }

    #[test]
    fn readyz_waits_for_every_shard_and_fails_while_stopping() {
        let hub = MetricsHub::new(2);
        let a = answer(&Method::GET, "/readyz", &hub, false);
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(a.body.contains("shard 0, 1"), "{}", a.body);
        hub.publish(serving(0));
        hub.publish(serving(1));
        assert_eq!(
            answer(&Method::GET, "/readyz", &hub, false).status,
            StatusCode::OK
        );
        let stopping = answer(&Method::GET, "/readyz", &hub, true);
        assert_eq!(stopping.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(stopping.body, "shutting down\n");
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let hub = MetricsHub::new(1);
        let a = answer(&Method::GET, "/metrics", &hub, false);
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(
            a.body.contains("tidegate_shard_serving{shard=\"0\"} 0\n"),
            "{}",
            a.body
        );
    }

    #[test]
    fn unknown_paths_are_404_and_other_methods_405() {
        let hub = MetricsHub::new(1);
        assert_eq!(
            answer(&Method::GET, "/nope", &hub, false).status,
            StatusCode::NOT_FOUND
        );
        let post = answer(&Method::POST, "/metrics", &hub, false);
        assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    }
}
