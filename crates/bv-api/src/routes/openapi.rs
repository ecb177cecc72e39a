//! `GET /v1/openapi.json`: the API described as OpenAPI 3.1, derived from
//! the handlers' own types.
//!
//! Each handler carries a `#[utoipa::path]` naming its request body, query
//! and header parameters and its answers by their Rust types (the structs
//! serde reads and writes), so a field added to one of them is in the
//! document without anyone remembering to add it. What the types cannot say
//! is laid over the derived document here, each rule once for every
//! operation: who may call (the [`ENDPOINTS`] table the router and the scope
//! tests are checked against), the shared error answer, the id pattern of
//! path parameters, the range of a 64-bit integer, that an optional query
//! parameter given empty counts as not given; and what depends on this
//! server's configuration (the models and scales a job may name, the longest
//! link lifetime). Decision 0030 records why utoipa.

use axum::Json;
use serde_json::{Map, Value, json};
use utoipa::OpenApi;

use super::models::{ModelOffer, PresetOffer};
use super::{Access, ENDPOINTS};

/// Every operation, by its handler's `#[utoipa::path]`.
#[derive(OpenApi)]
#[openapi(paths(
    super::system::healthz,
    super::system::readyz,
    super::system::metrics,
    document,
    super::security::report,
    super::session::login,
    super::session::setup,
    super::session::logout,
    super::session::me,
    super::keys::list,
    super::keys::create,
    super::keys::revoke,
    super::videos::list,
    super::videos::upload,
    super::videos::get,
    super::videos::delete,
    super::videos::content,
    super::videos::head_content,
    super::videos::mint_link,
    super::links::download,
    super::links::head,
    super::jobs::submit,
    super::jobs::list,
    super::jobs::quote,
    super::models::list,
    super::jobs::get,
    super::jobs::events,
    super::jobs::cancel,
    super::webhook::get,
    super::webhook::set,
    super::webhook::rotate,
    super::webhook::delete,
    super::audit::list,
    super::tenant::export,
    super::tenant::erase,
    super::encryption::get,
    super::encryption::set,
    super::access::get_settings,
    super::access::set_settings,
    super::access::list,
    super::access::approve,
    super::access::deny,
    super::access::log,
    super::jobs::credits,
    super::tus::options,
    super::tus::create,
    super::tus::head,
    super::tus::patch,
    super::tus::terminate,
))]
struct ApiDoc;

/// Raw bytes (a request or response body that is not JSON).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(#[allow(dead_code)] Vec<u8>);

/// A JSON object this document does not describe further (the security
/// report, this document itself).
#[derive(utoipa::ToSchema)]
#[schema(value_type = Object)]
pub struct AnyObject(#[allow(dead_code)] Map<String, Value>);

/// What the document depends on in this server's configuration.
pub struct Context<'a> {
    /// The models jobs may name.
    pub models: &'a [ModelOffer],
    /// The presets jobs may name.
    pub presets: &'a [PresetOffer],
    /// The longest link lifetime, seconds.
    pub link_max_ttl: u64,
}

