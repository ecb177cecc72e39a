//! The security report: the ten questions of a security review, answered
//! from the running system (its TLS configuration, its storage, its
//! configuration, the catalog's counts, the sandbox self-test it ran at
//! start-up, the record of the last passing test suite), not from prose.
//!
//! One JSON document (`GET /v1/security-report`, `bv security-report`), and
//! the same rendered as Markdown (`?format=markdown`) and as the `/security`
//! page. A caller with a key or session also gets its own tenant's answers.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use bv_catalog::now_ms;
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::routes::{Access, ENDPOINTS};
use crate::state::AppState;
use crate::time::rfc3339_ms;

/// What the binary knows about the host and hands to the API at start.
#[derive(Debug, Default)]
pub struct HostFacts {
    /// Blob storage, in words (`local directory`, `S3-compatible service at …`).
    pub storage: String,
    /// Where the root key comes from (`file`, `environment`).
    pub root_key: String,
    /// The sandbox limits every job gets (as configured).
    pub sandbox_limits: Value,
    /// The sandbox self-test's result, once it has run.
    pub self_test: Arc<RwLock<Option<Value>>>,
    /// The record `make test` writes when the whole suite passed.
    pub suite_record: Option<PathBuf>,
    /// The CycloneDX SBOM `make sbom` writes, if it ran.
    pub sbom: Option<PathBuf>,
    /// Whether this process can run jobs (for `/readyz`).
    pub processing: crate::ready::Processing,
}

/// The pin file as this binary was built with it: every artifact the setup
/// downloads (wheels with the models, samples, reference runtimes and test
/// tools; the source of each tool built from crates.io) and its SHA-256.
const PIN_FILE: &str = include_str!("../../../scripts/pins.lock");

/// What the report says of the supply chain: the pin file (its digest and
/// how many artifacts it pins) and the SBOM's date, when there is one.
fn supply_chain(sbom: Option<&PathBuf>) -> Value {
    use sha2::Digest;
    let pinned = PIN_FILE
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    let sbom = sbom
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .map(|b| {
            json!({
                "format": format!("CycloneDX {}", b["specVersion"].as_str().unwrap_or("?")),
                "generated_at": b["metadata"]["timestamp"],
                "components": b["components"].as_array().map_or(0, Vec::len),
            })
        });
    json!({
        "pin_file": "scripts/pins.lock",
        "pin_file_sha256": bv_crypto::secret::hex(&sha2::Sha256::digest(PIN_FILE.as_bytes())),
        "pinned_artifacts": pinned,
        "dependency_policy": "deny.toml, checked by cargo deny in make test: permissive licenses only, no second TLS or crypto stack, no duplicate crate versions beyond a listed few, crates.io only",
        "sbom": sbom.unwrap_or_else(|| json!({"note": "not generated on this host: make sbom"})),
    })
}

/// What the listener was built with (filled in by [`crate::start`]).
#[derive(Debug, Clone, Default)]
pub struct TlsFacts {
    /// Protocol versions offered.
    pub protocols: Vec<String>,
    /// Cipher suites usable with the current certificate, in preference order.
    pub suites: Vec<String>,
    /// The plain-HTTP listener, if any (it only redirects).
    pub redirect: Option<String>,
}

