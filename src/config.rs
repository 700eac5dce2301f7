//! Replication configs: the stored shape, and validation of what users send.
//!
//! Validation works on the raw JSON rather than through `#[serde(deny_unknown_fields)]` so that
//! every message names the offending field and what was expected of it.

use crate::error::{Error, Result};
use crate::ident::{self, Ident, Quoting};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

pub const MAX_BATCH_SIZE: i64 = 50_000;
/// A year: long enough for any schedule, small enough that `interval * 1000` stays far from overflow.
pub const MAX_INTERVAL_SECONDS: i64 = 31_536_000;
pub const MAX_LOOKBACK_SECONDS: i64 = 31_536_000;
/// A reconciliation pass reads little, but it still counts every key range at the origin.
pub const MIN_RECONCILE_SECONDS: i64 = 60;
pub const MAX_RECONCILE_SECONDS: i64 = 31_536_000;
const AUTH_TOKENS: [&str; 2] = ["ADMIN_AUTHORIZATION_TOKEN", "CLIENT_AUTHORIZATION_TOKEN"];
const RESERVED_PREFIXES: [&str; 3] = ["tmp_", "_cf_", "sqlite_"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Full,
    Incremental,
    /// PostgreSQL logical decoding: every insert, update and delete, from a replication slot.
    Cdc,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Incremental => "incremental",
            Mode::Cdc => "cdc",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceType {
    Postgres,
    Mysql,
    Libsql,
    D1,
    Starbase,
}

impl SourceType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "postgres" => SourceType::Postgres,
            "mysql" => SourceType::Mysql,
            "libsql" => SourceType::Libsql,
            "d1" => SourceType::D1,
            "starbase" => SourceType::Starbase,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            SourceType::Postgres => "postgres",
            SourceType::Mysql => "mysql",
            SourceType::Libsql => "libsql",
            SourceType::D1 => "d1",
            SourceType::Starbase => "starbase",
        }
    }
    /// MySQL users write backquotes; everyone else double quotes.
    pub fn quoting(self) -> Quoting {
        match self {
            SourceType::Mysql => Quoting::Backtick,
            _ => Quoting::Double,
        }
    }
    /// The name an identifier refers to at this origin: PostgreSQL folds unquoted names to
    /// lower case; MySQL and the SQLite family keep them as written.
    pub fn resolve(self, id: &Ident) -> String {
        match self {
            SourceType::Postgres if !id.quoted => id.name.to_ascii_lowercase(),
            _ => id.name.clone(),
        }
    }
}

/// How a PostgreSQL or MySQL origin is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// A Hyperdrive binding of this Worker.
    Hyperdrive(String),
    /// A secret (or var) holding a connection URL.
    UrlSecret(String),
    /// The instance's `EXTERNAL_DB_*` variables: a config without `source` (never stored).
    InstanceDefault,
}

/// How a D1 database is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum D1Access {
    /// A D1 binding of this Worker.
    Binding(String),
    /// Cloudflare's REST API, with the API token in a secret.
    Rest { account_id: String, database_id: String, token_secret: String },
}

/// Where a config's rows come from: references to bindings and secrets, never credentials.
///
/// Validation builds it once (`parse_source`); nothing downstream re-checks its shape. It is
/// stored and shown in the API's flat form (`{"type": "postgres", "url_secret": "PG_URL"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "SpecFields", try_from = "SpecFields")]
pub enum SourceSpec {
    Postgres(Connection),
    Mysql(Connection),
    Libsql { url: String, token_secret: Option<String> },
    D1(D1Access),
    Starbase { url: String, token_secret: String },
}

impl SourceSpec {
    pub fn kind(&self) -> SourceType {
        match self {
            SourceSpec::Postgres(_) => SourceType::Postgres,
            SourceSpec::Mysql(_) => SourceType::Mysql,
            SourceSpec::Libsql { .. } => SourceType::Libsql,
            SourceSpec::D1(_) => SourceType::D1,
            SourceSpec::Starbase { .. } => SourceType::Starbase,
        }
    }
}

/// The API's flat form of a `SourceSpec`: how it is sent, stored and shown. `try_from` turns
/// it into a spec by the shape rules (which fields each type needs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SpecFields {
    #[serde(rename = "type")]
    kind: Option<SourceType>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    hyperdrive: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    url_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    token_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    binding: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    database_id: Option<String>,
}