/// The document, for a server with this configuration.
pub fn build(ctx: &Context<'_>) -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    let mut schemas = doc["components"]["schemas"].take();
    if !schemas.is_object() {
        schemas = json!({});
    }
    let mut paths = doc["paths"].take();
    for e in ENDPOINTS {
        let method = e.method.to_ascii_lowercase();
        let op = paths[e.path]
            .get_mut(&method)
            .unwrap_or_else(|| panic!("{} {} has no #[utoipa::path]", e.method, e.path));
        access(op, e);
        let obj = op.as_object_mut().expect("an operation is an object");
        obj.remove("tags");
        obj.remove("description");
        obj.insert("summary".into(), e.summary.into());
        obj.insert("operationId".into(), e.operation.into());
        // Path parameters come from the template: ids are 32 (or, for
        // grants, 16) hex digits.
        let params = obj
            .entry("parameters")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("parameters are an array");
        let ids = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')));
        for (i, name) in ids.enumerate() {
            params.insert(
                i,
                json!({"name": name, "in": "path", "required": true,
                       "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$|^[0-9a-f]{16}$"}}),
            );
        }
        for p in params.iter_mut() {
            // `?state=` counts as not given (the query extractor's rule).
            if p["in"] == "query" && p["required"] != true {
                p["allowEmptyValue"] = json!(true);
            }
            // A parameter is text on the wire: an optional one is absent,
            // never `null`.
            if let Some(types) = p["schema"]["type"].as_array_mut() {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    p["schema"]["type"] = types[0].clone();
                }
            }
            p.as_object_mut().expect("object").remove("description");
        }
        // A body the handler takes as `Option<T>` may be left out; it is
        // never JSON `null` (an empty body is not).
        let body = op.get_mut("requestBody").and_then(|b| b.get_mut("content"));
        if let Some(content) = body.and_then(Value::as_object_mut) {
            let mut optional = false;
            for media in content.values_mut() {
                if let Some(alts) = media["schema"]["oneOf"].as_array() {
                    let null = json!({"type": "null"});
                    if alts.len() == 2 && alts.contains(&null) {
                        let other = alts.iter().find(|a| **a != null).cloned();
                        media["schema"] = other.expect("two alternatives");
                        optional = true;
                    }
                }
            }
            if optional {
                op["requestBody"]["required"] = json!(false);
            }
        }
        // Every error answers in one format (HEAD ones without a body).
        op["responses"]["default"] = json!({"description": "Error", "content":
            {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        configured(op, e.operation, ctx, &schemas);
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "BetterVideo API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key: bv_<id>_<secret>"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE}
            },
            "schemas": schemas,
        }
    });
    doc["components"]["schemas"]["Error"] =
        serde_json::to_value(<crate::error::ErrorBody as utoipa::PartialSchema>::schema())
            .expect("the error schema serialises");
    integers(&mut doc);
    doc
}

/// Who may call `e`, as OpenAPI security requirements.
fn access(op: &mut Value, e: &super::Endpoint) {
    match e.access {
        Access::Public => op["security"] = json!([]),
        Access::Scoped(s) => {
            op["security"] = json!([{"apiKey": [s.as_str()]}, {"session": [s.as_str()]}]);
            op["x-required-scope"] = json!(s.as_str());
        }
        Access::Authenticated => op["security"] = json!([{"apiKey": []}, {"session": []}]),
        Access::SignedLink => {
            op["security"] = json!([]);
            let params = op
                .as_object_mut()
                .expect("object")
                .entry("parameters")
                .or_insert_with(|| json!([]));
            params.as_array_mut().expect("array").extend(
                ["e", "v", "s"].map(|q| {
                    json!({"name": q, "in": "query", "required": true, "schema": {"type": "string"}})
                }),
            );
        }
    }
}

/// Every integer the server reads or writes as `i64` says so with bounds (a
/// generator then stays inside them); unsigned ones keep their lower bound.
fn integers(v: &mut Value) {
    match v {
        Value::Object(o) => {
            let int = o.get("type").is_some_and(|t| {
                t == "integer"
                    || t.as_array()
                        .is_some_and(|a| a.iter().any(|x| x == "integer"))
            });
            if int
                && o.get("format")
                    .is_some_and(|f| f == "int64" || f == "int32")
            {
                let wide = o.get("format").is_some_and(|f| f == "int64");
                o.remove("format");
                if !o.contains_key("enum") {
                    o.entry("minimum").or_insert_with(|| {
                        if wide {
                            json!(i64::MIN)
                        } else {
                            json!(i32::MIN)
                        }
                    });
                    o.entry("maximum").or_insert_with(|| {
                        if wide {
                            json!(i64::MAX)
                        } else {
                            json!(i32::MAX)
                        }
                    });
                }
            }
            o.values_mut().for_each(integers);
        }
        Value::Array(a) => a.iter_mut().for_each(integers),
        _ => {}
    }
}

/// The schema named `name`, resolved from `schemas`.
fn named(schemas: &Value, name: &str) -> Value {
    schemas
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("schema {name} is derived"))
}

