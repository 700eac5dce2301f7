//! Property tests that try to break the input boundary: config validation, identifier
//! parsing, connection URLs and the read-only query guard. Each property is checked against
//! an oracle outside the code under test where one exists: SQLite itself decides whether an
//! accepted identifier is one name and whether an accepted query changed anything.
//!
//! Complements the properties next to each module (config, ident, query_guard), which cover
//! random text; these generate structured, hostile inputs.

use crate::config::{self, Bindings, Config, Mode, SourceType, MAX_BATCH_SIZE, MAX_INTERVAL_SECONDS, MAX_LOOKBACK_SECONDS};
use crate::ident::{self, quote_double, Quoting};
use crate::query_guard::{check_read_only, GuardError, Reader};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use rusqlite::Connection;
use serde_json::{json, Map, Value as Json};

const AUTH_TOKENS: [&str; 2] = ["ADMIN_AUTHORIZATION_TOKEN", "CLIENT_AUTHORIZATION_TOKEN"];
const RESERVED: [&str; 3] = ["tmp_", "_cf_", "sqlite_"];

fn cases(n: u32) -> ProptestConfig {
    ProptestConfig { cases: n, failure_persistence: None, ..ProptestConfig::default() }
}

/// The Worker's environment as validation sees it: the authorization tokens are secrets too,
/// which is exactly why a `*_secret` must not name them.
struct Env {
    default: Option<SourceType>,
}
impl Bindings for Env {
    fn has_secret(&self, n: &str) -> bool {
        ["PG_URL", "MY_URL", "TOKEN", AUTH_TOKENS[0], AUTH_TOKENS[1]].contains(&n)
    }
    fn has_hyperdrive(&self, n: &str) -> bool {
        n == "HYPERDRIVE"
    }
    fn has_d1(&self, n: &str) -> bool {
        n == "DB"
    }
    fn default_source_type(&self) -> Option<SourceType> {
        self.default
    }
}

const NOW: &str = "2026-01-01T00:00:00.000Z";

// ---------------------------------------------------------------- generators

/// Names as users (and attackers) write them: plain, quoted with doubled quotes, backquoted,
/// qualified, SQL fragments, reserved prefixes in any case, the tokens' names, odd Unicode.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[A-Za-z_][A-Za-z0-9_$]{0,12}",
        2 => "[a-z ;\"'`.()*/-]{1,12}".prop_map(|s| quote_double(&s)),
        1 => "[a-z`\" .]{1,10}".prop_map(|s| ident::quote_backtick(&s)),
        2 => ("[a-z_]{1,6}", "[a-z_]{1,6}").prop_map(|(a, b)| format!("{a}.{b}")),
        2 => proptest::sample::select(vec![
            "tmp_x", "TMP_x", "Tmp_replication_configs", "\"tmp_quoted\"", "_cf_KV", "_CF_x", "sqlite_master",
            "SQLITE_x", "\"sqlite_sequence\"", "pragma_table_info", "main.x", "temp.x", "x; DROP TABLE y",
            "x--", "x/*", "\"x\"\"y\"", "\"\"", "\"", "x\"", "a.b.c", "\"a\".\"b\"", "`a`.`b`", "é", "x\u{0}y",
            "\"x\u{0}\"", "\u{feff}x", "x\u{200b}", "ADMIN_AUTHORIZATION_TOKEN", "CLIENT_AUTHORIZATION_TOKEN",
            "x\ny", " x", "x ", "", "[x]", "$x", "1x", "_", "__", "\"a b\"", "\"Order Items\"",
        ])
        .prop_map(str::to_string),
        1 => "\\PC{1,8}",
    ]
}

fn number() -> impl Strategy<Value = Json> {
    prop_oneof![
        (-5i64..70_000).prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Json::from),
        // Numbers serde_json reads exactly (arbitrary_precision) but no i64 holds.
        proptest::sample::select(vec![
            "1e3",
            "1.0",
            "-0",
            "0.5",
            "99999999999999999999",
            "-99999999999999999999",
            "1e400",
            "31536001",
            "9223372036854775807",
            "9223372036854775808",
            "50000.0",
        ])
        .prop_map(|s| serde_json::from_str::<Json>(s).unwrap_or(Json::Null)),
    ]
}

