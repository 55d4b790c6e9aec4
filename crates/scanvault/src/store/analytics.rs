//! Fleet analytics (see DESIGN.md, "Analytics semantics").

use super::scans::ScanRow;
use super::{Store, StoreError};
use scanvault_core::report::Finding;
use sqlx::AnyConnection;

/// What one ingest changed, handed to the analytics maintenance inside the ingest's
/// transaction.
#[derive(Debug)]
pub struct IngestChange<'a> {
    /// The scan row before this ingest (`None` when the scan was created by it).
    pub before: Option<&'a ScanRow>,
    /// The scan row after this ingest.
    pub after: &'a ScanRow,
    /// The tag the report was stored under ("" when none).
    pub image_tag: &'a str,
    /// The reference (image name, `image_tag`) was newly attached to this scan.
    pub tag_added: bool,
    /// Findings inserted by this ingest (all of them for a new scan).
    pub added: &'a [&'a Finding],
    /// Keys `(vulnerability_id, pkg_name, pkg_version)` of findings deleted by this ingest.
    pub removed: &'a [(String, String, String)],
    /// The report was older than the stored scan: only the tag may have changed.
    pub stale: bool,
    /// Time of the ingest, microseconds.
    pub now: i64,
}

impl Store {
    /// Keep analytics state current after an ingest, in the same transaction.
    pub(crate) async fn analytics_after_ingest(
        &self,
        _conn: &mut AnyConnection,
        _change: &IngestChange<'_>,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    /// Keep analytics state current before scans are deleted, in the same transaction.
    pub(crate) async fn analytics_before_delete(
        &self,
        _conn: &mut AnyConnection,
        _scan_ids: &[String],
    ) -> Result<(), StoreError> {
        Ok(())
    }
}
