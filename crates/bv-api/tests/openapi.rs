//! The OpenAPI document derived from the handlers' types against the one
//! written by hand before it (`openapi-hand-written.json`, served by the
//! last release that had the table, for the router tests' configuration).
//!
//! Requests must be described the same: the same operations, parameters
//! (name, place, required, schema) and request bodies, so a client or
//! fuzzer generated from either sends the same requests. Answers may say
//! more than the hand-written document did (it called several bodies just
//! "an object"), never less: every status, content type, property and
//! required field it named is still there, with the same type or a
//! narrower one. The few places where the derived document is more exact
//! about a request are listed in [`KNOWN`], each with the reason.

use bv_api::routes::openapi::{Context, build};
mod common;
// The offers the router tests run with (the fixture was served with them).
use common::offers;
use serde_json::{Map, Value, json};

/// Where the derived document deliberately differs on the request side:
/// (JSON pointer into the normalised operation, why).
const KNOWN: &[(&str, &str)] = &[(
    "/requestBody/content/application~1json/schema/oneOf/*/properties/codec",
    "codec may be null: serde reads null as not given, which the hand-written document forgot",
)];

/// Operations added since the hand-written document, and why.
const ADDED: &[(&str, &str)] = &[(
    "POST /v1/setup",
    "the first administrator's one-time sign-in link (the first hour, issue 21)",
)];

/// Operations whose answers changed on purpose since, and why (their
/// requests are still compared).
const ANSWERS_CHANGED: &[(&str, &str)] = &[(
    "GET /readyz",
    "readiness became JSON with each check and its fix, 503 while one fails (issue 21)",
)];

fn derived() -> Value {
    let o = offers();
    build(&Context {
        models: &o.models,
        presets: &o.presets,
        link_max_ttl: bv_api::ServeConfig::default().link_max_ttl_seconds,
    })
}

fn hand_written() -> Value {
    serde_json::from_str(include_str!("openapi-hand-written.json")).unwrap()
}

/// Inlines every `$ref`, drops prose, and writes equivalent forms one way:
/// `oneOf [null, X]` as X admitting null, `const` as a one-value `enum`,
/// `required` sorted, parameters sorted by place and name.
fn normalise(v: &Value, schemas: &Value) -> Value {
    match v {
        Value::Object(o) => {
            if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                let name = r.rsplit('/').next().unwrap();
                return normalise(&schemas[name], schemas);
            }
            let mut out = Map::new();
            for (k, x) in o {
                if matches!(
                    k.as_str(),
                    "description" | "title" | "summary" | "tags" | "examples" | "example"
                ) {
                    continue;
                }
                out.insert(k.clone(), normalise(x, schemas));
            }
            if let Some(Value::Array(alts)) = out.get("oneOf").cloned() {
                let nulls = alts
                    .iter()
                    .filter(|a| a == &&json!({"type": "null"}))
                    .count();
                if nulls == 1 && alts.len() == 2 {
                    let mut x = alts
                        .into_iter()
                        .find(|a| a != &json!({"type": "null"}))
                        .unwrap();
                    out.remove("oneOf");
                    let t = match x["type"].take() {
                        Value::Array(mut a) => {
                            a.push("null".into());
                            Value::Array(a)
                        }
                        Value::String(s) => json!([s, "null"]),
                        other => other,
                    };
                    x["type"] = t;
                    if let Some(e) = x.get_mut("enum").and_then(Value::as_array_mut) {
                        e.push(Value::Null);
                    }
                    for (k, y) in x.as_object().unwrap() {
                        out.insert(k.clone(), y.clone());
                    }
                }
            }
            if let Some(c) = out.remove("const") {
                out.insert("enum".into(), json!([c]));
            }
            if let Some(Value::Array(r)) = out.get_mut("required") {
                r.sort_by_key(|x| x.to_string());
                if r.is_empty() {
                    out.remove("required");
                }
            }
            if let Some(Value::Array(t)) = out.get_mut("type") {
                t.sort_by_key(|x| x.to_string());
                t.dedup();
            }
            if let Some(Value::Array(p)) = out.get_mut("parameters") {
                p.sort_by_key(|x| (x["in"].to_string(), x["name"].to_string().to_lowercase()));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| normalise(x, schemas)).collect()),
        other => other.clone(),
    }
}

/// Each operation, normalised, by `METHOD path`.
fn operations(doc: &Value) -> Map<String, Value> {
    let schemas = &doc["components"]["schemas"];
    let mut out = Map::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let mut op = normalise(op, schemas);
            // A request body is optional unless it says otherwise.
            if let Some(b) = op.get_mut("requestBody").and_then(Value::as_object_mut) {
                b.entry("required").or_insert(json!(false));
            }
            out.insert(format!("{} {path}", method.to_uppercase()), op);
        }
    }
    out
}

/// Whether `pointer` (with `*` for any array index) names `at`.
fn known(at: &str) -> bool {
    KNOWN.iter().any(|(p, _)| {
        let (p, a): (Vec<&str>, Vec<&str>) = (p.split('/').collect(), at.split('/').collect());
        p.len() == a.len() && p.iter().zip(&a).all(|(x, y)| x == y || *x == "*")
    })
}

