//! VEX in: decisions from OpenVEX documents (`POST /vex`) and from the `analysis` of
//! ingested CycloneDX findings become suppressions, scoped as they say; a later statement
//! for the same scope replaces the earlier one, and an `affected` (or `exploitable`) one lifts
//! a suppression an earlier VEX made (never one a person made).

use scanvault_core::openvex::{VexDecision, VexStatus};
use scanvault_core::report::Finding;

use crate::store::suppressions::SuppressionRow;
use crate::store::{micros, Store, StoreError};

/// What applying decisions did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Suppressions created (replacements included).
    pub created: Vec<SuppressionRow>,
    /// Earlier suppressions of the same scope that a new one replaced.
    pub replaced: usize,
    /// Suppressions an earlier VEX made that an `affected` statement lifted.
    pub lifted: usize,
    /// Decisions already in force as stated.
    pub unchanged: usize,
}

/// Where VEX-made suppressions come from (their `source`).
pub const SOURCE_OPENVEX: &str = "openvex";
pub const SOURCE_CYCLONEDX: &str = "cyclonedx";

/// Each decision with the suppression state it makes (`None`: it lifts one).
pub type Decided = (VexDecision, Option<&'static str>);

/// OpenVEX decisions with their states.
pub fn decided(decisions: Vec<VexDecision>) -> Vec<Decided> {
    decisions
        .into_iter()
        .map(|d| {
            let state = d.status.suppression_state();
            (d, state)
        })
        .collect()
}

/// Apply `decisions` as `actor`, recording `source` on what is created.
pub async fn apply(
    store: &Store,
    decisions: &[Decided],
    actor: &str,
    created_by: Option<String>,
    source: &str,
) -> Result<Applied, StoreError> {
    let mut out = Applied::default();
    let now = chrono::Utc::now();
    for (d, state) in decisions {
        let same_scope: Vec<SuppressionRow> = store
            .suppressions()
            .active_suppressions(std::slice::from_ref(&d.vulnerability_id), micros(now))
            .await?
            .into_iter()
            .filter(|s| s.package == d.package && s.image == d.image)
            .collect();
        match *state {
            Some(state) => {
                if same_scope
                    .iter()
                    .any(|s| s.state == state && s.reason == d.reason && s.expires_at.is_none())
                {
                    out.unchanged += 1;
                    continue;
                }
                for s in &same_scope {
                    if store
                        .suppressions()
                        .delete_suppression(&s.id, actor, micros(now))
                        .await?
                    {
                        out.replaced += 1;
                    }
                }
                let row = SuppressionRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    vulnerability_id: d.vulnerability_id.clone(),
                    package: d.package.clone(),
                    image: d.image.clone(),
                    state: state.to_string(),
                    reason: d.reason.clone(),
                    expires_at: None,
                    created_at: micros(now),
                    created_by: created_by.clone(),
                    source: source.to_string(),
                    deleted_at: None,
                    deleted_by: None,
                    expired_at: None,
                };
                store.suppressions().create_suppression(&row, actor).await?;
                out.created.push(row);
            }
            None => {
                for s in same_scope
                    .iter()
                    .filter(|s| s.source == SOURCE_OPENVEX || s.source == SOURCE_CYCLONEDX)
                {
                    if store
                        .suppressions()
                        .delete_suppression(&s.id, actor, micros(now))
                        .await?
                    {
                        out.lifted += 1;
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The decisions of a report's findings' CycloneDX `analysis`, for the image it names:
/// `not_affected`, `false_positive` and `resolved` suppress the vulnerability in that package
/// of that image; `exploitable` lifts such a suppression; `in_triage` decides nothing.
pub fn from_findings(image: &str, findings: &[Finding]) -> Vec<Decided> {
    let mut out: Vec<Decided> = findings
        .iter()
        .filter_map(|f| {
            let state = f.extra.vex_state.as_deref()?;
            let (status, suppression) = match state {
                "not_affected" => (VexStatus::NotAffected, Some("not_affected")),
                "false_positive" => (VexStatus::NotAffected, Some("false_positive")),
                "resolved" | "resolved_with_pedigree" => (VexStatus::Fixed, Some("not_affected")),
                "exploitable" => (VexStatus::Affected, None),
                _ => return None,
            };
            let reason = match f.extra.vex_justification.as_deref() {
                Some(j) => format!("CycloneDX analysis {state}: {j}"),
                None => format!("CycloneDX analysis {state}"),
            };
            Some((
                VexDecision {
                    vulnerability_id: f.vulnerability_id.clone(),
                    image: Some(image.to_string()),
                    package: Some(f.pkg_name.clone()),
                    status,
                    reason,
                },
                suppression,
            ))
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.0.vulnerability_id, &a.0.package).cmp(&(&b.0.vulnerability_id, &b.0.package))
    });
    out.dedup_by(|a, b| a.0.vulnerability_id == b.0.vulnerability_id && a.0.package == b.0.package);
    out
}

/// Apply the CycloneDX analysis of an ingested report's findings.
pub async fn apply_findings(
    store: &Store,
    image: &str,
    findings: &[Finding],
    created_by: Option<String>,
) -> Result<Applied, StoreError> {
    let decisions = from_findings(image, findings);
    if decisions.is_empty() {
        return Ok(Applied::default());
    }
    let actor = match &created_by {
        Some(id) => format!("ingest:{id}"),
        None => "ingest".to_string(),
    };
    apply(store, &decisions, &actor, created_by, SOURCE_CYCLONEDX).await
}
