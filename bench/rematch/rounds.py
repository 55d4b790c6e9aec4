#!/usr/bin/env python3
"""Rounds of bench/rematch.sh against a running `scanvault serve` (AUTH_DISABLED=true).

    rounds.py scan    URL RESULTS LABEL REF...   # POST /scan-jobs force=true for each REF, wait
    rounds.py rematch URL RESULTS LABEL N        # POST /rematch (expects N jobs), wait for its batch
    rounds.py report  RESULTS                    # rates, median ratio, findings check

Each round appends one JSON line to RESULTS: its jobs (image, digest, status, the service's
timestamps, Vuln* counts), the round's span on the service's clock (first job created →
last job completed), the client's wall time, and what the service's stage histograms
(GET /metrics) gained during the round. `report` exits 1 when a job did not complete or a
re-match's counts differ from the scan's of the same digest.
"""

import json
import statistics
import sys
import time
import urllib.request
from datetime import datetime

POLL = 0.1
TIMEOUT = 3600
SEV = ["VulnCritical", "VulnHigh", "VulnMedium", "VulnLow", "VulnUnknown"]
TERMINAL = {"completed", "failed", "cancelled"}


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"} if data else {})
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
        return json.loads(raw) if raw and r.headers.get("content-type", "").startswith("application/json") else raw


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def stage_metrics(url):
    """{(metric, stage-or-outcome): (sum, count)} of the job histograms."""
    text = call("GET", url + "/metrics").decode()
    out = {}
    for line in text.splitlines():
        for name in ("scanvault_job_stage_duration_seconds", "scanvault_job_attempt_duration_seconds"):
            for part, idx in (("_sum", 0), ("_count", 1)):
                if line.startswith(name + part + "{"):
                    labels, value = line[len(name + part):].rsplit(" ", 1)
                    key = name.replace("scanvault_job_", "").replace("_duration_seconds", "") + " " + labels.strip("{}")
                    cur = out.setdefault(key, [0.0, 0.0])
                    cur[idx] = float(value)
    return out


def metrics_delta(before, after):
    d = {}
    for k, (s, c) in after.items():
        s0, c0 = before.get(k, (0.0, 0.0))
        if c - c0 > 0:
            d[k] = {"count": int(c - c0), "sum_s": round(s - s0, 3), "mean_s": round((s - s0) / (c - c0), 3)}
    return d


def job_record(j):
    return {"id": j["ID"], "kind": j.get("Kind"), "image": j["ImageName"], "digest": j.get("ResolvedDigest"),
            "status": j["Status"], "attempts": j.get("Attempts"), "error": j.get("ErrorMessage"),
            "created": ts(j["CreatedAt"]), "started": ts(j["StartedAt"]) if j.get("StartedAt") else None,
            "completed": ts(j["CompletedAt"]) if j.get("CompletedAt") else None,
            "counts": [j.get(k) for k in SEV]}


def finish(url, results, label, kind, jobs, wall, m0, extra=None):
    recs = [job_record(j) for j in jobs]
    done = [r["completed"] for r in recs if r["completed"]]
    first = min(r["created"] for r in recs) if recs else 0
    span = (max(done) - first) if done and len(done) == len(recs) else None
    rec = {"label": label, "kind": kind, "jobs": recs, "wall_s": round(wall, 3),
           "span_s": round(span, 3) if span is not None else None,
           "stages": metrics_delta(m0, stage_metrics(url))}
    rec.update(extra or {})
    with open(results, "a") as f:
        f.write(json.dumps(rec) + "\n")
    ok = sum(r["status"] == "completed" for r in recs)
    rate = len(recs) / span if span else 0
    print("%-4s %-7s %d/%d completed  span %.2f s  wall %.2f s  %.2f images/s"
          % (label, kind, ok, len(recs), span or 0, wall, rate), flush=True)


def scan(url, results, label, refs):
    m0 = stage_metrics(url)
    t0 = time.monotonic()
    ids = [call("POST", url + "/scan-jobs", {"image": r, "force": True})["ID"] for r in refs]
    if len(set(ids)) != len(ids):
        sys.exit("two references answered the same job: was a job still active?")
    jobs = {}
    while len(jobs) < len(ids) or any(j["Status"] not in TERMINAL for j in jobs.values()):
        if time.monotonic() - t0 > TIMEOUT:
            sys.exit("scan round timed out")
        for i in ids:
            if i not in jobs or jobs[i]["Status"] not in TERMINAL:
                jobs[i] = call("GET", url + "/scan-jobs/" + i)
        if all(j["Status"] in TERMINAL for j in jobs.values()) and len(jobs) == len(ids):
            break
        time.sleep(POLL)
    wall = time.monotonic() - t0
    finish(url, results, label, "scan", [jobs[i] for i in ids], wall, m0)