impl From<SourceSpec> for SpecFields {
    fn from(spec: SourceSpec) -> Self {
        let kind = Some(spec.kind());
        let connection = |c: Connection| match c {
            Connection::Hyperdrive(h) => SpecFields { kind, hyperdrive: Some(h), ..SpecFields::default() },
            Connection::UrlSecret(u) => SpecFields { kind, url_secret: Some(u), ..SpecFields::default() },
            Connection::InstanceDefault => SpecFields { kind, ..SpecFields::default() },
        };
        match spec {
            SourceSpec::Postgres(c) | SourceSpec::Mysql(c) => connection(c),
            SourceSpec::Libsql { url, token_secret } => SpecFields { kind, url: Some(url), token_secret, ..SpecFields::default() },
            SourceSpec::Starbase { url, token_secret } => {
                SpecFields { kind, url: Some(url), token_secret: Some(token_secret), ..SpecFields::default() }
            }
            SourceSpec::D1(D1Access::Binding(b)) => SpecFields { kind, binding: Some(b), ..SpecFields::default() },
            SourceSpec::D1(D1Access::Rest { account_id, database_id, token_secret }) => SpecFields {
                kind,
                account_id: Some(account_id),
                database_id: Some(database_id),
                token_secret: Some(token_secret),
                ..SpecFields::default()
            },
        }
    }
}

impl TryFrom<SpecFields> for SourceSpec {
    type Error = Error;

    /// The shape rules: which fields each type needs. What the fields name (bindings,
    /// secrets) is checked against the environment by `parse_source`.
    fn try_from(f: SpecFields) -> Result<SourceSpec> {
        let kind = f.kind.ok_or_else(|| field_error("source.type", "is required"))?;
        Ok(match kind {
            SourceType::Postgres | SourceType::Mysql => {
                let c = match (f.hyperdrive, f.url_secret) {
                    (Some(h), None) => Connection::Hyperdrive(h),
                    (None, Some(u)) => Connection::UrlSecret(u),
                    _ => {
                        return Err(Error::bad_request(format!(
                            "a {} source needs exactly one of `source.hyperdrive` or `source.url_secret`",
                            kind.name()
                        )))
                    }
                };
                if kind == SourceType::Postgres {
                    SourceSpec::Postgres(c)
                } else {
                    SourceSpec::Mysql(c)
                }
            }
            SourceType::Libsql | SourceType::Starbase => {
                let url = f.url.ok_or_else(|| field_error("source.url", "is required"))?;
                // Turso hands out libsql:// URLs (HTTPS underneath); the connection normalizes them.
                let libsql_scheme = kind == SourceType::Libsql && url.get(..9).is_some_and(|p| p.eq_ignore_ascii_case("libsql://"));
                if !(url.starts_with("https://") || url.starts_with("http://") || libsql_scheme) {
                    return Err(field_error(
                        "source.url",
                        if kind == SourceType::Libsql { "must be a libsql://, https:// or http:// URL" } else { "must be an http:// or https:// URL" },
                    ));
                }
                if url.contains('@') {
                    return Err(field_error("source.url", "must not carry credentials; put the token in a secret and name it in `token_secret`"));
                }
                if kind == SourceType::Libsql {
                    // A token in the URL would be stored and shown by the API: it belongs in a secret.
                    if url.split_once('?').is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("authToken="))) {
                        return Err(field_error("source.url", "must not carry the token (authToken); put it in a secret and name it in `token_secret`"));
                    }
                    SourceSpec::Libsql { url, token_secret: f.token_secret }
                } else {
                    if url.contains('?') {
                        return Err(field_error("source.url", "must not carry a query string (a starbase URL is the instance's base URL)"));
                    }
                    let token_secret = f.token_secret.ok_or_else(|| field_error("source.token_secret", "is required for a starbase source"))?;
                    SourceSpec::Starbase { url, token_secret }
                }
            }
            SourceType::D1 => match (f.binding, f.account_id, f.database_id, f.token_secret) {
                (Some(b), None, None, None) => SourceSpec::D1(D1Access::Binding(b)),
                (None, Some(account_id), Some(database_id), Some(token_secret)) => {
                    SourceSpec::D1(D1Access::Rest { account_id, database_id, token_secret })
                }
                _ => return Err(Error::bad_request(
                    "a d1 source needs either `source.binding`, or all of `source.account_id`, `source.database_id` and `source.token_secret`",
                )),
            },
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub id: i64,
    pub source: Option<SourceSpec>,
    pub source_table: String,
    pub target_table: String,
    pub columns: Option<Vec<String>>,
    pub mode: Mode,
    pub cursor_column: Option<String>,
    pub primary_key: Option<Vec<String>>,
    pub interval_seconds: i64,
    pub enabled: bool,
    pub batch_size: Option<i64>,
    pub lookback_seconds: i64,
    /// cdc: the logical replication slot at the origin; chosen by the replica when not given.
    #[serde(default)]
    pub slot_name: Option<String>,
    /// cdc: the publication that holds the table; chosen by the replica when not given.
    #[serde(default)]
    pub publication: Option<String>,
    /// cdc of a mysql source: the server id the binlog reader registers with (as a replica
    /// would); chosen by the replica when not given.
    #[serde(default)]
    pub server_id: Option<i64>,
    /// Incremental configs: check at most this often, after a run that caught up, which replica
    /// rows are gone at the origin, and delete them (`crate::reconcile`). `None`: never on its own.
    #[serde(default)]
    pub reconcile_seconds: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

/// What validation needs to know about the Worker's environment.
pub trait Bindings {
    /// A secret or plain var of that name exists.
    fn has_secret(&self, name: &str) -> bool;
    fn has_hyperdrive(&self, name: &str) -> bool;
    fn has_d1(&self, name: &str) -> bool;
    /// The type of the instance's default external database, if one is configured.
    fn default_source_type(&self) -> Option<SourceType>;
    /// A plain Worker variable as text (`QUERY_MAX_ROWS = 1000` and `= "1000"` alike), if set.
    fn var(&self, _name: &str) -> Option<String> {
        None
    }
}

const FIELDS: [&str; 15] = [
    "source",
    "source_table",
    "target_table",
    "columns",
    "mode",
    "cursor_column",
    "primary_key",
    "interval_seconds",
    "enabled",
    "batch_size",
    "lookback_seconds",
    "slot_name",
    "publication",
    "server_id",
    "reconcile_seconds",
];
const READ_ONLY: [&str; 3] = ["id", "created_at", "updated_at"];

/// Fields whose change makes the replica's existing copy meaningless.
const RESETTING: [&str; 10] =
    ["source", "source_table", "target_table", "columns", "mode", "cursor_column", "primary_key", "slot_name", "publication", "server_id"];

fn field_error(field: &str, what: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("field `{field}` {what}"))
}

fn parse_body(body: &[u8]) -> Result<Map<String, Json>> {
    let v: Json = serde_json::from_slice(body).map_err(|e| Error::bad_request(format!("request body is not valid JSON: {e}")))?;
    match v {
        Json::Object(m) => Ok(m),
        _ => Err(Error::bad_request("request body must be a JSON object")),
    }
}

fn check_fields(m: &Map<String, Json>) -> Result<()> {
    let ro: Vec<&str> = m.keys().map(String::as_str).filter(|k| READ_ONLY.contains(k)).collect();
    if !ro.is_empty() {
        return Err(Error::bad_request(format!("field(s) {} are read-only", ro.join(", "))));
    }
    let unknown: Vec<&str> = m.keys().map(String::as_str).filter(|k| !FIELDS.contains(k)).collect();
    if !unknown.is_empty() {
        return Err(Error::bad_request(format!("unknown field(s): {}; allowed: {}", unknown.join(", "), FIELDS.join(", "))));
    }
    Ok(())
}

fn get_string(m: &Map<String, Json>, f: &str) -> Result<Option<String>> {
    match m.get(f) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(field_error(f, format!("must be a string, got {}", type_name(other)))),
    }
}

