"""Create every suppression of SET.json (their ids kept in SET.ids.json), or delete them.
Usage: switch.py URL SET.json create|delete"""
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
import urllib.request

url, path, cmd = sys.argv[1], sys.argv[2], sys.argv[3]
ids_path = path.replace(".json", ".ids.json")


def call(method, uri, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + uri, data=data, method=method,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status, r.read()


t = time.time()
if cmd == "create":
    def post(b):
        status, body = call("POST", "/suppressions", b)
        assert status == 201, body
        return json.loads(body)["ID"]
    with ThreadPoolExecutor(4) as ex:
        ids = list(ex.map(post, json.load(open(path))["bodies"]))
    json.dump(ids, open(ids_path, "w"))
else:
    ids = json.load(open(ids_path))
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda i: call("DELETE", f"/suppressions/{i}"), ids))
    json.dump([], open(ids_path, "w"))
active = json.loads(call("GET", "/suppressions?active=true")[1])["Count"]
print(f"{cmd}: {len(ids)} in {time.time() - t:.1f} s; active now {active}")
