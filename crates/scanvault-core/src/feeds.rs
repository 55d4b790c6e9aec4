//! Exploit feeds, read from their published formats: CISA's Known Exploited
//! Vulnerabilities catalog (JSON, `known_exploited_vulnerabilities.json`) and FIRST's EPSS
//! scores (CSV, `epss_scores-YYYY-MM-DD.csv[.gz]`: a `#model_version:…,score_date:…`
//! comment line, then `cve,epss,percentile`). Both may be gzip-compressed.

use serde::Deserialize;
use std::io::Read;

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> FeedError {
    FeedError::Invalid(msg.into())
}

/// At most this much after decompression (the EPSS file is about 10 MB).
pub const MAX_FEED_BYTES: u64 = 256 << 20;

/// The bytes, gunzipped when they are gzip.
fn plain(raw: &[u8]) -> Result<Vec<u8>, FeedError> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw)
            .take(MAX_FEED_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| invalid(format!("the gzip data is damaged: {e}")))?;
        if out.len() as u64 > MAX_FEED_BYTES {
            return Err(invalid(format!(
                "more than {} MiB once decompressed",
                MAX_FEED_BYTES >> 20
            )));
        }
        Ok(out)
    } else {
        Ok(raw.to_vec())
    }
}

/// `CVE-YYYY-NNNN…`.
pub fn is_cve_id(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, num)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && (4..=19).contains(&num.len())
        && num.bytes().all(|b| b.is_ascii_digit())
}

fn is_date(s: &str) -> bool {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// One entry of the KEV catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KevEntry {
    pub cve_id: String,
    pub vendor_project: String,
    pub product: String,
    pub name: String,
    /// `YYYY-MM-DD`.
    pub date_added: String,
    /// `YYYY-MM-DD`: federal agencies' remediation deadline.
    pub due_date: Option<String>,
    /// `Known` or `Unknown`.
    pub known_ransomware: Option<String>,
}

#[derive(Debug, Clone)]
pub struct KevCatalog {
    pub catalog_version: String,
    pub date_released: String,
    pub entries: Vec<KevEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KevJson {
    #[serde(default)]
    catalog_version: String,
    #[serde(default)]
    date_released: String,
    vulnerabilities: Vec<KevJsonEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KevJsonEntry {
    #[serde(rename = "cveID")]
    cve_id: String,
    #[serde(default)]
    vendor_project: String,
    #[serde(default)]
    product: String,
    #[serde(default)]
    vulnerability_name: String,
    date_added: String,
    #[serde(default)]
    due_date: Option<String>,
    #[serde(default)]
    known_ransomware_campaign_use: Option<String>,
}

/// Read CISA's KEV catalog (JSON, optionally gzip).
pub fn parse_kev(raw: &[u8]) -> Result<KevCatalog, FeedError> {
    let bytes = plain(raw)?;
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let doc: KevJson = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        invalid(format!(
            "not CISA's KEV catalog JSON (at {}): {}",
            e.path(),
            e.inner()
        ))
    })?;
    let mut entries = Vec::with_capacity(doc.vulnerabilities.len());
    for (i, v) in doc.vulnerabilities.into_iter().enumerate() {
        let cve = v.cve_id.trim().to_string();
        if !is_cve_id(&cve) {
            return Err(invalid(format!(
                "vulnerabilities[{i}].cveID {cve:?} is not a CVE id"
            )));
        }
        if !is_date(v.date_added.trim()) {
            return Err(invalid(format!(
                "vulnerabilities[{i}].dateAdded {:?} is not a YYYY-MM-DD date",
                v.date_added
            )));
        }
        let due = v
            .due_date
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty());
        if let Some(d) = &due {
            if !is_date(d) {
                return Err(invalid(format!(
                    "vulnerabilities[{i}].dueDate {d:?} is not a YYYY-MM-DD date"
                )));
            }
        }
        entries.push(KevEntry {
            cve_id: cve,
            vendor_project: v.vendor_project,
            product: v.product,
            name: v.vulnerability_name,
            date_added: v.date_added.trim().to_string(),
            due_date: due,
            known_ransomware: v.known_ransomware_campaign_use.filter(|s| !s.is_empty()),
        });
    }
    entries.sort_by(|a, b| a.cve_id.cmp(&b.cve_id));
    entries.dedup_by(|a, b| a.cve_id == b.cve_id);
    Ok(KevCatalog {
        catalog_version: doc.catalog_version,
        date_released: doc.date_released,
        entries,
    })
}

/// One EPSS score.
#[derive(Debug, Clone, PartialEq)]
pub struct EpssEntry {
    pub cve_id: String,
    /// Probability of exploitation activity in the next 30 days, 0–1.
    pub score: f64,
    /// The share of scored vulnerabilities with a lower or equal score, 0–1.
    pub percentile: f64,
}

#[derive(Debug, Clone)]
pub struct EpssFeed {
    pub model_version: String,
    /// As the file says (`2024-01-01T00:00:00+0000`), or empty.
    pub score_date: String,
    pub entries: Vec<EpssEntry>,
}

