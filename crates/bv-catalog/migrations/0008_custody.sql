-- Customer-held keys: a tenant that holds its own key has the keyed
-- fingerprint of that key here (never the key). A job of such a tenant holds
-- the key, sealed under a vault service key, only until the job ends.

ALTER TABLE tenants ADD COLUMN customer_key_fp TEXT;

ALTER TABLE jobs ADD COLUMN custody TEXT;
