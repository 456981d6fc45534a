"""The OpenAPI document the real server serves at /api/v1/openapi.json: valid, typed, and true.

* valid: openapi-spec-validator accepts it (that includes every `{param}` of a path being
  declared on each of its operations, which code generators and Swagger UI need);
* typed: no response body is a bare `object` (a schema with neither properties nor
  `additionalProperties`) except the few in BARE_OBJECT_ALLOWED, each with its reason;
* true: real answers of the API, for resources created through the API, validate against the
  schema the document gives for their status; objects are checked closed (a field the server
  sends but the schema does not list fails), so the document cannot drift from the handlers.
"""

import copy
import json
import re
import urllib.error
import urllib.request

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from harness import ADMIN_TOKEN

# (method, path, status) whose JSON body is deliberately free-form, with the reason.
BARE_OBJECT_ALLOWED = {}

DOC_URI = "urn:lookout:openapi"
STRICT_URI = "urn:lookout:openapi-closed"


def call(server, path, method="GET", body=None):
    """(status, decoded JSON or None) of one API call with the admin token."""
    req = urllib.request.Request(
        server.url + path, method=method,
        headers={"Authorization": "Bearer " + ADMIN_TOKEN, "Content-Type": "application/json"},
        data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            raw, status = r.read(), r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    return status, (json.loads(raw) if raw else None)


# (method, concrete path, status, answer) of every seeding call, checked against the document too.
ANSWERS = []


def ok(server, path, body, method="POST"):
    status, v = call(server, path, method, body)
    assert status in (200, 201), f"{method} {path}: {status} {v}"
    ANSWERS.append((method.lower(), path, status, v))
    return v


def template_of(doc, method, url):
    """The document's path template that `url` fills in."""
    for path, item in doc["paths"].items():
        if method in item and re.fullmatch(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)), url):
            return path
    raise AssertionError(f"{method.upper()} {url} is not in the document")


