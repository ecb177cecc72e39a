//! What each operation takes and answers, for the OpenAPI document: query
//! parameters, required headers, request bodies and success responses with
//! their schemas. Errors are the shared `Error` schema (the `default`
//! response). Constraints are stated only where the handlers enforce them,
//! so a request the document calls valid is one the server accepts, and one
//! it calls invalid is refused (schemathesis checks both ways).

use serde_json::{Value, json};

use super::models::{ModelOffer, PresetOffer};

/// A JSON response `status` with `schema`.
fn ok(status: &str, schema: Value) -> (String, Value) {
    (
        status.to_string(),
        json!({"description": "Success", "content": {"application/json": {"schema": schema}}}),
    )
}

/// A response without a body.
fn empty(status: &str) -> (String, Value) {
    (
        status.to_string(),
        json!({"description": "Success, no body"}),
    )
}

/// A response carrying `media` (any bytes).
fn raw(status: &str, media: &str) -> (String, Value) {
    (
        status.to_string(),
        json!({"description": "Success", "content": {media: {"schema": {"type": "string"}}}}),
    )
}

/// A query parameter; an optional one given empty (`?state=`) counts as not given.
fn query(name: &str, schema: Value, required: bool) -> Value {
    let mut q = json!({"name": name, "in": "query", "required": required, "schema": schema});
    if !required {
        q["allowEmptyValue"] = json!(true);
    }
    q
}

fn header(name: &str, schema: Value, required: bool) -> Value {
    json!({"name": name, "in": "header", "required": required, "schema": schema})
}

fn json_body(schema: Value) -> Value {
    json!({"required": true, "content": {"application/json": {"schema": schema}}})
}

/// An object with exactly these properties, `required` among them.
fn object(props: Value, required: &[&str]) -> Value {
    json!({"type": "object", "properties": props, "required": required, "additionalProperties": false})
}

