"""Source maps end to end with real tools: esbuild minifies a small app, the real sentry-cli 3.x
injects debug ids and uploads the maps with a Lookout API token, the real @sentry/node SDK runs
the minified bundle and reports the error it throws, and the stored issue must point at the
original file, line, column, function and source line. Both ways maps are found are covered
(debug id; release + `~/` URL prefix), as are re-processing an event that arrived before its map
and the upload API's answers to bad input.

Needs `npm ci` in tests/sdk/clients/sourcemaps (sentry-cli, esbuild, @sentry/node)."""

import gzip
import hashlib
import http.client
import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request
import zipfile

import pytest

from harness import ADMIN_TOKEN

from sourcemap_tools import (CLIENT, SENTRY_CLI_2, assert_original_top_frame, build_app, cli,
                             newest_exception, run, upload_release)


@pytest.fixture()
def app(tmp_path):
    """The app built by esbuild into a temp dir: dist/static/app.min.js and its map."""
    return os.path.dirname(build_app(tmp_path))


def throw(server, app, release=None, root=None):
    """Runs the minified bundle under @sentry/node so it throws and reports the error."""
    run(["node", os.path.join(CLIENT, "throw.js"), server.dsn, os.path.join(app, "dist", "static", "app.min.js"),
         release or "", root or ""])


def only_issue(server):
    return server.wait_issues(lambda i: len(i) == 1 and i[0]["count"] == 1)[0]


def test_debug_ids_injected_and_uploaded_by_sentry_cli_resolve_node_frames(server, app):
    assert "sentry-cli 3." in cli(server, "--version").stdout
    dist = os.path.join(app, "dist")
    cli(server, "sourcemaps", "inject", dist)
    cli(server, "releases", "new", "--org", "default", "--project", "default", "shop@1.4.0")
    out = cli(server, "sourcemaps", "upload", "--org", "default", "--project", "default", dist)
    assert "~/static/app.min.js.map" in out.stdout
    cli(server, "releases", "finalize", "--org", "default", "shop@1.4.0")
    files = server.api("/api/v1/projects/1/source-maps")["items"]
    assert sorted((f["kind"], f["url"]) for f in files) == [
        ("minified_source", "~/static/app.min.js"), ("source_map", "~/static/app.min.js.map")]
    debug_ids = {f["debug_id"] for f in files}
    assert len(debug_ids) == 1 and None not in debug_ids
    # Uploading the same build again sends nothing new and stores nothing twice.
    again = cli(server, "sourcemaps", "upload", "--org", "default", "--project", "default", dist)
    assert "Nothing to upload" in again.stdout or "all files are on the server" in again.stdout
    assert len(server.api("/api/v1/projects/1/source-maps")["items"]) == 2
    info = server.api("/api/0/organizations/default/releases/shop@1.4.0/")
    assert info["version"] == "shop@1.4.0" and info["dateReleased"]

    throw(server, app)
    issue = only_issue(server)
    assert issue["title"] == "Error: cart is empty"
    assert issue["culprit"] == "src/cart in total"
    assert_original_top_frame(newest_exception(server, issue["id"]), "debug-id")


def test_release_upload_with_url_prefix_and_reprocess_for_an_event_that_came_first(server, app):
    # The event arrives before any map: its frames stay minified.
    throw(server, app, release="shop@2.0.0", root=os.path.join(app, "dist"))
    issue = only_issue(server)
    before = newest_exception(server, issue["id"])
    assert before["stacktrace"]["frames"][-1]["filename"] == "app:///static/app.min.js"
    assert "raw_stacktrace" not in before
    # The maps come later, by release and URL prefix (no debug ids).
    upload_release(server, "shop@2.0.0", os.path.join(app, "dist", "static"))
    files = server.api("/api/v1/projects/1/source-maps?release=shop@2.0.0")["items"]
    assert {f["url"] for f in files} == {"~/static/app.min.js", "~/static/app.min.js.map"}
    assert server.api("/api/v1/projects/1/source-maps?release=other")["items"] == []
    # Re-processing applies them to the stored event, and the issue's culprit follows.
    done = server.api(f"/api/v1/issues/{issue['id']}/reprocess", method="POST")
    assert done == {"events": 1, "updated": 1, "frames": 2}
    assert_original_top_frame(newest_exception(server, issue["id"]), "release")
    assert server.api(f"/api/v1/issues/{issue['id']}")["culprit"] == "src/cart in total"
    # A new event of that release resolves on arrival and joins the same issue.
    throw(server, app, release="shop@2.0.0", root=os.path.join(app, "dist"))
    server.wait_issues(lambda i: len(i) == 1 and i[0]["count"] == 2)
    assert_original_top_frame(newest_exception(server, issue["id"]), "release")


