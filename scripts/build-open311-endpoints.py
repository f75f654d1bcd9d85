#!/usr/bin/env python3
"""Build boundaries/open311-endpoints.json from the two public Open311 server lists.

Maintainer tool only: it is never run by the tests or by CI, and the service never
reads the YAML files. It needs Python 3 with PyYAML; `--quality` also needs shapely.

Inputs (paths given as arguments, so the repository never depends on them):
  --servers  the open311.org list (open311/open311.github.io, data/servers.yml)
  --status   the Open311 Status monitor's endpoint list (cities.yml)
  --boundaries  the bundled boundary directory (default: boundaries/ beside this script)

Usage (from the repository root):
  python3 scripts/build-open311-endpoints.py \
      --servers /work/shared/data/open311/servers.yml \
      --status /work/shared/data/open311/open311status-cities.yml \
      --out boundaries/open311-endpoints.json
  python3 scripts/build-open311-endpoints.py --quality   # per-file counts for SOURCES.md

Rules (also described in boundaries/SOURCES.md):
  * Entries of both lists that name the same city are merged into one production
    endpoint; a servers.yml `test_url` becomes a second endpoint of type "test".
  * Every URL comes verbatim from one of the two files, except (a) the upstream fixes in
    UPSTREAM_FIXES and (b) a trailing "/" appended to base URLs that lack one, because
    GeoReport v2 paths (`services.json`, `requests.json`) are appended to the base URL.
  * When both lists give a base URL, the https one wins (the status monitor often has the
    https form of an http URL in servers.yml); on a tie servers.yml wins.
  * Each server is attached to the bundled feature whose boundary is that government's
    area; a server without such a feature is left out (printed, and listed in SOURCES.md).
  * `formats`: the status list's `format: 'xml'` means ["text/xml"]; when neither list
    says anything, the GeoReport v2 default ["application/json", "text/xml"] is used.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import unicodedata
from pathlib import Path

import yaml

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
DEFAULT_FORMATS = ["application/json", "text/xml"]
SRC_SERVERS = "open311.org servers.yml"
SRC_STATUS = "Open311 Status cities.yml"

# ISO 3166 alpha-3 (servers.yml `country`) -> alpha-2 (bundled features' `country`).
ISO3_TO_ISO2 = {
    "USA": "US", "CAN": "CA", "CHE": "CH", "DEU": "DE", "ESP": "ES",
    "FIN": "FI", "GRC": "GR", "PRT": "PT", "GBR": "GB",
}

# US state postal code -> FIPS, for the states that occur in the lists.
STATE_FIPS = {
    "AZ": "04", "CA": "06", "DC": "11", "IL": "17", "IN": "18", "MA": "25",
    "MD": "24", "MI": "26", "PA": "42", "VA": "51",
}

# Status-list keys whose `name` differs from the servers.yml name of the same city.
STATUS_NAME_ALIASES = {
    # servers.yml says "Washington D.C.", the status list "Washington, DC".
    "dc": "Washington D.C.",
}

# Known upstream errors (see shared data README), applied before anything else.
# Keyed by servers.yml name (or status key with a "status:" prefix); each value maps a
# field to (wrong value, corrected value). The corrected value None means "unknown".
UPSTREAM_FIXES = {
    # servers.yml copied Québec's jurisdiction_id into Bonn's entry. The status list has
    # no jurisdiction for Bonn either, so the real value is unknown: null.
    "Bonn, Deutschland": {"jurisdiction_id": ("ville.quebec.qc.ca", None)},
    # Misspelt jurisdiction (the city's domain is annaberg-buchholz.de); both lists.
    "Annaberg-Buchholz, Deutschland": {"jurisdiction_id": ("annberg-buchholz.de", "annaberg-buchholz.de")},
    "status:annaberg_buchholz": {"jurisdiction": ("annberg-buchholz.de", "annaberg-buchholz.de")},
    # Gilbert's base_url (and test_url) point at the requests.json resource, not the
    # API root that GeoReport v2 paths are appended to.
    "Gilbert, AZ": {
        "base_url": ("https://seeclickfix.com/open311/v2/655/requests.json",
                     "https://seeclickfix.com/open311/v2/655/"),
        "test_url": ("http://test.seeclickfix.com/open311/v2/655/requests.json",
                     "http://test.seeclickfix.com/open311/v2/655/"),
    },
}

# Manual overrides for the judgement calls. Keyed by servers.yml name (status-only
# entries by their status name). "jurisdiction": a bundled feature id, or None to leave
# the server out with "reason". "slug": the endpoint id's slug when the generic one is poor.
OVERRIDES = {
    # Consolidated city-county: the TIGER place 1150000 (Washington city) is the District;
    # us-county:11001 and the state-equivalent 11 cover the same area. Attach the place
    # only, so the endpoint is not duplicated.
    "Washington D.C.": {"jurisdiction": "us-place:1150000", "slug": "washington-dc"},
    # Consolidated city-county (us-county:06075). The place includes the bay waters and
    # the Farallon Islands, which the clipped cartographic county does not.
    "San Francisco, CA": {"jurisdiction": "us-place:0667000"},
    # Independent city (county-equivalent us-county:24510), not Baltimore County (24005).
    "Baltimore, MD": {"jurisdiction": "us-place:2404000"},
    # Consolidated city-county (us-county:42101).
    "Philadelphia, PA": {"jurisdiction": "us-place:4260000"},
    # Independent city (county-equivalent us-county:51510); status list only.
    "Alexandria, VA": {"jurisdiction": "us-place:5101000"},
    # The bundled Brookline is the Census CDP (a statistical area), not the Town of
    # Brookline, whose legal boundary is a county subdivision that is not bundled.
    "Brookline, MA": {"jurisdiction": None,
                      "reason": "only the Census CDP is bundled (us-place:2509210, a statistical "
                                "area); the legal Town of Brookline is a county subdivision that "
                                "is not in the bundled boundaries"},
    # The Royal Borough of Greenwich is a London borough. cities.geojson also holds the
    # geoBoundaries ADM3 "Greenwich" (the same district, ~45 of 47 km2 overlap); the
    # borough layer is the one that names the government, so use it and only it.
    "Greenwich, Britain": {"jurisdiction": "london-borough:Greenwich"},
    # "Köln / Cologne": the bundled geoBoundaries name is "Köln, Kreisfreie Stadt".
    "Köln / Cologne, Deutschland": {"slug": "koln-de"},
}


def slugify(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def fold(text: str) -> str:
    """Accent- and case-insensitive comparison key."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"\s+", " ", text.lower()).strip()


