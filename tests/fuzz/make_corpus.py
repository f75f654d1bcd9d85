#!/usr/bin/env python3
"""Regenerates the seed corpus in tests/fuzz/corpus/ (deterministic).

Each directory is one fuzz target; tests/fuzz_parsers.rs replays every file
through its parser (and the HTTP router), and the cargo-fuzz targets in
fuzz/ use the same directories as their starting corpus.
"""
import base64, gzip, io, json, os, struct, zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

square = '{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}'
deep_arr = "[" * 10000 + "]" * 10000
# geometry
put("geometry", "square.json", square)
put("geometry", "multipolygon_hole.json", '{"type":"MultiPolygon","coordinates":[[[[0,0],[4,0],[4,4],[0,4],[0,0]],[[1,1],[1,2],[2,2],[2,1],[1,1]]],[[[10,10],[11,10],[11,11],[10,10]]]]}')
put("geometry", "bowtie.json", '{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}')
put("geometry", "huge_numbers.json", '{"type":"Polygon","coordinates":[[[1e308,0],[1e999,1],[-1e999,1],[0,0]]]}')
put("geometry", "out_of_range.json", '{"type":"Polygon","coordinates":[[[-181,0],[180.0000001,0],[0,90.5],[-181,0]]]}')
put("geometry", "short_positions.json", '{"type":"Polygon","coordinates":[[[0],[],[1,2,3,4],[0]]]}')
put("geometry", "wrong_types.json", '{"type":"Polygon","coordinates":[["a",{"b":1}],null,true]}')
put("geometry", "empty.json", '{"type":"MultiPolygon","coordinates":[]}')
put("geometry", "empty_rings.json", '{"type":"MultiPolygon","coordinates":[[[]],[],[[],[]]]}')
put("geometry", "collapsed_line.json", '{"type":"Polygon","coordinates":[[[0,0],[1,1],[0,0],[1,1],[0,0]]]}')
put("geometry", "antimeridian_pole.json", '{"type":"Polygon","coordinates":[[[-180,80],[180,80],[180,90],[-180,90],[-180,80]]]}')
put("geometry", "tiny.json", '{"type":"Polygon","coordinates":[[[10,10],[10.0000001,10],[10.0000001,10.0000001],[10,10]]]}')
put("geometry", "deep_nesting.json", '{"type":"Polygon","coordinates":' + deep_arr + "}")
put("geometry", "point.json", '{"type":"Point","coordinates":[0,0]}')
put("geometry", "geometry_collection.json", '{"type":"GeometryCollection","geometries":[' + square + "]}")
# import
fc = '{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"id":"fuzz:1","name":"Fuzz","tier":"place"},"geometry":' + square + "}]}"
put("import", "tiny_feature_collection.geojson", fc)
put("import", "tiny_feature_collection.geojson.gz", gzip.compress(fc.encode(), mtime=0))
put("import", "single_feature.geojson", '{"type":"Feature","properties":{"id":"fuzz:2","name":"x"},"geometry":' + square + "}")
put("import", "null_geometry.geojson", '{"type":"FeatureCollection","features":[{"type":"Feature","properties":null,"geometry":null}]}')
put("import", "bom.geojson", b"\xef\xbb\xbf" + fc.encode())
put("import", "truncated.geojson.gz", gzip.compress(fc.encode(), mtime=0)[:30])
put("import", "gzip_of_gzip.gz", gzip.compress(gzip.compress(b"{}", mtime=0), mtime=0))
put("import", "gzip_bomb_small.gz", gzip.compress(b" " * (8 << 20), mtime=0))
put("import", "deep_nesting.json", '{"type":"FeatureCollection","features":' + deep_arr + "}")
put("import", "export_header_garbage.geojson", '{"type":"FeatureCollection","geowebdns_export":{"format":99,"jurisdictions":-1},"features":[{"type":"Feature","properties":{"endpoints":[{}]},"geometry":"x"}]}')
put("import", "export_endpoints_no_header.geojson", '{"type":"FeatureCollection","features":[{"type":"Feature","id":1e999,"properties":{"id":"x","endpoints":[null,1,"a"]},"geometry":' + square + "}]}")
put("import", "empty", b"")
put("import", "zip_empty", b"PK\x05\x06" + b"\x00" * 18)
def shp_header(shape_type, file_len_words):
    return struct.pack(">i", 9994) + b"\x00" * 20 + struct.pack(">i", file_len_words) + struct.pack("<ii", 1000, shape_type) + b"\x00" * 64
bad_shp = shp_header(5, 1 << 30) + struct.pack(">ii", 1, 1 << 28) + struct.pack("<i", 5) + b"\xff" * 40
dbf = b"\x03" + b"\x00" * 3 + struct.pack("<IHH", 1, 33 + 32, 11) + b"\x00" * 20 + b"ID".ljust(11, b"\x00") + b"C" + b"\x00" * 4 + bytes([10, 0]) + b"\x00" * 14 + b"\r" + b" " + b"fuzz".ljust(10) + b"\x1a"
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    for name, data in [("x.shp", bad_shp), ("x.dbf", dbf), ("x.shx", b"")]:
        info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
        z.writestr(info, data)
