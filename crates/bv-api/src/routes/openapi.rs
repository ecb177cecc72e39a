//! `GET /v1/openapi.json`: the API described as OpenAPI 3.1, generated from
//! the endpoint table the router is checked against.

use axum::Json;
use serde_json::{Map, Value, json};

use super::{Access, ENDPOINTS};

/// The document, for a server with this configuration.
pub fn build(ctx: &super::openapi_ops::Context<'_>) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for e in ENDPOINTS {
        let params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$|^[0-9a-f]{16}$"}}))
            .collect();
        let d = super::openapi_ops::details(e.operation, ctx);
        let mut responses = Map::new();
        for (status, r) in d.responses {
            responses.insert(status, r);
        }
        // Every error answers in one format (HEAD ones without a body).
        responses.insert(
            "default".into(),
            json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
        let mut op = json!({
            "operationId": e.operation,
            "summary": e.summary,
            "parameters": params.into_iter().chain(d.params).collect::<Vec<_>>(),
            "responses": responses,
        });
        if let Some(b) = d.body {
            op["requestBody"] = b;
        }
        match e.access {
            Access::Public => op["security"] = json!([]),
            Access::Scoped(s) => {
                op["security"] = json!([{"apiKey": [s.as_str()]}, {"session": [s.as_str()]}]);
                op["x-required-scope"] = json!(s.as_str());
            }
            Access::Authenticated => op["security"] = json!([{"apiKey": []}, {"session": []}]),
            Access::SignedLink => {
                op["security"] = json!([]);
                op["parameters"].as_array_mut().expect("array").extend(["e", "v", "s"].map(|q| {
                    json!({"name": q, "in": "query", "required": true, "schema": {"type": "string"}})
                }));
            }
        }
        paths
            .entry(e.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert(e.method.to_ascii_lowercase(), op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "BetterVideo API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An API key: bv_<id>_<secret>"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::auth::SESSION_COOKIE}
            },
            "schemas": schemas_with_error(),
        }
    })
}

fn schemas_with_error() -> Value {
    let mut s = super::openapi_ops::schemas();
    s["Error"] = json!({
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string", "description": "Stable machine-readable code"},
            "message": {"type": "string"}
        }}}
    });
    s
}

/// The handler.
pub async fn document(
    axum::extract::State(st): axum::extract::State<crate::state::State>,
) -> Json<Value> {
    Json(build(&super::openapi_ops::Context {
        models: &st.offers.models,
        presets: &st.offers.presets,
        link_max_ttl: st.cfg.link_max_ttl_seconds,
    }))
}
