//! The routes, and the table that says who may call each (the OpenAPI
//! document takes its security from [`ENDPOINTS`], the scope tests are
//! generated from it; tests check that the table, the router and the
//! handlers' `#[utoipa::path]`s agree). The web app's static files (`/`, `/assets/…`,
//! see [`web`]), the `/security` page and `/.well-known/security.txt` are not
//! API and are not in the table.

pub mod access;
pub mod audit;
pub mod download;
pub mod encryption;
pub mod jobs;
pub mod keys;
pub mod links;
pub mod models;
pub mod openapi;
pub mod security;
pub mod session;
pub mod system;
pub mod tenant;
pub mod tus;
pub mod videos;
pub mod web;
pub mod webhook;

use axum::Router;
use axum::routing::{delete, get, head, options, post};
use bv_catalog::Scope;

use crate::state::State;

/// How an endpoint is authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, metrics, sign-in, the API description).
    Public,
    /// An API key or session holding this scope.
    Scoped(Scope),
    /// Any API key or session.
    Authenticated,
    /// A signed link.
    SignedLink,
}

/// One endpoint of the API.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// HTTP method.
    pub method: &'static str,
    /// Path template.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// OpenAPI operation id.
    pub operation: &'static str,
    /// One line for people.
    pub summary: &'static str,
}

const fn ep(
    method: &'static str,
    path: &'static str,
    access: Access,
    operation: &'static str,
    summary: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        access,
        operation,
        summary,
    }
}

use Access::*;
use Scope::*;

