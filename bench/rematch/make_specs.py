#!/usr/bin/env python3
"""Image specs and an advisory file for bench/rematch.sh (docs: the header of that script).

    python3 bench/rematch/make_specs.py OUT_DIR [--images 8] [--layer-mb 100] [--prefix bench/rematch]

Writes OUT_DIR/image-01.json … image-NN.json (specs for the e2e kit's make-image.py) and
OUT_DIR/advisories.json (for its make-trivy-db.py), and prints one line per image:
`SPEC_PATH NAME:TAG`. Everything is deterministic (no clock, no randomness but seeded).

Each image: an alpine 3.22 OS layer of 320 packages (112 source packages with their
sub-packages), an application layer with a Cargo.lock (25 crates) and node_modules (30
packages), and a layer with one file of LAYER_MB incompressible bytes whose seed names the
image, so no two images share that layer. The advisories (41) match 22 of the source
packages (all their sub-packages) and 10 of the language packages; images differ in which
vulnerable packages are already upgraded, so their findings differ (82 to 86 each).
"""

import argparse
import hashlib
import json
import os

ALPINE = "3.22.2"
ALPINE_BUCKET = "alpine 3.22"

# Source packages (alpine `o:` origin) and their binary sub-packages. Suffixes are added to
# the origin name, "" being the origin itself; a name starting with "=" is used as is.
ORIGINS = [
    ("musl", ["", "-utils", "-dev"]), ("busybox", ["", "-binsh", "-openrc", "-suid", "=ssl_client"]),
    ("openssl", ["=libssl3", "=libcrypto3", "", "-dev", "-doc"]), ("zlib", ["", "-dev", "-static"]),
    ("apk-tools", ["", "-doc"]), ("ca-certificates", ["", "-bundle", "-doc"]),
    ("alpine-baselayout", ["", "-data"]), ("alpine-keys", [""]), ("scanelf", [""]),
    ("libc-utils", [""]), ("curl", ["", "=libcurl", "-dev", "-doc"]),
    ("nghttp2", ["-libs", "-dev", ""]), ("brotli", ["-libs", "", "-dev"]), ("c-ares", ["", "-dev"]),
    ("libidn2", ["", "-dev"]), ("libunistring", ["", "-dev"]), ("libpsl", ["", "-dev"]),
    ("zstd", ["-libs", "", "-dev"]), ("xz", ["-libs", "", "-dev"]), ("bzip2", ["", "=libbz2", "-dev"]),
    ("ncurses", ["-libs", "-terminfo-base", "-terminfo", "-dev"]), ("readline", ["", "-dev"]),
    ("bash", ["", "-doc", "-completion"]), ("coreutils", ["", "-env", "-fmt", "-sha512sum"]),
    ("findutils", [""]), ("grep", [""]), ("sed", [""]), ("gawk", [""]), ("tar", ["", "-doc"]),
    ("gzip", [""]), ("libacl", [""]), ("attr", ["=libattr", ""]), ("libcap", ["2", "-utils"]),
    ("util-linux", ["=libblkid", "=libmount", "=libuuid", "=libfdisk", "=libsmartcols", "-misc"]),
    ("e2fsprogs", ["-libs", "=libcom_err", ""]), ("expat", ["", "-dev"]), ("libffi", ["", "-dev"]),
    ("gdbm", ["", "-tools"]), ("sqlite", ["-libs", "", "-dev"]), ("mpdecimal", [""]),
    ("python3", ["", "-pyc", "-pycache-pyc0", "=pyc", "-dev"]), ("py3-pip", ["", "-pyc"]),
    ("py3-setuptools", ["", "-pyc"]), ("libgcc", [""]), ("gcc", ["=libstdc++", "=libgomp", "=libatomic"]),
    ("nodejs", ["", "-dev"]), ("npm", ["", "-doc"]), ("icu", ["-libs", "-data-en", "-data-full"]),
    ("ada", ["-libs"]), ("simdutf", [""]), ("libuv", ["", "-dev"]), ("git", ["", "-init-template", "-doc"]),
    ("pcre2", ["", "-dev"]), ("pcre", [""]), ("openssh", ["-client-common", "-client-default", "-keygen", "-keysign"]),
    ("libedit", [""]), ("libxml2", ["", "-utils"]), ("libxslt", [""]), ("libgpg-error", [""]),
    ("libgcrypt", [""]), ("gnutls", ["", "-utils"]), ("nettle", [""]), ("gmp", ["", "-dev"]),
    ("mpfr4", [""]), ("mpc1", [""]), ("libtasn1", [""]), ("p11-kit", ["", "-trust"]),
    ("krb5", ["-libs", "-conf"]), ("keyutils", ["-libs"]), ("cyrus-sasl", ["", "=libsasl"]),
    ("openldap", ["=libldap", "-clients"]), ("libevent", [""]), ("libbsd", [""]), ("libmd", [""]),
    ("libxcrypt", ["", "-dev"]), ("linux-pam", [""]), ("shadow", ["", "-login"]), ("tzdata", [""]),
    ("libintl", [""]), ("gettext", ["-libs", "-envsubst"]), ("libjpeg-turbo", [""]),
    ("libpng", ["", "-dev"]), ("freetype", [""]), ("fontconfig", [""]), ("giflib", [""]),
    ("libwebp", ["", "=libsharpyuv"]), ("tiff", [""]), ("lcms2", [""]), ("libsodium", [""]),
    ("yaml", [""]), ("jq", [""]), ("oniguruma", [""]), ("lz4", ["-libs", ""]), ("libarchive", [""]),
    ("libmagic", [""]), ("file", [""]), ("less", [""]), ("procps-ng", ["=libproc2", "=procps"]),
    ("su-exec", [""]), ("tini", [""]), ("dumb-init", [""]), ("libssh2", [""]), ("libverto", [""]),
    ("perl", ["", "-error", "-git"]), ("lua5.4", ["", "-libs"]), ("ruby", ["", "-libs"]),
    ("php83", ["", "-common", "-fpm", "-openssl", "-curl", "-mbstring", "-pdo"]),
    ("nginx", ["", "-mod-http-geoip", "-mod-stream"]), ("postgresql17", ["-client", "=libpq"]),
    ("mariadb-connector-c", [""]), ("libmaxminddb", ["", "-libs"]), ("pcsc-lite", ["-libs"]),
]
# Every source package also ships its documentation sub-package, as most of alpine's do.
ORIGINS = [(o, subs if "-doc" in subs else subs + ["-doc"]) for o, subs in ORIGINS]