fn scalar() -> impl Strategy<Value = Json> {
    prop_oneof![Just(Json::Null), any::<bool>().prop_map(Json::Bool), number(), name().prop_map(Json::String)]
}

/// Any JSON, a few levels deep.
fn any_json() -> impl Strategy<Value = Json> {
    scalar().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..4).prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

fn secret_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "PG_URL",
            "MY_URL",
            "TOKEN",
            "ADMIN_AUTHORIZATION_TOKEN",
            "CLIENT_AUTHORIZATION_TOKEN",
            "admin_authorization_token",
            "ADMIN_AUTHORIZATION_TOKEN ",
            "NOPE",
            "",
            "HYPERDRIVE",
            "DB",
        ])
        .prop_map(str::to_string),
        "[A-Z_]{1,10}",
    ]
}

fn source() -> impl Strategy<Value = Json> {
    let kind = proptest::sample::select(vec!["postgres", "mysql", "libsql", "d1", "starbase", "oracle", "POSTGRES", ""]);
    let field = proptest::sample::select(vec![
        "hyperdrive",
        "url_secret",
        "url",
        "token_secret",
        "binding",
        "account_id",
        "database_id",
        "password",
    ]);
    let value = prop_oneof![
        3 => secret_name().prop_map(Json::String),
        1 => proptest::sample::select(vec![
            "https://db.example.com", "http://x", "https://user:pw@x.example", "ftp://x", "postgres://u:p@h/db",
        ])
        .prop_map(|s| Json::String(s.to_string())),
        1 => any_json(),
    ];
    prop_oneof![
        6 => (kind, proptest::collection::btree_map(field, value, 0..4)).prop_map(|(k, m)| {
            let mut o: Map<String, Json> = m.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            o.insert("type".into(), Json::String(k.to_string()));
            Json::Object(o)
        }),
        1 => any_json(),
    ]
}

fn names_array() -> impl Strategy<Value = Json> {
    prop_oneof![
        4 => proptest::collection::vec(name().prop_map(Json::String), 0..4).prop_map(Json::Array),
        1 => any_json(),
    ]
}

/// A plausible value most of the time (so that many bodies pass and the properties about
/// accepted configs get exercised), junk some of the time.
fn mostly<T: std::fmt::Debug + Clone + 'static>(
    good: impl Strategy<Value = T> + 'static,
    junk: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![6 => good.prop_map(Some), 2 => junk.prop_map(Some), 1 => Just(None)]
}

fn valid_source() -> impl Strategy<Value = Json> {
    proptest::sample::select(vec![
        json!({"type": "postgres", "url_secret": "PG_URL"}),
        json!({"type": "postgres", "hyperdrive": "HYPERDRIVE"}),
        json!({"type": "mysql", "url_secret": "MY_URL"}),
        json!({"type": "libsql", "url": "https://db.example.com", "token_secret": "TOKEN"}),
        json!({"type": "d1", "binding": "DB"}),
        json!({"type": "starbase", "url": "https://sb.example.com", "token_secret": "TOKEN"}),
    ])
}

fn valid_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_][a-z0-9_]{0,10}",
        "[A-Za-z][A-Za-z0-9 ]{0,10}".prop_map(|s| quote_double(&s)),
        "[a-z][a-z0-9 \"]{0,8}".prop_map(|s| quote_double(&s)),
    ]
}

