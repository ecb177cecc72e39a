//! The worker against a real catalog and vault: a real video enhanced in a
//! sandbox from sealed input to sealed output and charged once; a tampered
//! job row refused with nothing run.

use std::path::PathBuf;
use std::process::Stdio;

use bv_catalog::{Backend, Catalog, JobState, NewJob};
use reqwest::Method;
use serde_json::Value;

use crate::harness::Server;
use crate::on_both;

on_both!(a_job_runs_sealed_in_sealed_out_and_a_tampered_row_is_refused);

fn shared_data() -> PathBuf {
    std::env::var_os("BV_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".local/share/bettervideo")
        })
}

/// Submits a job the way the service does: MAC under the vault's queue key.
async fn submit(
    s: &Server,
    c: &Catalog,
    tenant: &str,
    principal: &str,
    video: &str,
    price: i64,
) -> String {
    let (vault, _) =
        bv_vault::Vault::open(&bv_vault::VaultConfig::default(), s.dir.path()).unwrap();
    let id = bv_catalog::new_id().unwrap();
    let preset = r#"{"model":"realesr-animevideov3","scale":2,"codec":"h264"}"#;
    let (v, tag) = vault
        .mac(
            "queue",
            &bv_catalog::jobs::payload_bytes(&id, tenant, video, preset, price),
        )
        .unwrap();
    c.submit_job(&NewJob {
        id: &id,
        tenant_id: tenant,
        principal_id: principal,
        input_video_id: video,
        preset,
        price,
        payload_mac: &bv_crypto::secret::hex(&tag),
        mac_key_version: i64::from(v),
        priority: 0,
        max_attempts: 3,
        idempotency_key: None,
    })
    .await
    .unwrap();
    id
}

fn run_worker_once(s: &Server) -> Vec<Value> {
    let out = s
        .bv()
        .env("BV_MODEL_DIR", shared_data().join("models"))
        .args(["worker", "--once"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn probe(file: &std::path::Path) -> Value {
    let o = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
        ])
        .args(["stream=width,height,nb_read_frames", "-of", "json"])
        .arg(file)
        .output()
        .unwrap();
    serde_json::from_slice::<Value>(&o.stdout).unwrap()["streams"][0].clone()
}

async fn a_job_runs_sealed_in_sealed_out_and_a_tampered_row_is_refused(b: Backend) {
    let s = Server::start(b).await;
    let sample = std::fs::read(shared_data().join("samples/carphone_pristine.mp4")).unwrap();
    let r = s
        .req(Method::POST, "/v1/videos?name=carphone.mp4", &s.key)
        .body(sample.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let input = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let me: Value = s
        .req(Method::GET, "/v1/me", &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (tenant, principal) = (
        me["tenant_id"].as_str().unwrap(),
        me["principal_id"].as_str().unwrap(),
    );
    s.admin(&["credits", "grant", "--tenant", "default", "100"], None);
    let c = Catalog::open(&s.catalog_url, 2).await.unwrap();

    let job = submit(&s, &c, tenant, principal, &input, 30).await;
    let ran = run_worker_once(&s);
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0]["ended"], "Succeeded", "{ran:?}");
    let j = c.job(tenant, &job).await.unwrap();
    assert_eq!(j.state, JobState::Succeeded);
    let out = j.output_video_id.unwrap();
    let got = s
        .req(Method::GET, &format!("/v1/videos/{out}/content"), &s.key)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let file = s.dir.path().join("result.mp4");
    std::fs::write(&file, got.bytes().await.unwrap()).unwrap();
    let (pin, pout) = (probe(&s.dir.path().join("result.mp4")), {
        let f = s.dir.path().join("input.mp4");
        std::fs::write(&f, &sample).unwrap();
        probe(&f)
    });
    assert_eq!(
        (pin["width"].as_u64(), pin["height"].as_u64()),
        (Some(352), Some(288)),
        "x2 of 176x144"
    );
    assert_eq!(pin["nb_read_frames"], pout["nb_read_frames"], "every frame");
    let v: Value = s
        .req(Method::GET, &format!("/v1/videos/{out}"), &s.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["name"], "carphone-x2.mp4");
    let bal = c.credit_balance(tenant).await.unwrap();
    assert_eq!((bal.available, bal.reserved), (70, 0), "charged once");

    // Someone with database access makes a job cheaper: the worker refuses it.
    let job2 = submit(&s, &c, tenant, principal, &input, 30).await;
    {
        use sqlx::Connection;
        let url = if s.catalog_url.starts_with("sqlite") {
            format!("{}?mode=rw", s.catalog_url)
        } else {
            s.catalog_url.clone()
        };
        let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE jobs SET price = 1 WHERE id = $1")
            .bind(&job2)
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let videos_before = c.videos(tenant, 100, None).await.unwrap().len();
    let ran = run_worker_once(&s);
    assert_eq!(ran[0]["ended"], "Refused", "{ran:?}");
    let j2 = c.job(tenant, &job2).await.unwrap();
    assert_eq!(j2.state, JobState::Failed);
    assert!(j2.last_error.unwrap().starts_with("refused"));
    assert!(j2.output_video_id.is_none(), "nothing ran");
    assert_eq!(
        c.videos(tenant, 100, None).await.unwrap().len(),
        videos_before
    );
    // The reservation (from the ledger, not the altered row) is released whole.
    assert_eq!(c.credit_balance(tenant).await.unwrap().available, 70);
}
