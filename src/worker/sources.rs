//! Opening a config's source with the Worker's IO, and `AnySource`, the one `Source` the
//! engine sees whatever the origin is.

use super::env;
use super::socket::TcpStream;
use super::{open_mysql, open_postgres, open_sqlite};
use crate::config::{Bindings, Config, Connection, SourceSpec, SourceType};
use crate::error::{Error, Result};
use crate::source::mysql::MysqlSource;
use crate::source::postgres::PostgresSource;
use crate::source::{
    Column, EncodedPage, FeedAnswer, FeedOp, KeyRange, PageRequest, PositionOrder, Source, TableName, TableSchema, TextDecoder,
};
use crate::value::Value;
use worker::Env;

/// Every source this Worker can open.
pub enum AnySource {
    Postgres(PostgresSource),
    Sqlite(open_sqlite::SqliteAny),
    Mysql(MysqlSource<TcpStream>),
}

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnySource::Postgres($s) => $e,
            AnySource::Sqlite($s) => $e,
            AnySource::Mysql($s) => $e,
        }
    };
}

impl Source for AnySource {
    fn describe_origin(&self) -> String {
        each!(self, s => s.describe_origin())
    }
    fn source_type(&self) -> SourceType {
        each!(self, s => s.source_type())
    }
    async fn table_schema(&mut self, table: &TableName) -> Result<TableSchema> {
        each!(self, s => s.table_schema(table).await)
    }
    async fn fetch_page(&mut self, page: &PageRequest<'_>) -> Result<Vec<Vec<Value>>> {
        each!(self, s => s.fetch_page(page).await)
    }
    async fn fetch_batch(&mut self, page: &PageRequest<'_>, max_bytes: usize) -> Result<EncodedPage> {
        each!(self, s => s.fetch_batch(page, max_bytes).await)
    }
    async fn count_nulls(&mut self, table: &TableName, column: &Column) -> Result<u64> {
        each!(self, s => s.count_nulls(table, column).await)
    }
    async fn feed(&mut self, op: FeedOp<'_>) -> Result<FeedAnswer> {
        each!(self, s => s.feed(op).await)
    }
    fn text_decoder(&self) -> Option<TextDecoder> {
        each!(self, s => s.text_decoder())
    }
    fn position_order(&self) -> PositionOrder {
        each!(self, s => s.position_order())
    }
    fn feed_column_check(&self, column: &Column) -> std::result::Result<(), String> {
        each!(self, s => s.feed_column_check(column))
    }
    async fn added_column_value(&mut self, table: &TableName, column: &Column) -> Result<Option<Value>> {
        each!(self, s => s.added_column_value(table, column).await)
    }
    async fn count_key_ranges(
        &mut self,
        table: &TableName,
        key: &[Column],
        ranges: &[KeyRange],
        rows: &[u64],
    ) -> Result<Vec<(usize, u64)>> {
        each!(self, s => s.count_key_ranges(table, key, ranges, rows).await)
    }
    async fn absent_keys(&mut self, table: &TableName, key: &[Column], keys: &[Vec<Value>]) -> Result<Vec<usize>> {
        each!(self, s => s.absent_keys(table, key, keys).await)
    }
}

/// Opens `cfg`'s source, or the instance's default external database for a config without one.
pub async fn open(env: &Env, cfg: &Config) -> Result<AnySource> {
    let (spec, default) = match &cfg.source {
        Some(s) => (s.clone(), None),
        None => default_spec(env)?,
    };
    Ok(match &spec {
        SourceSpec::Postgres(c) => AnySource::Postgres(open_postgres::open(env, c).await?),
        SourceSpec::Mysql(c) => AnySource::Mysql(open_mysql::open(env, c).await?),
        SourceSpec::Libsql { .. } | SourceSpec::D1(_) | SourceSpec::Starbase { .. } => {
            AnySource::Sqlite(open_sqlite::open(env, &spec, default.as_ref())?)
        }
    })
}

/// What a config without `source` inherits from the instance's settings besides the spec.
pub struct InstanceDefault {
    /// `EXTERNAL_DB_DEFAULT_SCHEMA`: where unqualified tables are looked up.
    pub schema: Option<String>,
}

/// The instance default, StarbaseDB's way: a `HYPERDRIVE` binding, else `EXTERNAL_DB_*`.
fn default_spec(env: &Env) -> Result<(SourceSpec, Option<InstanceDefault>)> {
    let kind = env::default_source_type(env)
        .ok_or_else(|| Error::bad_request("the config has no source and this instance has no default external database"))?;
    let connection = || {
        if env.has_hyperdrive("HYPERDRIVE") {
            Connection::Hyperdrive("HYPERDRIVE".into())
        } else {
            Connection::InstanceDefault
        }
    };
    let spec = match kind {
        SourceType::Postgres => SourceSpec::Postgres(connection()),
        SourceType::Mysql => SourceSpec::Mysql(connection()),
        SourceType::Libsql | SourceType::D1 | SourceType::Starbase => open_sqlite::default_spec(env, kind)?,
    };
    let schema = env::string(env, "EXTERNAL_DB_DEFAULT_SCHEMA");
    Ok((spec, Some(InstanceDefault { schema })))
}
