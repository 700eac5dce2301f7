//! Read-only gate for `POST /query` and `POST /query/raw`.
//!
//! The decision is made on sqlparser's AST (SQLite dialect), never on the
//! text: keyword matching is defeated by comments, quoting and CTEs, while
//! the AST shows what the statement actually does. Anything the parser
//! cannot read is refused, so an SQLite feature sqlparser lacks costs a
//! user a 400, never a write.

use std::ops::ControlFlow;

use sqlparser::ast::{
    DescribeAlias, Expr, ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableFactor,
    Visit, Visitor,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::{Parser, ParserError};

/// Who is asking: the admin token may read internal tables; a client token may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    Admin,
    Client,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// 400: not parseable, more than one statement, empty, or not a read. Message names the problem in plain English, e.g. "only read statements are allowed on /query (got INSERT)".
    Invalid(String),
    /// 403: a client token tried to read an internal table/function. Message names the table.
    Forbidden(String),
}

/// Bounds the parser's own recursion (nested parentheses, subqueries, CASE,
/// ...). The Worker's wasm stack is small, and sqlparser's frames are large.
const PARSER_RECURSION_LIMIT: usize = 50;

/// Bounds how deep the guard walks the AST. The parser's limit does not cover
/// left-deep chains it builds in a loop (`a OR b OR c ...`, `x UNION y UNION
/// z ...`), which the derived visitor would otherwise recurse through one
/// frame per link. Generous enough for generated `OR` chains of a few hundred
/// terms.
const MAX_AST_DEPTH: usize = 500;

/// Functions refused for every reader, because they act outside the query:
/// - `load_extension` loads native code into the database process;
/// - `readfile`, `writefile`, `edit`, `fsdir`, `lsdir`, `zipfile` read or write
///   the host file system (shell/fileio/zipfile extensions);
/// - `fts3_tokenizer` with two arguments registers a tokenizer from a raw
///   pointer, a known memory-corruption vector.
///
/// Checked both as scalar calls and as table-valued functions in `FROM`.
/// `sqlite_compileoption_*`, `sqlite_version` and friends only report, so they
/// stay allowed.
const BLOCKED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
    "fsdir",
    "lsdir",
    "zipfile",
];

/// Name prefixes of relations that hold replication state, SQLite's catalog,
/// or the Workers runtime's own bookkeeping; clients must not see them.
/// `pragma_` covers the table-valued PRAGMA functions, which would otherwise
/// list those same internal tables.
const INTERNAL_PREFIXES: &[&str] = &["tmp_", "_cf_", "sqlite_", "pragma_"];

/// Eponymous virtual tables without one of the prefixes above that still
/// expose the catalog: `dbstat` lists every table, internal ones included.
const INTERNAL_NAMES: &[&str] = &["dbstat"];

/// Ok(()) when `sql` is exactly one read-only statement that `reader` may run.
pub fn check_read_only(sql: &str, reader: Reader) -> Result<(), GuardError> {
    let statements = parse(sql)?;
    let statement = match statements.as_slice() {
        [] => return Err(invalid("the query is empty: send one SELECT statement")),
        [one] => one,
        many => {
            return Err(invalid(format!(
                "exactly one statement is allowed on /query (got {})",
                many.len()
            )))
        }
    };
    let query = top_level_query(statement)?;
    let mut guard = Guard { reader, depth: 0 };
    match query.visit(&mut guard) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(err) => Err(err),
    }
}

fn parse(sql: &str) -> Result<Vec<Statement>, GuardError> {
    Parser::new(&SQLiteDialect {})
        .with_recursion_limit(PARSER_RECURSION_LIMIT)
        .try_with_sql(sql)
        .and_then(|mut parser| parser.parse_statements())
        .map_err(|err| match err {
            ParserError::RecursionLimitExceeded => invalid("the query is nested too deeply"),
            ParserError::TokenizerError(msg) | ParserError::ParserError(msg) => {
                invalid(format!("the query could not be parsed: {msg}"))
            }
        })
}

