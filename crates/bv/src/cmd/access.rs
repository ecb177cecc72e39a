//! `bv admin operator …` and `bv admin access …`: staff, and their
//! time-limited, justified access to one tenant video at a time.
//!
//! The operator is whoever runs the command (the person behind `sudo`, else
//! the account): a deployment gives each member of staff their own account.
//! Content leaves only through `bv admin access open`, to standard output
//! (never to a file we write), and only while a grant is in effect. Every
//! request, use and refusal is written to the tenant's audit log, which the
//! tenant reads as its access-transparency log.

use std::io::IsTerminal;

use bv_catalog::{Catalog, GrantStatus, NewGrant, now_ms};
use bv_vault::{ObjectId, TenantId, Vault};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::exit::JobFailed;

/// `bv admin operator …`
#[derive(clap::Subcommand, Debug)]
pub enum OperatorCmd {
    /// Register a member of staff who may ask for access (no access by itself).
    Add {
        /// Their account name on the hosts (`SUDO_USER` or the login).
        name: String,
        /// Who employs them (shown to tenants in their access log).
        #[arg(long)]
        employer: String,
        /// Where they work from (shown to tenants).
        #[arg(long)]
        location: String,
    },
    /// List operators.
    List,
    /// Disable an operator: their grants stop working at once.
    Disable {
        /// Name.
        name: String,
    },
}