/// A config body: each field present or not, mostly plausible values, sometimes anything.
fn config_body() -> impl Strategy<Value = Map<String, Json>> {
    let mode = proptest::sample::select(vec!["full", "incremental", "cdc", "FULL", ""]).prop_map(|s| Json::String(s.to_string()));
    let names = |n| proptest::collection::vec(valid_name().prop_map(Json::String), 1..n).prop_map(Json::Array);
    (
        mostly(valid_source(), source()),
        prop_oneof![6 => valid_name().prop_map(|n| Some(Json::String(n))), 1 => any_json().prop_map(Some), 1 => Just(None)],
        prop_oneof![2 => valid_name().prop_map(|n| Some(Json::String(n))), 2 => name().prop_map(|n| Some(Json::String(n))), 1 => any_json().prop_map(Some), 4 => Just(None)],
        prop_oneof![1 => names(4).prop_map(Some), 1 => names_array().prop_map(Some), 4 => Just(None)],
        prop_oneof![2 => mode.prop_map(Some), 1 => any_json().prop_map(Some), 5 => Just(None)],
        prop_oneof![2 => valid_name().prop_map(|n| Some(Json::String(n))), 1 => name().prop_map(|n| Some(Json::String(n))), 2 => Just(None)],
        prop_oneof![1 => names(3).prop_map(Some), 1 => names_array().prop_map(Some), 3 => Just(None)],
        (
            mostly((1i64..100_000).prop_map(Json::from), number()),
            prop_oneof![3 => any::<bool>().prop_map(|b| Some(Json::Bool(b))), 1 => any_json().prop_map(Some), 2 => Just(None)],
            prop_oneof![3 => (1i64..=50_000).prop_map(|n| Some(Json::from(n))), 1 => number().prop_map(Some), 3 => Just(None)],
            prop_oneof![3 => (0i64..100_000).prop_map(|n| Some(Json::from(n))), 1 => number().prop_map(Some), 3 => Just(None)],
            prop_oneof![1 => ("[a-z_]{1,10}", any_json()).prop_map(Some), 9 => Just(None)],
        ),
    )
        .prop_map(|(source, st, tt, cols, mode, cursor, pk, (interval, enabled, batch, lookback, extra))| {
            let mut m = Map::new();
            let mut put = |k: &str, v: Option<Json>| {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            };
            put("source", source);
            put("source_table", st);
            put("target_table", tt);
            put("columns", cols);
            put("mode", mode);
            put("cursor_column", cursor);
            put("primary_key", pk);
            put("interval_seconds", interval);
            put("enabled", enabled);
            put("batch_size", batch);
            put("lookback_seconds", lookback);
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            m
        })
}

// ---------------------------------------------------------------- config validation

/// What every accepted config must satisfy, whatever the body was.
fn check_accepted(cfg: &Config, env: &Env) -> Result<(), TestCaseError> {
    let kind = cfg.source.as_ref().map(config::SourceSpec::kind).or(env.default);
    prop_assert!(kind.is_some(), "a config without a source type: {cfg:?}");
    let q = kind.unwrap().quoting();
    prop_assert!(ident::parse_qualified(&cfg.source_table, q).is_ok(), "source_table {:?}", cfg.source_table);
    let lower = cfg.target_table.to_ascii_lowercase();
    prop_assert!(!RESERVED.iter().any(|p| lower.starts_with(p)), "reserved target_table {:?}", cfg.target_table);
    prop_assert!(!cfg.target_table.is_empty() && !cfg.target_table.contains('\0'), "target_table {:?}", cfg.target_table);
    // The stored target is a raw name that SQL always quotes: quoting must round-trip.
    prop_assert_eq!(&ident::parse_ident(&quote_double(&cfg.target_table), Quoting::Double).unwrap().name, &cfg.target_table);
    if let Some(spec) = &cfg.source {
        // Checked in the form the API stores and shows.
        let s = serde_json::to_value(spec).unwrap();
        let field = |f: &str| s.get(f).and_then(Json::as_str).map(str::to_string);
        for n in [field("url_secret"), field("token_secret")].into_iter().flatten() {
            prop_assert!(!AUTH_TOKENS.contains(&n.as_str()), "a secret names an authorization token: {s:?}");
            prop_assert!(env.has_secret(&n), "a secret that does not exist: {n:?}");
        }
        if let Some(h) = field("hyperdrive") {
            prop_assert!(env.has_hyperdrive(&h));
        }
        for u in field("url").iter() {
            prop_assert!(!u.contains('@'), "credentials in a URL: {u:?}");
        }
    }
    prop_assert!((1..=MAX_INTERVAL_SECONDS).contains(&cfg.interval_seconds));
    prop_assert!(cfg.batch_size.is_none_or(|b| (1..=MAX_BATCH_SIZE).contains(&b)));
    prop_assert!((0..=MAX_LOOKBACK_SECONDS).contains(&cfg.lookback_seconds));
    if cfg.mode == Mode::Incremental {
        prop_assert!(cfg.cursor_column.is_some());
    }
    for c in cfg.cursor_column.iter() {
        prop_assert!(ident::parse_ident(c, q).is_ok());
    }
    for list in [&cfg.columns, &cfg.primary_key].into_iter().flatten() {
        prop_assert!(!list.is_empty());
        for c in list {
            prop_assert!(ident::parse_ident(c, q).is_ok(), "{c:?}");
        }
        let mut sorted = list.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(sorted.len(), list.len(), "duplicate names in {:?}", list);
    }
    if let Some(cols) = &cfg.columns {
        for c in cfg.cursor_column.iter().chain(cfg.primary_key.iter().flatten()) {
            prop_assert!(cols.contains(c), "columns {cols:?} lack {c:?}");
        }
    }
    Ok(())
}