fn get_int(m: &Map<String, Json>, f: &str, min: i64, max: i64) -> Result<Option<i64>> {
    match m.get(f) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Number(n)) => match n.as_i64() {
            Some(i) if (min..=max).contains(&i) => Ok(Some(i)),
            _ => Err(field_error(f, format!("must be an integer from {min} to {max}, got {n}"))),
        },
        Some(other) => Err(field_error(f, format!("must be an integer, got {}", type_name(other)))),
    }
}

fn get_names(m: &Map<String, Json>, f: &str, q: Quoting) -> Result<Option<Vec<String>>> {
    match m.get(f) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Array(a)) => {
            if a.is_empty() {
                return Err(field_error(f, "must not be an empty array (use null for the default)"));
            }
            let mut out: Vec<String> = Vec::with_capacity(a.len());
            for (i, v) in a.iter().enumerate() {
                let Json::String(s) = v else {
                    return Err(field_error(&format!("{f}[{i}]"), format!("must be a string, got {}", type_name(v))));
                };
                ident::parse_ident(s, q).map_err(|e| field_error(&format!("{f}[{i}]"), format!("{s:?} {e}")))?;
                if out.contains(s) {
                    return Err(field_error(f, format!("names {s:?} twice")));
                }
                out.push(s.clone());
            }
            Ok(Some(out))
        }
        Some(other) => Err(field_error(f, format!("must be an array of strings, got {}", type_name(other)))),
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn parse_source(v: &Json, env: &dyn Bindings) -> Result<SourceSpec> {
    let Json::Object(m) = v else {
        return Err(field_error("source", format!("must be an object, got {}", type_name(v))));
    };
    let kind = match m.get("type") {
        Some(Json::String(t)) => SourceType::parse(t)
            .ok_or_else(|| field_error("source.type", format!("{t:?} is not one of postgres, mysql, libsql, d1, starbase")))?,
        Some(other) => return Err(field_error("source.type", format!("must be a string, got {}", type_name(other)))),
        None => return Err(field_error("source.type", "is required")),
    };
    let allowed: &[&str] = match kind {
        SourceType::Postgres | SourceType::Mysql => &["type", "hyperdrive", "url_secret"],
        SourceType::Libsql => &["type", "url", "token_secret"],
        SourceType::D1 => &["type", "binding", "account_id", "database_id", "token_secret"],
        SourceType::Starbase => &["type", "url", "token_secret"],
    };
    let unknown: Vec<String> = m.keys().filter(|k| !allowed.contains(&k.as_str())).map(|k| format!("source.{k}")).collect();
    if !unknown.is_empty() {
        return Err(Error::bad_request(format!(
            "unknown field(s) for a {} source: {}; allowed: {}",
            kind.name(),
            unknown.join(", "),
            allowed.join(", ")
        )));
    }
    let s = |f: &str| -> Result<Option<String>> {
        match m.get(f) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(v)) if !v.is_empty() => Ok(Some(v.clone())),
            Some(Json::String(_)) => Err(field_error(&format!("source.{f}"), "must not be empty")),
            Some(o) => Err(field_error(&format!("source.{f}"), format!("must be a string, got {}", type_name(o)))),
        }
    };
    let fields = SpecFields {
        kind: Some(kind),
        hyperdrive: s("hyperdrive")?,
        url_secret: s("url_secret")?,
        url: s("url")?,
        token_secret: s("token_secret")?,
        binding: s("binding")?,
        account_id: s("account_id")?,
        database_id: s("database_id")?,
    };
    for (f, name) in [("url_secret", &fields.url_secret), ("token_secret", &fields.token_secret)] {
        if let Some(n) = name {
            if AUTH_TOKENS.contains(&n.as_str()) {
                return Err(field_error(&format!("source.{f}"), format!("may not name the authorization token {n}")));
            }
            if !env.has_secret(n) {
                return Err(field_error(&format!("source.{f}"), format!("names {n:?}, which is not a secret or var of this Worker")));
            }
        }
    }
    let spec = SourceSpec::try_from(fields)?;
    match &spec {
        SourceSpec::Postgres(Connection::Hyperdrive(h)) | SourceSpec::Mysql(Connection::Hyperdrive(h)) if !env.has_hyperdrive(h) => {
            Err(field_error("source.hyperdrive", format!("names {h:?}, which is not a Hyperdrive binding of this Worker")))
        }
        SourceSpec::D1(D1Access::Binding(b)) if !env.has_d1(b) => {
            Err(field_error("source.binding", format!("names {b:?}, which is not a D1 binding of this Worker")))
        }
        _ => Ok(spec),
    }
}