/// Read FIRST's EPSS scores CSV (optionally gzip).
pub fn parse_epss(raw: &[u8]) -> Result<EpssFeed, FeedError> {
    let bytes = plain(raw)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid("the EPSS file is not UTF-8"))?;
    let (mut model_version, mut score_date) = (String::new(), String::new());
    let mut body = text;
    // The comment line: `#model_version:v2023.03.01,score_date:2024-01-01T00:00:00+0000`.
    while let Some(rest) = body.strip_prefix('#') {
        let (line, next) = rest.split_once('\n').unwrap_or((rest, ""));
        for part in line.trim().split(',') {
            match part.split_once(':') {
                Some(("model_version", v)) => model_version = v.trim().to_string(),
                Some(("score_date", v)) => score_date = v.trim().to_string(),
                _ => {}
            }
        }
        body = next;
    }
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .from_reader(body.as_bytes());
    let headers = rd
        .headers()
        .map_err(|e| invalid(format!("the EPSS header line is not CSV: {e}")))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                invalid(format!(
                    "the EPSS header has no {name:?} column (expected cve,epss,percentile)"
                ))
            })
    };
    let (c_cve, c_epss, c_pct) = (col("cve")?, col("epss")?, col("percentile")?);
    let mut entries = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| invalid(format!("EPSS line {line}: {e}")))?;
        let field = |c: usize| rec.get(c).unwrap_or("");
        let cve = field(c_cve).to_string();
        if !is_cve_id(&cve) {
            return Err(invalid(format!(
                "EPSS line {line}: {cve:?} is not a CVE id"
            )));
        }
        let num = |c: usize, what: &str| -> Result<f64, FeedError> {
            field(c)
                .parse::<f64>()
                .ok()
                .filter(|v| (0.0..=1.0).contains(v))
                .ok_or_else(|| {
                    invalid(format!(
                        "EPSS line {line}: {what} {:?} is not a number from 0 to 1",
                        field(c)
                    ))
                })
        };
        entries.push(EpssEntry {
            score: num(c_epss, "epss")?,
            percentile: num(c_pct, "percentile")?,
            cve_id: cve,
        });
    }
    if entries.is_empty() {
        return Err(invalid("the EPSS file has no scores"));
    }
    entries.sort_by(|a, b| a.cve_id.cmp(&b.cve_id));
    entries.dedup_by(|a, b| a.cve_id == b.cve_id);
    Ok(EpssFeed {
        model_version,
        score_date,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const KEV: &str = r#"{
      "title": "CISA Catalog of Known Exploited Vulnerabilities",
      "catalogVersion": "2024.01.02",
      "dateReleased": "2024-01-02T15:00:00.000Z",
      "count": 2,
      "vulnerabilities": [
        {"cveID": "CVE-2021-44228", "vendorProject": "Apache", "product": "Log4j2",
         "vulnerabilityName": "Apache Log4j2 Remote Code Execution Vulnerability",
         "dateAdded": "2021-12-10", "shortDescription": "…", "requiredAction": "…",
         "dueDate": "2021-12-24", "knownRansomwareCampaignUse": "Known", "notes": "", "cwes": ["CWE-20"]},
        {"cveID": "CVE-2014-0160", "vendorProject": "OpenSSL", "product": "OpenSSL",
         "vulnerabilityName": "Heartbleed", "dateAdded": "2022-05-04", "shortDescription": "",
         "requiredAction": "", "dueDate": "2022-05-25", "knownRansomwareCampaignUse": "Unknown", "notes": ""}
      ]
    }"#;

    #[test]
    fn the_kev_catalog_is_read_and_bad_entries_are_named() {
        let c = parse_kev(KEV.as_bytes()).unwrap();
        assert_eq!(c.catalog_version, "2024.01.02");
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entries[0].cve_id, "CVE-2014-0160");
        assert_eq!(c.entries[1].date_added, "2021-12-10");
        assert_eq!(c.entries[1].known_ransomware.as_deref(), Some("Known"));
        let bad = KEV.replace("2021-12-10", "12/10/2021");
        let e = parse_kev(bad.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("dateAdded"), "{e}");
        let e = parse_kev(b"{\"vulnerabilities\": 3}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("vulnerabilities"), "{e}");
    }

    #[test]
    fn epss_csv_is_read_plain_and_gzip() {
        let csv = "#model_version:v2023.03.01,score_date:2024-01-01T00:00:00+0000\n\
                   cve,epss,percentile\nCVE-2021-44228,0.97565,0.99996\nCVE-1999-0001,0.01167,0.83060\n";
        let f = parse_epss(csv.as_bytes()).unwrap();
        assert_eq!(f.model_version, "v2023.03.01");
        assert_eq!(f.score_date, "2024-01-01T00:00:00+0000");
        assert_eq!(f.entries.len(), 2);
        assert_eq!(f.entries[0].cve_id, "CVE-1999-0001");
        assert_eq!(f.entries[1].score, 0.97565);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(csv.as_bytes()).unwrap();
        let g = parse_epss(&gz.finish().unwrap()).unwrap();
        assert_eq!(g.entries, f.entries);
        for (bad, why) in [
            ("cve,epss,percentile\nCVE-1,0.1,0.2\n", "not a CVE id"),
            ("cve,epss,percentile\nCVE-2020-1234,1.5,0.2\n", "epss"),
            ("cve,score\nCVE-2020-1234,0.1\n", "no \"epss\" column"),
            ("cve,epss,percentile\n", "no scores"),
        ] {
            let e = parse_epss(bad.as_bytes()).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