def blank_to_none(value):
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def with_slash(url: str | None) -> str | None:
    if url is None:
        return None
    return url if url.endswith("/") else url + "/"


def apply_fixes(key: str, entry: dict, fixes_done: list) -> None:
    for field, (wrong, right) in UPSTREAM_FIXES.get(key, {}).items():
        if entry.get(field) == wrong:
            entry[field] = right
            fixes_done.append(f"{key}: {field} {wrong!r} -> {right!r}")
        else:
            print(f"warning: fix for {key}.{field} no longer matches upstream "
                  f"({entry.get(field)!r}); review UPSTREAM_FIXES", file=sys.stderr)


def load_features(boundaries: Path, rel: str) -> list[dict]:
    with gzip.open(boundaries / rel, "rt", encoding="utf-8") as fh:
        return [f["properties"] for f in json.load(fh)["features"]]


def find_jurisdiction(name: str, country2: str | None, layers: dict) -> tuple[str | None, str]:
    """Search the bundled features for the government named `name` ("City, ST" etc)."""
    city = name.split(",")[0].split(" / ")[0].strip()
    region = name.split(",")[1].strip() if "," in name else ""
    if country2 == "US":
        fips = STATE_FIPS.get(region)
        hits = [p for p in layers["places"]
                if fold(p["name"]) == fold(city) and p.get("state_fips") == fips]
        if len(hits) == 1:
            if not hits[0]["kind"].startswith("Census place C"):
                return None, f"bundled place {hits[0]['id']} is not incorporated ({hits[0]['kind']})"
            return hits[0]["id"], "places.geojson: name + state FIPS"
        return None, f"no incorporated place named {city!r} in state {region} among the bundled places"
    hits = [p for p in layers["cities"]
            if fold(p["name"].split(",")[0]) == fold(city) and p.get("country") == country2]
    if len(hits) == 1:
        return hits[0]["id"], "cities.geojson: name + country"
    if country2 == "GB":
        hits = [p for p in layers["boroughs"] if fold(p["name"]) == fold(city)]
        if len(hits) == 1:
            return hits[0]["id"], "london-boroughs.geojson: name"
    return None, f"no bundled boundary for the city of {city} ({country2})"


