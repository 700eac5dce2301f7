//! Logical decoding over plain SQL: the slot and publication a cdc config reads, checked and
//! created without leaving anything half-made, and the bounded peeks that read its changes.
//!
//! No replication connection is held open: each run peeks at most `upto_nchanges` changes up
//! to an LSN read at the start of the run (`pg_logical_slot_peek_binary_changes`), applies
//! them, and only then advances the slot (`pg_replication_slot_advance`) past what the
//! replica committed. A slot advanced that way never pins WAL for longer than a run.

use super::pgoutput;
use super::{describe_error, PostgresSource};
use crate::error::{Error, Result};
use crate::ident::quote_double;
use crate::source::{Change, Datum, FeedAnswer, FeedOp, SlotInfo, TableName};

/// The longest a peek may run at the origin: inside the default 20 s run budget, with room
/// for applying what it returned.
const PEEK_TIMEOUT_MS: u64 = 15_000;

fn table_sql(t: &TableName) -> String {
    match &t.schema {
        Some(s) => format!("{}.{}", quote_double(s), quote_double(&t.name)),
        None => quote_double(&t.name),
    }
}

impl PostgresSource {
    fn fail(&self, e: tokio_postgres::Error) -> Error {
        Error::at_origin(&self.origin, describe_error(&e)).with_cause(e)
    }

