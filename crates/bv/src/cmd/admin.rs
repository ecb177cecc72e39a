//! `bv admin`: tenants, users and API keys, straight on the catalog (run it
//! where the configuration and the database are).

use anyhow::Context;
use bv_catalog::Scope;

use crate::cmd::serve::{default_limits, open_catalog};
use crate::cmd::vault::{open_vault, runtime};
use crate::config::Config;

/// Admin subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum AdminCmd {
    /// Tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Users (people who sign in to the web app).
    #[command(subcommand)]
    User(UserCmd),
    /// API keys.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Signed-link keys.
    #[command(subcommand)]
    Links(LinksCmd),
    /// Credits (they never expire).
    #[command(subcommand)]
    Credits(CreditsCmd),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Staff who may ask for access to tenant content.
    #[command(subcommand)]
    Operator(crate::cmd::access::OperatorCmd),
    /// Time-limited, justified access to one tenant video (as the operator running it).
    #[command(subcommand)]
    Access(crate::cmd::access::AccessCmd),
    /// Retention: when videos are deleted.
    #[command(subcommand)]
    Retention(RetentionCmd),
    /// Quotas and rate limits of a tenant.
    #[command(subcommand)]
    Limits(LimitsCmd),
}

/// `bv admin limits …`
#[derive(clap::Subcommand, Debug)]
pub enum LimitsCmd {
    /// A tenant's limits: what it sets itself and what applies.
    Show {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
    },
    /// Set a tenant's limits (options not given keep their value; 0 turns a
    /// rate or concurrency limit off for the tenant).
    Set {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Requests per minute for each of its API keys and people.
        #[arg(long)]
        key_requests_per_minute: Option<i64>,
        /// Requests per minute for the whole tenant.
        #[arg(long)]
        tenant_requests_per_minute: Option<i64>,
        /// Unfinished uploads at once.
        #[arg(long)]
        concurrent_uploads: Option<i64>,
        /// Jobs queued or running at once.
        #[arg(long)]
        active_jobs: Option<i64>,
        /// Storage quota, MiB.
        #[arg(long)]
        quota_mib: Option<i64>,
        /// Largest single upload, MiB.
        #[arg(long)]
        max_upload_mib: Option<i64>,
        /// Rates and concurrency back to the service's defaults (before the options above).
        #[arg(long)]
        default: bool,
    },
}

/// `bv admin retention …`
#[derive(clap::Subcommand, Debug)]
pub enum RetentionCmd {
    /// Delete what is due now, as the server's sweeper does every
    /// `retention.sweep_seconds`: abandoned uploads, expired outputs, originals
    /// of finished jobs, failed jobs' inputs (each a crypto-shred, audited);
    /// and reconcile the vault with the catalog, as the server does hourly:
    /// sealed objects no video refers to, a day old, are shredded.
    Run,
    /// A tenant's policy: what it sets itself and what applies.
    Show {
        /// Tenant name.
        #[arg(long)]
        tenant: String,
    },
    /// Set a tenant's policy (options not given keep their value).
    Set {
        /// Tenant name.
        #[arg(long)]
        tenant: String,
        /// Keep uploaded originals after their job succeeds.
        #[arg(long)]
        keep_originals: Option<bool>,
        /// Seconds a job's output is kept (0: until deleted).
        #[arg(long)]
        output_seconds: Option<i64>,
        /// Back to the service's defaults (before the options above).
        #[arg(long)]
        default: bool,
    },
}

