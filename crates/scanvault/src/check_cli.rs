//! `scanvault check REPORT [--policy NAME] [--server URL]`: the CI gate. Prints the
//! policy's verdict on the report and each violation; the exit code says it (0 compliant,
//! 1 violations, 2 error), like `trivy --exit-code`. Offline it reads the policy, the
//! exploit feeds and the fixes first seen from the local database; with `--server` the
//! service evaluates it (`POST /policies/{name}/evaluate`). Nothing is stored either way.

use anyhow::Context;
use std::io::Read;
use std::time::Duration;

use crate::cli::CheckArgs;
use crate::http::policies::EvaluationView;
use crate::ingest::{IngestOverrides, IngestSettings};
use crate::store::scans::ScanSource;
use crate::store::Store;

/// Run the check: `Ok(true)` when compliant, `Ok(false)` on violations.
pub async fn check(args: CheckArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(
        matches!(args.format.as_str(), "text" | "json"),
        "--format must be text or json"
    );
    let raw = if args.report.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin().read_to_end(&mut b)?;
        b
    } else {
        std::fs::read(&args.report).with_context(|| format!("reading {}", args.report.display()))?
    };
    let eval = match &args.server {
        Some(url) => remote(&args, url, raw).await?,
        None => local(&args, raw).await?,
    };
    if args.format == "json" {
        crate::outln!("{}", serde_json::to_string_pretty(&eval)?);
    } else {
        print_text(&eval);
    }
    Ok(eval.compliant)
}

fn print_text(e: &EvaluationView) {
    let image = if e.image_tag.is_empty() {
        e.image_name.clone()
    } else {
        format!("{}:{}", e.image_name, e.image_tag)
    };
    if e.compliant {
        let note = if e.applies {
            ""
        } else {
            " (the policy does not apply to this image)"
        };
        crate::outln!(
            "compliant\t{image}\tpolicy {}\t{} findings{note}",
            e.policy,
            e.findings
        );
        return;
    }
    crate::outln!(
        "NOT compliant\t{image}\tpolicy {}\t{} violations in {} findings",
        e.policy,
        e.violations.len(),
        e.findings
    );
    for v in &e.violations {
        crate::outln!(
            "{}\t{}\t{}\t{}\t{}",
            v.rule,
            v.vulnerability_id,
            v.package,
            v.installed_version,
            v.severity
        );
    }
}

async fn local(args: &CheckArgs, raw: Vec<u8>) -> anyhow::Result<EvaluationView> {
    args.db.validate().map_err(anyhow::Error::msg)?;
    let settings = IngestSettings {
        compliance_fail_on: args.ingest.compliance_fail_severity,
        max_findings: args.ingest.max_findings_per_report,
    };
    let new = crate::ingest::build_new_scan(
        raw,
        &IngestOverrides::default(),
        &settings,
        ScanSource::Ingest,
        chrono::Utc::now(),
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", args.report.display()))?;
    let store = Store::connect(&args.db.store_options()).await?;
    let result = async {
        store.migrate().await?;
        let policy = crate::compliance::policy(&store, &args.policy, settings.compliance_fail_on)
            .await?
            .ok_or_else(|| anyhow::anyhow!("there is no policy {:?}", args.policy))?;
        let findings: Vec<&scanvault_core::report::Finding> = new.report.findings.iter().collect();
        let verdict =
            crate::compliance::evaluate(&store, &args.policy, &policy, &new.image_name, &findings)
                .await?;
        anyhow::Ok(EvaluationView {
            compliant: verdict.compliant(),
            policy: args.policy.clone(),
            image_name: new.image_name.clone(),
            image_tag: new.image_tag.clone(),
            applies: verdict.applies,
            findings: findings.len(),
            violations: verdict.violations.into_iter().map(Into::into).collect(),
        })
    }
    .await;
    store.close().await;
    result
}

async fn remote(args: &CheckArgs, url: &str, raw: Vec<u8>) -> anyhow::Result<EvaluationView> {
    let key = crate::ingest_cli::client_key(&args.api_key, &args.api_key_file)?;
    let client = reqwest::Client::builder()
        .user_agent(concat!("scanvault/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_secs(300))
        .build()?;
    let mut req = client
        .post(format!(
            "{}/policies/{}/evaluate",
            url.trim_end_matches('/'),
            args.policy
        ))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(raw);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("reaching {url}"))?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        let why = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or(body);
        anyhow::bail!("the service answered {status}: {why}");
    }
    serde_json::from_str(&body).context("the service's answer is not an evaluation")
}
