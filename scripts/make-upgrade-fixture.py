#!/usr/bin/env python3
"""Make the upgrade test's fixture: an embedded database written by a release, and what it held.

    python3 scripts/make-upgrade-fixture.py --bin PATH/TO/scanvault --version 0.1.0 \
        --corpus DIR [--out crates/scanvault/tests/fixtures/upgrade]

Run it with the *released* binary (a build of the release's tag), never with a newer one: the
point of the fixture is a database made by that release's migrations. It ingests a small fleet
of every report kind (Trivy, legacy Trivy, Grype, CycloneDX with VEX, a trivy k8s cluster
report) into a fresh DATA_DIR with `scanvault ingest`, takes a copy with `scanvault backup`,
and writes `scanvault-VERSION.db` beside `scanvault-VERSION.expected.json`: the row count of
every table, and each scan's identity, severity counts and current findings, read with SQL
straight from the file (not through ScanVault's code, which the test then checks against it).
"""
import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile

REPORTS = [
    "trivy/alpine-3.10_trivy-dev-head.json",
    "trivy-legacy/alpine-3.10_trivy-v0.2.0.json",
    "grype/busybox-1.32.1_epss_grype-0.94.0.json",
    "cyclonedx/log4j-core_grype-0.41.0_cdx-1.4_vex-analysis.json",
    "trivy/k8s-cluster_local_resources.json",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the released scanvault binary")
    ap.add_argument("--version", required=True, help="its version, e.g. 0.1.0")
    ap.add_argument("--corpus", required=True, help="the report corpus directory")
    ap.add_argument("--out", default="crates/scanvault/tests/fixtures/upgrade")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as data_dir:
        env = dict(os.environ, DATA_DIR=data_dir, LOG_LEVEL="warn")
        files = [os.path.join(args.corpus, r) for r in REPORTS]
        subprocess.run([args.bin, "ingest", *files], env=env, check=True)
        db = os.path.join(args.out, f"scanvault-{args.version}.db")
        if os.path.exists(db):
            os.remove(db)
        subprocess.run([args.bin, "backup", "--out", db], env=env, check=True)

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    (last,) = con.execute("SELECT max(version) FROM _sqlx_migrations").fetchone()
    tables = [
        t
        for (t,) in con.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx_%' ORDER BY name"
        )
    ]
    row_counts = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
    scans = []
    for sid, name, tag, digest, *counts in con.execute(
        "SELECT id, image_name, image_tag, image_digest, vuln_critical, vuln_high, "
        "vuln_medium, vuln_low, vuln_unknown FROM scans ORDER BY id"
    ).fetchall():
        findings = sorted(
            f"{v}|{p}|{ver}"
            for v, p, ver in con.execute(
                "SELECT vulnerability_id, pkg_name, pkg_version FROM findings "
                "WHERE scan_id = ? AND last_version IS NULL",
                (sid,),
            )
        )
        scans.append(
            {
                "id": sid,
                "image_name": name,
                "image_tag": tag,
                "image_digest": digest,
                "counts": counts,
                "findings": findings,
            }
        )
    expected = {
        "made_by": f"scanvault {args.version} (migrations up to {last})",
        "row_counts": row_counts,
        "scans": scans,
    }
    path = os.path.join(args.out, f"scanvault-{args.version}.expected.json")
    with open(path, "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {db} and {path}: {len(scans)} scans, {sum(row_counts.values())} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