def build(servers_path: Path, status_path: Path, boundaries: Path):
    servers = yaml.safe_load(servers_path.read_text(encoding="utf-8"))
    status = yaml.safe_load(status_path.read_text(encoding="utf-8"))
    layers = {
        "places": load_features(boundaries, "us/places.geojson.gz"),
        "cities": load_features(boundaries, "world/cities.geojson.gz"),
        "boroughs": load_features(boundaries, "world/london-boroughs.geojson.gz"),
    }
    all_ids = set()
    for rel in ["us/states.geojson.gz", "us/counties.geojson.gz", "us/places.geojson.gz",
                "us/special-districts-nyc.geojson.gz", "world/countries.geojson.gz",
                "world/admin1.geojson.gz", "world/cities.geojson.gz",
                "world/london-boroughs.geojson.gz"]:
        all_ids.update(p["id"] for p in load_features(boundaries, rel))

    fixes_done: list[str] = []
    by_name: dict[str, dict] = {}
    for s in servers:
        s = dict(s)
        apply_fixes(s["name"], s, fixes_done)
        by_name[s["name"]] = {"server": s, "status": None}
    for key, st in status.items():
        st = dict(st)
        apply_fixes("status:" + key, st, fixes_done)
        name = STATUS_NAME_ALIASES.get(key, st["name"])
        if name in by_name:
            by_name[name]["status"] = st
        else:
            by_name[name] = {"server": None, "status": st}

    endpoints, bundled, left_out = [], [], []
    for name, pair in by_name.items():
        s, st = pair["server"] or {}, pair["status"] or {}
        sources = [x for x, present in ((SRC_SERVERS, pair["server"]), (SRC_STATUS, pair["status"])) if present]
        override = OVERRIDES.get(name, {})
        country2 = ISO3_TO_ISO2.get(s.get("country", "")) if s else None
        if country2 is None and "," in name and name.split(",")[1].strip() in STATE_FIPS:
            country2 = "US"
        if "jurisdiction" in override:
            jid = override["jurisdiction"]
            how = "manual override"
            if jid is None:
                left_out.append({"name": name, "reason": override["reason"], "source": "; ".join(sources)})
                continue
        else:
            jid, how = find_jurisdiction(name, country2, layers)
            if jid is None:
                left_out.append({"name": name, "reason": how, "source": "; ".join(sources)})
                continue
        if jid not in all_ids:
            raise SystemExit(f"{name}: {jid} is not a bundled feature id")

        # Base URL: prefer https, tie -> servers.yml.
        candidates = [(blank_to_none(s.get("base_url")), SRC_SERVERS), (blank_to_none(st.get("endpoint")), SRC_STATUS)]
        candidates = [c for c in candidates if c[0]]
        candidates.sort(key=lambda c: (not c[0].startswith("https://"), c[1] != SRC_SERVERS))
        url, url_from = candidates[0]
        # Jurisdiction id: servers.yml, else the status list (after fixes).
        # (Bonn: servers.yml's copied value was nulled by the fix; the status list has none.)
        ojid = blank_to_none(s.get("jurisdiction_id")) or blank_to_none(st.get("jurisdiction"))
        if s and st and blank_to_none(st.get("jurisdiction")) not in (None, ojid):
            print(f"warning: {name}: jurisdiction differs between lists", file=sys.stderr)
        fmt = st.get("format")
        formats = {"xml": ["text/xml"], "json": ["application/json"]}[fmt] if fmt else DEFAULT_FORMATS
        slug = override.get("slug")
        if slug is None:
            region = name.split(",")[1].strip() if "," in name else ""
            suffix = region.lower() if re.fullmatch(r"[A-Z]{2}", region) else (country2 or "").lower()
            slug = f"{slugify(name.split(',')[0].split(' / ')[0])}-{suffix}"
        common = {
            "jurisdiction_id": jid,
            "specification": SPECIFICATION,
            "open311_jurisdiction_id": ojid,
            "key_service": blank_to_none(s.get("api_key_request")),
            "discovery_url": blank_to_none(s.get("api_discovery")),
            "docs_url": blank_to_none(s.get("api_documentation")),
            "terms_url": None,
            "contact": None,
        }
        prod = {"id": f"open311:{slug}", "name": s.get("name") or st["name"], "url": with_slash(url),
                "type": "production", "formats": formats, **common, "source": "; ".join(sources)}
        endpoints.append(prod)
        bundled.append({"id": prod["id"], "name": prod["name"], "jurisdiction_id": jid, "how": how,
                        "url_from": url_from, "formats_from": SRC_STATUS if fmt else "default"})
        test_url = blank_to_none(s.get("test_url"))
        if test_url:
            test = {"id": f"open311:{slug}:test", "name": f"{prod['name']} (test)", "url": with_slash(test_url),
                    "type": "test", "formats": DEFAULT_FORMATS, **common, "source": SRC_SERVERS}
            endpoints.append(test)
            bundled.append({"id": test["id"], "name": test["name"], "jurisdiction_id": jid, "how": how,
                            "url_from": SRC_SERVERS, "formats_from": "default"})

    key_order = ["id", "jurisdiction_id", "name", "specification", "url", "type", "formats",
                 "open311_jurisdiction_id", "key_service", "discovery_url", "docs_url",
                 "terms_url", "contact", "source"]
    endpoints = [{k: e[k] for k in key_order} for e in sorted(endpoints, key=lambda e: e["id"])]
    ids = [e["id"] for e in endpoints]
    if len(ids) != len(set(ids)):
        raise SystemExit("duplicate endpoint ids")
    urls = [(e["url"], e["type"]) for e in endpoints]
    if len(urls) != len(set(urls)):
        raise SystemExit("duplicate endpoint URLs")
    return endpoints, sorted(bundled, key=lambda b: b["id"]), sorted(left_out, key=lambda x: x["name"]), fixes_done