put("import", "hostile_shapefile.zip", buf.getvalue())
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    info = zipfile.ZipInfo("../../evil.shp", date_time=(2020, 1, 1, 0, 0, 0))
    z.writestr(info, shp_header(5, 50))
put("import", "zip_slip_no_dbf.zip", buf.getvalue())
# query strings
for name, q in {
    "resolve_ok": "lat=40.7128&lon=-74.006",
    "repeated_keys": "lat=1&lat=2&lon=3&lon=4&tier=state&tier=county",
    "percent_escapes": "lat=%34%30&lon=%zz&tier=%E2%82&x=%00",
    "huge_numbers": "lat=1e999&lon=-1e999&limit=18446744073709551616",
    "nan_inf": "lat=NaN&lon=inf&within=-0&nearest=maybe",
    "empty_values": "lat=&lon=&tier=&=&&&=x",
    "long_and_lon": "lat=0&lon=0&long=0",
    "plus_spaces": "lat=+40.7&lon=-74+&q=a+b%20c",
    "since_garbage": "since=99999999999999999999&after=-1&type=%C0%80",
    "tier_list": "tier=country,state,,county,place,special_district,other,planet",
}.items():
    put("query", name, q)
# batch bodies
put("batch", "ok.json", '{"points":[{"lat":40.7128,"lon":-74.006,"id":"nyc"},{"lat":51.5,"long":-0.12}]}')
put("batch", "wrong_types.json", '{"points":[{"lat":"x","lon":[]},null,1],"tier":7}')
put("batch", "unknown_field.json", '{"points":[],"evil":true}')
put("batch", "huge_numbers.json", '{"points":[{"lat":1e999,"lon":1e308}]}')
put("batch", "deep_id.json", '{"points":[{"lat":0,"lon":0,"id":' + "[" * 200 + "]" * 200 + "}]}")
put("batch", "not_json", "lat=1&lon=2")
put("batch", "deep_nesting.json", deep_arr)
put("batch", "empty", "")
# JWTs (none signed by the test's key)
now = 1_900_000_000
claims = json.dumps({"sub": "mallory", "iat": now - 10, "exp": now, "jti": "j", "scopes": ["admin"]}).encode()
put("jwt", "alg_none", b64(b'{"alg":"none","typ":"JWT"}') + "." + b64(claims) + ".")
put("jwt", "alg_none_upper", b64(b'{"alg":"None"}') + "." + b64(claims) + "." + b64(b"x"))
put("jwt", "hs256_header", b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(claims) + "." + b64(b"\x00" * 32))
put("jwt", "eddsa_bad_signature", b64(b'{"alg":"EdDSA","typ":"JWT"}') + "." + b64(claims) + "." + b64(b"\x00" * 64))
put("jwt", "eddsa_short_signature", b64(b'{"alg":"EdDSA","typ":"JWT"}') + "." + b64(claims) + "." + b64(b"\x01"))
put("jwt", "eddsa_long_signature", b64(b'{"alg":"EdDSA","typ":"JWT"}') + "." + b64(claims) + "." + b64(b"\x01" * 4096))
put("jwt", "two_segments", b64(b'{"alg":"EdDSA"}') + "." + b64(claims))
put("jwt", "four_segments", "a.b.c.d")
put("jwt", "not_base64", "%%%.***.!!!")
put("jwt", "jwk_header", b64(b'{"alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"AAAA"},"kid":"../../etc/passwd"}') + "." + b64(claims) + "." + b64(b"s" * 64))
put("jwt", "huge_exp", b64(b'{"alg":"EdDSA"}') + "." + b64(b'{"sub":"a","iat":0,"exp":1e999,"jti":"j","scopes":["admin"]}') + "." + b64(b"s" * 64))
# LoST
find = '''<?xml version="1.0" encoding="UTF-8"?>
<findService xmlns="urn:ietf:params:xml:ns:lost1" xmlns:p2="http://www.opengis.net/gml" serviceBoundary="value" recursive="true">
  <location id="6020688f1ce1896d" profile="geodetic-2d">
    <p2:Point id="point1" srsName="urn:ogc:def:crs:EPSG::4326"><p2:pos>37.775 -122.422</p2:pos></p2:Point>
  </location>
  <service>urn:service:open311</service>
</findService>'''
put("lost", "find_service.xml", find)
put("lost", "circle.xml", '''<findService xmlns="urn:ietf:params:xml:ns:lost1" xmlns:gml="http://www.opengis.net/gml" xmlns:gs="http://www.opengis.net/pidflo/1.0">
  <location id="c1" profile="geodetic-2d"><gs:Circle srsName="urn:ogc:def:crs:EPSG::4326"><gml:pos>40.7 -74.0</gml:pos><gs:radius uom="urn:ogc:def:uom:EPSG::9001">1e999</gs:radius></gs:Circle></location>
  <service>urn:service:open311</service></findService>''')