/// Builds and checks a config from a create body (`existing` = None) or a partial update of
/// `existing`. Timestamps and id are the caller's.
pub fn validate(body: &[u8], existing: Option<&Config>, env: &dyn Bindings, now: &str, id: i64) -> Result<Config> {
    let patch = parse_body(body)?;
    check_fields(&patch)?;
    // A partial update is the stored config with the sent fields laid over it, then validated whole.
    let mut m = match existing {
        Some(c) => match serde_json::to_value(c).expect("config serializes") {
            Json::Object(mut m) => {
                for k in READ_ONLY {
                    m.remove(k);
                }
                m
            }
            _ => unreachable!("config is an object"),
        },
        None => Map::new(),
    };
    // The target table default follows the source table unless the user chose one.
    let derived_target = existing.is_some_and(|c| c.target_table == default_target(c).unwrap_or_default());
    if derived_target && !patch.contains_key("target_table") && patch.contains_key("source_table") {
        m.remove("target_table");
    }
    // Leaving cdc drops the slot and publication names it used, unless the update names them.
    if patch.get("mode").is_some_and(|v| v != "cdc") {
        for f in ["slot_name", "publication", "server_id"] {
            if !patch.contains_key(f) {
                m.remove(f);
            }
        }
    }
    let patched: Vec<String> = patch.keys().cloned().collect();
    for (k, v) in patch {
        m.insert(k, v);
    }

    let source = match m.get("source") {
        None | Some(Json::Null) => None,
        Some(v) => Some(parse_source(v, env)?),
    };
    let kind = source.as_ref().map(SourceSpec::kind).or_else(|| env.default_source_type());
    let q = kind.map_or(Quoting::Double, SourceType::quoting);
    // A cdc config moved to another kind of origin drops the change-feed names of the old one
    // (a postgres slot and publication, a mysql server id), unless the update names them.
    if let Some(old) = existing {
        let old_kind = old.source.as_ref().map(SourceSpec::kind).or_else(|| env.default_source_type());
        if old_kind != kind {
            for f in ["slot_name", "publication", "server_id"] {
                if !patched.iter().any(|p| p == f) {
                    m.remove(f);
                }
            }
        }
    }
    if source.is_none() && kind.is_none() {
        return Err(field_error("source", "is required: this instance has no default external database (HYPERDRIVE or EXTERNAL_DB_TYPE)"));
    }

    let source_table = get_string(&m, "source_table")?.ok_or_else(|| field_error("source_table", "is required"))?;
    let parsed = ident::parse_qualified(&source_table, q).map_err(|e| field_error("source_table", format!("{source_table:?} {e}")))?;

    let target_table = match get_string(&m, "target_table")? {
        // The stored target is the resolved name, without quotes ("Order Items"), so it need
        // not parse again: an update that keeps it (or sends back what GET showed) is fine.
        Some(t) if existing.is_some_and(|c| c.target_table == t) => t,
        Some(t) => {
            let id = ident::parse_ident(&t, Quoting::Double).map_err(|e| field_error("target_table", format!("{t:?} {e}")))?;
            check_target_name(&id.name)?;
            id.name
        }
        None => {
            let name = kind.map_or_else(|| parsed.name.name.clone(), |k| k.resolve(&parsed.name));
            check_target_name(&name)
                .map_err(|e| e.context("the default target_table (the source table's name) is not allowed; set target_table"))?;
            name
        }
    };

    let columns = get_names(&m, "columns", q)?;
    let primary_key = get_names(&m, "primary_key", q)?;
    let cursor_column = get_string(&m, "cursor_column")?;
    if let Some(c) = &cursor_column {
        ident::parse_ident(c, q).map_err(|e| field_error("cursor_column", format!("{c:?} {e}")))?;
    }
    let mode = match get_string(&m, "mode")?.as_deref() {
        None => {
            if cursor_column.is_some() {
                Mode::Incremental
            } else {
                Mode::Full
            }
        }
        Some("full") => Mode::Full,
        Some("incremental") => Mode::Incremental,
        Some("cdc") => {
            if !matches!(kind, Some(SourceType::Postgres | SourceType::Mysql)) {
                return Err(field_error(
                    "mode",
                    "\"cdc\" needs a postgres source (logical decoding) or a mysql source (the binlog); use \"full\" or \"incremental\"",
                ));
            }
            if cursor_column.is_some() {
                return Err(field_error("cursor_column", "is not used with mode \"cdc\" (every change arrives from the slot)"));
            }
            Mode::Cdc
        }
        Some(other) => return Err(field_error("mode", format!("{other:?} is not one of full, incremental, cdc"))),
    };
    if mode == Mode::Incremental && cursor_column.is_none() {
        return Err(field_error("cursor_column", "is required when mode is \"incremental\""));
    }
    if let (Some(cols), Some(c)) = (&columns, &cursor_column) {
        if !cols.contains(c) {
            return Err(field_error("columns", format!("must include the cursor_column {c:?}")));
        }
    }
    if let (Some(cols), Some(pk)) = (&columns, &primary_key) {
        if let Some(k) = pk.iter().find(|k| !cols.contains(k)) {
            return Err(field_error("columns", format!("must include the primary_key column {k:?}")));
        }
    }
    let interval_seconds =
        get_int(&m, "interval_seconds", 1, MAX_INTERVAL_SECONDS)?.ok_or_else(|| field_error("interval_seconds", "is required"))?;
    let enabled = match m.get("enabled") {
        None | Some(Json::Null) => true,
        Some(Json::Bool(b)) => *b,
        Some(o) => return Err(field_error("enabled", format!("must be a boolean, got {}", type_name(o)))),
    };
    let batch_size = get_int(&m, "batch_size", 1, MAX_BATCH_SIZE)?;
    let lookback_seconds = get_int(&m, "lookback_seconds", 0, MAX_LOOKBACK_SECONDS)?.unwrap_or(0);
    if mode == Mode::Cdc && lookback_seconds != 0 {
        return Err(field_error("lookback_seconds", "is not used with mode \"cdc\""));
    }
    let slot_name = get_string(&m, "slot_name")?;
    let publication = get_string(&m, "publication")?;
    for (f, v) in [("slot_name", &slot_name), ("publication", &publication)] {
        if v.is_some() && mode != Mode::Cdc {
            return Err(field_error(f, "is only used with mode \"cdc\""));
        }
    }
    let server_id = get_int(&m, "server_id", 1, u32::MAX.into())?;
    if server_id.is_some() && !(mode == Mode::Cdc && kind == Some(SourceType::Mysql)) {
        return Err(field_error("server_id", "is only used with mode \"cdc\" of a mysql source"));
    }
    if kind == Some(SourceType::Mysql) {
        for (f, v) in [("slot_name", &slot_name), ("publication", &publication)] {
            if v.is_some() {
                return Err(field_error(f, "is for postgres sources; a mysql source's cdc reads the binlog as `server_id`"));
            }
        }
    }
    if let Some(s) = &slot_name {
        // PostgreSQL's rule for slot names.
        if s.is_empty() || s.len() > 63 || !s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(field_error("slot_name", format!("{s:?} must be 1 to 63 lower-case letters, digits or underscores")));
        }
    }
    if let Some(p) = &publication {
        let id = ident::parse_ident(p, Quoting::Double).map_err(|e| field_error("publication", format!("{p:?} {e}")))?;
        if id.name.len() > 63 {
            return Err(field_error("publication", format!("{p:?} is longer than 63 bytes")));
        }
    }
    let reconcile_seconds = get_int(&m, "reconcile_seconds", MIN_RECONCILE_SECONDS, MAX_RECONCILE_SECONDS)?;
    if reconcile_seconds.is_some() && mode != Mode::Incremental {
        return Err(field_error(
            "reconcile_seconds",
            format!(
                "is only for mode \"incremental\" (this config's mode is {:?}); a full refresh already removes deleted rows",
                mode.as_str()
            ),
        ));
    }

    Ok(Config {
        id,
        source,
        source_table,
        target_table,
        columns,
        mode,
        cursor_column,
        primary_key,
        interval_seconds,
        enabled,
        batch_size,
        lookback_seconds,
        slot_name,
        publication,
        server_id,
        reconcile_seconds,
        created_at: existing.map_or_else(|| now.to_string(), |c| c.created_at.clone()),
        updated_at: now.to_string(),
    })
}