/// Unwraps the one statement into the query it runs, allowing `EXPLAIN` and
/// `EXPLAIN QUERY PLAN` since SQLite only compiles their operand.
fn top_level_query(statement: &Statement) -> Result<&Query, GuardError> {
    match statement {
        Statement::Query(query) => Ok(query),
        Statement::Explain {
            describe_alias,
            analyze,
            verbose,
            estimate,
            statement: inner,
            format,
            options,
            query_plan: _,
        } => {
            // ANALYZE runs the statement; the other modifiers are other
            // engines' syntax that SQLite would refuse anyway.
            if *analyze {
                return Err(invalid(
                    "EXPLAIN ANALYZE executes its statement and is not allowed on /query",
                ));
            }
            if *describe_alias != DescribeAlias::Explain
                || *verbose
                || *estimate
                || format.is_some()
                || options.is_some()
            {
                return Err(invalid(
                    "only EXPLAIN and EXPLAIN QUERY PLAN are supported on /query",
                ));
            }
            match inner.as_ref() {
                Statement::Query(query) => Ok(query),
                other => Err(not_a_read(other)),
            }
        }
        other => Err(not_a_read(other)),
    }
}

/// Walks the query, subqueries and CTE bodies included, stopping at the first
/// problem.
struct Guard {
    reader: Reader,
    depth: usize,
}

impl Guard {
    fn descend(&mut self) -> ControlFlow<GuardError> {
        self.depth += 1;
        if self.depth > MAX_AST_DEPTH {
            return ControlFlow::Break(invalid("the query is nested too deeply"));
        }
        ControlFlow::Continue(())
    }

    fn ascend(&mut self) -> ControlFlow<GuardError> {
        self.depth = self.depth.saturating_sub(1);
        ControlFlow::Continue(())
    }

    /// Checks one query's own body. Nested `Query` nodes are skipped because
    /// the visitor calls `pre_visit_query` for each of them.
    fn check_body(&self, body: &SetExpr) -> Result<(), GuardError> {
        // An explicit stack, because set-operation chains are left-deep
        // trees as long as the input (see MAX_AST_DEPTH).
        let mut pending: Vec<(&SetExpr, usize)> = vec![(body, 0)];
        while let Some((expr, depth)) = pending.pop() {
            if depth > MAX_AST_DEPTH {
                return Err(invalid("the query has too many UNION/INTERSECT/EXCEPT parts"));
            }
            match expr {
                SetExpr::Select(select) => {
                    if select.into.is_some() {
                        return Err(invalid(
                            "SELECT ... INTO creates a table and is not allowed on /query",
                        ));
                    }
                }
                SetExpr::SetOperation { left, right, .. } => {
                    pending.push((left, depth + 1));
                    pending.push((right, depth + 1));
                }
                SetExpr::Query(_) | SetExpr::Values(_) => {}
                SetExpr::Table(table) => {
                    // `TABLE x` keeps its name as plain strings, out of reach
                    // of `pre_visit_relation`.
                    if let Some(name) = &table.table_name {
                        let qualifier: Vec<&str> = table.schema_name.iter().map(String::as_str).collect();
                        self.check_relation_parts(&qualifier, name)?;
                    }
                }
                SetExpr::Insert(stmt)
                | SetExpr::Update(stmt)
                | SetExpr::Delete(stmt)
                | SetExpr::Merge(stmt) => return Err(not_a_read(stmt)),
            }
        }
        Ok(())
    }

    fn check_relation(&self, name: &ObjectName) -> Result<(), GuardError> {
        let parts = plain_parts(name)?;
        let Some((last, qualifier)) = parts.split_last() else {
            return Err(invalid("a table name is empty"));
        };
        self.check_relation_parts(qualifier, last)
    }

    fn check_relation_parts(&self, qualifier: &[&str], name: &str) -> Result<(), GuardError> {
        let lower = name.to_ascii_lowercase();
        if BLOCKED_FUNCTIONS.contains(&lower.as_str()) {
            return Err(blocked_function(name));
        }
        if self.reader == Reader::Admin {
            return Ok(());
        }
        let internal_name = INTERNAL_PREFIXES.iter().any(|p| lower.starts_with(p))
            || INTERNAL_NAMES.contains(&lower.as_str());
        // `temp.x` and attached databases are where the replicator stages
        // data; only `main` is the published replica.
        let foreign_schema = qualifier.iter().any(|q| !q.eq_ignore_ascii_case("main"));
        if internal_name || foreign_schema {
            let full = qualifier
                .iter()
                .copied()
                .chain(std::iter::once(name))
                .collect::<Vec<_>>()
                .join(".");
            return Err(GuardError::Forbidden(format!(
                "table {full} is internal to the replica and needs the admin token"
            )));
        }
        Ok(())
    }