/// The stored form of a config, as GET returns it, minus what a body may not carry.
fn as_body(cfg: &Config) -> Map<String, Json> {
    let Json::Object(mut m) = serde_json::to_value(cfg).unwrap() else { unreachable!() };
    for k in ["id", "created_at", "updated_at"] {
        m.remove(k);
    }
    m
}

fn validate(body: &[u8], existing: Option<&Config>, env: &Env) -> crate::error::Result<Config> {
    config::validate(body, existing, env, NOW, 7)
}

#[test]
fn prop_config_validation_never_panics_and_accepts_only_safe_configs() {
    let envs = [Env { default: None }, Env { default: Some(SourceType::Postgres) }, Env { default: Some(SourceType::Mysql) }];
    let accepted = std::cell::Cell::new(0u32);
    proptest!(cases(4000), |(body in config_body(), e in 0usize..3)| {
        let env = &envs[e];
        let bytes = serde_json::to_vec(&Json::Object(body)).unwrap();
        match validate(&bytes, None, env) {
            Err(err) => prop_assert!(matches!(err.status(), 400), "{} for {}", err.status(), String::from_utf8_lossy(&bytes)),
            Ok(cfg) => {
                accepted.set(accepted.get() + 1);
                check_accepted(&cfg, env)?;
                // An empty update, and a PUT of exactly what GET shows, change nothing.
                let noop = validate(b"{}", Some(&cfg), env);
                prop_assert!(noop.as_ref().is_ok_and(|n| n == &cfg && !config::needs_reset(&cfg, n)), "an empty update: {:?}", noop);
                let same = validate(&serde_json::to_vec(&Json::Object(as_body(&cfg))).unwrap(), Some(&cfg), env);
                prop_assert!(same.as_ref().is_ok_and(|n| n == &cfg), "PUT of the stored form: {:?}", same);
            }
        }
    });
    assert!(accepted.get() >= 200, "only {} of 4000 bodies were valid: the properties barely ran", accepted.get());
}

#[test]
fn prop_partial_updates_keep_configs_safe() {
    let env = Env { default: None };
    let base = json!({"source": {"type": "postgres", "url_secret": "PG_URL"}, "source_table": "\"My Schema\".\"Order Items\"",
        "cursor_column": "updated_at", "interval_seconds": 60});
    let stored = validate(base.to_string().as_bytes(), None, &env).unwrap();
    proptest!(cases(3000), |(patch in config_body())| {
        let bytes = serde_json::to_vec(&Json::Object(patch)).unwrap();
        match validate(&bytes, Some(&stored), &env) {
            Err(err) => prop_assert_eq!(err.status(), 400),
            Ok(cfg) => {
                check_accepted(&cfg, &env)?;
                prop_assert_eq!(cfg.id, stored.id);
                prop_assert_eq!(&cfg.created_at, &stored.created_at);
            }
        }
    });
}