/// `bv admin access …`
#[derive(clap::Subcommand, Debug)]
pub enum AccessCmd {
    /// Ask for access to one video. It takes effect at once, or once the
    /// tenant approves when the tenant requires approval.
    Request {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Video id.
        #[arg(long)]
        video: String,
        /// customer_request, service_incident, security_investigation or legal_obligation.
        #[arg(long, default_value = "customer_request")]
        reason_code: String,
        /// Why, in words the tenant will read.
        #[arg(long)]
        reason: String,
        /// Support or incident ticket.
        #[arg(long)]
        ticket: String,
        /// How long the grant lasts once in effect (e.g. 15m, 1h; at most 24h).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Write a video's bytes to standard output, if a grant of yours covers it now.
    Open {
        /// Tenant name or id.
        #[arg(long)]
        tenant: String,
        /// Video id.
        #[arg(long)]
        video: String,
    },
    /// Grants and requests (all tenants, or one), newest first.
    List {
        /// Tenant name or id.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// End a grant (or withdraw a request) now.
    Revoke {
        /// Grant id.
        id: String,
    },
}

/// Refused access, with its stable code (exit status 10).
fn refused(code: &str, message: String) -> anyhow::Error {
    JobFailed {
        code: code.into(),
        message,
    }
    .into()
}

/// Records an operator's action in the tenant's log.
async fn record(
    (cat, vault, operator): (&Catalog, &Vault, &str),
    tenant: &str,
    action: &str,
    target: &str,
    outcome: &str,
    detail: serde_json::Value,
) {
    let actor = format!("operator:{operator}");
    let e = bv_service::audit::Event {
        tenant: Some(tenant),
        actor: &actor,
        action,
        target,
        outcome,
    };
    bv_service::audit::record(cat, vault, &Default::default(), e, detail).await;
}

/// Operator commands.
pub async fn operator(cat: &Catalog, c: OperatorCmd) -> anyhow::Result<()> {
    match c {
        OperatorCmd::Add {
            name,
            employer,
            location,
        } => {
            cat.add_operator(&name, &employer, &location).await?;
            eprintln!("operator {name} added; they have no access to any content until a grant");
        }
        OperatorCmd::List => {
            let ops: Vec<_> = cat
                .operators()
                .await?
                .into_iter()
                .map(|o| {
                    json!({"name": o.name, "employer": o.employer, "location": o.location,
                        "disabled": o.disabled_ms.is_some()})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&ops)?);
        }
        OperatorCmd::Disable { name } => {
            cat.disable_operator(&name).await?;
            eprintln!("operator {name} disabled; their grants no longer work");
        }
    }
    Ok(())
}

fn grant_json(g: &bv_catalog::Grant) -> serde_json::Value {
    json!({
        "id": g.id, "tenant": g.tenant_id, "video": g.video_id, "operator": g.operator,
        "reason_code": g.reason_code, "reason": g.reason, "ticket": g.ticket,
        "ttl_seconds": g.ttl_ms / 1000, "status": g.status(now_ms()).as_str(),
        "decided_by": g.decided_by, "expires_ms": g.expires_ms,
    })
}

/// Access commands, run as `who`.
pub async fn access(cat: &Catalog, vault: &Vault, who: &str, c: AccessCmd) -> anyhow::Result<()> {
    match c {
        AccessCmd::Request {
            tenant,
            video,
            reason_code,
            reason,
            ticket,
            ttl,
        } => {
            let t = cat.find_tenant(&tenant).await?;
            let ttl_ms = crate::cmd::admin::duration_secs(&ttl)? * 1000;
            let op = cat.operator(who).await.map_err(|_| {
                refused(
                    "not_an_operator",
                    format!("{who} is not a registered operator (bv admin operator add)"),
                )
            })?;
            let g = cat
                .request_access(&NewGrant {
                    tenant_id: &t.id,
                    video_id: &video,
                    operator: who,
                    reason_code: &reason_code,
                    reason: &reason,
                    ticket: &ticket,
                    ttl_ms,
                })
                .await?;
            let status = g.status(now_ms());
            record(
                (cat, vault, who),
                &t.id,
                "access.requested",
                &format!("video:{video}"),
                status.as_str(),
                json!({"grant": g.id, "reason_code": g.reason_code, "reason": g.reason,
                    "ticket": g.ticket, "ttl_seconds": g.ttl_ms / 1000,
                    "employer": op.employer, "location": op.location}),
            )
            .await;
            if status == GrantStatus::Pending {
                eprintln!(
                    "grant {} is waiting for the tenant's approval (it lapses unanswered after 24 h)",
                    g.id
                );
            } else {
                eprintln!("grant {} is in effect for {ttl}", g.id);
            }
            println!("{}", serde_json::to_string_pretty(&grant_json(&g))?);
        }
        AccessCmd::Open { tenant, video } => open(cat, vault, who, &tenant, &video).await?,
        AccessCmd::List { tenant } => {
            let gs = match tenant {
                Some(t) => {
                    let t = cat.find_tenant(&t).await?;
                    cat.tenant_grants(&t.id, 1000).await?
                }
                None => cat.all_grants(1000).await?,
            };
            let out: Vec<_> = gs.iter().map(grant_json).collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        AccessCmd::Revoke { id } => {
            let g = cat.revoke_grant(&id, &format!("operator:{who}")).await?;
            record(
                (cat, vault, who),
                &g.tenant_id,
                "access.revoked",
                &format!("video:{}", g.video_id),
                "ok",
                json!({"grant": g.id}),
            )
            .await;
            eprintln!("grant {id} revoked");
        }
    }
    Ok(())
}

/// `bv admin access open`: checks the grant, records the access, then streams.
async fn open(
    cat: &Catalog,
    vault: &Vault,
    who: &str,
    tenant: &str,
    video: &str,
) -> anyhow::Result<()> {
    let t = cat.find_tenant(tenant).await?;
    let target = format!("video:{video}");
    let method = "bv admin access open";
    let op = cat.operator(who).await.ok();
    let grant = match &op {
        Some(_) => cat.usable_grant(&t.id, video, who).await?,
        None => None,
    };
    let Some(g) = grant else {
        // Say why, from this operator's latest request for the video.
        let latest = cat
            .tenant_grants(&t.id, 1000)
            .await?
            .into_iter()
            .find(|g| g.video_id == video && g.operator == who);
        let why = match (&op, latest.map(|g| g.status(now_ms()))) {
            (None, _) => format!("{who} is not a registered operator"),
            (_, Some(GrantStatus::Pending)) => {
                "the request is waiting for the tenant's approval".into()
            }
            (_, Some(s)) => format!("your latest grant for this video is {}", s.as_str()),
            (_, None) => "no grant covers this video (bv admin access request)".into(),
        };
        record(
            (cat, vault, who),
            &t.id,
            "operator.access",
            &target,
            "refused",
            json!({"method": method, "why": why}),
        )
        .await;
        return Err(refused("no_access_grant", format!("access refused: {why}")));
    };
    let op = op.expect("a usable grant has a registered operator");
    // A tenant that holds its own key: nothing here can open its videos, so
    // the attempt is recorded as refused rather than as an access.
    if cat.customer_key_fp(&t.id).await?.is_some() {
        let why = "the tenant holds its own key; the service cannot open its videos";
        record(
            (cat, vault, who),
            &t.id,
            "operator.access",
            &target,
            "refused",
            json!({"method": method, "grant": g.id, "why": why}),
        )
        .await;
        return Err(refused(
            "customer_key_required",
            format!("access refused: {why}"),
        ));
    }
    if std::io::stdout().is_terminal() {
        anyhow::bail!("refusing to write video bytes to a terminal: pipe them to a player");
    }
    let v = cat.video(&t.id, video).await?;
    // Recorded before a byte leaves: an access that cannot be logged does not happen.
    record(
        (cat, vault, who),
        &t.id,
        "operator.access",
        &target,
        "ok",
        json!({"method": method, "grant": g.id, "reason_code": g.reason_code,
            "reason": g.reason, "ticket": g.ticket, "employer": op.employer,
            "location": op.location, "bytes": v.size_bytes}),
    )
    .await;
    let tid: TenantId = t.id.parse()?;
    let mut out = tokio::io::stdout();
    for p in cat.pieces(&v.id).await? {
        let o: ObjectId = p.object_id.parse()?;
        vault.get(&tid, &o, &mut out).await?;
    }
    out.flush().await?;
    Ok(())
}

/// For `bv vault get|rm`: an object that holds a tenant's video is not
/// opened or removed behind the catalog's back. Refusals are recorded.
pub async fn guard_object(
    cat: &Catalog,
    vault: &Vault,
    who: &str,
    object: &str,
    method: &str,
) -> anyhow::Result<()> {
    let Some((tenant, video)) = cat.object_owner(object).await? else {
        return Ok(());
    };
    record(
        (cat, vault, who),
        &tenant,
        "operator.access",
        &format!("video:{video}"),
        "refused",
        json!({"method": method, "why": "vault commands do not open or remove tenant videos"}),
    )
    .await;
    Err(refused(
        "no_access_grant",
        format!(
            "object {object} holds part of a tenant's video: operators open tenant content only \
             with a grant (bv admin access request, then bv admin access open), and delete it \
             through the video"
        ),
    ))
}
