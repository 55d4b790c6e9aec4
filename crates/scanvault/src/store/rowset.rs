//! Sets of rows sent as statement parameters.
//!
//! A report's findings, its current-fleet rows and its deltas each travel as one set, so a
//! statement's text does not depend on the number of rows: it is prepared once per
//! connection and sent in one round trip, however many rows a report has.
//!
//! - **PostgreSQL**: one array per column (`$n::TEXT[]`, `$n::BIGINT[]`, …), read back as
//!   rows by `unnest`. Parsing a text array is a fraction of what `json_to_recordset`
//!   costs for the same rows: it neither builds a hash table of each object's keys nor
//!   checks the JSON twice (once as the parameter's type, once to read it).
//! - **SQLite**: one JSON array of objects, read by `json_each`.
//!
//! Array literals are written as PostgreSQL's `array_in` reads them: every text element
//! double-quoted, with `"` and `\` escaped by a backslash, `NULL` unquoted. Any text,
//! including braces, commas, quotes and non-ASCII, round-trips.

use super::{Backend, StoreError};

/// A column of a row set: (name, SQL type).
pub(crate) type Column = (&'static str, &'static str);

/// A row of a row set: serialisable as a JSON object (SQLite) and writable column by
/// column, in the order of its columns (PostgreSQL).
pub(crate) trait SetRow: serde::Serialize {
    fn write(&self, w: &mut ArrayWriter);
}

/// A value of a row set's column.
pub(crate) trait SetValue {
    fn put(&self, out: &mut String);
}

impl SetValue for str {
    fn put(&self, out: &mut String) {
        out.reserve(self.len() + 2);
        out.push('"');
        let mut rest = self;
        // Copied a run at a time: most values have nothing to escape.
        while let Some(at) = rest.find(['"', '\\']) {
            out.push_str(&rest[..at]);
            out.push('\\');
            out.push_str(&rest[at..at + 1]);
            rest = &rest[at + 1..];
        }
        out.push_str(rest);
        out.push('"');
    }
}

impl SetValue for String {
    fn put(&self, out: &mut String) {
        self.as_str().put(out)
    }
}

impl SetValue for i64 {
    fn put(&self, out: &mut String) {
        out.push_str(itoa::Buffer::new().format(*self));
    }
}

impl SetValue for f64 {
    fn put(&self, out: &mut String) {
        if self.is_finite() {
            out.push_str(ryu::Buffer::new().format_finite(*self));
        } else {
            // As JSON would carry it.
            out.push_str("NULL");
        }
    }
}

impl<T: SetValue + ?Sized> SetValue for &T {
    fn put(&self, out: &mut String) {
        (**self).put(out)
    }
}

impl<T: SetValue> SetValue for Option<T> {
    fn put(&self, out: &mut String) {
        match self {
            Some(v) => v.put(out),
            None => out.push_str("NULL"),
        }
    }
}

/// Builds one array literal per column, a row at a time.
pub(crate) struct ArrayWriter {
    cols: Vec<String>,
    at: usize,
    rows: usize,
}

impl ArrayWriter {
    fn new(columns: usize) -> ArrayWriter {
        ArrayWriter {
            cols: vec![String::from("{"); columns],
            at: 0,
            rows: 0,
        }
    }

    /// The next column's value of the current row.
    pub(crate) fn put<V: SetValue + ?Sized>(&mut self, v: &V) {
        let col = &mut self.cols[self.at];
        if self.rows > 0 {
            col.push(',');
        }
        v.put(col);
        self.at += 1;
    }

    fn end_row(&mut self) {
        assert_eq!(
            self.at,
            self.cols.len(),
            "a row wrote the wrong number of columns"
        );
        self.at = 0;
        self.rows += 1;
    }

    fn finish(self) -> Vec<String> {
        self.cols
            .into_iter()
            .map(|mut c| {
                c.push('}');
                c
            })
            .collect()
    }
}

/// The parameters carrying `rows` as a set of `cols`: [`param_count`] of them.
pub(crate) fn params<T: SetRow>(
    backend: Backend,
    rows: &[T],
    cols: &[Column],
) -> Result<Vec<String>, StoreError> {
    match backend {
        Backend::Sqlite => Ok(vec![super::to_json(rows)?]),
        Backend::Postgres => {
            let mut w = ArrayWriter::new(cols.len());
            for r in rows {
                r.write(&mut w);
                w.end_row();
            }
            Ok(w.finish())
        }
    }
}