#[test]
fn prop_raw_bodies_never_panic() {
    let env = Env { default: Some(SourceType::Postgres) };
    let stored = validate(br#"{"source_table":"t","interval_seconds":5}"#, None, &env).unwrap();
    proptest!(cases(3000), |(bytes in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        // Deep nesting, invalid UTF-8 inside strings, BOMs, NULs, huge numbers.
        (1usize..3000).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        (1usize..3000).prop_map(|n| format!("{{\"source\":{}1{}}}", "{\"a\":".repeat(n), "}".repeat(n)).into_bytes()),
        Just(b"{\"source_table\":\"\xff\xfe\",\"interval_seconds\":1}".to_vec()),
        Just(b"\xef\xbb\xbf{\"source_table\":\"t\",\"interval_seconds\":1}".to_vec()),
        Just(b"{\"source_table\":\"t\",\"interval_seconds\":1e999999}".to_vec()),
        Just(b"{\"source_table\":\"t\\u0000\",\"interval_seconds\":1}".to_vec()),
    ])| {
        for existing in [None, Some(&stored)] {
            if let Err(e) = validate(&bytes, existing, &env) {
                prop_assert_eq!(e.status(), 400);
            }
        }
    });
}

/// A target table name that needs quotes ("Order Items", or one derived from a quoted source
/// table) is stored as the raw name; later updates must still accept the stored config.
#[test]
fn configs_with_quoted_names_stay_updatable() {
    let env = Env { default: None };
    for body in [
        json!({"source": {"type": "postgres", "url_secret": "PG_URL"}, "source_table": "\"Order Items\"", "interval_seconds": 60}),
        json!({"source": {"type": "postgres", "url_secret": "PG_URL"}, "source_table": "t", "target_table": "\"My \"\"T\"\"\"", "interval_seconds": 60}),
        json!({"source": {"type": "mysql", "url_secret": "MY_URL"}, "source_table": "`db`.`x y`", "interval_seconds": 60}),
    ] {
        let cfg = validate(body.to_string().as_bytes(), None, &env).unwrap();
        let u = validate(br#"{"interval_seconds": 5}"#, Some(&cfg), &env).expect("a PUT that changes only the interval");
        assert_eq!(u.interval_seconds, 5);
        assert_eq!(u.target_table, cfg.target_table);
        assert!(!config::needs_reset(&cfg, &u));
        // PUT back exactly what GET returned.
        let same = validate(&serde_json::to_vec(&Json::Object(as_body(&cfg))).unwrap(), Some(&cfg), &env).expect("GET then PUT");
        assert_eq!(same.target_table, cfg.target_table);
    }
}

// ---------------------------------------------------------------- identifiers

/// SQLite's view of a quoted name: creating a table under it makes exactly one table, and it
/// has exactly that name. Anything else (a second statement, a different name) fails.
fn sqlite_names_one_table(conn: &Connection, name: &str) -> Result<(), TestCaseError> {
    let before: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).unwrap();
    // `execute` refuses SQL with a second statement after the first.
    let created = conn.execute(&format!("CREATE TABLE {} (x)", quote_double(name)), []);
    prop_assert!(created.is_ok(), "{name:?}: {created:?}");
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let after: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).unwrap();
    prop_assert_eq!(after, before + 1);
    prop_assert!(names.iter().any(|n| n == name), "{name:?} not among {names:?}");
    conn.execute(&format!("DROP TABLE {}", quote_double(name)), []).unwrap();
    Ok(())
}