/// `bv admin audit …`
#[derive(clap::Subcommand, Debug)]
pub enum AuditCmd {
    /// Walks the whole chain and its checkpoints; exits 7 and names the first
    /// broken position when an entry was edited, deleted, reordered or inserted.
    Verify,
    /// Signs a checkpoint at the current end of the log (`bv serve` also does
    /// this every `serve.audit_checkpoint_seconds`).
    Checkpoint,
    /// The latest entries (all tenants), newest first.
    Tail {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

/// `bv admin credits …`
#[derive(clap::Subcommand, Debug)]
pub enum CreditsCmd {
    /// Add credits to a tenant.
    Grant {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Credits to add.
        amount: i64,
        /// Why (kept in the ledger).
        #[arg(long, default_value = "granted by an operator")]
        note: String,
    },
    /// A tenant's balance and latest ledger entries.
    Show {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
    },
}

/// `bv admin tenant …`
#[derive(clap::Subcommand, Debug)]
pub enum TenantCmd {
    /// Create a tenant (with a service account `admin`).
    Create {
        /// Unique name.
        name: String,
        /// Storage quota in MiB (default serve.default_quota_mib).
        #[arg(long)]
        quota_mib: Option<i64>,
        /// Largest single upload in MiB (default serve.default_max_upload_mib).
        #[arg(long)]
        max_upload_mib: Option<i64>,
    },
    /// List tenants.
    List,
    /// Erase a tenant for good: its keys first (every object and sealed
    /// field unreadable at once), then its objects and rows. Prints the
    /// signed receipt, whose `copies` sentence says what a backup can still
    /// open (docs/erasure.md).
    Erase {
        /// Tenant name or id.
        tenant: String,
        /// The tenant's name again (erasure cannot be undone).
        #[arg(long)]
        confirm: String,
    },
    /// Checks an erasure receipt (a file, or `-` for stdin) against this
    /// service's signing key; exits 7 when it does not verify.
    VerifyReceipt {
        /// The receipt file.
        file: String,
    },
    /// A tenant's metadata and credit ledger as JSON.
    Export {
        /// Tenant name or id.
        tenant: String,
    },
}

/// `bv admin user …`
#[derive(clap::Subcommand, Debug)]
pub enum UserCmd {
    /// Create a user; the password is read from standard input (one line;
    /// on a terminal without echo, twice).
    Create {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Sign-in name.
        login: String,
    },
    /// A new one-time link (15 minutes) for the first administrator of tenant
    /// `default` to set a password in the browser, while nobody can sign in;
    /// it ends any earlier link. (The first start of `bv serve` prints one.)
    SetupLink,
}

/// `bv admin key …`
#[derive(clap::Subcommand, Debug)]
pub enum KeyCmd {
    /// Create an API key (printed once).
    Create {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Principal (name or id) the key acts as (default: the tenant's `admin` service account).
        #[arg(long, default_value = "admin")]
        principal: String,
        /// Label.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Comma-separated: videos:read, videos:write, jobs:write, admin.
        #[arg(long, default_value = "videos:read,videos:write,jobs:write")]
        scopes: String,
        /// Lifetime, e.g. 3600s, 90m, 12h, 30d (default: no expiry).
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// List a tenant's keys.
    List {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
    },
    /// Revoke a key (effective immediately).
    Revoke {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Key id (the 16 hex digits after `bv_`).
        id: String,
    },
}

/// `bv admin links …`
#[derive(clap::Subcommand, Debug)]
pub enum LinksCmd {
    /// New signing key; links signed with the previous one stay valid until the next rotation.
    Rotate,
}

/// `30d`, `12h`, `90m`, `3600s` or plain seconds.
pub(crate) fn duration_secs(s: &str) -> anyhow::Result<i64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = n
        .parse()
        .with_context(|| format!("{s:?} is not a duration"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => anyhow::bail!("{s:?}: use s, m, h or d"),
    };
    Ok(n * mult)
}

/// The URL people reach the service at: `serve.public_url`, else what
/// `bv serve` prints for `serve.listen`.
fn service_url(cfg: &Config) -> String {
    if !cfg.serve.public_url.is_empty() {
        return cfg.serve.public_url.trim_end_matches('/').to_string();
    }
    match cfg.serve.listen.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_loopback() || a.ip().is_unspecified() => {
            format!("https://localhost:{}", a.port())
        }
        Ok(a) => format!("https://{a}"),
        Err(_) => format!("https://{}", cfg.serve.listen),
    }
}

/// Who is running the command, for the audit log: the person behind `sudo`
/// if any, else the account the process runs as.
pub(crate) fn operator_name() -> String {
    if let Ok(u) = std::env::var("SUDO_USER") {
        return u;
    }
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => u.name,
        _ => format!("uid:{uid}"),
    }
}

/// Records an operator's key operation (rotation) in the audit log.
pub(crate) async fn audit_key_change(
    cat: &bv_catalog::Catalog,
    vault: &bv_vault::Vault,
    tenant: Option<&str>,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) {
    let actor = format!("operator:{}", operator_name());
    let e = bv_service::audit::Event {
        tenant,
        actor: &actor,
        action,
        target,
        outcome: "ok",
    };
    bv_service::audit::record(cat, vault, &Default::default(), e, detail).await;
}

/// A tenant's retention as set and as it applies (the service's defaults
/// where the tenant sets nothing).
fn retention_policy(cfg: &Config, p: &bv_catalog::TenantRetention) -> serde_json::Value {
    serde_json::json!({
        "set": p,
        "applies": {
            "keep_originals": p.keep_originals.unwrap_or(cfg.retention.keep_originals),
            "output_retention_seconds": p.output_retention_s.unwrap_or(cfg.retention.output_seconds as i64),
            "failed_input_retention_seconds": cfg.retention.failed_input_seconds,
            "abandoned_upload_seconds": cfg.retention.upload_ttl_seconds,
        },
    })
}

/// A tenant's limits as set and as they apply.
fn limits_shown(
    cfg: &Config,
    t: &bv_catalog::Tenant,
    o: &bv_catalog::TenantLimitOverrides,
) -> serde_json::Value {
    let e = bv_service::limits::effective(&cfg.serve.limits, o);
    serde_json::json!({
        "set": o,
        "applies": {
            "key_requests_per_minute": e.key.per_minute,
            "tenant_requests_per_minute": e.tenant.per_minute,
            "burst_seconds": cfg.serve.limits.burst_seconds,
            "concurrent_uploads": e.concurrent_uploads,
            "active_jobs": e.active_jobs,
            "quota_bytes": t.quota_bytes,
            "max_upload_bytes": t.max_upload_bytes,
        },
    })
}

/// Runs the command.
pub fn run(cfg: &Config, c: AdminCmd) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let cat = open_catalog(cfg).await?;
        let vault = open_vault(cfg, &cat).await?;
        if let AdminCmd::Links(LinksCmd::Rotate) = c {
            let v = vault
                .keys()
                .rotate_service_key(bv_api::links::PURPOSE, 2)
                .await?;
            audit_key_change(
                &cat,
                &vault,
                None,
                "key.rotate",
                "links",
                serde_json::json!({"version": v}),
            )
            .await;
            println!(
                "link signing key is now version {v}; links signed with the previous version stay valid until the next rotation"
            );
            return Ok(());
        }
        // Every change an operator makes here is in the audit log, as the CLI's.
        let audit = |tenant: Option<String>, action: &'static str, target: String, detail: serde_json::Value| {
            let (cat, vault) = (&cat, &vault);
            async move {
                let e = bv_service::audit::Event {
                    tenant: tenant.as_deref(),
                    actor: &format!("operator:{}", operator_name()),
                    action,
                    target: &target,
                    outcome: "ok",
                };
                bv_service::audit::record(cat, vault, &Default::default(), e, detail).await;
            }
        };
        match c {
            AdminCmd::Audit(AuditCmd::Verify) => {
                let r = bv_service::audit::verify(&cat, &vault).await?;
                println!("{}", serde_json::to_string_pretty(&r)?);
                if let Some(p) = r.problems.first() {
                    return Err(crate::exit::JobFailed {
                        code: "audit_chain_broken".into(),
                        message: format!(
                            "the audit log is broken at entry {}: {} ({} problem(s) in all)",
                            p.seq,
                            p.problem,
                            r.problems.len()
                        ),
                    }
                    .into());
                }
                eprintln!(
                    "audit log verified: {} entries, {} checkpoint(s), nothing edited, deleted, reordered or inserted",
                    r.entries, r.checkpoints
                );
            }
            AdminCmd::Audit(AuditCmd::Checkpoint) => {
                let seq = bv_service::audit::checkpoint(&cat, &vault).await?;
                println!("{}", serde_json::json!({ "checkpoint": seq }));
            }
            AdminCmd::Audit(AuditCmd::Tail { limit }) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&cat.audit_tail(limit).await?)?
                );
            }
            AdminCmd::Tenant(TenantCmd::Create {
                name,
                quota_mib,
                max_upload_mib,
            }) => {
                let mut l = default_limits(cfg);
                if let Some(q) = quota_mib {
                    l.quota_bytes = q << 20;
                }
                if let Some(m) = max_upload_mib {
                    l.max_upload_bytes = m << 20;
                }
                let t = cat.create_tenant(&name, l).await?;
                cat.create_service_account(&t.id, "admin").await?;
                audit(Some(t.id.clone()), "tenant.create", format!("tenant:{}", t.id), serde_json::json!({"name": name})).await;
                println!("{}", serde_json::to_string_pretty(&t)?);
            }
            AdminCmd::Tenant(TenantCmd::List) => {
                println!("{}", serde_json::to_string_pretty(&cat.tenants().await?)?);
            }
            AdminCmd::Tenant(TenantCmd::Erase { tenant, confirm }) => {
                let t = cat.find_tenant(&tenant).await?;
                bv_service::erasure::check_confirmation(&t, &confirm)?;
                let who = format!("operator:{}", operator_name());
                let r =
                    bv_service::erasure::erase(&cat, &vault, &t, &who, &Default::default()).await?;
                println!("{}", serde_json::to_string_pretty(&r)?);
            }
            AdminCmd::Tenant(TenantCmd::VerifyReceipt { file }) => {
                let text = if file == "-" {
                    std::io::read_to_string(std::io::stdin())?
                } else {
                    std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?
                };
                let bad = |message: String| crate::exit::JobFailed {
                    code: "receipt_invalid".into(),
                    message,
                };
                let r: bv_service::erasure::SignedReceipt = serde_json::from_str(&text)
                    .map_err(|e| bad(format!("not an erasure receipt: {e}")))?;
                let verdict = bv_service::erasure::verify(&vault, &r).await?;
                if let Err(p) = verdict {
                    return Err(bad(format!("the receipt does not verify: {p:?}")).into());
                }
                println!(
                    "the receipt verifies: tenant {} ({}) erased at {}, {} objects, signed with erasure key version {}",
                    r.receipt.tenant_name,
                    r.receipt.tenant_id,
                    r.receipt.finished_at,
                    r.receipt.objects,
                    r.receipt.signing_key_version
                );
            }
            AdminCmd::Tenant(TenantCmd::Export { tenant }) => {
                let t = cat.find_tenant(&tenant).await?;
                let doc = bv_service::export::export(&cat, &vault, &t.id).await?;
                audit(Some(t.id.clone()), "tenant.export", format!("tenant:{}", t.id), serde_json::json!({})).await;
                println!("{}", serde_json::to_string_pretty(&doc)?);
            }
            AdminCmd::User(UserCmd::SetupLink) => {
                let url = service_url(cfg);
                match crate::cmd::serve::setup_link(&cat, &vault, &url).await? {
                    Some(link) => println!("{link}"),
                    None => {
                        return Err(crate::exit::JobFailed {
                            code: "not_found".into(),
                            message: "no link: a user can already sign in (`bv admin user create` \
                                      makes more), or there is no tenant `default`"
                                .into(),
                        }
                        .into());
                    }
                }
            }
            AdminCmd::User(UserCmd::Create { tenant, login }) => {
                let t = cat.find_tenant(&tenant).await?;
                // Typed on a terminal: not echoed, and asked twice.
                let pw = crate::secret_input::read_new(&format!("password for {login} (not shown): "))?;
                let u = cat.create_user(&t.id, &login, &pw).await?;
                audit(Some(t.id.clone()), "user.create", format!("principal:{}", u.id), serde_json::json!({"login": login})).await;
                println!("{}", serde_json::to_string_pretty(&u)?);
            }
            AdminCmd::Key(KeyCmd::Create {
                tenant,
                principal,
                name,
                scopes,
                expires_in,
            }) => {
                let t = cat.find_tenant(&tenant).await?;
                let scopes: Vec<Scope> = bv_catalog::api_keys::parse_scopes(&scopes)?;
                let expires = expires_in
                    .map(|s| duration_secs(&s).map(|d| bv_catalog::now_ms() + d * 1000))
                    .transpose()?;
                let (k, secret) = cat
                    .create_api_key(&t.id, &principal, &name, &scopes, expires)
                    .await?;
                audit(Some(t.id.clone()), "key.create", format!("key:{}", k.id), serde_json::json!({"name": name})).await;
                eprintln!("key {} created; its secret is shown this once:", k.id);
                println!("{secret}");
            }
            AdminCmd::Key(KeyCmd::List { tenant }) => {
                let t = cat.find_tenant(&tenant).await?;
                // Scopes by their wire names and times as RFC 3339, as the API shows them.
                let at = |ms: Option<i64>| ms.map(bv_service::time::rfc3339_ms);
                let keys: Vec<_> = cat
                    .api_keys(&t.id)
                    .await?
                    .into_iter()
                    .map(|k| {
                        serde_json::json!({
                            "id": k.id, "name": k.name, "principal_id": k.principal_id,
                            "scopes": k.scopes, "created_at": at(Some(k.created_ms)),
                            "expires_at": at(k.expires_ms), "last_used_at": at(k.last_used_ms),
                            "revoked_at": at(k.revoked_ms),
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&keys)?);
            }
            AdminCmd::Key(KeyCmd::Revoke { tenant, id }) => {
                let t = cat.find_tenant(&tenant).await?;
                let k = cat.revoke_api_key(&t.id, &id).await?;
                audit(Some(t.id.clone()), "key.revoke", format!("key:{}", k.id), serde_json::json!({})).await;
                println!("{}", serde_json::to_string_pretty(&k)?);
            }
            AdminCmd::Credits(CreditsCmd::Grant {
                tenant,
                amount,
                note,
            }) => {
                let t = cat.find_tenant(&tenant).await?;
                let e = cat.grant_credits(&t.id, amount, &note).await?;
                audit(Some(t.id.clone()), "credits.grant", format!("tenant:{}", t.id), serde_json::json!({"amount": amount})).await;
                println!("{}", serde_json::to_string_pretty(&e)?);
            }
            AdminCmd::Credits(CreditsCmd::Show { tenant }) => {
                let t = cat.find_tenant(&tenant).await?;
                let b = cat.credit_balance(&t.id).await?;
                let h = cat.credit_history(&t.id, 20, None).await?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({"balance": b, "ledger": h}))?
                );
            }
            AdminCmd::Operator(c) => {
                let what = format!("{c:?}");
                crate::cmd::access::operator(&cat, c).await?;
                audit(None, "operator.change", "operators".into(), serde_json::json!({"command": what})).await;
            }
            AdminCmd::Access(c) => {
                crate::cmd::access::access(&cat, &vault, &operator_name(), c).await?
            }
            AdminCmd::Links(_) => unreachable!("handled above"),
            AdminCmd::Limits(LimitsCmd::Show { tenant }) => {
                let t = cat.find_tenant(&tenant).await?;
                let o = cat.tenant_limit_overrides(&t.id).await?;
                println!("{}", limits_shown(cfg, &t, &o));
            }
            AdminCmd::Limits(LimitsCmd::Set {
                tenant,
                key_requests_per_minute,
                tenant_requests_per_minute,
                concurrent_uploads,
                active_jobs,
                quota_mib,
                max_upload_mib,
                default,
            }) => {
                let t = cat.find_tenant(&tenant).await?;
                let mut o = if default {
                    bv_catalog::TenantLimitOverrides::default()
                } else {
                    cat.tenant_limit_overrides(&t.id).await?
                };
                let set = |v: &mut Option<i64>, new: Option<i64>| {
                    if new.is_some() {
                        *v = new;
                    }
                };
                set(&mut o.key_requests_per_minute, key_requests_per_minute);
                set(&mut o.tenant_requests_per_minute, tenant_requests_per_minute);
                set(&mut o.concurrent_uploads, concurrent_uploads);
                set(&mut o.active_jobs, active_jobs);
                cat.set_tenant_limit_overrides(&t.id, o).await?;
                let mib = |m: Option<i64>| m.map(|m| m.saturating_mul(1 << 20));
                cat.set_tenant_storage(&t.id, mib(quota_mib), mib(max_upload_mib))
                    .await?;
                let t = cat.tenant(&t.id).await?;
                let shown = limits_shown(cfg, &t, &o);
                audit(Some(t.id.clone()), "tenant.limits", format!("tenant:{}", t.id), shown.clone()).await;
                println!("{shown}");
            }
            AdminCmd::Retention(RetentionCmd::Run) => {
                let now = bv_catalog::now_ms();
                let s = bv_service::retention::sweep(&cat, &vault, now).await?;
                let r = bv_service::retention::reconcile(&cat, &vault, now).await?;
                let mut shown = serde_json::to_value(s)?;
                shown["reconciled"] = serde_json::to_value(r)?;
                println!("{shown}");
            }
            AdminCmd::Retention(RetentionCmd::Show { tenant }) => {
                let t = cat.find_tenant(&tenant).await?;
                println!("{}", retention_policy(cfg, &cat.tenant_retention(&t.id).await?));
            }
            AdminCmd::Retention(RetentionCmd::Set {
                tenant,
                keep_originals,
                output_seconds,
                default,
            }) => {
                let t = cat.find_tenant(&tenant).await?;
                let mut p = if default {
                    bv_catalog::TenantRetention::default()
                } else {
                    cat.tenant_retention(&t.id).await?
                };
                if keep_originals.is_some() {
                    p.keep_originals = keep_originals;
                }
                if output_seconds.is_some() {
                    p.output_retention_s = output_seconds;
                }
                cat.set_tenant_retention(&t.id, p).await?;
                let shown = retention_policy(cfg, &p);
                audit(Some(t.id.clone()), "tenant.retention", format!("tenant:{}", t.id), shown.clone()).await;
                println!("{shown}");
            }
        }
        anyhow::Ok(())
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::duration_secs("30d").unwrap(), 30 * 86400);
        assert_eq!(super::duration_secs("90m").unwrap(), 5400);
        assert_eq!(super::duration_secs("12").unwrap(), 12);
        assert!(super::duration_secs("1w").is_err());
        assert!(super::duration_secs("h").is_err());
    }
}
