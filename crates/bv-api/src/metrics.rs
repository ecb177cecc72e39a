//! Counters for Prometheus (`GET /metrics`): aggregate numbers only, no
//! tenant, id or path parameter ever becomes a label.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// (route template, method, status).
type RouteKey = (String, String, u16);

/// The service's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RouteKey, (u64, f64)>>,
    /// Plaintext bytes received into uploads.
    pub upload_bytes: AtomicU64,
    /// Plaintext bytes sent in downloads.
    pub download_bytes: AtomicU64,
    /// Uploads completed.
    pub uploads_completed: AtomicU64,
    /// Signed links refused (tampered, expired, deleted object).
    pub links_refused: AtomicU64,
    /// Requests refused by a rate limit.
    pub rate_limited: AtomicU64,
}

impl Metrics {
    /// Counts one request on the route template `route`.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let mut m = self.requests.lock().expect("not poisoned");
        let e = m
            .entry((route.to_string(), method.to_string(), status))
            .or_default();
        e.0 += 1;
        e.1 += seconds;
    }

    /// Counts one request refused by a rate limit.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP bv_http_requests_total HTTP requests by route template, method and status.\n# TYPE bv_http_requests_total counter\n");
        let m = self.requests.lock().expect("not poisoned");
        for ((r, me, st), (n, _)) in m.iter() {
            let _ = writeln!(
                s,
                "bv_http_requests_total{{route=\"{r}\",method=\"{me}\",status=\"{st}\"}} {n}"
            );
        }
        s.push_str("# HELP bv_http_request_seconds_total Time spent answering, by route template and method.\n# TYPE bv_http_request_seconds_total counter\n");
        let mut by_route: BTreeMap<(&str, &str), f64> = BTreeMap::new();
        for ((r, me, _), (_, t)) in m.iter() {
            *by_route.entry((r, me)).or_default() += t;
        }
        for ((r, me), t) in by_route {
            let _ = writeln!(
                s,
                "bv_http_request_seconds_total{{route=\"{r}\",method=\"{me}\"}} {t:.6}"
            );
        }
        for (name, help, v) in [
            (
                "bv_upload_bytes_total",
                "Plaintext bytes sealed from uploads.",
                &self.upload_bytes,
            ),
            (
                "bv_download_bytes_total",
                "Plaintext bytes sent in downloads.",
                &self.download_bytes,
            ),
            (
                "bv_uploads_completed_total",
                "Uploads completed.",
                &self.uploads_completed,
            ),
            (
                "bv_links_refused_total",
                "Signed links refused.",
                &self.links_refused,
            ),
            (
                "bv_rate_limited_total",
                "Requests refused by a rate limit.",
                &self.rate_limited,
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
        s
    }
}