    fn check_function(&self, name: &ObjectName) -> Result<(), GuardError> {
        let parts = plain_parts(name)?;
        let Some(last) = parts.last() else {
            return Ok(());
        };
        let lower = last.to_ascii_lowercase();
        if BLOCKED_FUNCTIONS.contains(&lower.as_str()) {
            return Err(blocked_function(last));
        }
        if self.reader == Reader::Client && lower.starts_with("pragma_") {
            return Err(GuardError::Forbidden(format!(
                "function {last} reads internal tables and needs the admin token"
            )));
        }
        Ok(())
    }
}

impl Visitor for Guard {
    type Break = GuardError;

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<GuardError> {
        self.descend()?;
        if !query.locks.is_empty() {
            return ControlFlow::Break(invalid(
                "locking clauses (FOR UPDATE / FOR SHARE) are not allowed on /query",
            ));
        }
        into_flow(self.check_body(&query.body))
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<GuardError> {
        self.ascend()
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<GuardError> {
        into_flow(self.check_relation(relation))
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<GuardError> {
        match factor {
            // `Table` is also seen by `pre_visit_relation`; `Function`
            // (`LATERAL f(...)`) and `SemanticView` are not.
            TableFactor::Table { name, .. }
            | TableFactor::Function { name, .. }
            | TableFactor::SemanticView { name, .. } => into_flow(self.check_relation(name)),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<GuardError> {
        self.descend()?;
        match expr {
            Expr::Function(function) => into_flow(self.check_function(&function.name)),
            _ => ControlFlow::Continue(()),
        }
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<GuardError> {
        self.ascend()
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<GuardError> {
        // Only the top-level statement is allowed to be a statement, and it is
        // unwrapped before visiting; one found here is a write nested in the
        // query (a data-modifying CTE, `FROM (INSERT ... RETURNING ...)`).
        ControlFlow::Break(not_a_read(statement))
    }
}

fn into_flow(result: Result<(), GuardError>) -> ControlFlow<GuardError> {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(err) => ControlFlow::Break(err),
    }
}

/// The identifier parts of a name, unquoted. Parts computed by a function
/// (Snowflake's `IDENTIFIER(...)`) cannot be judged, so they are refused.
fn plain_parts(name: &ObjectName) -> Result<Vec<&str>, GuardError> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(ident) => Ok(ident.value.as_str()),
            ObjectNamePart::Function(_) => Err(invalid(format!(
                "computed object names such as {name} are not supported on /query"
            ))),
        })
        .collect()
}

fn invalid(msg: impl Into<String>) -> GuardError {
    GuardError::Invalid(msg.into())
}

fn blocked_function(name: &str) -> GuardError {
    invalid(format!(
        "function {name} is not allowed on /query: it has side effects or touches files"
    ))
}

fn not_a_read(statement: &Statement) -> GuardError {
    invalid(format!(
        "only read statements are allowed on /query (got {})",
        statement_kind(statement)
    ))
}

/// A short name such as `INSERT` or `CREATE VIRTUAL TABLE` for messages.
/// Taken from the statement's canonical rendering, whose keywords sqlparser
/// prints upper-case, so it names what was parsed, not what was typed.
fn statement_kind(statement: &Statement) -> String {
    const MODIFIERS: &[&str] = &[
        "OR", "REPLACE", "TEMPORARY", "TEMP", "UNIQUE", "VIRTUAL", "MATERIALIZED",
    ];
    let rendered = statement.to_string();
    let mut words = rendered.split_whitespace();
    let Some(first) = words.next() else {
        return "an empty statement".to_string();
    };
    let mut kind = vec![first];
    if matches!(first, "CREATE" | "DROP" | "ALTER") {
        for word in words {
            kind.push(word);
            if !MODIFIERS.contains(&word) {
                break;
            }
        }
    }
    kind.join(" ")
}