LICENSES = ["MIT", "Apache-2.0", "BSD-3-Clause", "GPL-2.0-only", "LGPL-2.1-or-later", "Zlib", "ISC"]
SEVERITIES = ["CRITICAL", "HIGH", "HIGH", "MEDIUM", "MEDIUM", "MEDIUM", "LOW", "LOW"]
CVSS = {
    "CRITICAL": ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
    "HIGH": ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
    "MEDIUM": ("CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:U/C:L/I:L/A:L", 5.0),
    "LOW": ("CVSS:3.1/AV:L/AC:H/PR:L/UI:N/S:U/C:L/I:N/A:N", 2.5),
}

NPM = [
    "express", "body-parser", "cookie", "debug", "ms", "qs", "send", "serve-static", "lodash",
    "minimist", "semver", "axios", "follow-redirects", "form-data", "mime", "mime-types",
    "uuid", "yaml", "jsonwebtoken", "ws", "chalk", "commander", "dotenv", "path-to-regexp",
    "cross-spawn", "braces", "micromatch", "glob", "tar", "node-fetch",
]
CARGO = [
    "serde", "serde_json", "tokio", "hyper", "h2", "http", "bytes", "futures", "smallvec",
    "regex", "time", "chrono", "rand", "log", "tracing", "openssl", "rustls", "ring", "url",
    "idna", "base64", "libc", "once_cell", "anyhow", "thiserror",
]


def h(*parts):
    return int(hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest(), 16)


def base_version(origin):
    x = h("ver", origin)
    return "%d.%d.%d" % (1 + x % 9, (x >> 8) % 20, (x >> 16) % 12), 1 + (x >> 24) % 5


def apk_version(origin, bumped):
    v, r = base_version(origin)
    return "%s-r%d" % (v, r + (1 if bumped else 0))


def lang_version(name, bumped):
    x = h("lang", name)
    major, minor, patch = 1 + x % 4, (x >> 8) % 30, (x >> 16) % 20
    return "%d.%d.%d" % (major, minor, patch + (1 if bumped else 0))


# Vulnerable origins: every 5th origin (22 of 112) has a fixed advisory at base+1 (images with
# the base version are affected); every 3rd of those also an unfixed one (always reported).
VULN_ORIGINS = [o for i, (o, _) in enumerate(ORIGINS) if i % 5 == 2]
VULN_NPM = NPM[::6]      # 5 packages
VULN_CARGO = CARGO[::6]  # 5 crates