def quality(boundaries: Path) -> None:
    """Print per-file feature/vertex counts and OGC validity, for SOURCES.md."""
    import shapely
    from shapely.geometry import shape

    for rel in sorted(str(p.relative_to(boundaries)) for p in boundaries.glob("*/*.geojson.gz")):
        with gzip.open(boundaries / rel, "rt", encoding="utf-8") as fh:
            feats = json.load(fh)["features"]
        invalid, vertices, cw_exteriors, exteriors = 0, 0, 0, 0
        for f in feats:
            g = f["geometry"]
            polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
            for poly in polys:
                for i, ring in enumerate(poly):
                    vertices += len(ring)
                    if i == 0:
                        exteriors += 1
                        area2 = sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:]))
                        cw_exteriors += area2 < 0
            if not shapely.is_valid(shape(g)):
                invalid += 1
        print(f"{rel}: {len(feats)} features, {vertices} vertices, {invalid} OGC-invalid, "
              f"{cw_exteriors}/{exteriors} exterior rings clockwise")


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--servers", type=Path)
    ap.add_argument("--status", type=Path)
    ap.add_argument("--boundaries", type=Path, default=here / "boundaries")
    ap.add_argument("--out", type=Path, default=here / "boundaries" / "open311-endpoints.json")
    ap.add_argument("--quality", action="store_true", help="print boundary file statistics and exit")
    args = ap.parse_args()
    if args.quality:
        quality(args.boundaries)
        return
    if not args.servers or not args.status:
        ap.error("--servers and --status are required")
    endpoints, bundled, left_out, fixes = build(args.servers, args.status, args.boundaries)
    args.out.write_text(json.dumps(endpoints, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(endpoints)} endpoints to {args.out}")
    print("\nbundled:")
    for b in bundled:
        print(f"  | {b['name']} | `{b['id']}` | `{b['jurisdiction_id']}` | {b['how']} | url: {b['url_from']} | formats: {b['formats_from']} |")
    print("\nleft out:")
    for x in left_out:
        print(f"  | {x['name']} | {x['source']} | {x['reason']} |")
    print("\nupstream fixes applied:")
    for f in fixes:
        print("  " + f)


if __name__ == "__main__":
    main()