/// What this server's configuration narrows: the models and scales a job
/// and a quote may name, the longest link lifetime.
fn configured(op: &mut Value, operation: &str, ctx: &Context<'_>, schemas: &Value) {
    let models = ctx.models;
    let any_model = json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"});
    match operation {
        "submitJob" => {
            let body = &mut op["requestBody"]["content"]["application/json"]["schema"];
            *body = submit_variants(&named(schemas, "Submit"), ctx);
        }
        "quoteJob" => {
            let mut scales: Vec<u32> = models.iter().flat_map(|m| m.scales.clone()).collect();
            scales.sort_unstable();
            scales.dedup();
            if models.is_empty() {
                scales = vec![2, 3, 4];
            }
            let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
            for p in op["parameters"].as_array_mut().expect("array") {
                match p["name"].as_str() {
                    Some("model") if names.is_empty() => p["schema"] = any_model.clone(),
                    Some("model") => p["schema"] = json!({"type": "string", "enum": names}),
                    Some("scale") => p["schema"] = json!({"type": "integer", "enum": scales}),
                    _ => {}
                }
            }
        }
        "mintLink" => {
            let schema = &mut op["requestBody"]["content"]["application/json"]["schema"];
            let mut s = named(schemas, "LinkRequest");
            s["properties"]["ttl_seconds"]["maximum"] = json!(ctx.link_max_ttl);
            *schema = s;
        }
        _ => {}
    }
}

/// The body of `POST /v1/jobs` as this server takes it: the derived
/// `Submit` schema once per model (with the scales it does), once without
/// `model` (the default model), and once per preset (which names model and
/// scale itself); any well-formed name when the server was given no model
/// list.
fn submit_variants(submit: &Value, ctx: &Context<'_>) -> Value {
    let base = |drop: &[&str]| {
        let mut s = submit.clone();
        let props = s["properties"].as_object_mut().expect("properties");
        for d in drop {
            props.remove(*d);
        }
        s
    };
    if ctx.models.is_empty() {
        let mut s = base(&["preset"]);
        s["properties"]["model"] = json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"});
        s["properties"]["scale"] = json!({"type": "integer", "enum": [2, 3, 4]});
        return s;
    }
    let mut variants: Vec<Value> = ctx
        .models
        .iter()
        .map(|m| {
            let mut s = base(&["preset"]);
            s["properties"]["model"] = json!({"type": "string", "const": m.name});
            s["properties"]["scale"] = json!({"type": "integer", "enum": m.scales});
            s
        })
        .collect();
    if let Some(d) = ctx
        .models
        .iter()
        .find(|m| m.name == super::jobs::DEFAULT_MODEL)
    {
        let mut s = base(&["preset", "model"]);
        s["properties"]["scale"] = json!({"type": "integer", "enum": d.scales});
        variants.push(s);
    }
    for p in ctx.presets {
        let mut s = base(&["model", "scale"]);
        s["properties"]["preset"] = json!({"type": "string", "const": p.name});
        let req = s["required"].as_array_mut().expect("required");
        req.push(json!("preset"));
        variants.push(s);
    }
    json!({ "oneOf": variants })
}

/// This API, as OpenAPI 3.1.
#[utoipa::path(get, path = "/v1/openapi.json",
    responses((status = 200, description = "Success", body = AnyObject)))]
pub async fn document(
    axum::extract::State(st): axum::extract::State<crate::state::State>,
) -> Json<Value> {
    Json(build(&Context {
        models: &st.offers.models,
        presets: &st.offers.presets,
        link_max_ttl: st.cfg.link_max_ttl_seconds,
    }))
}

/// The operations the derived document names, as (method, path): for the
/// test that holds it and the [`ENDPOINTS`] table to each other.
pub fn derived_operations() -> Vec<(String, String)> {
    let doc = serde_json::to_value(ApiDoc::openapi()).expect("serialises");
    let mut out = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in item.as_object().map(Map::keys).into_iter().flatten() {
                out.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out.sort();
    out
}