def operations(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                yield path, method, op


def is_bare_object(schema):
    return (isinstance(schema, dict) and schema.get("type") == "object"
            and "properties" not in schema and "additionalProperties" not in schema
            and "$ref" not in schema and not any(k in schema for k in ("allOf", "oneOf", "anyOf")))


def merged(node, schemas):
    """A copy where each `allOf` of objects (what `#[serde(flatten)]` generates) is one object
    schema with all their properties, so that closing it below does not close each part against
    the others' fields. A part that is a bare object, or allows other properties, keeps the
    merged schema open."""
    if isinstance(node, list):
        return [merged(v, schemas) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: merged(v, schemas) for k, v in node.items()}
    if "allOf" not in node:
        return node
    parts = []
    for p in node["allOf"]:
        if "$ref" in p:
            p = merged(schemas[p["$ref"].rsplit("/", 1)[1]], schemas)
        parts.append(p)
    out = {k: v for k, v in node.items() if k != "allOf"}
    out["type"], out["properties"], out["required"] = "object", {}, []
    for p in parts:
        out["properties"].update(p.get("properties", {}))
        out["required"] += p.get("required", [])
        extra = p.get("additionalProperties", False if "properties" in p else True)
        if extra is not False:
            out["additionalProperties"] = extra
    return out


def closed(node):
    """A copy of the document where every object schema that lists properties and says nothing
    about others refuses them: a field the server sends must be documented."""
    if isinstance(node, dict):
        out = {k: closed(v) for k, v in node.items()}
        if "properties" in out and isinstance(out["properties"], dict) \
                and "additionalProperties" not in out and "unevaluatedProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(node, list):
        return [closed(v) for v in node]
    return node


def pointer(*parts):
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@pytest.fixture(scope="module")
def api():
    from harness import Server
    s = Server()
    try:
        status, doc = call(s, "/api/v1/openapi.json")
        assert status == 200
        yield s, doc
    finally:
        s.stop()


def test_the_document_is_valid_openapi(api):
    _, doc = api
    validate(doc)


def test_every_path_parameter_is_declared(api):
    _, doc = api
    missing = []
    for path, method, op in operations(doc):
        declared = {p["name"] for p in op.get("parameters", []) if p.get("in") == "path"}
        for name in re.findall(r"\{(\w+)\}", path):
            if name not in declared:
                missing.append(f"{method.upper()} {path}: {name}")
    assert not missing, "path parameters not declared:\n" + "\n".join(missing)


def test_no_response_is_a_bare_object(api):
    _, doc = api
    bare = []
    for path, method, op in operations(doc):
        for status, resp in op.get("responses", {}).items():
            schema = resp.get("content", {}).get("application/json", {}).get("schema")
            if schema is None:
                continue
            if schema.get("type") == "array":
                schema = schema.get("items", {})
            key = (method.upper(), path, status)
            if is_bare_object(schema) and key not in BARE_OBJECT_ALLOWED:
                bare.append(" ".join(key))
    assert not bare, f"{len(bare)} responses are a bare object:\n" + "\n".join(bare)


def seed(s):
    """Creates one of each resource clients use most; returns the ids to put in paths."""
    monitor = ok(s, "/api/v1/monitors", {"name": "web", "type": "http", "url": "http://127.0.0.1:9/",
                                          "interval_seconds": 3600})
    window = ok(s, "/api/v1/maintenance-windows", {
        "title": "Sunday", "monitor_ids": [monitor["id"]],
        "recurrence": {"crontab": "0 2 * * SUN", "duration_minutes": 60, "timezone": "UTC"}})
    ok(s, "/api/v1/maintenance-windows", {
        "title": "Once", "monitor_ids": [monitor["id"]],
        "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-01T01:00:00Z"})
    # A window in progress, ended early.
    running = ok(s, "/api/v1/maintenance-windows", {
        "title": "Now", "monitor_ids": [monitor["id"]],
        "starts_at": "2020-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z"})
    ok(s, f"/api/v1/maintenance-windows/{running['id']}/end", {})
    page = ok(s, "/api/v1/status-pages", {"slug": "acme", "title": "Acme", "monitor_ids": [monitor["id"]]})
    sp_incident = ok(s, f"/api/v1/status-pages/{page['id']}/incidents",
                     {"title": "Slow", "status": "investigating", "body": "Looking"})
    user = ok(s, "/api/v1/users", {"email": "bob@example.com", "password": "correct horse battery",
                                   "role": "member"})
    channel = ok(s, "/api/v1/channels", {"name": "ops", "type": "webhook",
                                         "url": "http://127.0.0.1:9/hook", "secret": "s3cret"})
    schedule = ok(s, "/api/v1/schedules", {
        "name": "Primary", "time_zone": "UTC", "schedule_layers": [{
            "start": "2026-01-01T00:00:00Z", "rotation_virtual_start": "2026-01-01T00:00:00Z",
            "rotation_turn_length_seconds": 86400, "users": [user["id"]]}]})
    override = ok(s, f"/api/v1/schedules/{schedule['id']}/overrides", {
        "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z", "user": user["id"]})
    ep = ok(s, "/api/v1/escalation-policies", {"name": "ops", "escalation_rules": [
        {"escalation_delay_in_minutes": 10, "targets": [{"type": "channel", "id": channel["id"]}]}]})
    policy = ok(s, "/api/v1/policies", {"name": "Backups", "severity": "critical",
                                        "conditions": [{"source": "backups", "events": ["failed"]}]})
    integration = ok(s, "/api/v1/integrations", {"name": "pd", "type": "pagerduty",
                                                 "escalation_policy_id": ep["id"]})
    runbook = ok(s, "/api/v1/runbooks", {"name": "Disk", "body": "# Disk\n\n- [ ] Check `df -h`\n"})
    incident = ok(s, "/api/v1/incidents", {"title": "db down", "severity": "critical",
                                           "escalation_policy_id": ep["id"]})
    ok(s, f"/api/v1/incidents/{incident['id']}/notes", {"message": "looking"})
    token = ok(s, "/api/v1/tokens", {"name": "ci", "role": "member"})
    team = ok(s, "/api/v1/teams", {"name": "Payments", "escalation_policy_id": ep["id"]})
    return {
        "/api/v1/teams/{id}": team["id"],
        "/api/v1/monitors/{id}": monitor["id"],
        "/api/v1/maintenance-windows/{id}": window["id"],
        "/api/v1/status-pages/{id}": page["id"],
        "{incident_id}": sp_incident["id"],
        "/api/v1/users/{id}": user["id"],
        "/api/v1/channels/{id}": channel["id"],
        "/api/v1/schedules/{id}": schedule["id"],
        "{override_id}": override["id"],
        "/api/v1/escalation-policies/{id}": ep["id"],
        "/api/v1/policies/{id}": policy["id"],
        "/api/v1/integrations/{id}": integration["id"],
        "/api/v1/runbooks/{id}": runbook["id"],
        "/api/v1/incidents/{id}": incident["id"],
        "/api/v1/tokens/{id}": token["id"],
        "/api/v1/projects/{id}": 1,
        "/api/v1/issues/{id}": 1,
    }


def concrete(path, ids):
    """The path with its parameters filled from ids (by resource prefix); None if one is unknown."""
    out = path
    for name in re.findall(r"\{(\w+)\}", path):
        if name == "id":
            prefix = path[: path.index("{id}") + 4]
            value = ids.get(prefix)
        else:
            value = ids.get("{" + name + "}")
        if value is None:
            return None
        out = out.replace("{" + name + "}", str(value), 1)
    return out


def mismatches(registry, method, path, url, status, body):
    """Where `body` departs from the documented schema, as served and closed."""
    out = []
    for uri, how in ((DOC_URI, "as served"), (STRICT_URI, "closed")):
        ref = uri + "#/" + pointer("paths", path, method, "responses", str(status), "content",
                                   "application/json", "schema")
        for e in list(Draft202012Validator({"$ref": ref}, registry=registry).iter_errors(body))[:3]:
            out.append(f"{method.upper()} {url} ({status}, {how}) at {list(e.absolute_path)}: {e.message}")
    return out


def test_real_answers_match_their_schemas(api):
    """Every GET whose path can be filled with a seeded resource answers what its schema says."""
    s, doc = api
    ids = seed(s)
    # Each answer must match the schema as served (JSON Schema's own semantics: this is how a
    # client's validator reads `allOf` with `additionalProperties: false`), and the closed copy.
    strict = closed(merged(doc, doc["components"]["schemas"]))
    registry = Registry().with_resources([
        (DOC_URI, Resource(contents=doc, specification=DRAFT202012)),
        (STRICT_URI, Resource(contents=strict, specification=DRAFT202012))])
    checked, failures = [], []
    for path, method, op in operations(doc):
        if method != "get" or path == "/api/v1/openapi.json":
            continue
        # Lists and objects that need a query (?since=&until=, NRQL) are covered elsewhere.
        if any(p.get("required") and p.get("in") == "query" for p in op.get("parameters", [])):
            continue
        url = concrete(path, ids)
        if url is None:
            continue
        status, body = call(s, url)
        resp = op["responses"].get(str(status))
        if resp is None:
            failures.append(f"GET {url}: status {status} is not documented ({body})")
            continue
        if "application/json" not in resp.get("content", {}):
            continue
        checked.append(f"{status} GET {path}")
        failures += mismatches(registry, "get", path, url, status, body)
    # The answers to the creating calls (POST) in seed().
    for method, url, status, body in ANSWERS:
        path = template_of(doc, method, url)
        resp = doc["paths"][path][method]["responses"].get(str(status))
        if resp is None:
            failures.append(f"{method.upper()} {url}: status {status} is not documented")
            continue
        checked.append(f"{status} {method.upper()} {path}")
        failures += mismatches(registry, method, path, url, status, body)
    assert not failures, "answers that do not match the document:\n" + "\n".join(failures)
    # The resources clients use most were all fetched, as lists and one by one.
    for must in ["200 GET /api/v1/monitors", "200 GET /api/v1/maintenance-windows",
                 "200 GET /api/v1/maintenance-windows/{id}", "200 GET /api/v1/status-pages",
                 "200 GET /api/v1/status-pages/{id}", "200 GET /api/v1/incidents",
                 "200 GET /api/v1/incidents/{id}", "200 GET /api/v1/channels",
                 "200 GET /api/v1/schedules/{id}", "200 GET /api/v1/escalation-policies",
                 "200 GET /api/v1/policies", "200 GET /api/v1/integrations/{id}",
                 "200 GET /api/v1/runbooks/{id}", "200 GET /api/v1/tokens", "200 GET /api/v1/users",
                 "201 POST /api/v1/monitors", "201 POST /api/v1/maintenance-windows",
                 "200 POST /api/v1/maintenance-windows/{id}/end",
                 "201 POST /api/v1/status-pages", "201 POST /api/v1/incidents",
                 "201 POST /api/v1/channels", "201 POST /api/v1/schedules/{id}/overrides",
                 "201 POST /api/v1/tokens"]:
        assert must in checked, f"{must} was not checked; checked: {checked}"


def test_status_pages_list_is_a_page(api):
    s, _ = api
    status, first = call(s, "/api/v1/status-pages?limit=1")
    assert status == 200 and isinstance(first, dict), first
    assert set(first) == {"items", "next"}
    assert len(first["items"]) <= 1