/// Every endpoint.
pub const ENDPOINTS: &[Endpoint] = &[
    ep("GET", "/healthz", Public, "healthz", "The process answers."),
    ep(
        "GET",
        "/readyz",
        Public,
        "readyz",
        "The service can take requests (catalog reachable).",
    ),
    ep(
        "GET",
        "/metrics",
        Public,
        "metrics",
        "Prometheus counters (aggregates only).",
    ),
    ep(
        "GET",
        "/v1/openapi.json",
        Public,
        "openapi",
        "This API, as OpenAPI 3.1.",
    ),
    ep(
        "GET",
        "/v1/security-report",
        Public,
        "securityReport",
        "The security report, from the running system (JSON, or format=markdown); a key or session adds the caller's tenant.",
    ),
    ep(
        "POST",
        "/v1/session",
        Public,
        "login",
        "Sign in with login and password; sets the session cookie, returns the CSRF token.",
    ),
    ep(
        "POST",
        "/v1/setup",
        Public,
        "setup",
        "Redeem the one-time link `bv serve` printed for the first administrator: creates the user with a password.",
    ),
    ep(
        "DELETE",
        "/v1/session",
        Authenticated,
        "logout",
        "Sign out.",
    ),
    ep(
        "GET",
        "/v1/me",
        Authenticated,
        "whoami",
        "The caller's tenant, principal and scopes.",
    ),
    ep(
        "GET",
        "/v1/keys",
        Scoped(Admin),
        "listKeys",
        "The tenant's API keys (never their secrets).",
    ),
    ep(
        "POST",
        "/v1/keys",
        Scoped(Admin),
        "createKey",
        "A new API key, its secret shown once.",
    ),
    ep(
        "DELETE",
        "/v1/keys/{id}",
        Scoped(Admin),
        "revokeKey",
        "Revoke a key; it stops working at once.",
    ),
    ep(
        "GET",
        "/v1/videos",
        Scoped(VideosRead),
        "listVideos",
        "The tenant's videos, newest first (cursor pagination).",
    ),
    ep(
        "POST",
        "/v1/videos",
        Scoped(VideosWrite),
        "uploadVideo",
        "Simple upload: the whole file in one body (small files).",
    ),
    ep(
        "GET",
        "/v1/videos/{id}",
        Scoped(VideosRead),
        "getVideo",
        "One video.",
    ),
    ep(
        "DELETE",
        "/v1/videos/{id}",
        Scoped(VideosWrite),
        "deleteVideo",
        "Crypto-shred a video; its links stop working.",
    ),
    ep(
        "GET",
        "/v1/videos/{id}/content",
        Scoped(VideosRead),
        "downloadVideo",
        "The video's bytes (Range supported).",
    ),
    ep(
        "HEAD",
        "/v1/videos/{id}/content",
        Scoped(VideosRead),
        "headVideo",
        "The video's size and type.",
    ),
    ep(
        "POST",
        "/v1/videos/{id}/links",
        Scoped(VideosRead),
        "mintLink",
        "A signed, expiring download URL.",
    ),
    ep(
        "GET",
        "/v1/dl/{id}",
        SignedLink,
        "signedDownload",
        "Download through a signed URL (Range supported).",
    ),
    ep(
        "HEAD",
        "/v1/dl/{id}",
        SignedLink,
        "signedHead",
        "Size and type through a signed URL minted for HEAD.",
    ),
    ep(
        "POST",
        "/v1/jobs",
        Scoped(JobsWrite),
        "submitJob",
        "Enhance a video: reserves the price, answers 402 when credits are short.",
    ),
    ep(
        "GET",
        "/v1/jobs",
        Scoped(VideosRead),
        "listJobs",
        "The tenant's jobs, newest first (filter: state).",
    ),
    ep(
        "GET",
        "/v1/jobs/quote",
        Scoped(VideosRead),
        "quoteJob",
        "What a job would cost (credits) and whether the balance covers it.",
    ),
    ep(
        "GET",
        "/v1/models",
        Authenticated,
        "listModels",
        "The models, scales and codecs jobs may ask for.",
    ),
    ep(
        "GET",
        "/v1/jobs/{id}",
        Scoped(VideosRead),
        "getJob",
        "One job, with progress (frames done and total).",
    ),
    ep(
        "GET",
        "/v1/jobs/{id}/events",
        Scoped(VideosRead),
        "jobEvents",
        "Server-Sent Events: progress (frames, fps, ETA) until the job ends.",
    ),
    ep(
        "POST",
        "/v1/jobs/{id}/cancel",
        Scoped(JobsWrite),
        "cancelJob",
        "Cancel; the reservation is released.",
    ),
    ep(
        "GET",
        "/v1/webhook",
        Scoped(Admin),
        "getWebhook",
        "The tenant's webhook (never its secret).",
    ),
    ep(
        "PUT",
        "/v1/webhook",
        Scoped(Admin),
        "setWebhook",
        "Set the webhook URL; a new webhook's signing secret is shown once.",
    ),
    ep(
        "POST",
        "/v1/webhook/rotate",
        Scoped(Admin),
        "rotateWebhook",
        "A new signing secret; the previous one also signs for 24 h.",
    ),
    ep(
        "DELETE",
        "/v1/webhook",
        Scoped(Admin),
        "deleteWebhook",
        "Remove the webhook.",
    ),
    ep(
        "GET",
        "/v1/audit",
        Scoped(Admin),
        "auditLog",
        "The tenant's audit log, newest first (paged with before=).",
    ),
    ep(
        "GET",
        "/v1/tenant/export",
        Scoped(Admin),
        "exportTenant",
        "Everything the catalog holds about the tenant (videos, jobs, credit ledger, keys, settings) as one JSON document.",
    ),
    ep(
        "DELETE",
        "/v1/tenant",
        Scoped(Admin),
        "eraseTenant",
        "Erase the whole tenant for good (confirm with its name): its keys first, so every object is unreadable at once, then its objects and rows; answers a signed receipt.",
    ),
    ep(
        "GET",
        "/v1/encryption",
        Scoped(Admin),
        "getEncryption",
        "Who holds the tenant's keys: the service, or the tenant (customer-held keys).",
    ),
    ep(
        "PUT",
        "/v1/encryption",
        Scoped(Admin),
        "setEncryption",
        "Hold the tenant's own key (sent in X-BV-Customer-Key), or let the service hold them; only while no videos are stored.",
    ),
    ep(
        "GET",
        "/v1/access/settings",
        Scoped(Admin),
        "getAccessSettings",
        "Whether operators need the tenant's approval before opening a video.",
    ),
    ep(
        "PUT",
        "/v1/access/settings",
        Scoped(Admin),
        "setAccessSettings",
        "Require (or stop requiring) approval of operator access requests.",
    ),
    ep(
        "GET",
        "/v1/access/requests",
        Scoped(Admin),
        "listAccessRequests",
        "Operators' requests and grants for the tenant's videos, newest first.",
    ),
    ep(
        "POST",
        "/v1/access/requests/{id}/approve",
        Scoped(Admin),
        "approveAccess",
        "Approve a pending request; the grant runs from now for its lifetime.",
    ),
    ep(
        "POST",
        "/v1/access/requests/{id}/deny",
        Scoped(Admin),
        "denyAccess",
        "Deny a pending request, or end a grant in effect.",
    ),
    ep(
        "GET",
        "/v1/access/log",
        Scoped(Admin),
        "accessLog",
        "Access transparency: every operator request and action on the tenant's data.",
    ),
    ep(
        "GET",
        "/v1/credits",
        Scoped(VideosRead),
        "credits",
        "Balance and ledger; credits never expire.",
    ),
    ep(
        "OPTIONS",
        "/v1/uploads",
        Public,
        "tusOptions",
        "tus: protocol version and extensions.",
    ),
    ep(
        "POST",
        "/v1/uploads",
        Scoped(VideosWrite),
        "tusCreate",
        "tus: create a resumable upload (optionally with a first chunk).",
    ),
    ep(
        "HEAD",
        "/v1/uploads/{id}",
        Scoped(VideosWrite),
        "tusHead",
        "tus: the stored offset.",
    ),
    ep(
        "PATCH",
        "/v1/uploads/{id}",
        Scoped(VideosWrite),
        "tusPatch",
        "tus: append bytes at Upload-Offset.",
    ),
    ep(
        "DELETE",
        "/v1/uploads/{id}",
        Scoped(VideosWrite),
        "tusTerminate",
        "tus: abandon an upload; its bytes are shredded.",
    ),
];