def test_legacy_release_files_upload_of_sentry_cli_2(server, app):
    """Older pipelines pinned to sentry-cli 2.x upload release files one by one."""
    assert "sentry-cli 2." in run([SENTRY_CLI_2, "--version"]).stdout
    legacy = [SENTRY_CLI_2, "--url", server.url,
              "--auth-token", ADMIN_TOKEN, "releases", "--org", "default", "--project", "default",
              "files", "shop@3.0.0", "upload-sourcemaps", "--url-prefix", "~/static",
              os.path.join(app, "dist", "static")]
    run(legacy)
    files = server.api("/api/v1/projects/1/source-maps?release=shop@3.0.0")["items"]
    assert sorted((f["kind"], f["url"], f["bundle_id"]) for f in files) == [
        ("minified_source", "~/static/app.min.js", None), ("source_map", "~/static/app.min.js.map", None)]
    # Uploading again replaces rather than duplicates.
    run(legacy)
    assert len(server.api("/api/v1/projects/1/source-maps?release=shop@3.0.0")["items"]) == 2
    throw(server, app, release="shop@3.0.0", root=os.path.join(app, "dist"))
    issue = only_issue(server)
    assert issue["culprit"] == "src/cart in total"
    assert_original_top_frame(newest_exception(server, issue["id"]), "release")


# ------------------------------------------------------------------ the upload API's bad input