fn default_target(c: &Config) -> Option<String> {
    let kind = c.source.as_ref().map(SourceSpec::kind);
    let q = kind.map_or(Quoting::Double, SourceType::quoting);
    let parsed = ident::parse_qualified(&c.source_table, q).ok()?;
    Some(kind.map_or(parsed.name.name.clone(), |k| k.resolve(&parsed.name)))
}

fn check_target_name(name: &str) -> Result<()> {
    let lower = name.to_ascii_lowercase();
    if let Some(p) = RESERVED_PREFIXES.iter().find(|p| lower.starts_with(*p)) {
        return Err(field_error("target_table", format!("{name:?} may not start with {p:?} (reserved for internal tables)")));
    }
    Ok(())
}

/// Whether going from `old` to `new` invalidates the replica's copy.
pub fn needs_reset(old: &Config, new: &Config) -> bool {
    let a = serde_json::to_value(old).expect("config serializes");
    let b = serde_json::to_value(new).expect("config serializes");
    RESETTING.iter().any(|f| a.get(f) != b.get(f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    struct Env;
    impl Bindings for Env {
        fn has_secret(&self, n: &str) -> bool {
            ["PG_URL", "ADMIN_AUTHORIZATION_TOKEN", "TOKEN"].contains(&n)
        }
        fn has_hyperdrive(&self, n: &str) -> bool {
            n == "HYPERDRIVE"
        }
        fn has_d1(&self, n: &str) -> bool {
            n == "DB"
        }
        fn default_source_type(&self) -> Option<SourceType> {
            None
        }
    }

    fn create(body: &str) -> Result<Config> {
        validate(body.as_bytes(), None, &Env, "2026-01-01T00:00:00.000Z", 1)
    }
    const PG: &str = r#""source":{"type":"postgres","url_secret":"PG_URL"}"#;

    #[test]
    fn defaults_are_filled() {
        let c = create(&format!(r#"{{{PG},"source_table":"public.Users","interval_seconds":60}}"#)).unwrap();
        assert_eq!(c.target_table, "users");
        assert_eq!(c.mode, Mode::Full);
        assert!(c.enabled);
        assert_eq!(c.lookback_seconds, 0);
        let c = create(&format!(r#"{{{PG},"source_table":"\"My S\".\"Order Items\"","cursor_column":"updated_at","interval_seconds":5}}"#))
            .unwrap();
        assert_eq!(c.target_table, "Order Items");
        assert_eq!(c.mode, Mode::Incremental);
    }

    #[test]
    fn every_bad_input_names_its_field() {
        let cases: &[(&str, &str)] = &[
            ("{", "not valid JSON"),
            ("[]", "JSON object"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1,"bogus":1}}"#), "bogus"),
            (&format!(r#"{{{PG},"interval_seconds":1}}"#), "source_table"),
            (&format!(r#"{{{PG},"source_table":"t"}}"#), "interval_seconds"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":0}}"#), "interval_seconds"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1.5}}"#), "interval_seconds"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":"10"}}"#), "interval_seconds"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1,"batch_size":50001}}"#), "batch_size"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1,"lookback_seconds":-1}}"#), "lookback_seconds"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1,"mode":"cdc","cursor_column":"u"}}"#), "cdc"),
            (
                &format!(r#"{{{PG},"source_table":"t","cursor_column":"u","interval_seconds":1,"reconcile_seconds":59}}"#),
                "reconcile_seconds",
            ),
            (
                &format!(r#"{{{PG},"source_table":"t","cursor_column":"u","interval_seconds":1,"reconcile_seconds":"60"}}"#),
                "reconcile_seconds",
            ),
            (
                &format!(r#"{{{PG},"source_table":"t","cursor_column":"u","interval_seconds":1,"reconcile_seconds":60.5}}"#),
                "reconcile_seconds",
            ),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1,"reconcile_seconds":60}}"#), "reconcile_seconds"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1,"mode":"incremental"}}"#), "cursor_column"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1,"columns":[]}}"#), "columns"),
            (&format!(r#"{{{PG},"source_table":"t; drop table x","interval_seconds":1}}"#), "source_table"),
            (&format!(r#"{{{PG},"source_table":"t","target_table":"tmp_x","interval_seconds":1}}"#), "target_table"),
            (&format!(r#"{{{PG},"source_table":"sqlite_master","interval_seconds":1}}"#), "target_table"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1,"enabled":"yes"}}"#), "enabled"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1,"id":3}}"#), "read-only"),
            (
                r#"{"source":{"type":"postgres","url_secret":"ADMIN_AUTHORIZATION_TOKEN"},"source_table":"t","interval_seconds":1}"#,
                "url_secret",
            ),
            (r#"{"source":{"type":"postgres","url_secret":"NOPE"},"source_table":"t","interval_seconds":1}"#, "url_secret"),
            (r#"{"source":{"type":"postgres","hyperdrive":"NOPE"},"source_table":"t","interval_seconds":1}"#, "hyperdrive"),
            (r#"{"source":{"type":"oracle"},"source_table":"t","interval_seconds":1}"#, "source.type"),
            (
                r#"{"source":{"type":"postgres","url_secret":"PG_URL","password":"x"},"source_table":"t","interval_seconds":1}"#,
                "source.password",
            ),
            (r#"{"source_table":"t","interval_seconds":1}"#, "source"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1,"columns":["a","a"]}}"#), "columns"),
            (&format!(r#"{{{PG},"source_table":"t","interval_seconds":1,"cursor_column":"u","columns":["a"]}}"#), "cursor_column"),
        ];
        for (body, needle) in cases {
            let e = create(body).expect_err(body);
            assert_eq!(e.status(), 400, "{body}");
            assert!(e.message().contains(needle), "{body}: {} lacks {needle}", e.message());
        }
    }

    #[test]
    fn partial_update_merges_and_detects_reset() {
        let c = create(&format!(r#"{{{PG},"source_table":"a","interval_seconds":60}}"#)).unwrap();
        let u = validate(br#"{"interval_seconds":5}"#, Some(&c), &Env, "later", 1).unwrap();
        assert_eq!(u.interval_seconds, 5);
        assert_eq!(u.created_at, c.created_at);
        assert!(!needs_reset(&c, &u));
        let u2 = validate(br#"{"source_table":"b"}"#, Some(&c), &Env, "later", 1).unwrap();
        assert_eq!(u2.target_table, "b");
        assert!(needs_reset(&c, &u2));
        // The stored mode stays: a partial update never switches modes behind the user's back.
        let u3 = validate(br#"{"cursor_column":"ts"}"#, Some(&c), &Env, "later", 1).unwrap();
        assert_eq!(u3.mode, Mode::Full);
        let inc = validate(br#"{"cursor_column":"ts","mode":"incremental"}"#, Some(&c), &Env, "later", 1).unwrap();
        let e = validate(br#"{"cursor_column":null}"#, Some(&inc), &Env, "later", 1).unwrap_err();
        assert!(e.message().contains("cursor_column"));
        assert!(validate(br#"{"interval_seconds":0}"#, Some(&c), &Env, "later", 1).is_err());
    }

    #[test]
    fn server_id_only_for_mysql_cdc_and_feed_names_follow_the_origin_kind() {
        const MY: &str = r#""source":{"type":"mysql","url_secret":"PG_URL"}"#;
        let c = create(&format!(r#"{{{MY},"source_table":"t","interval_seconds":60,"mode":"cdc","server_id":4294967295}}"#)).unwrap();
        assert_eq!((c.mode, c.server_id, c.slot_name.as_deref()), (Mode::Cdc, Some(4_294_967_295), None));
        for (body, needle) in [
            (format!(r#"{{{MY},"source_table":"t","interval_seconds":60,"mode":"cdc","server_id":0}}"#), "server_id"),
            (format!(r#"{{{MY},"source_table":"t","interval_seconds":60,"mode":"cdc","server_id":4294967296}}"#), "server_id"),
            (format!(r#"{{{MY},"source_table":"t","interval_seconds":60,"server_id":5}}"#), "server_id"),
            (format!(r#"{{{PG},"source_table":"t","interval_seconds":60,"mode":"cdc","server_id":5}}"#), "server_id"),
            (format!(r#"{{{MY},"source_table":"t","interval_seconds":60,"mode":"cdc","slot_name":"s"}}"#), "slot_name"),
            (format!(r#"{{{MY},"source_table":"t","interval_seconds":60,"mode":"cdc","publication":"p"}}"#), "publication"),
        ] {
            let e = create(&body).expect_err(&body);
            assert!(e.message().contains(needle), "{body}: {}", e.message());
        }
        // Moving the config to a postgres origin drops its server id; and back, the slot names.
        let pg = validate(format!(r#"{{{PG}}}"#).as_bytes(), Some(&c), &Env, "later", 1).unwrap();
        assert_eq!(pg.server_id, None);
        assert!(needs_reset(&c, &pg));
        let mut named = pg.clone();
        named.slot_name = Some("s".into());
        named.publication = Some("s".into());
        let my = validate(format!(r#"{{{MY}}}"#).as_bytes(), Some(&named), &Env, "later", 1).unwrap();
        assert_eq!((my.slot_name, my.publication), (None, None));
        // Leaving cdc drops the server id too.
        let full = validate(br#"{"mode":"full"}"#, Some(&c), &Env, "later", 1).unwrap();
        assert_eq!(full.server_id, None);
    }

    #[test]
    fn reconcile_seconds_only_with_incremental_and_without_a_reset() {
        let c = create(&format!(r#"{{{PG},"source_table":"a","cursor_column":"ts","interval_seconds":60}}"#)).unwrap();
        assert_eq!(c.reconcile_seconds, None);
        let r = validate(br#"{"reconcile_seconds":3600}"#, Some(&c), &Env, "later", 1).unwrap();
        assert_eq!(r.reconcile_seconds, Some(3600));
        assert!(!needs_reset(&c, &r), "turning reconciliation on keeps the replica");
        // Switching such a config to full mode must clear it in the same request.
        let e = validate(br#"{"mode":"full"}"#, Some(&r), &Env, "later", 1).unwrap_err();
        assert!(e.message().contains("reconcile_seconds"), "{e}");
        let f = validate(br#"{"mode":"full","reconcile_seconds":null}"#, Some(&r), &Env, "later", 1).unwrap();
        assert_eq!((f.mode, f.reconcile_seconds), (Mode::Full, None));
        // A stored config from before the field existed reads as never reconciling.
        let mut old = serde_json::to_value(&c).unwrap();
        old.as_object_mut().unwrap().remove("reconcile_seconds");
        assert_eq!(serde_json::from_value::<Config>(old).unwrap().reconcile_seconds, None);
    }

    #[test]
    fn source_specs_are_typed_once_and_stored_in_the_flat_form() {
        let sources = [
            (r#"{"type":"postgres","url_secret":"PG_URL"}"#, SourceSpec::Postgres(Connection::UrlSecret("PG_URL".into()))),
            (r#"{"type":"mysql","hyperdrive":"HYPERDRIVE"}"#, SourceSpec::Mysql(Connection::Hyperdrive("HYPERDRIVE".into()))),
            (
                r#"{"type":"libsql","url":"https://db.example"}"#,
                SourceSpec::Libsql { url: "https://db.example".into(), token_secret: None },
            ),
            (r#"{"type":"d1","binding":"DB"}"#, SourceSpec::D1(D1Access::Binding("DB".into()))),
            (
                r#"{"type":"d1","account_id":"a","database_id":"d","token_secret":"TOKEN"}"#,
                SourceSpec::D1(D1Access::Rest { account_id: "a".into(), database_id: "d".into(), token_secret: "TOKEN".into() }),
            ),
            (
                r#"{"type":"starbase","url":"https://sb.example","token_secret":"TOKEN"}"#,
                SourceSpec::Starbase { url: "https://sb.example".into(), token_secret: "TOKEN".into() },
            ),
        ];
        for (json, want) in sources {
            let c = create(&format!(r#"{{"source":{json},"source_table":"t","interval_seconds":60}}"#)).unwrap();
            assert_eq!(c.source.as_ref(), Some(&want), "{json}");
            let stored = serde_json::to_string(&c.source).unwrap();
            assert_eq!(serde_json::from_str::<Json>(&stored).unwrap(), serde_json::from_str::<Json>(json).unwrap());
            assert_eq!(serde_json::from_str::<Option<SourceSpec>>(&stored).unwrap(), Some(want));
        }
        let libsql =
            create(r#"{"source":{"type":"libsql","url":"libsql://db-org.turso.io"},"source_table":"t","interval_seconds":60}"#).unwrap();
        assert_eq!(libsql.source, Some(SourceSpec::Libsql { url: "libsql://db-org.turso.io".into(), token_secret: None }));
        for bad in ["ftp://db", "libsql://db?authToken=s3cret", "libsql://u@db"] {
            let body = format!(r#"{{"source":{{"type":"libsql","url":"{bad}"}},"source_table":"t","interval_seconds":60}}"#);
            let e = create(&body).unwrap_err();
            assert!(e.message().contains("source.url") && !e.message().contains("s3cret"), "{bad}: {e}");
        }
        let e = create(r#"{"source":{"type":"starbase","url":"https://sb.example/?x=1","token_secret":"TOKEN"},"source_table":"t","interval_seconds":60}"#)
            .unwrap_err();
        assert!(e.message().contains("source.url"), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics(body in ".{0,200}") {
            let _ = create(&body);
        }

        #[test]
        fn accepted_configs_have_safe_names(t in ".{1,20}", c in ".{1,20}") {
            let body = serde_json::json!({
                "source": {"type":"postgres","url_secret":"PG_URL"},
                "source_table": t, "cursor_column": c, "interval_seconds": 1
            }).to_string();
            if let Ok(cfg) = create(&body) {
                prop_assert!(ident::parse_qualified(&cfg.source_table, Quoting::Double).is_ok());
                prop_assert!(!cfg.target_table.to_ascii_lowercase().starts_with("tmp_"));
            }
        }
    }
}
