-- Dashboards (PostgreSQL): pages of widgets backed by NRQL queries, kept as the JSON of their spec
-- (the YAML users apply and export). slug: the stable name `lookout apply` and URLs use;
-- managed_by: 'config' for dashboards declared in the config file, 'pack:<name>' for packs.
CREATE TABLE dashboards (
    id BIGSERIAL PRIMARY KEY,
    org_id BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    managed_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (org_id, slug)
);