def call(server, method, path, body=None, headers=None, token=ADMIN_TOKEN):
    h = {"Authorization": "Bearer " + token}
    h.update(headers or {})
    req = urllib.request.Request(server.url + path, method=method, data=body, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def multipart(fields):
    """A multipart body of (field, filename, bytes) parts, as curl builds sentry-cli's."""
    boundary = "lookoutboundary7e3f"
    out = io.BytesIO()
    for name, filename, data in fields:
        out.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n"
                  "Content-Type: application/octet-stream\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def bundle(files):
    """An artifact bundle as sentry-cli builds it: SYSB header, zip with manifest.json."""
    buf = io.BytesIO()
    buf.write(b"SYSB\x02\x00\x00\x00")
    with zipfile.ZipFile(buf, "a", zipfile.ZIP_DEFLATED) as z:
        manifest = {"files": {}, "org": "default", "project": "default"}
        for i, (ty, url, data) in enumerate(files):
            path = f"files/_/_/{i}"
            z.writestr(path, data)
            manifest["files"][path] = {"type": ty, "url": url, "headers": {}}
        z.writestr("manifest.json", json.dumps(manifest))
    return buf.getvalue()


def upload_and_assemble(server, data):
    """Uploads bytes as one gzip chunk and assembles them; returns the assemble answer."""
    sha = hashlib.sha1(data).hexdigest()
    body, h = multipart([("file_gzip", sha, gzip.compress(data))])
    status, _ = call(server, "POST", "/api/0/organizations/default/chunk-upload/", body, h)
    assert status == 200
    status, ans = call(server, "POST", "/api/0/organizations/default/artifactbundle/assemble/",
                       json.dumps({"checksum": sha, "chunks": [sha], "projects": ["default"]}).encode(),
                       {"Content-Type": "application/json"})
    assert status == 200
    return ans


def test_upload_api_refuses_bad_input_and_stores_nothing_half(server, app):
    chunk = b"some bundle bytes"
    right = hashlib.sha1(chunk).hexdigest()
    # A chunk whose bytes do not match its checksum: 400, and it is not stored.
    body, h = multipart([("file", right, chunk), ("file", "0" * 40, b"damaged in transit")])
    status, ans = call(server, "POST", "/api/0/organizations/default/chunk-upload/", body, h)
    assert status == 400 and "damaged" in ans["error"]["message"]
    # An assemble for chunks never sent names them as missing.
    status, ans = call(server, "POST", "/api/0/organizations/default/artifactbundle/assemble/",
                       json.dumps({"checksum": right, "chunks": [right], "projects": ["default"]}).encode(),
                       {"Content-Type": "application/json"})
    assert status == 200 and ans["state"] == "not_found" and ans["missingChunks"] == [right]
    # A 2 GB upload is refused from its Content-Length, before a byte of it is read.
    u = urllib.parse.urlparse(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.putrequest("POST", "/api/0/organizations/default/chunk-upload/")
    conn.putheader("Authorization", "Bearer " + ADMIN_TOKEN)
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(2 * 1024 ** 3))
    conn.endheaders()
    resp = conn.getresponse()
    assert resp.status == 413
    conn.close()
    # A bundle whose map is not JSON, and one whose mappings name a source that does not exist:
    # the assemble says why, and nothing of either is stored.
    not_json = bundle([("minified_source", "~/a.js", b"a()"), ("source_map", "~/a.js.map", b"{not json")])
    ans = upload_and_assemble(server, not_json)
    assert ans["state"] == "error" and "~/a.js.map" in ans["detail"] and "not JSON" in ans["detail"]
    out_of_range = bundle([("source_map", "~/b.js.map",
                            b'{"version":3,"sources":["b.js"],"names":[],"mappings":"ACAA"}')])
    ans = upload_and_assemble(server, out_of_range)
    assert ans["state"] == "error" and "source #1" in ans["detail"]
    assert server.api("/api/v1/projects/1/source-maps")["items"] == []
    # Release and dist are copied into every file's row: a long dist is 422 before anything is
    # read, a manifest's bad release makes the assemble fail with the reason.
    fine = bundle([("minified_source", "~/c.js", b"c()")])
    status, ans = call(server, "POST", "/api/0/organizations/default/artifactbundle/assemble/",
                       json.dumps({"checksum": hashlib.sha1(fine).hexdigest(), "chunks": [],
                                   "projects": ["default"], "dist": "d" * 65}).encode(),
                       {"Content-Type": "application/json"})
    assert status == 422 and "dist" in ans["error"]["message"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "a") as z:
        z.writestr("0", b"c()")
        z.writestr("manifest.json", json.dumps({"release": "r" * 300, "files": {
            "0": {"type": "minified_source", "url": "~/c.js"}}}))
    ans = upload_and_assemble(server, buf.getvalue())
    assert ans["state"] == "error" and "release" in ans["detail"], ans
    # A gzip chunk that inflates past the chunk size is too large, like a plain one.
    big = b"\0" * (8 * 1024 * 1024 + 1)
    body, h = multipart([("file_gzip", hashlib.sha1(big).hexdigest(), gzip.compress(big))])
    status, _ = call(server, "POST", "/api/0/organizations/default/chunk-upload/", body, h)
    assert status == 413
    # A legacy map with more mappings than a decoded map may hold: 413, not stored.
    huge = b'{"version":3,"sources":["a.js"],"names":[],"mappings":"' + b"AAAA," * 2_000_001 + b'"}'
    body, h = multipart([("file", "a.js.map", huge), ("name", "", b"~/a.js.map")])
    status, ans = call(server, "POST", "/api/0/projects/default/default/releases/r1/files/", body, h)
    assert status == 413 and "mappings" in ans["error"]["message"], ans
    body, h = multipart([("file", "a.js", b"a()"), ("name", "", b"~/a.js"), ("dist", "", b"d" * 65)])
    status, _ = call(server, "POST", "/api/0/projects/default/default/releases/r1/files/", body, h)
    assert status == 422
    assert server.api("/api/v1/projects/1/source-maps")["items"] == []
    # A viewer's token may not upload: 403 before the body is read, whatever the body is.
    viewer = server.api("/api/v1/tokens", method="POST", body={"name": "ro", "role": "viewer"})["token"]
    status, ans = call(server, "POST", "/api/0/organizations/default/chunk-upload/", b"not multipart",
                       {"Content-Type": "text/plain"}, token=viewer)
    assert status == 403 and ans["error"]["code"] == "forbidden"
    status, _ = call(server, "POST", "/api/0/organizations/default/artifactbundle/assemble/", b"{",
                     {"Content-Type": "application/json"}, token=viewer)
    assert status == 403
    # Another organization or project is not found; no token is 401.
    status, _ = call(server, "GET", "/api/0/organizations/other/chunk-upload/")
    assert status == 404
    status, _ = call(server, "GET", "/api/0/organizations/default/chunk-upload/", token="wrong")
    assert status == 401
    # Processing of other events is unaffected: a plain event still becomes an issue.
    throw(server, app)
    assert only_issue(server)["title"] == "Error: cart is empty"