/// The router (without the middleware: see [`crate::app`]).
pub fn router() -> Router<State> {
    Router::new()
        .route("/", get(web::index))
        .route("/assets/{name}", get(web::asset))
        .route("/security", get(security::page))
        .route("/.well-known/security.txt", get(security::security_txt))
        .route("/v1/security-report", get(security::report))
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/metrics", get(system::metrics))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/session", post(session::login).delete(session::logout))
        .route("/v1/setup", post(session::setup))
        .route("/v1/me", get(session::me))
        .route("/v1/keys", get(keys::list).post(keys::create))
        .route("/v1/keys/{id}", delete(keys::revoke))
        .route("/v1/videos", get(videos::list).post(videos::upload))
        .route("/v1/videos/{id}", get(videos::get).delete(videos::delete))
        .route(
            "/v1/videos/{id}/content",
            get(videos::content).head(videos::content),
        )
        .route("/v1/videos/{id}/links", post(videos::mint_link))
        .route("/v1/dl/{id}", get(links::download).head(links::download))
        .route("/v1/jobs", get(jobs::list).post(jobs::submit))
        .route("/v1/jobs/quote", get(jobs::quote))
        .route("/v1/models", get(models::list))
        .route("/v1/jobs/{id}", get(jobs::get))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/v1/jobs/{id}/events", get(jobs::events))
        .route("/v1/credits", get(jobs::credits))
        .route("/v1/audit", get(audit::list))
        .route("/v1/tenant", delete(tenant::erase))
        .route("/v1/tenant/export", get(tenant::export))
        .route("/v1/encryption", get(encryption::get).put(encryption::set))
        .route(
            "/v1/access/settings",
            get(access::get_settings).put(access::set_settings),
        )
        .route("/v1/access/requests", get(access::list))
        .route("/v1/access/requests/{id}/approve", post(access::approve))
        .route("/v1/access/requests/{id}/deny", post(access::deny))
        .route("/v1/access/log", get(access::log))
        .route(
            "/v1/webhook",
            get(webhook::get).put(webhook::set).delete(webhook::delete),
        )
        .route("/v1/webhook/rotate", post(webhook::rotate))
        .route("/v1/uploads", options(tus::options).post(tus::create))
        .route(
            "/v1/uploads/{id}",
            head(tus::head).patch(tus::patch).delete(tus::terminate),
        )
}
