-- Webhook secret versions never repeat for a tenant (issue 20, finding 8):
-- the secret is derived from the version, so a webhook deleted and set again
-- must not start over at 1 and bring a leaked secret back. The tenant keeps
-- the highest version it ever had.
ALTER TABLE tenants ADD COLUMN webhook_secret_version BIGINT NOT NULL DEFAULT 0;
UPDATE tenants SET webhook_secret_version = (SELECT w.secret_version FROM webhooks w WHERE w.tenant_id = tenants.id) WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.tenant_id = tenants.id);