    /// The one text value of a one-row, one-column query.
    async fn text_of(&mut self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Option<String>> {
        let row = self.client.query_opt(sql, params).await.map_err(|e| self.fail(e))?;
        Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
    }

    /// Checks what logical decoding of `tables` needs at the origin, naming the first thing
    /// missing: `wal_level = logical`, the right to replicate, a key (or replica identity
    /// FULL) on every table. Answers the tables' oids, which name them in the feed.
    pub async fn cdc_check(&mut self, tables: &[TableName]) -> Result<Vec<u32>> {
        let level = self.text_of("SELECT current_setting('wal_level')", &[]).await?;
        if level.as_deref() != Some("logical") {
            return Err(Error::at_origin(
                &self.origin,
                format!(
                    "wal_level is {:?}, and cdc needs \"logical\": set wal_level = logical in postgresql.conf (or your provider's \
                     logical replication setting) and restart",
                    level.unwrap_or_default()
                ),
            ));
        }
        let encoding = self.text_of("SELECT current_setting('server_encoding')", &[]).await?;
        if encoding.as_deref() != Some("UTF8") {
            return Err(Error::at_origin(
                &self.origin,
                format!(
                    "the database's encoding is {:?}; cdc reads values as UTF-8 and needs a UTF8 database",
                    encoding.unwrap_or_default()
                ),
            ));
        }
        let can =
            self.text_of("SELECT (rolreplication OR rolsuper)::text FROM pg_catalog.pg_roles WHERE rolname = current_user", &[]).await?;
        if can.as_deref() != Some("true") {
            return Err(Error::at_origin(
                &self.origin,
                "the login lacks the REPLICATION attribute that logical decoding needs: ALTER ROLE <login> WITH REPLICATION",
            ));
        }
        for t in tables {
            let name = table_sql(t);
            let identity = self
                .text_of(
                    "SELECT CASE WHEN c.relreplident = 'f' THEN 'full' \
                     WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND (i.indisprimary OR i.indisreplident)) \
                     THEN 'key' ELSE 'none' END FROM pg_catalog.pg_class c WHERE c.oid = $1::text::regclass",
                    &[&name],
                )
                .await?;
            if identity.as_deref() == Some("none") {
                return Err(Error::at_origin(
                    &self.origin,
                    format!(
                        "table {name} has no primary key (or replica identity index), so its deletes and updates cannot be \
                         published without breaking the origin's own writes: add a primary key, or ALTER TABLE {name} REPLICA \
                         IDENTITY FULL"
                    ),
                ));
            }
        }
        let mut ids = Vec::with_capacity(tables.len());
        for t in tables {
            let name = table_sql(t);
            let oid = self.text_of("SELECT $1::text::regclass::oid::text", &[&name]).await?;
            ids.push(oid.and_then(|o| o.parse().ok()).ok_or_else(|| Error::at_origin(&self.origin, format!("table {name} has no oid")))?);
        }
        Ok(ids)
    }

    /// Makes sure `publication` holds `tables`: creates it when missing, adds what it lacks when
    /// `may_alter`, and otherwise names the missing table. Returns whether it was created now.
    pub async fn cdc_publish(&mut self, publication: &str, tables: &[TableName], may_alter: bool) -> Result<bool> {
        let exists = self.text_of("SELECT pubname::text FROM pg_catalog.pg_publication WHERE pubname = $1", &[&publication]).await?;
        let list: Vec<String> = tables.iter().map(table_sql).collect();
        if exists.is_none() {
            let sql = format!("CREATE PUBLICATION {} FOR TABLE {}", quote_double(publication), list.join(", "));
            self.client.batch_execute(&sql).await.map_err(|e| self.fail(e))?;
            return Ok(true);
        }
        for name in list {
            if self.cdc_publishes(publication, &name).await? {
                continue;
            }
            if !may_alter {
                return Err(Error::at_origin(
                    &self.origin,
                    format!(
                        "publication {publication:?} does not contain table {name}: ALTER PUBLICATION {} ADD TABLE {name}",
                        quote_double(publication)
                    ),
                ));
            }
            let sql = format!("ALTER PUBLICATION {} ADD TABLE {name}", quote_double(publication));
            self.client.batch_execute(&sql).await.map_err(|e| self.fail(e))?;
        }
        Ok(false)
    }

    /// What the origin says about `slot`, or `None` when it does not exist.
    pub async fn cdc_slot(&mut self, slot: &str) -> Result<Option<SlotInfo>> {
        let row = self
            .client
            .query_opt(
                "SELECT confirmed_flush_lsn::text, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), confirmed_flush_lsn)::int8, \
                 wal_status::text FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(|e| self.fail(e))?;
        Ok(row.map(|r| SlotInfo { confirmed_lsn: r.get(0), lag_bytes: r.get(1), wal_status: r.get(2) }))
    }

    /// Creates the logical slot (pgoutput). Its consistent point is where its changes begin.
    pub async fn cdc_create_slot(&mut self, slot: &str) -> Result<String> {
        let lsn = self.text_of("SELECT lsn::text FROM pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')", &[&slot]).await?;
        lsn.ok_or_else(|| Error::at_origin(&self.origin, format!("creating replication slot {slot:?} returned no position")))
    }

    pub async fn cdc_current_lsn(&mut self) -> Result<String> {
        let lsn = self.text_of("SELECT pg_catalog.pg_current_wal_lsn()::text", &[]).await?;
        lsn.ok_or_else(|| Error::at_origin(&self.origin, "pg_current_wal_lsn() returned nothing"))
    }

    /// Reads the slot's next changes, whole transactions, up to `upto_lsn` and about
    /// `upto_nchanges` changes, handing each message to `sink` as it streams in (nothing is
    /// held beyond the row being decoded). The slot does not move: see `cdc_advance`.
    pub async fn cdc_peek(
        &mut self,
        slot: &str,
        publication: &str,
        upto_lsn: &str,
        upto_nchanges: i32,
        sink: &mut dyn FnMut(&str, &[u8]) -> Result<()>,
    ) -> Result<()> {
        // The origin stops a peek that runs too long (well inside a run's budget), so an
        // abandoned run never leaves it decoding for nobody.
        let settings = format!("{}; SET statement_timeout = '{PEEK_TIMEOUT_MS}ms'", super::SESSION_SETTINGS.join("; "));
        self.client.batch_execute(&settings).await.map_err(|e| self.fail(e))?;
        let sql = "SELECT lsn::text, data FROM pg_catalog.pg_logical_slot_peek_binary_changes($1, $2::text::pg_lsn, $3, \
                   'proto_version', '1', 'publication_names', $4)";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&slot, &upto_lsn, &upto_nchanges, &publication];
        let stream = self.client.query_raw(sql, params).await.map_err(|e| self.fail(e))?;
        let mut stream = std::pin::pin!(stream);
        while let Some(row) = futures_util::TryStreamExt::try_next(&mut stream).await.map_err(|e| self.fail(e))? {
            let lsn: &str = row.get(0);
            let data: &[u8] = row.get(1);
            sink(lsn, data)?;
        }
        // Page queries of later copies keep the server's own limit.
        self.client.batch_execute("RESET statement_timeout").await.map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Confirms the slot up to `lsn`: the origin may recycle the WAL before it.
    pub async fn cdc_advance(&mut self, slot: &str, lsn: &str) -> Result<()> {
        self.client
            .query("SELECT pg_catalog.pg_replication_slot_advance($1, $2::text::pg_lsn)", &[&slot, &lsn])
            .await
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// A little WAL of our own, so that a quiet database's slot can move its restart point.
    pub async fn cdc_keepalive(&mut self) -> Result<()> {
        self.client
            .query("SELECT pg_catalog.pg_logical_emit_message(false, 'edge_replica', 'keepalive')", &[])
            .await
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Takes `table` out of the replica's publication.
    pub async fn cdc_unpublish(&mut self, publication: &str, table: &TableName) -> Result<()> {
        let name = table_sql(table);
        if self.cdc_publishes(publication, &name).await? {
            let sql = format!("ALTER PUBLICATION {} DROP TABLE {name}", quote_double(publication));
            self.client.batch_execute(&sql).await.map_err(|e| self.fail(e))?;
        }
        Ok(())
    }

    /// Whether `publication` holds the table `name` (quoted, as `table_sql` writes it).
    async fn cdc_publishes(&mut self, publication: &str, name: &str) -> Result<bool> {
        let member = self
            .text_of(
                "SELECT 'yes' FROM pg_catalog.pg_publication_tables p \
                 WHERE p.pubname = $1 AND format('%I.%I', p.schemaname, p.tablename)::regclass = $2::text::regclass",
                &[&publication, &name],
            )
            .await?;
        Ok(member.is_some())
    }

    pub async fn cdc_drop_slot(&mut self, slot: &str) -> Result<()> {
        self.client
            .query(
                "SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    pub async fn cdc_drop_publication(&mut self, publication: &str) -> Result<()> {
        let sql = format!("DROP PUBLICATION IF EXISTS {}", quote_double(publication));
        self.client.batch_execute(&sql).await.map_err(|e| self.fail(e))
    }
}

impl PostgresSource {
    /// `Source::feed` for PostgreSQL: logical decoding with pgoutput.
    pub(super) async fn feed_op(&mut self, op: FeedOp<'_>) -> Result<FeedAnswer> {
        Ok(match op {
            FeedOp::Check { tables } => FeedAnswer::Ids(self.cdc_check(tables).await?),
            FeedOp::Publish { publication, tables, may_alter } => {
                FeedAnswer::Created(self.cdc_publish(publication, tables, may_alter).await?)
            }
            FeedOp::Unpublish { publication, table } => {
                self.cdc_unpublish(publication, table).await?;
                FeedAnswer::Done
            }
            FeedOp::DropPublication { publication } => {
                self.cdc_drop_publication(publication).await?;
                FeedAnswer::Done
            }
            FeedOp::Slot { slot, .. } => FeedAnswer::Slot(self.cdc_slot(slot).await?),
            FeedOp::CreateSlot { slot } => FeedAnswer::Position(self.cdc_create_slot(slot).await?),
            FeedOp::DropSlot { slot } => {
                self.cdc_drop_slot(slot).await?;
                FeedAnswer::Done
            }
            FeedOp::CurrentPosition => FeedAnswer::Position(self.cdc_current_lsn().await?),
            FeedOp::Read { slot, publication, upto, max, sink, .. } => {
                let origin = self.origin.clone();
                self.cdc_peek(slot, publication, upto, max, &mut |lsn, data| {
                    let bad = |e: String| Error::at_origin(&origin, format!("the change at {lsn}: {e}"));
                    let message = pgoutput::parse(data).map_err(|e| bad(e.to_string()))?;
                    match to_change(&message).map_err(bad)? {
                        Some(change) => sink(change),
                        None => Ok(()),
                    }
                })
                .await?;
                FeedAnswer::Done
            }
            FeedOp::Advance { slot, to } => {
                self.cdc_advance(slot, to).await?;
                FeedAnswer::Done
            }
            FeedOp::Keepalive => {
                self.cdc_keepalive().await?;
                FeedAnswer::Done
            }
        })
    }
}

/// A pgoutput message as the engine's `Change`; `None` for what the engine does not need
/// (origins, types, logical messages such as our keepalives).
fn to_change<'a>(m: &pgoutput::Message<'a>) -> std::result::Result<Option<Change<'a>>, String> {
    fn row<'a>(t: &[pgoutput::Datum<'a>]) -> std::result::Result<Vec<Datum<'a>>, String> {
        t.iter()
            .map(|d| match d {
                pgoutput::Datum::Null => Ok(Datum::Null),
                pgoutput::Datum::Unchanged => Ok(Datum::Unchanged),
                pgoutput::Datum::Text(b) => std::str::from_utf8(b).map(Datum::Text).map_err(|_| "a value that is not UTF-8".to_string()),
                pgoutput::Datum::Binary(_) => Err("a binary value, which this reader never asks for".to_string()),
            })
            .collect()
    }
    use pgoutput::Message as M;
    Ok(Some(match m {
        M::Relation(r) => Change::Relation { id: r.oid, columns: r.columns.iter().map(|c| c.name.to_string()).collect() },
        M::Begin(b) => Change::Begin { lsn: b.final_lsn.to_string() },
        M::Commit(c) => Change::Commit { lsn: c.end_lsn.to_string() },
        M::Insert(i) => Change::Insert { rel: i.relation, new: row(&i.new)? },
        M::Update(u) => Change::Update { rel: u.relation, key: u.old.as_ref().map(|o| row(o.tuple())).transpose()?, new: row(&u.new)? },
        M::Delete(d) => Change::Delete { rel: d.relation, key: row(d.old.tuple())? },
        M::Truncate(t) => Change::Truncate { rels: t.relations.clone() },
        M::Origin(_) | M::Type(_) | M::Message(_) => return Ok(None),
    }))
}