put("lost", "list_services_by_location.xml", '<listServicesByLocation xmlns="urn:ietf:params:xml:ns:lost1" xmlns:p2="http://www.opengis.net/gml" recursive="true"><location id="d" profile="geodetic-2d"><p2:Point srsName="urn:ogc:def:crs:EPSG::4326"><p2:pos>91 181</p2:pos></p2:Point></location></listServicesByLocation>')
put("lost", "get_service_boundary.xml", '<getServiceBoundary xmlns="urn:ietf:params:xml:ns:lost1" key="../../etc/passwd"/>')
put("lost", "billion_laughs.xml", '''<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<findService xmlns="urn:ietf:params:xml:ns:lost1"><service>&lol9;</service></findService>''')
put("lost", "xxe.xml", '<?xml version="1.0"?><!DOCTYPE f [<!ENTITY x SYSTEM "file:///etc/passwd">]><findService xmlns="urn:ietf:params:xml:ns:lost1"><service>&x;</service></findService>')
put("lost", "many_nodes.xml", '<listServices xmlns="urn:ietf:params:xml:ns:lost1">' + "<x/>" * 20000 + "</listServices>")
put("lost", "deep.xml", '<listServices xmlns="urn:ietf:params:xml:ns:lost1">' + "<a>" * 3000 + "</a>" * 3000 + "</listServices>")
put("lost", "wrong_namespace.xml", '<findService xmlns="urn:ietf:params:xml:ns:lost2"><service>urn:service:sos</service></findService>')
put("lost", "not_xml", "{\"findService\":1}")
put("lost", "invalid_utf8", b"<findService xmlns=\"urn:ietf:params:xml:ns:lost1\">\xff\xfe</findService>")
# harvested documents
put("harvest", "services.json", '''[
  {"service_code":"001","service_name":"Pothole","description":"Holes in the street","metadata":false,"type":"realtime","keywords":"road, street","group":"Streets"},
  {"service_code":"002","service_name":"Graffiti","metadata":"true","type":"batch","keywords":"paint","group":"Sanitation"},
  {"service_code":"bad"}
]''')
put("harvest", "services.xml", '<?xml version="1.0" encoding="utf-8"?><services><service><service_code>10</service_code><service_name>Streetlight out</service_name><metadata>false</metadata><type>realtime</type><keywords>light, lamp</keywords><group>Lights</group></service></services>')
put("harvest", "discovery.json", '{"changeset":"2026-01-02T03:04:05Z","contact":"x","endpoints":[{"specification":"http://wiki.open311.org/GeoReport_v2","url":"http://127.0.0.1/x/","changeset":"2026-01-02T03:04:05Z","type":"production","formats":["application/json"]}]}')
put("harvest", "discovery.xml", '<discovery><changeset>2026-01-02</changeset><endpoints><endpoint><specification>http://wiki.open311.org/GeoReport_v2</specification><url>javascript:alert(1)</url><formats><format>text/xml</format></formats></endpoint></endpoints></discovery>')
put("harvest", "billion_laughs.xml", open(os.path.join(ROOT, "lost", "billion_laughs.xml")).read().replace("findService", "services"))
put("harvest", "deep.json", deep_arr)
put("harvest", "huge_strings.json", json.dumps([{"service_code": "x" * 100000, "service_name": "\u0000\u202e" * 1000}]))
put("harvest", "wrong_types.json", '[{"service_code":1,"service_name":null,"metadata":"maybe","keywords":[1,2],"type":{}}]')
put("harvest", "utf16.json", "[]".encode("utf-16"))
# admin bodies
put("admin", "feature_ok.json", '{"type":"Feature","properties":{"id":"fuzz:admin","name":"Fuzz","tier":"place"},"geometry":' + square + "}")
put("admin", "feature_bowtie.json", '{"type":"Feature","properties":{"id":"fuzz:bowtie","name":"B","tier":"place"},"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,1],[1,0],[0,1],[0,0]]]}}')
put("admin", "feature_hostile_strings.json", json.dumps({"type": "Feature", "properties": {"id": "'; drop table jurisdictions; --", "name": "\u0000<script>", "tier": "planet", "parent": "x" * 10000}, "geometry": json.loads(square)}))
put("admin", "patch_boundary_huge.json", '{"boundary":{"type":"Polygon","coordinates":[[[1e308,0],[0,1e308],[0,0],[1e308,0]]]}}')
put("admin", "endpoint_bad_url.json", '{"url":"http://[::1]:99999/","formats":["text/html; x=\\"y\\""],"type":"nonsense"}')
put("admin", "deep.json", deep_arr)