#[test]
fn prop_accepted_identifiers_are_one_name_for_sqlite() {
    let conn = Connection::open_in_memory().unwrap();
    proptest!(cases(3000), |(s in prop_oneof![name(), any::<String>(), "[\"`.a-z ;]{0,12}"])| {
        for q in [Quoting::Double, Quoting::Backtick] {
            let one = ident::parse_ident(&s, q);
            let two = ident::parse_qualified(&s, q);
            if let Ok(id) = &one {
                prop_assert!(!id.name.is_empty() && !id.name.contains('\0'));
                if !id.quoted {
                    prop_assert!(id.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$'));
                    prop_assert_eq!(&id.name, &s);
                }
                // SQLite is case-insensitive for names: only check ones not yet present.
                if !id.name.to_ascii_lowercase().starts_with("sqlite_") {
                    sqlite_names_one_table(&conn, &id.name)?;
                }
            }
            if let Ok(qn) = &two {
                // Re-quoting the parts gives back the same parts.
                let text = match &qn.schema {
                    Some(sc) => format!("{}.{}", quote_double(&sc.name), quote_double(&qn.name.name)),
                    None => quote_double(&qn.name.name),
                };
                let back = ident::parse_qualified(&text, Quoting::Double).unwrap();
                prop_assert_eq!(back.schema.map(|x| x.name), qn.schema.as_ref().map(|x| x.name.clone()));
                prop_assert_eq!(back.name.name, qn.name.name.clone());
            }
        }
    });
}

// ---------------------------------------------------------------- connection URLs

/// Errors name the origin by host, port and database; whatever a URL's password holds, none
/// of it may land in those fields, and a malformed URL's error never quotes it. Both URL
/// parsers: PostgreSQL's and MySQL's.
#[test]
fn prop_no_password_reaches_the_origin_description() {
    use crate::source::{mysql, postgres};
    // Every password has a run of at least four letters or digits to search for.
    let password = ("[/@:?#%&=. ]{0,4}", "[a-zA-Z0-9]{4,8}", "[a-zA-Z0-9/@:?#%&=. ]{0,8}").prop_map(|(a, b, c)| format!("{a}{b}{c}"));
    proptest!(cases(4000), |(pw in password, encode in any::<bool>(), my in any::<bool>())| {
        let written = if encode {
            pw.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect::<String>()
        } else {
            pw.clone()
        };
        let parsed = if my {
            let url = format!("mysql://app:{written}@db.example.com:3307/prod?ssl-mode=require");
            mysql::parse_url(&url).map(|o| (url, o.host, o.port, o.credentials.database, o.credentials.password))
        } else {
            let url = format!("postgres://app:{written}@db.example.com:3307/prod?sslmode=require");
            postgres::parse_url(&url).map(|(c, host, port)| {
                (url, host, port, c.get_dbname().map(str::to_string), c.get_password().unwrap_or_default().to_vec())
            })
        };
        match parsed {
            Err(e) => {
                prop_assert!(!e.message().contains(&pw) && !e.message().contains(&written), "error quotes the password: {}", e.message());
                for part in pw.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| p.len() >= 4) {
                    prop_assert!(!e.message().contains(part), "error quotes part of the password: {}", e.message());
                }
            }
            Ok((url, host, port, db, password)) => {
                let origin = format!("{host}:{port}/{}", db.as_deref().unwrap_or(""));
                for part in pw.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| p.len() >= 4) {
                    prop_assert!(!origin.contains(part), "{url:?} puts part of its password in the origin {origin:?}");
                }
                if encode {
                    prop_assert_eq!(password, pw.as_bytes().to_vec());
                    prop_assert_eq!((host.as_str(), port, db.as_deref()), ("db.example.com", 3307, Some("prod")));
                }
            }
        }
    });
}

// ---------------------------------------------------------------- the read-only guard

/// Statements that change something, in their plainest form; the disguises come on top.
const WRITES: &[&str] = &[
    "INSERT INTO users (id) VALUES (1)",
    "INSERT INTO users DEFAULT VALUES",
    "INSERT OR REPLACE INTO users (id, name) VALUES (1, 'x')",
    "INSERT INTO users SELECT * FROM users RETURNING id",
    "INSERT INTO users (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET name = 'x'",
    "REPLACE INTO users (id) VALUES (1)",
    "UPDATE users SET name = 'x'",
    "UPDATE OR IGNORE users SET name = 'x' WHERE id = 1",
    "UPDATE users SET name = o.name FROM users AS o WHERE o.id = users.id",
    "DELETE FROM users",
    "DELETE FROM users WHERE id IN (SELECT id FROM users) RETURNING *",
    "DROP TABLE users",
    "DROP TABLE IF EXISTS tmp_replication_configs",
    "DROP INDEX users_name",
    "DROP VIEW v",
    "DROP TRIGGER t",
    "CREATE TABLE x (a)",
    "CREATE TEMP TABLE x (a)",
    "CREATE TABLE x AS SELECT * FROM users",
    "CREATE INDEX i ON users (name)",
    "CREATE UNIQUE INDEX IF NOT EXISTS i ON users (email)",
    "CREATE VIEW v AS SELECT 1",
    "CREATE TRIGGER t AFTER INSERT ON users BEGIN DELETE FROM users; END",
    "CREATE VIRTUAL TABLE f USING fts5(a)",
    "ALTER TABLE users ADD COLUMN z",
    "ALTER TABLE users RENAME TO people",
    "ALTER TABLE users RENAME COLUMN name TO n",
    "ALTER TABLE users DROP COLUMN email",
    "ATTACH DATABASE ':memory:' AS m",
    "ATTACH 'file:x?mode=memory' AS m",
    "DETACH DATABASE m",
    "PRAGMA user_version = 7",
    "PRAGMA main.user_version = 7",
    "PRAGMA writable_schema = ON",
    "PRAGMA journal_mode = OFF",
    "PRAGMA foreign_keys = OFF",
    "PRAGMA table_info(users)",
    "VACUUM",
    "VACUUM INTO 'x.db'",
    "REINDEX",
    "ANALYZE",
    "BEGIN",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT s",
    "RELEASE s",
    "SELECT load_extension('x')",
    "SELECT writefile('x', 'y')",
    "SELECT * FROM fsdir('.')",
    "WITH d AS (DELETE FROM users RETURNING *) SELECT * FROM d",
    "WITH d AS (SELECT 1) DELETE FROM users",
    "WITH d AS (SELECT 1) INSERT INTO users (id) SELECT 1 FROM d",
    "WITH RECURSIVE d(n) AS (SELECT 1) UPDATE users SET id = id",
    "SELECT * FROM (DELETE FROM users RETURNING id)",
    "EXPLAIN DELETE FROM users",
    "EXPLAIN QUERY PLAN DELETE FROM users",
    "EXPLAIN ANALYZE SELECT 1",
    "SELECT 1; DELETE FROM users",
    "SELECT 1 END; DELETE FROM users",
    "VALUES (1); DROP TABLE users",
];