def rematch(url, results, label, n):
    m0 = stage_metrics(url)
    t0 = time.monotonic()
    round_ = call("POST", url + "/rematch")
    batch = round_["BatchID"]
    if round_["Jobs"] != n:
        print("warning: the re-match batch has %d jobs, expected %d: %s" % (round_["Jobs"], n, round_["Problems"]))
    while True:
        if time.monotonic() - t0 > TIMEOUT:
            sys.exit("re-match round timed out")
        b = call("GET", url + "/scan-batches/" + batch)
        if b["State"] != "running":
            break
        time.sleep(POLL)
    wall = time.monotonic() - t0
    # The batch's jobs: the re-match jobs created since the batch (rounds never overlap).
    since = ts(b["CreatedAt"]) - 1e-3
    jobs, offset = [], 0
    while True:
        page = call("GET", "%s/scan-jobs?limit=500&offset=%d" % (url, offset))
        jobs += [j for j in page["Items"] if j.get("Kind") == "rematch" and ts(j["CreatedAt"]) >= since]
        if not page["HasMore"]:
            break
        offset += len(page["Items"])
    batch_counts = {k: b[k] for k in ("State", "Total", "Completed", "Cached", "Failed", "Cancelled")}
    if len(jobs) != b["Total"]:
        print("warning: found %d re-match jobs, the batch counts %d" % (len(jobs), b["Total"]))
    finish(url, results, label, "rematch", jobs, wall, m0, {"batch": batch, "batch_counts": batch_counts})


def report(results):
    rounds = [json.loads(l) for l in open(results) if l.strip()]
    bad = []
    # Findings: every completed job of one digest must give the same counts, scan or re-match.
    by_digest = {}
    for r in rounds:
        for j in r["jobs"]:
            if j["status"] != "completed":
                bad.append("%s %s %s: %s (%s)" % (r["label"], r["kind"], j["image"], j["status"], j["error"]))
                continue
            by_digest.setdefault(j["digest"], {}).setdefault(tuple(j["counts"]), []).append(
                "%s/%s" % (r["label"], r["kind"]))
    for d, variants in sorted(by_digest.items()):
        if len(variants) != 1:
            bad.append("%s: counts differ between rounds: %s" % (d, variants))
    print("\nfindings per image (critical/high/medium/low/unknown), the same in every round:")
    names = {j["digest"]: j["image"] for r in rounds for j in r["jobs"]}
    for d, variants in sorted(by_digest.items(), key=lambda kv: names[kv[0]]):
        for counts, where in variants.items():
            print("  %-28s %s  total %3d  (%d jobs)" % (names[d], "/".join(map(str, counts)),
                                                       sum(c or 0 for c in counts), len(where)))
    timed = [r for r in rounds if r["label"] != "warm"]
    print("\nround  kind     images  span s  wall s  images/s")
    for r in rounds:
        n = len(r["jobs"])
        print("%-6s %-8s %6d  %6.2f  %6.2f  %8.2f%s" % (r["label"], r["kind"], n, r["span_s"] or 0, r["wall_s"],
              n / r["span_s"] if r["span_s"] else 0, "  (not timed: first scans, inventories made)" if r["label"] == "warm" else ""))
    a = [len(r["jobs"]) / r["span_s"] for r in timed if r["kind"] == "scan" and r["span_s"]]
    b = [len(r["jobs"]) / r["span_s"] for r in timed if r["kind"] == "rematch" and r["span_s"]]
    pairs = [(x, y) for x, y in zip(a, b)]
    if pairs:
        ratios = [y / x for x, y in pairs]
        print("\nre-scan  (A) median %.3f images/s  (%s)" % (statistics.median(a), ", ".join("%.3f" % x for x in a)))
        print("re-match (B) median %.3f images/s  (%s)" % (statistics.median(b), ", ".join("%.3f" % x for x in b)))
        print("B/A speed ratio per pair: %s; median %.1fx" % (", ".join("%.1f" % r for r in ratios), statistics.median(ratios)))
        print("requirement (re-match at least 10x the re-scan rate): %s"
              % ("met" if statistics.median(ratios) >= 10 else "NOT met"))
    print("\nstage means per job (from GET /metrics), per round kind:")
    for kind in ("scan", "rematch"):
        agg = {}
        for r in timed:
            if r["kind"] != kind:
                continue
            for k, v in r["stages"].items():
                s = agg.setdefault(k, [0, 0.0])
                s[0] += v["count"]
                s[1] += v["sum_s"]
        for k in sorted(agg):
            print("  %-8s %-40s n=%3d  mean %.3f s" % (kind, k, agg[k][0], agg[k][1] / agg[k][0]))
    if bad:
        print("\nPROBLEMS:\n  " + "\n  ".join(bad))
        sys.exit(1)
    print("\nall %d jobs completed; every re-match gave the counts of its digest's scans" % sum(len(r["jobs"]) for r in rounds))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "scan":
        scan(args[0].rstrip("/"), args[1], args[2], args[3:])
    elif cmd == "rematch":
        rematch(args[0].rstrip("/"), args[1], args[2], int(args[3]))
    elif cmd == "report":
        report(args[0])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
