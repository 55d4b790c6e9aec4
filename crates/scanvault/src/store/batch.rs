//! Writes whose results nobody reads, sent together.
//!
//! An ingest ends with several independent writes (the findings, the raw report, the
//! references' pointers, the current-fleet rows, the per-CVE, fleet and daily deltas). On
//! PostgreSQL they travel as one statement, each write a data-modifying `WITH` clause, so
//! the transaction pays one round trip and one statement's overhead (parse, executor start
//! and end, two context switches on each side) for all of them. SQLite, which has no
//! data-modifying `WITH`, runs them one after another, in the order they were added.
//!
//! The parts of one PostgreSQL statement all see the snapshot taken when it starts, not
//! each other's rows: a write whose statement reads a table another pending write changes
//! must not be added after that write. [`WriteBatch::flush`] first where that would be so.

use super::{Backend, StoreError};
use sqlx::AnyConnection;

/// A value bound to a pending write.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    I(i64),
    S(String),
    B(Vec<u8>),
}

/// Bind parameters per combined statement, well under PostgreSQL's 65,535.
const MAX_PARAMS: usize = 30_000;

/// Pending writes: SQL numbered from `$1` with its values, in order.
pub(crate) struct WriteBatch {
    backend: Backend,
    parts: Vec<(String, Vec<Val>)>,
    params: usize,
}

impl WriteBatch {
    pub(crate) fn new(backend: Backend) -> WriteBatch {
        WriteBatch {
            backend,
            parts: vec![],
            params: 0,
        }
    }

    /// Add a write (`INSERT`, `UPDATE` or `DELETE` without `RETURNING`, its parameters
    /// numbered from `$1`). Sends what is pending first if the statement would grow too large.
    pub(crate) async fn add(
        &mut self,
        conn: &mut AnyConnection,
        sql: String,
        vals: Vec<Val>,
    ) -> Result<(), StoreError> {
        if self.params + vals.len() > MAX_PARAMS {
            self.flush(conn).await?;
        }
        self.params += vals.len();
        self.parts.push((sql, vals));
        Ok(())
    }

    /// Send the pending writes (nothing if there are none).
    pub(crate) async fn flush(&mut self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        let parts = std::mem::take(&mut self.parts);
        self.params = 0;
        match (self.backend, parts.len()) {
            (_, 0) => Ok(()),
            (Backend::Postgres, n) if n > 1 => {
                let sql = combined_sql(&parts);
                let vals: Vec<&Val> = parts.iter().flat_map(|(_, v)| v).collect();
                bind(sqlx::query(&sql), vals).execute(&mut *conn).await?;
                Ok(())
            }
            _ => {
                for (sql, vals) in &parts {
                    bind(sqlx::query(sql), vals.iter())
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            }
        }
    }
}

fn bind<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    vals: impl IntoIterator<Item = &'q Val>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for v in vals {
        q = match v {
            Val::I(i) => q.bind(*i),
            Val::S(s) => q.bind(s.as_str()),
            Val::B(b) => q.bind(b.as_slice()),
        };
    }
    q
}

/// `WITH w1 AS (part 1), w2 AS (part 2), … part n`, each part's parameters renumbered
/// after those of the parts before it. PostgreSQL runs every data-modifying `WITH` clause
/// exactly once, to completion, whether or not the statement reads its output.
fn combined_sql(parts: &[(String, Vec<Val>)]) -> String {
    let mut out = String::from("WITH ");
    let mut offset = 0;
    let last = parts.len() - 1;
    for (i, (sql, vals)) in parts.iter().enumerate() {
        let sql = renumber(sql, offset);
        if i < last {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("w{i} AS ({sql})"));
        } else {
            out.push(' ');
            out.push_str(&sql);
        }
        offset += vals.len();
    }
    out
}

/// `sql` with every parameter `$n` made `$(n + offset)`. Our statements have no `$` in
/// literals or identifiers.
fn renumber(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_string();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::{combined_sql, renumber, Val};

    #[test]
    fn parameters_are_renumbered_after_earlier_parts() {
        assert_eq!(
            renumber("INSERT INTO t VALUES ($1, $2, $10::json, '$.x')", 3),
            "INSERT INTO t VALUES ($4, $5, $13::json, '$.x')"
        );
        assert_eq!(renumber("SELECT $1", 0), "SELECT $1");
        assert_eq!(renumber("a $ b $", 5), "a $ b $");
    }

    #[test]
    fn parts_become_with_clauses_and_the_last_the_statement() {
        let parts = vec![
            ("INSERT INTO a VALUES ($1)".to_string(), vec![Val::I(1)]),
            (
                "INSERT INTO b VALUES ($1, $2)".to_string(),
                vec![Val::S("x".into()), Val::B(vec![])],
            ),
            ("DELETE FROM c WHERE k = $1".to_string(), vec![Val::I(2)]),
        ];
        assert_eq!(
            combined_sql(&parts),
            "WITH w0 AS (INSERT INTO a VALUES ($1)), w1 AS (INSERT INTO b VALUES ($2, $3)) \
             DELETE FROM c WHERE k = $4"
        );
    }
}