/// Separators SQLite treats as whitespace between tokens, and comments that end.
const GAPS: &[&str] = &[" ", "  ", "\t", "\n", "\r\n", "\u{c}", "/**/", "/* ; */", "/* DELETE */", "--x\n", "-- ;\n", " /*\n*/ "];

/// Rewrites a statement without changing what it does: random keyword case, and every space
/// replaced by another separator or a closed comment. Leading and trailing decoration too.
fn disguise(sql: &str, case_bits: &[bool], gaps: &[usize], lead: usize, trail: usize) -> String {
    let mut out = String::from([" ", "", "\n", "/* x */", "-- lead\n", ";", "; ;"][lead % 7]);
    let mut in_string = false;
    let mut gap = 0;
    for (i, c) in sql.chars().enumerate() {
        if c == '\'' {
            in_string = !in_string;
        }
        if !in_string && c == ' ' {
            out.push_str(GAPS[gaps[gap % gaps.len()] % GAPS.len()]);
            gap += 1;
        } else if !in_string && case_bits[i % case_bits.len()] {
            out.extend(c.to_uppercase());
        } else if !in_string {
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out.push_str(["", ";", " ;", "; -- done", "/* end */", ";;", "\n"][trail % 7]);
    out
}

fn fixture() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT);
         CREATE INDEX users_name ON users (name);
         CREATE TABLE tmp_replication_configs (id INTEGER PRIMARY KEY, config TEXT);
         CREATE VIEW v AS SELECT id FROM users;
         CREATE TRIGGER t AFTER UPDATE ON users BEGIN SELECT 1; END;
         INSERT INTO users (name, email) VALUES ('a', 'a@x'), ('b', 'b@x');",
    )
    .unwrap();
    // No generated query may run long: SQLite stops any statement after ~10M VM steps.
    unsafe extern "C" fn stop(_: *mut std::ffi::c_void) -> std::ffi::c_int {
        1
    }
    unsafe { rusqlite::ffi::sqlite3_progress_handler(conn.handle(), 10_000_000, Some(stop), std::ptr::null_mut()) };
    conn
}