/// The attacks the test suite runs, and the test that runs each (file and
/// function; a test checks that each exists).
pub const ATTACKS: &[(&str, &str, &str)] = &[
    (
        "another tenant's ids answer exactly like missing ones",
        "crates/bv/tests/service/access.rs",
        "another_tenants_ids_look_like_random_ids",
    ),
    (
        "keys without the scope, expired and revoked keys are refused on every endpoint",
        "crates/bv/tests/service/access.rs",
        "every_endpoint_refuses_keys_without_its_scope",
    ),
    (
        "session cookies, CSRF, idle and absolute timeouts, sign-in throttling",
        "crates/bv/tests/service/access.rs",
        "sessions_cookies_csrf_timeouts_and_throttling",
    ),
    (
        "flipped ciphertext bits, truncation and spliced objects are refused",
        "crates/bv-vault/tests/suite.rs",
        "bit_flips_truncation_and_splices_are_refused",
    ),
    (
        "an altered job row is refused by the worker",
        "crates/bv/tests/service/worker.rs",
        "a_job_runs_sealed_in_sealed_out_and_a_tampered_row_is_refused",
    ),
    (
        "an altered segment row of a job run in segments is refused",
        "crates/bv/tests/service/segments.rs",
        "a_killed_coordinator_resumes_with_its_finished_segments_and_altered_rows_are_refused",
    ),
    (
        "nothing is deleted early; what is due is crypto-shredded, its links die, each deletion audited",
        "crates/bv/tests/service/retention.rs",
        "retention_deletes_what_is_due_audited_and_nothing_early",
    ),
    (
        "a dump of the whole catalog shows no file name, tus metadata or webhook URL",
        "crates/bv/tests/service/sealed.rs",
        "the_catalog_holds_no_file_name_or_webhook_url",
    ),
    (
        "an erased tenant: no object opens by any command, no row is left, others untouched, the receipt verifies and a forged one does not",
        "crates/bv/tests/service/erasure.rs",
        "erase_shreds_everything_of_one_tenant_and_signs_a_receipt",
    ),
    (
        "bursts over a rate limit get 429 with Retry-After on two servers sharing the catalog",
        "crates/bv/tests/service/limits.rs",
        "bursts_over_the_limit_get_429_on_two_servers",
    ),
    (
        "hostile jobs: network, host files, sockets",
        "crates/bv/tests/sandbox.rs",
        "no_network_no_host_sockets_no_dns",
    ),
    (
        "hostile jobs: host files, keys and data",
        "crates/bv/tests/sandbox.rs",
        "host_files_keys_and_data_are_out_of_reach",
    ),
    (
        "hostile jobs: fork bomb",
        "crates/bv/tests/sandbox.rs",
        "fork_bomb_is_stopped",
    ),
    (
        "hostile jobs: nothing survives the job",
        "crates/bv/tests/sandbox.rs",
        "nothing_survives_the_job",
    ),
    (
        "tampered, expired, replayed and revoked signed links",
        "crates/bv/tests/service/links.rs",
        "signed_links_hold_against_tampering_expiry_deletion_and_rotation",
    ),
    (
        "forged log lines through file names, user agents and logins",
        "crates/bv/tests/service/logs.rs",
        "hostile_names_and_user_agents_cannot_forge_log_lines",
    ),
    (
        "audit log rows edited, deleted, reordered, inserted and cut, with the checkpoint rows deleted too (an anchor outside the catalog vouches)",
        "crates/bv/tests/service/audit.rs",
        "tampering_with_the_audit_log_is_detected_at_its_position",
    ),
    (
        "operators without a grant, with another video's grant, after expiry, before approval",
        "crates/bv/tests/service/operators.rs",
        "operators_open_nothing_without_a_grant_and_every_access_is_logged",
    ),
    (
        "TLS downgrade, weak suites, plain HTTP",
        "crates/bv/tests/service/transport.rs",
        "https_only_with_strict_headers",
    ),
    (
        "webhook URLs into the service's own network (metadata, loopback, private, hex and IPv4-mapped forms, credentials) are refused when set",
        "crates/bv-api/tests/router.rs",
        "webhook_urls_into_the_services_own_network_are_refused",
    ),
    (
        "a stored webhook URL that resolves inside the network is refused at connection time; nothing reaches it",
        "crates/bv-service/tests/webhooks.rs",
        "an_inside_address_is_refused_at_connection_and_the_tenant_sees_why",
    ),
    (
        "a copy of the SQLite catalog's files taken after a delete and an erasure holds none of the deleted wrapped keys",
        "crates/bv-service/tests/shred.rs",
        "shredded_keys_are_not_in_a_copy_of_the_sqlite_files",
    ),
    (
        "password guesses lock out the guesser's address, not the user",
        "crates/bv-api/tests/router.rs",
        "a_password_guesser_locks_its_own_address_not_the_user",
    ),
    (
        "hostile jobs: ptrace, mount, namespaces (unshare, clone flags, clone3), keyrings, bpf, modules",
        "crates/bv/tests/sandbox.rs",
        "host_processes_are_invisible_and_dangerous_calls_refused",
    ),
    (
        "root keys in an HSM: a catalog restored from before a root rotation opens nothing, and an erased tenant's key rows, object record and blob put back open nothing (its key died in the token)",
        "crates/bv/tests/service/hsm.rs",
        "the_root_key_lives_in_the_hsm_and_a_retired_version_opens_nothing",
    ),
    (
        "a SQLite catalog written before secure_delete keeps no deleted row once this version has opened it",
        "crates/bv-catalog/tests/catalog.rs",
        "rows_deleted_before_secure_delete_leave_the_file_at_the_next_open",
    ),
    (
        "behind a trusted reverse proxy one guesser locks out only itself; without one, a forged X-Forwarded-For dodges nothing",
        "crates/bv/tests/service/access.rs",
        "a_trusted_proxy_names_the_client_and_nobody_else_can",
    ),
    (
        "the jail's supervisor, while the job runs, holds no capability, cannot gain privileges and makes only a few system calls",
        "crates/bv-sandbox/tests/launcher.rs",
        "the_supervisor_gives_up_every_capability_while_the_job_runs",
    ),
    (
        "a sealed object no video refers to (a crash, a delete racing an upload's last piece) is shredded after a day, and audited, on both catalog backends",
        "crates/bv-service/tests/reconcile.rs",
        "orphans_are_shredded_after_the_grace_period",
    ),
    (
        "a server stopped with SIGTERM vouches for its last audit entries (checkpoint anchored outside the catalog)",
        "crates/bv/tests/service/audit.rs",
        "a_stopped_server_leaves_its_last_entries_vouched_for",
    ),
    (
        "an HTTP/2 upload client that vanishes mid-body leaves no lease holding the upload",
        "crates/bv-api/tests/router.rs",
        "an_upload_whose_client_vanishes_mid_patch_is_free_for_another_server",
    ),
    (
        "a raw H.264 stream (no container count) is priced, processed and charged for every frame",
        "crates/bv/tests/service/worker.rs",
        "a_raw_h264_stream_is_priced_and_charged_for_every_frame",
    ),
    (
        "connections held open: a silent TLS client, a trickled body, an idle HTTP/2 connection answering PINGs, one address opening many",
        "crates/bv/tests/service/hostile.rs",
        "connections_cannot_be_held_open",
    ),
    (
        "a damaged input's error shows the tenant no heap address and no path inside the jail",
        "crates/bv/tests/service/worker.rs",
        "a_damaged_inputs_error_shows_no_pointer_or_jail_path",
    ),
    (
        "the claims of this report, checked against the live service",
        "crates/bv/tests/service/report.rs",
        "the_security_report_is_true_of_the_live_service",
    ),
];

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Builds the report; `tenant` adds that tenant's own answers.
pub async fn build(st: &AppState, tenant: Option<&str>) -> ApiResult<Value> {
    let since = now_ms() - 30 * DAY_MS;
    let cat = &st.catalog;
    // One query for every tenant (the report is public: its cost must not grow per tenant).
    let (tenant_total, requiring, holding) = cat.tenant_counts().await?;
    let public: Vec<Value> = ENDPOINTS
        .iter()
        .filter(|e| e.access == Access::Public)
        .map(|e| json!({"method": e.method, "path": e.path}))
        .collect();
    let tls = &st.tls;
    let self_test = st
        .host
        .self_test
        .read()
        .map(|g| g.clone())
        .unwrap_or_default();
    let suite = st
        .host
        .suite_record
        .as_ref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
    let cfg = &st.cfg;
    let ret = &st.domain.retention;
    let mut r = json!({
        "generated_at": rfc3339_ms(now_ms()),
        "service": {"url": st.public_url, "version": env!("CARGO_PKG_VERSION")},
        "transport": {
            "protocols": tls.protocols,
            "refused": ["SSLv3", "TLSv1.0", "TLSv1.1"],
            "cipher_suites": tls.suites,
            "forward_secrecy": "every suite uses an ephemeral (EC)DHE key exchange",
            "hsts": crate::middleware::HSTS,
            "plain_http": tls.redirect.as_ref().map_or_else(
                || "none".to_string(),
                |a| format!("{a}: redirects to HTTPS only")),
        },
        "at_rest": {
            "algorithm": "AES-256-GCM",
            "format": "segmented sealed objects with an authenticated header (docs/sealed-object-format.md)",
            "data_keys": "a fresh random 256-bit key per object",
            "hierarchy": if st.vault.keys().root_provider() == "pkcs11" {
                "object key wrapped by the tenant key, tenant keys wrapped by the tenant's own key inside the HSM, service keys by the root key there"
            } else {
                "object key wrapped by the tenant key, tenant keys wrapped by the root key"
            },
            "root_key": st.host.root_key,
            "deletion": "the object's wrapped key is destroyed first (crypto-shredding)",
            "deleted_keys_on_disk": match st.catalog.backend() {
                bv_catalog::Backend::Sqlite => "zeroed in the catalog file (SQLite secure_delete) and its write-ahead log emptied after every video delete and erasure: a copy of the catalog files taken afterwards holds no deleted key; a backup taken before still does (docs/erasure.md states the limits)",
                bv_catalog::Backend::Postgres => "PostgreSQL keeps a deleted key's row until vacuum reuses its space, and in its WAL and backups while they are kept: a copy of the catalog can still hold deleted keys",
            },
            "erased_tenants_in_copies": if st.vault.keys().root_provider() == "pkcs11" {
                "each tenant's keys are wrapped by a key of its own inside the HSM, destroyed when the tenant is erased: no copy or backup of the catalog opens an erased tenant's data"
            } else {
                "an erased tenant's keys, where a copy or backup of the catalog still holds them, open its data until the root key versions that wrapped them are retired (bv keys rotate --root); each erasure receipt names them"
            },
            "tenants": {
                "total": tenant_total,
                "keys_held_by_the_service": tenant_total - holding,
                "keys_held_by_the_tenant": holding,
            },
        },
        "storage": {
            "backend": st.host.storage,
            "private": true,
            "object_ids": "128-bit random; storage paths name no tenant, file or time",
            "routes_without_credentials": public,
            "content_needs": "an API key or session with videos:read, or a signed link",
        },
        "links": {
            "algorithm": "HMAC-SHA256 under a versioned key",
            "bound_to": ["method", "object", "tenant", "expiry"],
            "default_ttl_seconds": cfg.link_ttl_seconds,
            "max_ttl_seconds": cfg.link_max_ttl_seconds,
            "revoked_when_the_object_is_deleted": true,
            "response_headers": ["Cache-Control: private, no-store", "Referrer-Policy: no-referrer"],
        },
        "staff_access": {
            "default": "none: staff open no tenant video without a grant",
            "grant": format!("one video, one operator, a reason code, a reason, a ticket, at most {} hours",
                bv_catalog::access::MAX_GRANT_TTL_MS / 3_600_000),
            "tenants_requiring_approval": requiring,
            "operator_accesses_last_30_days": cat.audit_count("operator.access", "ok", None, since).await?,
            "logged_to": "the tenant's access-transparency log (GET /v1/access/log), sealed in the audit chain",
        },
        "certifications": {
            "claimed": [],
            "note": "none: this service claims no certification (SOC 2, ISO 27001, …) it does not hold",
        },
        "processing": {
            "location": if cfg.processing_location.is_empty() {
                format!("the host running this service ({})", hostname())
            } else {
                cfg.processing_location.clone()
            },
            "isolation": "each job in a fresh sandbox: new user, mount, PID, network, IPC and UTS namespaces, no network, read-only system and models, seccomp, Landlock, no capabilities, resource limits",
            "limits": st.host.sandbox_limits,
            "self_test": self_test.unwrap_or_else(|| json!({"ok": null, "note": "not run yet"})),
        },
        "intermediate_files": {
            "where": "plaintext reaches a job through pipes; working files live only in the job's private, size-capped tmpfs /scratch",
            "deleted": "with the sandbox at the end of every job; teardown is checked after each job and a job whose teardown is not clean fails",
            "jobs_finished_last_30_days": cat.audit_count("job.finish", "%", None, since).await?,
            "teardown_failures_last_30_days": cat.audit_count_detail("job.finish", "%sandbox_teardown_failed%", since).await?,
            "segment_outputs": "a long job's segments are sealed like any output, never listed or served, and shredded when the job ends",
            "retention": {
                "originals": if ret.keep_originals { "kept until their owner deletes them" } else { "deleted when a job on them succeeds" },
                "output_retention_seconds": ret.output_seconds,
                "failed_input_retention_seconds": ret.failed_input_seconds,
                "abandoned_upload_seconds": ret.upload_ttl_seconds,
                "sweep_every_seconds": ret.sweep_seconds,
                "per_tenant": "bv admin retention set",
                "expired_last_30_days": cat.audit_count("video.expired", "%", None, since).await?,
            },
            "sealed_metadata": "file names, tus upload metadata and webhook URLs are sealed under the tenant's key in the catalog",
            "erasure": {
                "how": "DELETE /v1/tenant or bv admin tenant erase: the tenant's keys are destroyed first, then its objects and rows; an Ed25519-signed receipt",
                "tenants_erased_last_30_days": cat.audit_count("tenant.erased", "%", None, since).await?,
            },
        },
        "disclosure": {
            "security_txt": "/.well-known/security.txt",
            "contact": if cfg.security_contact.is_empty() { Value::Null } else { json!(cfg.security_contact) },
            "policy": "SECURITY.md in the source tree: how to report, and how fast fixes ship",
            "supply_chain": supply_chain(st.host.sbom.as_ref()),
        },
        "testing": {
            "attacks": ATTACKS.iter().map(|(a, f, t)| json!({"attack": a, "test": format!("{f}::{t}")})).collect::<Vec<_>>(),
            "last_passed": suite,
        },
    });
    if let Some(t) = tenant {
        r["your_tenant"] = json!({
            "id": t,
            "key_holder": if cat.customer_key_fp(t).await?.is_some() {
                "the tenant: objects open only with the key it sends (X-BV-Customer-Key); the service keeps a keyed fingerprint"
            } else {
                "the service (wrapped by the root key); a tenant can hold its own key instead (PUT /v1/encryption)"
            },
            "require_approval": cat.access_approval(t).await?,
            "operator_accesses_last_30_days": cat.audit_count("operator.access", "ok", Some(t), since).await?,
        });
    }
    Ok(r)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn list(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn s(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// The report as Markdown, one section per question.
pub fn markdown(r: &Value) -> String {
    let mut m = String::new();
    let mut line = |t: String| {
        m.push_str(&t);
        m.push('\n');
    };
    line("# Security report".into());
    line(String::new());
    line(format!(
        "Generated {} by {} (version {}), from the running service.",
        s(&r["generated_at"]),
        s(&r["service"]["url"]),
        s(&r["service"]["version"])
    ));
    let t = &r["transport"];
    line("\n## 1. Transport".into());
    line(format!("- Protocols offered: {}", list(&t["protocols"])));
    line(format!("- Refused: {}", list(&t["refused"])));
    line(format!("- Cipher suites: {}", list(&t["cipher_suites"])));
    line(format!("- Forward secrecy: {}", s(&t["forward_secrecy"])));
    line(format!("- HSTS: `{}`", s(&t["hsts"])));
    line(format!("- Plain HTTP: {}", s(&t["plain_http"])));
    let a = &r["at_rest"];
    line("\n## 2. Encryption at rest and who holds the keys".into());
    for k in [
        "algorithm",
        "format",
        "data_keys",
        "hierarchy",
        "root_key",
        "deletion",
        "deleted_keys_on_disk",
        "erased_tenants_in_copies",
    ] {
        line(format!("- {}: {}", k.replace('_', " "), s(&a[k])));
    }
    line(format!(
        "- Tenants: {} in all; keys held by the service: {}; held by the tenant: {}",
        a["tenants"]["total"],
        a["tenants"]["keys_held_by_the_service"],
        a["tenants"]["keys_held_by_the_tenant"]
    ));
    let st = &r["storage"];
    let l = &r["links"];
    line("\n## 3. Private storage and signed links".into());
    line(format!(
        "- Backend: {}; private: {}",
        s(&st["backend"]),
        st["private"]
    ));
    line(format!("- Object ids: {}", s(&st["object_ids"])));
    line(format!(
        "- Routes answering without credentials: {}",
        st["routes_without_credentials"]
            .as_array()
            .map(|v| v
                .iter()
                .map(|e| format!("`{} {}`", s(&e["method"]), s(&e["path"])))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    ));
    line(format!("- Content needs: {}", s(&st["content_needs"])));
    line(format!(
        "- Signed links: {}, bound to {}; default lifetime {} s, at most {} s; revoked when the object is deleted",
        s(&l["algorithm"]),
        list(&l["bound_to"]),
        l["default_ttl_seconds"],
        l["max_ttl_seconds"]
    ));
    let o = &r["staff_access"];
    line("\n## 4. Staff access".into());
    line(format!("- Default: {}", s(&o["default"])));
    line(format!("- A grant: {}", s(&o["grant"])));
    line(format!(
        "- Tenants requiring approval: {}; operator accesses in the last 30 days: {}",
        o["tenants_requiring_approval"], o["operator_accesses_last_30_days"]
    ));
    line(format!("- Logged to: {}", s(&o["logged_to"])));
    line("\n## 5. Certifications".into());
    line(format!("- {}", s(&r["certifications"]["note"])));
    let p = &r["processing"];
    line("\n## 6–7. Where processing runs, and isolation per job".into());
    line(format!("- Location: {}", s(&p["location"])));
    line(format!("- Isolation: {}", s(&p["isolation"])));
    let test = &p["self_test"];
    line(format!(
        "- Sandbox self-test at start-up ({}): {}",
        s(&test["checked_at"]),
        match test["ok"].as_bool() {
            Some(true) => "every check held".to_string(),
            Some(false) => format!("FAILED {}", s(&test["error"])),
            None => "not run yet".to_string(),
        }
    ));
    if let Some(checks) = test["checks"].as_object() {
        for (k, v) in checks {
            line(format!(
                "  - {}: {}",
                k.replace('_', " "),
                if v == true { "yes" } else { "NO" }
            ));
        }
    }
    let i = &r["intermediate_files"];
    line("\n## 8. Intermediate files".into());
    line(format!("- Where: {}", s(&i["where"])));
    line(format!("- Deleted: {}", s(&i["deleted"])));
    line(format!(
        "- Jobs finished in the last 30 days: {}; teardown failures: {}",
        i["jobs_finished_last_30_days"], i["teardown_failures_last_30_days"]
    ));
    line(format!("- Segments: {}", s(&i["segment_outputs"])));
    let rt = &i["retention"];
    line(format!(
        "- Retention: originals {}; outputs deleted {} s after their job, failed jobs' inputs after {} s, unfinished uploads after {} s (per tenant: `{}`); {} videos deleted in the last 30 days, each a crypto-shred in the audit log",
        s(&rt["originals"]),
        rt["output_retention_seconds"],
        rt["failed_input_retention_seconds"],
        rt["abandoned_upload_seconds"],
        s(&rt["per_tenant"]),
        rt["expired_last_30_days"]
    ));
    line(format!("- Metadata: {}", s(&i["sealed_metadata"])));
    line(format!(
        "- Erasure: {}; {} tenants erased in the last 30 days",
        s(&i["erasure"]["how"]),
        i["erasure"]["tenants_erased_last_30_days"]
    ));
    let d = &r["disclosure"];
    line("\n## 9. Vulnerability disclosure and patching".into());
    line(format!(
        "- Contact: {} (also in `{}`)",
        d["contact"]
            .as_str()
            .unwrap_or("not configured by this instance's operator"),
        s(&d["security_txt"])
    ));
    line(format!("- Policy: {}", s(&d["policy"])));
    let sc = &d["supply_chain"];
    line(format!(
        "- Supply chain: {} pins {} downloaded artifacts by SHA-256 (file digest {}); dependency policy: {}",
        s(&sc["pin_file"]),
        sc["pinned_artifacts"],
        s(&sc["pin_file_sha256"]),
        s(&sc["dependency_policy"])
    ));
    line(match sc["sbom"]["generated_at"].as_str() {
        Some(at) => format!(
            "- SBOM: {}, generated {}, {} components",
            s(&sc["sbom"]["format"]),
            at,
            sc["sbom"]["components"]
        ),
        None => format!("- SBOM: {}", s(&sc["sbom"]["note"])),
    });
    let te = &r["testing"];
    line("\n## 10. Security testing".into());
    line(match te["last_passed"].as_object() {
        Some(p) => format!(
            "- The whole suite last passed on this machine at {} (commit {})",
            p.get("passed_at").map(s).unwrap_or_default(),
            p.get("commit").map(s).unwrap_or_default()
        ),
        None => "- No record of a passing run of the suite on this machine".into(),
    });
    for a in te["attacks"].as_array().into_iter().flatten() {
        line(format!("- {} (`{}`)", s(&a["attack"]), s(&a["test"])));
    }
    if let Some(y) = r.get("your_tenant") {
        line("\n## Your tenant".into());
        line(format!("- Keys held by: {}", s(&y["key_holder"])));
        line(format!(
            "- Staff need your approval: {}; operator accesses in the last 30 days: {}",
            y["require_approval"], y["operator_accesses_last_30_days"]
        ));
    }
    m
}
