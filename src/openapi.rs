//! The OpenAPI 3.1 description of the HTTP API, `docs/openapi.json`, served verbatim at
//! `GET /openapi.json`. It documents exactly the routes of `api::ROUTES`; the tests below
//! hold the two together, and `tests/openapi.test.mjs` checks real answers against it.

pub const OPENAPI_JSON: &str = include_str!("../docs/openapi.json");

#[cfg(test)]
mod tests {
    use super::OPENAPI_JSON;
    use crate::api::{Access, ROUTES};
    use serde_json::Value as Json;
    use std::collections::BTreeSet;

    const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

    fn doc() -> Json {
        serde_json::from_str(OPENAPI_JSON).expect("docs/openapi.json is JSON")
    }

    /// Every (path, method, operation) of the document.
    fn operations(doc: &Json) -> Vec<(String, String, Json)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths is an object") {
            for (k, op) in item.as_object().expect("a path item is an object") {
                if METHODS.contains(&k.as_str()) {
                    out.push((path.clone(), k.to_ascii_uppercase(), op.clone()));
                }
            }
        }
        out
    }

    #[test]
    fn is_openapi_3_1_with_the_crate_version() {
        let d = doc();
        assert!(d["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "openapi: {}", d["openapi"]);
        assert_eq!(d["info"]["version"], crate::VERSION);
    }

    #[test]
    fn documents_exactly_the_routes_the_router_answers() {
        let documented: BTreeSet<(String, String)> = operations(&doc()).into_iter().map(|(p, m, _)| (p, m)).collect();
        let routed: BTreeSet<(String, String)> =
            ROUTES.iter().flat_map(|r| r.methods.iter().map(|m| (r.path.to_string(), m.to_string()))).collect();
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(undocumented.is_empty(), "routes missing from docs/openapi.json: {undocumented:?}");
        assert!(unrouted.is_empty(), "documented but not routed: {unrouted:?}");
    }

    #[test]
    fn security_and_error_answers_follow_each_routes_access() {
        let d = doc();
        let global = d["security"].as_array().expect("a global security requirement");
        assert!(global.iter().any(|s| s.get("bearerAuth").is_some()), "bearer by default");
        assert_eq!(d["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
        for (path, method, op) in operations(&d) {
            let spec = ROUTES.iter().find(|r| r.path == path).expect("routed");
            let public = op.get("security").and_then(Json::as_array).is_some_and(|s| s.is_empty());
            assert_eq!(public, spec.access == Access::Public, "{method} {path}: security");
            let responses = op["responses"].as_object().expect("responses");
            let has = |s: &str| responses.contains_key(s);
            assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: a success answer");
            if spec.access != Access::Public {
                assert!(has("401") && has("403"), "{method} {path}: 401 and 403");
            }
            if path.contains("{id}") {
                assert!(has("400") && has("404"), "{method} {path}: 400 and 404 for ids");
            }
            if method == "POST" || method == "PUT" {
                assert!(has("413"), "{method} {path}: 413");
            }
        }
    }

    #[test]
    fn path_parameters_are_declared_and_refs_resolve() {
        let d = doc();
        for (path, item) in d["paths"].as_object().unwrap() {
            if path.contains("{id}") {
                let params = item["parameters"].as_array().unwrap_or_else(|| panic!("{path}: parameters"));
                assert!(params.iter().any(|p| p["$ref"] == "#/components/parameters/Id"), "{path}: the id parameter");
            }
        }
        fn refs(v: &Json, out: &mut Vec<String>) {
            match v {
                Json::Object(m) => {
                    if let Some(Json::String(r)) = m.get("$ref") {
                        out.push(r.clone());
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Json::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut all = Vec::new();
        refs(&d, &mut all);
        assert!(!all.is_empty());
        for r in all {
            let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("{r}: only local references"));
            assert!(d.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }
}
