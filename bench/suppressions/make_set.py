"""The 1,000 suppressions of the suppressions benchmark (docs/benchmarks.md): the 5 most
widespread vulnerabilities of the loaded fleet and 995 random ones; a tenth narrowed to a
package, a tenth to an image-name glob. Usage: make_set.py DATABASE_URL OUT.json"""
import json
import random
import subprocess
import sys

db, out = sys.argv[1], sys.argv[2]


def q(sql):
    res = subprocess.run(["psql", db, "-AtF", "\t", "-c", sql], check=True,
                         capture_output=True, text=True).stdout
    return [line.split("\t") for line in res.splitlines() if line]


random.seed(42)
top5 = [r[0] for r in q("SELECT vulnerability_id FROM fleet_cves WHERE images > 0 "
                        "ORDER BY images DESC LIMIT 5")]
ids = list(top5)
for (v,) in q("SELECT vulnerability_id FROM fleet_cves WHERE images > 0 ORDER BY random() LIMIT 1000"):
    if len(ids) < 1000 and v not in ids:
        ids.append(v)
others = ids[5:]
random.shuffle(others)
by_package, by_image = set(others[:100]), set(others[100:200])
bodies = []
for v in ids:
    b = {"VulnerabilityID": v, "State": "not_affected", "Reason": "benchmark"}
    if v in by_package:
        b["Package"] = q(f"SELECT pkg_name FROM fleet_findings WHERE vulnerability_id = '{v}' "
                         "ORDER BY random() LIMIT 1")[0][0]
    if v in by_image:
        name = q("SELECT r.image_name FROM fleet_findings f JOIN fleet_refs r ON r.id = f.ref_id "
                 f"WHERE f.vulnerability_id = '{v}' ORDER BY random() LIMIT 1")[0][0]
        b["Image"] = name[: name.rfind("/") + 1] + "*" if "/" in name else name[:-2] + "*"
    bodies.append(b)
json.dump({"top5": top5, "bodies": bodies}, open(out, "w"), indent=1)
print(f"{len(bodies)} suppressions: {sum('Package' in b for b in bodies)} by package, "
      f"{sum('Image' in b for b in bodies)} by image glob")