def image_spec(i, layer_bytes, prefix):
    """Image i (1-based). Image i has upgraded (not affected by the fixed advisory) the
    vulnerable packages whose index k has (k + i) % 4 == 0, so counts differ per image."""
    bumped = lambda k: (k + i) % 4 == 0
    vuln_idx = {o: k for k, o in enumerate(VULN_ORIGINS)}
    packages = []
    for j, (origin, subs) in enumerate(ORIGINS):
        version = apk_version(origin, origin in vuln_idx and bumped(vuln_idx[origin]))
        for s in subs:
            name = s[1:] if s.startswith("=") else origin + s
            packages.append({
                "name": name, "version": version, "origin": origin,
                "license": LICENSES[h("lic", origin) % len(LICENSES)],
                "files": ["usr/share/e2e/%s.txt" % name] if j % 3 == 0 else [],
            })
    vuln_lang = {n: k for k, n in enumerate(VULN_NPM + VULN_CARGO)}
    lv = lambda n: lang_version(n, n in vuln_lang and bumped(vuln_lang[n] + 1))
    cargo = [{"name": "bench-app", "version": "0.%d.0" % i, "local": True, "dependencies": CARGO}]
    cargo += [{"name": c, "version": lv(c)} for c in CARGO]
    spec = {
        "_comment": "bench/rematch/make_specs.py: image %d" % i,
        "name": "%s/app-%02d" % (prefix, i),
        "tag": "1.0",
        "architecture": "amd64",
        "os": {"family": "alpine", "version": ALPINE},
        "packages": packages,
        "app": {
            "cargo": {"dir": "app", "packages": cargo,
                      "root": {"name": "bench-app", "version": "0.%d.0" % i, "dependencies": CARGO}},
            "npm": [{"name": p, "version": lv(p), "license": "MIT"} for p in NPM],
            "files": {"app/README.txt": "rematch benchmark image %d\n" % i},
        },
        "extra_layers": [
            {"opt/data/blob-%02d.bin" % i: {"random_bytes": layer_bytes, "seed": "%s/app-%02d" % (prefix, i)}},
        ],
    }
    return spec


def advisories():
    out = []
    n = 0

    def add(source, package, sev, **kw):
        nonlocal n
        n += 1
        vector, score = CVSS[sev]
        a = {"id": "CVE-2099-%04d" % (5000 + n), "source": source, "package": package, "severity": sev,
             "cvss": {"v3_vector": vector, "v3_score": score},
             "title": "%s: synthetic issue %d (rematch benchmark)" % (package, n),
             "description": "Synthetic advisory of bench/rematch/make_specs.py.",
             "references": ["https://example.invalid/advisories/%d" % n],
             "published": "2099-03-01T00:00:00Z"}
        a.update(kw)
        out.append(a)

    for k, o in enumerate(VULN_ORIGINS):
        add(ALPINE_BUCKET, o, SEVERITIES[k % len(SEVERITIES)], fixed_version=apk_version(o, True))
        if k % 3 == 0:
            add(ALPINE_BUCKET, o, SEVERITIES[(k + 3) % len(SEVERITIES)], status="affected")
    # A fixed advisory no image is affected by (already below every installed version).
    add(ALPINE_BUCKET, ORIGINS[0][0], "HIGH", fixed_version="0.0.1-r0")
    for k, p in enumerate(VULN_NPM + VULN_CARGO):
        eco = "npm" if p in VULN_NPM else "cargo"
        fixed = lang_version(p, True)
        add(eco, p, SEVERITIES[k % len(SEVERITIES)],
            vulnerable_versions=["<%s" % fixed], patched_versions=[fixed])
    return {"advisories": out}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--layer-mb", type=float, default=100, help="size of each image's random layer, MiB")
    ap.add_argument("--prefix", default="bench/rematch", help="repository prefix of the image names")
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    layer_bytes = int(args.layer_mb * 1024 * 1024)
    for i in range(1, args.images + 1):
        spec = image_spec(i, layer_bytes, args.prefix)
        path = os.path.join(args.out_dir, "image-%02d.json" % i)
        with open(path, "w") as f:
            json.dump(spec, f, indent=1)
        print("%s %s:%s" % (path, spec["name"], spec["tag"]))
    with open(os.path.join(args.out_dir, "advisories.json"), "w") as f:
        json.dump(advisories(), f, indent=1)


if __name__ == "__main__":
    main()