fn r(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn int() -> Value {
    json!({"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX})
}

fn nullable(t: &str) -> Value {
    json!({"type": [t, "null"]})
}

/// The tus protocol version header every tus request but OPTIONS carries.
fn tus_resumable() -> Value {
    header(
        "Tus-Resumable",
        json!({"type": "string", "const": "1.0.0"}),
        true,
    )
}

/// Parameters, request body and success responses of `operation`.
pub struct Details {
    /// Query and header parameters (path parameters come from the path).
    pub params: Vec<Value>,
    /// The request body, if any.
    pub body: Option<Value>,
    /// Success responses by status.
    pub responses: Vec<(String, Value)>,
}

/// The body of `POST /v1/jobs`: one variant per model with the scales it
/// does, one without `model` (the default model), and one per preset (which
/// names model and scale itself); any well-formed name when the server was
/// given no model list.
fn submit_body(models: &[ModelOffer], presets: &[PresetOffer]) -> Value {
    let props = |model: Option<Value>, scales: Value| {
        let mut p = json!({"video_id": {"type": "string"},
            "scale": scales,
            "codec": {"type": "string", "enum": bv_job::Codec::names()},
            "crf": {"type": ["integer", "null"], "minimum": 0, "maximum": 63},
            "idempotency_key": nullable("string")});
        if let Some(m) = model {
            p["model"] = m;
        }
        object(p, &["video_id"])
    };
    if models.is_empty() {
        return props(
            Some(json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"})),
            json!({"type": "integer", "enum": [2, 3, 4]}),
        );
    }
    let mut variants: Vec<Value> = models
        .iter()
        .map(|m| {
            props(
                Some(json!({"type": "string", "const": m.name})),
                json!({"type": "integer", "enum": m.scales}),
            )
        })
        .collect();
    if let Some(d) = models.iter().find(|m| m.name == super::jobs::DEFAULT_MODEL) {
        variants.push(props(None, json!({"type": "integer", "enum": d.scales})));
    }
    for p in presets {
        variants.push(object(
            json!({"video_id": {"type": "string"},
                "preset": {"type": "string", "const": p.name},
                "codec": {"type": "string", "enum": bv_job::Codec::names()},
                "crf": {"type": ["integer", "null"], "minimum": 0, "maximum": 63},
                "idempotency_key": nullable("string")}),
            &["video_id", "preset"],
        ));
    }
    json!({"oneOf": variants})
}

/// What the document depends on in this server's configuration.
pub struct Context<'a> {
    /// The models jobs may name.
    pub models: &'a [ModelOffer],
    /// The presets jobs may name.
    pub presets: &'a [PresetOffer],
    /// The longest link lifetime, seconds.
    pub link_max_ttl: u64,
}

/// The details of the operation with this id.
pub fn details(operation: &str, ctx: &Context<'_>) -> Details {
    let models = ctx.models;
    let mut params = Vec::new();
    let mut body = None;
    let page = |params: &mut Vec<Value>| {
        params.push(query("limit", int(), false));
        params.push(query("before", int(), false));
    };
    let responses = match operation {
        "healthz" | "readyz" => vec![raw("200", "text/plain")],
        "metrics" => vec![raw("200", "text/plain")],
        "openapi" => vec![ok("200", json!({"type": "object"}))],
        "securityReport" => {
            params.push(query(
                "format",
                json!({"type": "string", "enum": ["json", "markdown"]}),
                false,
            ));
            vec![(
                "200".into(),
                json!({"description": "The report", "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/markdown": {"schema": {"type": "string"}}}}),
            )]
        }
        "login" => {
            body = Some(json_body(object(
                json!({"login": {"type": "string"}, "password": {"type": "string"}}),
                &["login", "password"],
            )));
            vec![ok(
                "200",
                json!({"type": "object", "required": ["csrf_token"]}),
            )]
        }
        "logout" => vec![empty("204")],
        "whoami" => vec![ok(
            "200",
            json!({"type": "object", "required": ["tenant_id", "principal_id", "scopes", "via"],
                   "properties": {"tenant_id": {"type": "string"}, "principal_id": {"type": "string"},
                                  "scopes": {"type": "array", "items": {"type": "string"}},
                                  "via": {"type": "string"}}}),
        )],
        "listKeys" => vec![ok(
            "200",
            json!({"type": "object", "required": ["keys"],
                   "properties": {"keys": {"type": "array", "items": r("ApiKey")}}}),
        )],
        "createKey" => {
            body = Some(json_body(object(
                json!({"name": {"type": "string", "pattern": "^[A-Za-z0-9._@-]{1,64}$"},
                       "scopes": {"type": "array", "minItems": 1, "items": {"type": "string",
                           "enum": ["videos:read", "videos:write", "jobs:write", "admin"]}},
                       "expires_in_seconds": {"type": ["integer", "null"], "minimum": 1, "maximum": u64::MAX,
                           "description": "Lifetime; more than 10 years counts as 10 years"}}),
                &["name", "scopes"],
            )));
            vec![ok(
                "201",
                json!({"type": "object", "required": ["key", "secret"],
                       "properties": {"key": r("ApiKey"), "secret": {"type": "string"}}}),
            )]
        }
        "revokeKey" => vec![ok("200", r("ApiKey"))],
        "deleteVideo" | "deleteWebhook" => vec![empty("204")],
        "listVideos" => {
            params.push(query("limit", int(), false));
            params.push(query(
                "cursor",
                json!({"type": "string", "pattern": "^[0-9]{1,18}\\.[0-9a-f]{32}$"}),
                false,
            ));
            vec![ok(
                "200",
                json!({"type": "object", "required": ["videos", "next_cursor"],
                       "properties": {"videos": {"type": "array", "items": r("Video")},
                                      "next_cursor": nullable("string")}}),
            )]
        }
        "uploadVideo" => {
            params.push(query(
                "name",
                json!({"type": "string", "minLength": 1, "maxLength": 255,
                       "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$"}),
                false,
            ));
            // An empty body makes an empty video (which its probe then rejects).
            body = Some(json!({"required": false, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}));
            vec![ok("201", r("Video"))]
        }
        "getVideo" => vec![ok("200", r("Video"))],
        "downloadVideo" | "signedDownload" => {
            params.push(header("Range", json!({"type": "string"}), false));
            // Served with the type it was uploaded with.
            vec![raw("200", "*/*"), raw("206", "*/*")]
        }
        "headVideo" | "signedHead" => vec![empty("200")],
        "mintLink" => {
            body = Some(
                json!({"required": false, "content": {"application/json": {"schema": object(
                    json!({"ttl_seconds": {"type": ["integer", "null"], "minimum": 1, "maximum": ctx.link_max_ttl},
                           "method": {"type": ["string", "null"], "enum": ["GET", "HEAD", null]}}),
                    &[],
                )}}}),
            );
            vec![ok(
                "201",
                json!({"type": "object", "required": ["url", "expires_at", "method"],
                       "properties": {"url": {"type": "string"}, "expires_at": {"type": "string"},
                                      "method": {"type": "string"}}}),
            )]
        }
        "submitJob" => {
            body = Some(json_body(submit_body(models, ctx.presets)));
            vec![ok("201", r("Job")), ok("200", r("Job"))]
        }
        "listJobs" => {
            params.push(query(
                "state",
                json!({"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]}),
                false,
            ));
            params.push(query("limit", int(), false));
            vec![ok(
                "200",
                json!({"type": "object", "required": ["jobs"],
                       "properties": {"jobs": {"type": "array", "items": r("Job")}}}),
            )]
        }
        "quoteJob" => {
            params.push(query(
                "video_id",
                json!({"type": "string", "pattern": "^[0-9a-f]{32}$"}),
                true,
            ));
            let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
            let mut scales: Vec<u32> = models.iter().flat_map(|m| m.scales.clone()).collect();
            scales.sort_unstable();
            scales.dedup();
            if models.is_empty() {
                scales = vec![2, 3, 4];
            }
            let model = if names.is_empty() {
                json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"})
            } else {
                json!({"type": "string", "enum": names})
            };
            params.push(query("model", model, false));
            params.push(query(
                "scale",
                json!({"type": "integer", "enum": scales}),
                false,
            ));
            vec![ok(
                "200",
                json!({"type": "object", "required": ["price", "available", "enough"]}),
            )]
        }
        "listModels" => vec![ok(
            "200",
            json!({"type": "object", "required": ["presets", "models", "codecs"],
                   "properties": {"presets": {"type": "array", "items": {"type": "object",
                                      "required": ["name", "title", "note", "model", "scale", "codec"]}},
                                  "models": {"type": "array", "items": {"type": "object"}},
                                  "codecs": {"type": "array", "items": {"type": "string"}}}}),
        )],
        "getJob" | "cancelJob" => vec![ok("200", r("Job"))],
        "jobEvents" => vec![(
            "200".into(),
            json!({"description": "Server-sent events: progress, then end", "content": {
                "text/event-stream": {"schema": {"type": "object",
                    "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}}}}),
        )],
        "getWebhook" | "rotateWebhook" => vec![ok("200", json!({"type": "object"}))],
        "setWebhook" => {
            body = Some(json_body(object(
                json!({"url": {"type": "string", "maxLength": 2048, "pattern": "^https://[^/\\s][^\\s]*$"}}),
                &["url"],
            )));
            vec![
                ok("200", json!({"type": "object"})),
                ok("201", json!({"type": "object"})),
            ]
        }
        "auditLog" | "accessLog" => {
            page(&mut params);
            vec![ok(
                "200",
                json!({"type": "object", "required": ["entries", "next_before"],
                       "properties": {"entries": {"type": "array", "items": {"type": "object"}},
                                      "next_before": nullable("integer")}}),
            )]
        }
        "exportTenant" => vec![ok(
            "200",
            json!({"type": "object", "required": ["format", "tenant", "credits", "videos", "jobs"]}),
        )],
        "eraseTenant" => {
            body = Some(json_body(object(
                json!({"confirm": {"type": "string", "maxLength": 255}}),
                &["confirm"],
            )));
            vec![ok(
                "200",
                json!({"type": "object", "required": ["receipt", "signature"]}),
            )]
        }
        "getEncryption" => vec![ok(
            "200",
            json!({"type": "object", "required": ["key_holder"]}),
        )],
        "setEncryption" => {
            params.push(header(
                "X-BV-Customer-Key",
                json!({"type": "string", "pattern": "^[A-Za-z0-9+/]{43}=$"}),
                false,
            ));
            body = Some(json_body(object(
                json!({"key_holder": {"type": "string", "enum": ["service", "tenant"]}}),
                &["key_holder"],
            )));
            vec![ok(
                "200",
                json!({"type": "object", "required": ["key_holder"]}),
            )]
        }
        "getAccessSettings" | "setAccessSettings" => {
            if operation == "setAccessSettings" {
                body = Some(json_body(object(
                    json!({"require_approval": {"type": "boolean"}}),
                    &["require_approval"],
                )));
            }
            vec![ok(
                "200",
                json!({"type": "object", "required": ["require_approval"],
                       "properties": {"require_approval": {"type": "boolean"}}}),
            )]
        }
        "listAccessRequests" => vec![ok(
            "200",
            json!({"type": "object", "required": ["requests"],
                   "properties": {"requests": {"type": "array", "items": {"type": "object"}}}}),
        )],
        "approveAccess" | "denyAccess" => vec![ok("200", json!({"type": "object"}))],
        "credits" => vec![ok(
            "200",
            json!({"type": "object", "required": ["available", "reserved", "ledger"],
                   "properties": {"available": int(), "reserved": int(),
                                  "ledger": {"type": "array", "items": {"type": "object"}}}}),
        )],
        "tusOptions" => vec![empty("204")],
        "tusCreate" => {
            params.push(tus_resumable());
            params.push(header(
                "Upload-Length",
                json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
                true,
            ));
            // tus: comma-separated `key base64(value)` pairs; the decoded file
            // name is checked afterwards (1-255 characters, no control characters).
            params.push(header(
                "Upload-Metadata",
                json!({"type": "string",
                       "pattern": "^([^ ,]+( [A-Za-z0-9+/]*={0,2})?(,[^ ,]+( [A-Za-z0-9+/]*={0,2})?)*)?$"}),
                false,
            ));
            vec![empty("201")]
        }
        "tusHead" => {
            params.push(tus_resumable());
            vec![empty("200")]
        }
        "tusPatch" => {
            params.push(tus_resumable());
            params.push(header(
                "Upload-Offset",
                json!({"type": "integer", "minimum": 0, "maximum": i64::MAX}),
                true,
            ));
            body = Some(json!({"required": true, "content": {
                "application/offset+octet-stream": {"schema": {"type": "string", "format": "binary"}}}}));
            vec![empty("204")]
        }
        "tusTerminate" => {
            params.push(tus_resumable());
            vec![empty("204")]
        }
        other => unreachable!("operation {other} has no OpenAPI details"),
    };
    Details {
        params,
        body,
        responses,
    }
}

/// The shared schemas the details refer to.
pub fn schemas() -> Value {
    let ts = || json!({"type": "string"});
    json!({
        "Video": {"type": "object",
            "required": ["id", "name", "content_type", "size_bytes", "state", "created_at", "status", "rejected", "media", "delete_at", "retention"],
            "properties": {
                "id": ts(), "name": ts(), "content_type": ts(),
                "size_bytes": int(),
                "state": {"type": "string", "enum": ["uploading", "uploaded", "deleting"]},
                "created_at": ts(),
                "status": {"type": "string", "enum": ["probing", "ready", "rejected"]},
                "rejected": {"type": ["object", "string", "null"]},
                "media": {"type": ["object", "null"]},
                "delete_at": nullable("string"),
                "retention": {"type": ["string", "null"], "enum": ["output", "original", "failed_input", null]}}},
        "Job": {"type": "object",
            "required": ["id", "video_id", "state", "kind", "price", "attempts", "created_at"],
            "properties": {
                "id": ts(), "video_id": ts(), "kind": ts(),
                "state": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
                "price": int(), "attempts": int(), "created_at": ts(),
                "started_at": nullable("string"), "finished_at": nullable("string"),
                "output_video_id": nullable("string"),
                "frames_done": int(), "frames_total": nullable("integer"),
                "cancel_requested": {"type": "boolean"},
                "segments": {"type": "object", "required": ["total", "done"],
                    "properties": {"total": int(), "done": int()}},
                "preset": {"type": "object"},
                "error": {"type": ["object", "string", "null"]}}},
        "ApiKey": {"type": "object",
            "required": ["id", "name", "scopes", "created_at", "expires_at", "last_used_at", "revoked_at", "principal_id"],
            "properties": {
                "id": ts(), "name": ts(), "principal_id": ts(),
                "scopes": {"type": "array", "items": ts()},
                "created_at": ts(), "expires_at": nullable("string"),
                "last_used_at": nullable("string"), "revoked_at": nullable("string")}}
    })
}