/// Every difference between `old` and `new` at pointer `at` of operation
/// `op`, outside [`KNOWN`].
fn same(op: &str, old: &Value, new: &Value, at: &str, out: &mut Vec<String>) {
    if known(at) {
        return;
    }
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => same(op, x, y, &here, out),
                    _ if known(&here) => {}
                    (Some(x), None) => out.push(format!("{op} {here}: {x} is gone")),
                    (None, Some(y)) => out.push(format!("{op} {here}: {y} is new")),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same(op, x, y, &format!("{at}/{i}"), out);
            }
        }
        _ if old != new => out.push(format!("{op} {at}: {old} became {new}")),
        _ => {}
    }
}

/// Whether answer schema `new` says at least what `old` did.
fn at_least(old: &Value, new: &Value, at: &str, out: &mut Vec<String>) {
    let types = |v: &Value| -> Option<Vec<String>> {
        match &v["type"] {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(a) => Some(a.iter().map(|x| x.as_str().unwrap().to_string()).collect()),
            _ => None,
        }
    };
    if let Some(old_t) = types(old) {
        match types(new) {
            Some(new_t) if new_t.iter().all(|t| old_t.contains(t)) => {}
            n => out.push(format!("{at}: type {old_t:?} became {n:?}")),
        }
    }
    if let Some(req) = old["required"].as_array() {
        for r in req {
            let listed = new["required"].as_array().is_some_and(|n| n.contains(r));
            if !listed {
                out.push(format!("{at}: {r} no longer required"));
            }
        }
    }
    if let Some(e) = old["enum"].as_array()
        && new["enum"].as_array() != Some(e)
    {
        out.push(format!("{at}: enum {e:?} became {}", new["enum"]));
    }
    if let Some(props) = old["properties"].as_object() {
        for (k, p) in props {
            match new["properties"].get(k) {
                Some(n) => at_least(p, n, &format!("{at}.{k}"), out),
                None => out.push(format!("{at}: property {k} is gone")),
            }
        }
    }
    if old["items"].is_object() {
        at_least(&old["items"], &new["items"], &format!("{at}[]"), out);
    }
}

#[test]
fn requests_are_described_as_the_hand_written_document_did_and_answers_at_least_as_well() {
    let (old, new) = (operations(&hand_written()), operations(&derived()));
    let mut added: Vec<_> = new.keys().filter(|k| !old.contains_key(*k)).collect();
    added.sort();
    let mut listed: Vec<_> = ADDED.iter().map(|(op, _)| op).collect();
    listed.sort();
    assert_eq!(added, listed, "operations added since are listed in ADDED");
    let mut diffs = Vec::new();
    for (name, o) in &old {
        let Some(n) = new.get(name) else {
            diffs.push(format!("{name} is gone"));
            continue;
        };
        for k in [
            "operationId",
            "security",
            "x-required-scope",
            "parameters",
            "requestBody",
        ] {
            same(name, &o[k], &n[k], &format!("/{k}"), &mut diffs);
        }
        let (or, nr) = (&o["responses"], &n["responses"]);
        if ANSWERS_CHANGED.iter().any(|(op, _)| op == name) {
            continue;
        }
        let statuses = |r: &Value| r.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(statuses(or), statuses(nr), "{name}: answer statuses");
        for (status, resp) in or.as_object().unwrap() {
            let (oc, nc) = (&resp["content"], &nr[status]["content"]);
            let media = |c: &Value| {
                c.as_object()
                    .map(|m| m.keys().cloned().collect::<Vec<_>>())
                    .unwrap_or_default()
            };
            assert_eq!(media(oc), media(nc), "{name} {status}: content types");
            for (m, body) in oc.as_object().into_iter().flatten() {
                at_least(
                    &body["schema"],
                    &nc[m]["schema"],
                    &format!("{name} {status} {m}"),
                    &mut diffs,
                );
            }
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

#[test]
fn every_handler_path_is_in_the_access_table_and_back() {
    let mut table: Vec<(String, String)> = bv_api::routes::ENDPOINTS
        .iter()
        .map(|e| (e.method.to_string(), e.path.to_string()))
        .collect();
    table.sort();
    assert_eq!(bv_api::routes::openapi::derived_operations(), table);
}

#[test]
fn a_field_added_to_a_type_is_in_the_document() {
    // The answers are the handlers' own types: the video's every field is
    // there, retention rule names and all, without a table to keep.
    let doc = derived();
    let video = &doc["components"]["schemas"]["Video"]["properties"];
    for field in [
        "id",
        "name",
        "status",
        "rejected",
        "media",
        "delete_at",
        "retention",
    ] {
        assert!(video.get(field).is_some(), "{field}: {video}");
    }
    let job = &doc["components"]["schemas"]["Job"]["properties"];
    assert!(job.get("segments").is_some() && job.get("cancel_requested").is_some());
    // The erasure receipt is the signed struct itself.
    let receipt = &doc["components"]["schemas"]["Receipt"]["properties"];
    assert!(receipt.get("signing_key_version").is_some(), "{receipt}");
}