/// How many parameters a set of `cols` takes.
pub(crate) fn param_count(backend: Backend, cols: &[Column]) -> usize {
    match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => cols.len(),
    }
}

/// A `FROM` source of the rows in the parameters from `$first` on, under `alias`.
pub(crate) fn source(backend: Backend, first: usize, cols: &[Column], alias: &str) -> String {
    match backend {
        Backend::Postgres => format!(
            "unnest({}) AS {alias}({})",
            cols.iter()
                .enumerate()
                .map(|(i, (_, t))| format!("${}::{t}[]", first + i))
                .collect::<Vec<_>>()
                .join(", "),
            cols.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
        ),
        Backend::Sqlite => format!(
            "(SELECT {} FROM json_each(${first})) AS {alias}",
            cols.iter()
                .map(|(c, _)| format!("json_extract(value, '$.{c}') AS {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `column` is one of the strings in parameter `$param` ([`list_param`]). On PostgreSQL an
/// array (`= ANY`), whose keys a B-tree scan sorts and probes in key order, instead of one
/// descent per element in hash order (measured with the array built from JSON: about 30 %
/// less time for a 2,000-id report's catalog lookup, see docs/benchmarks.md).
pub(crate) fn in_list(backend: Backend, column: &str, param: usize) -> String {
    match backend {
        Backend::Postgres => format!("{column} = ANY (${param}::TEXT[])"),
        Backend::Sqlite => format!("{column} IN (SELECT value FROM json_each(${param}))"),
    }
}

/// The parameter of an [`in_list`]: a set of one column.
pub(crate) fn list_param(backend: Backend, items: &[&str]) -> Result<String, StoreError> {
    let mut p = params(backend, items, &[("value", "TEXT")])?;
    Ok(p.pop().unwrap_or_default())
}

/// A string as a one-column row.
impl SetRow for &str {
    fn write(&self, w: &mut ArrayWriter) {
        w.put(*self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct R<'a> {
        s: Option<&'a str>,
        n: i64,
        f: Option<f64>,
    }

    impl SetRow for R<'_> {
        fn write(&self, w: &mut ArrayWriter) {
            w.put(&self.s);
            w.put(&self.n);
            w.put(&self.f);
        }
    }

    const COLS: &[Column] = &[("s", "TEXT"), ("n", "BIGINT"), ("f", "DOUBLE PRECISION")];

    #[test]
    fn postgres_gets_one_array_literal_per_column() {
        let rows = [
            R {
                s: Some(r#"a "q" \ {b,c} é"#),
                n: -3,
                f: Some(7.5),
            },
            R {
                s: None,
                n: 0,
                f: Some(f64::NAN),
            },
            R {
                s: Some("NULL"),
                n: i64::MAX,
                f: None,
            },
        ];
        let p = params(Backend::Postgres, &rows, COLS).unwrap();
        assert_eq!(
            p,
            vec![
                r#"{"a \"q\" \\ {b,c} é",NULL,"NULL"}"#.to_string(),
                "{-3,0,9223372036854775807}".to_string(),
                "{7.5,NULL,NULL}".to_string(),
            ]
        );
        assert_eq!(param_count(Backend::Postgres, COLS), 3);
        assert_eq!(
            params(Backend::Postgres, &[] as &[R], COLS).unwrap(),
            vec!["{}", "{}", "{}"]
        );
        assert_eq!(
            source(Backend::Postgres, 2, COLS, "x"),
            "unnest($2::TEXT[], $3::BIGINT[], $4::DOUBLE PRECISION[]) AS x(s, n, f)"
        );
    }

    #[test]
    fn sqlite_gets_one_json_array() {
        let rows = [R {
            s: Some("a"),
            n: 1,
            f: None,
        }];
        assert_eq!(
            params(Backend::Sqlite, &rows, COLS).unwrap(),
            vec![r#"[{"s":"a","n":1,"f":null}]"#]
        );
        assert_eq!(param_count(Backend::Sqlite, COLS), 1);
        assert_eq!(
            list_param(Backend::Postgres, &["x\"y", "z"]).unwrap(),
            r#"{"x\"y","z"}"#
        );
        assert_eq!(list_param(Backend::Sqlite, &["x"]).unwrap(), r#"["x"]"#);
    }
}