/// Everything a write could change: row changes, schema, pragmas, attached databases, an
/// open transaction.
fn db_state(conn: &Connection) -> (u64, String, i64, i64, bool) {
    let schema: String = conn
        .query_row("SELECT coalesce(group_concat(type || name || coalesce(sql, ''), '|'), '') FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    let temp: String = conn.query_row("SELECT coalesce(group_concat(name, '|'), '') FROM sqlite_temp_schema", [], |r| r.get(0)).unwrap();
    let user_version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    let dbs: i64 = conn.query_row("SELECT count(*) FROM pragma_database_list", [], |r| r.get(0)).unwrap();
    (conn.total_changes(), format!("{schema}#{temp}"), user_version, dbs, conn.is_autocommit())
}

/// Runs what the guard accepted as the Durable Object would (`sql.exec` runs every statement
/// of a string), binding NULL to any parameter; the database must be exactly as before.
fn run_accepted(conn: &Connection, sql: &str) -> Result<(), TestCaseError> {
    use rusqlite::fallible_iterator::FallibleIterator;
    let before = db_state(conn);
    let mut batch = rusqlite::Batch::new(conn, sql);
    while let Ok(Some(mut stmt)) = batch.next() {
        let params = vec![rusqlite::types::Null; stmt.parameter_count()];
        if let Ok(mut rows) = stmt.query(rusqlite::params_from_iter(params.iter())) {
            while let Ok(Some(_)) = rows.next() {}
        }
    }
    prop_assert_eq!(db_state(conn), before, "the guard accepted {:?}, which changed the database", sql);
    Ok(())
}

#[test]
fn prop_writes_in_disguise_are_never_accepted() {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let strategy = (
                proptest::sample::select(WRITES),
                proptest::collection::vec(any::<bool>(), 1..16),
                proptest::collection::vec(0usize..GAPS.len(), 1..8),
                0usize..7,
                0usize..7,
            );
            proptest!(cases(4000), |((write, case_bits, gaps, lead, trail) in strategy)| {
                let sql = disguise(write, &case_bits, &gaps, lead, trail);
                for reader in [Reader::Client, Reader::Admin] {
                    let r = check_read_only(&sql, reader);
                    prop_assert!(r.is_err(), "{reader:?}: the guard accepted {sql:?}");
                    if reader == Reader::Admin {
                        prop_assert!(matches!(r, Err(GuardError::Invalid(_))), "{sql:?}: {r:?}");
                    }
                }
            });
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Pieces to build hostile text from: every read and write keyword above, split up, plus
/// quoting and comment characters.
fn soup() -> impl Strategy<Value = String> {
    let pieces: Vec<String> = WRITES
        .iter()
        .flat_map(|w| w.split(' ').map(str::to_string).collect::<Vec<_>>())
        .chain(
            [
                "SELECT",
                "*",
                "FROM",
                "users",
                "WITH",
                "AS",
                "(",
                ")",
                ";",
                "'",
                "\"",
                "`",
                "[",
                "]",
                "--",
                "/*",
                "*/",
                "\n",
                " ",
                "?",
                ":a",
                "$a",
                "@a",
                "x'00'",
                "RETURNING",
                "VALUES",
                "UNION",
                "EXPLAIN",
                "QUERY",
                "PLAN",
                "CASE",
                "END",
                "\\",
                "\u{0}",
            ]
            .iter()
            .map(|s| s.to_string()),
        )
        .collect();
    proptest::collection::vec(proptest::sample::select(pieces), 1..14).prop_map(|v| v.join(" "))
}

#[test]
fn prop_whatever_the_guard_accepts_changes_nothing() {
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(|| {
            let conn = fixture();
            let inputs = prop_oneof![
                4 => soup(),
                1 => (proptest::sample::select(WRITES), proptest::sample::select(WRITES)).prop_map(|(a, b)| format!("{a} {b}")),
                1 => ("SELECT [a-z ;'\"*/-]{0,20}", proptest::sample::select(WRITES)).prop_map(|(a, b)| format!("{a}{b}")),
            ];
            let accepted = std::cell::Cell::new(0u32);
            proptest!(cases(6000), |(sql in inputs)| {
                let admin = check_read_only(&sql, Reader::Admin);
                let client = check_read_only(&sql, Reader::Client);
                prop_assert!(!(client.is_ok() && admin.is_err()), "a client may run what the admin may not: {sql:?}");
                if admin.is_ok() {
                    accepted.set(accepted.get() + 1);
                    run_accepted(&conn, &sql)?;
                }
            });
            // The oracle ran on something: some of the generated text is a plain read.
            assert!(accepted.get() > 0, "no generated query was accepted; the test checked nothing");
        })
        .unwrap()
        .join()
        .unwrap();
}
