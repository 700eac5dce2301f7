//! Reading the Worker's environment: secrets and vars as strings, and which bindings exist.

use crate::config::{Bindings, SourceType};
use wasm_bindgen::JsValue;
use worker::Env;

fn get(env: &Env, name: &str) -> Option<JsValue> {
    js_sys::Reflect::get(env, &JsValue::from_str(name)).ok().filter(|v| !v.is_undefined() && !v.is_null())
}

/// A secret or a plain var (both are strings in the env object).
pub fn string(env: &Env, name: &str) -> Option<String> {
    get(env, name).and_then(|v| v.as_string())
}

/// A plain var as text, also when wrangler.toml wrote it as a number (`EXTERNAL_DB_PORT = 5432`)
/// or a boolean (`ALLOW_RECURSIVE_QUERIES = true`).
pub fn text(env: &Env, name: &str) -> Option<String> {
    let v = get(env, name)?;
    v.as_string()
        .or_else(|| v.as_f64().map(|f| if f.fract() == 0.0 { format!("{}", f as i64) } else { f.to_string() }))
        .or_else(|| v.as_bool().map(|b| b.to_string()))
}

fn has_method(v: &JsValue, method: &str) -> bool {
    js_sys::Reflect::get(v, &JsValue::from_str(method)).is_ok_and(|m| m.is_function())
}

impl Bindings for Env {
    fn has_secret(&self, name: &str) -> bool {
        string(self, name).is_some()
    }
    fn has_hyperdrive(&self, name: &str) -> bool {
        get(self, name).is_some_and(|v| js_sys::Reflect::get(&v, &JsValue::from_str("connectionString")).is_ok_and(|s| s.is_string()))
    }
    fn has_d1(&self, name: &str) -> bool {
        get(self, name).is_some_and(|v| has_method(&v, "prepare"))
    }
    fn default_source_type(&self) -> Option<SourceType> {
        default_source_type(self)
    }
    fn var(&self, name: &str) -> Option<String> {
        text(self, name)
    }
}

/// StarbaseDB's rules for the instance's external database: `EXTERNAL_DB_TYPE` decides the
/// dialect; a `HYPERDRIVE` binding alone means PostgreSQL.
pub fn default_source_type(env: &Env) -> Option<SourceType> {
    match string(env, "EXTERNAL_DB_TYPE").map(|t| t.to_ascii_lowercase()).as_deref() {
        Some("postgresql" | "postgres") => Some(SourceType::Postgres),
        Some("mysql") => Some(SourceType::Mysql),
        Some("sqlite") => {
            if string(env, "EXTERNAL_DB_TURSO_URI").is_some() {
                Some(SourceType::Libsql)
            } else if string(env, "EXTERNAL_DB_STARBASEDB_URI").is_some() {
                Some(SourceType::Starbase)
            // StarbaseDB keys the D1 REST provider on the API key, as here.
            } else if string(env, "EXTERNAL_DB_CLOUDFLARE_API_KEY").is_some() {
                Some(SourceType::D1)
            } else {
                None
            }
        }
        _ if env.has_hyperdrive("HYPERDRIVE") => Some(SourceType::Postgres),
        _ => None,
    }
}
