-- Who made an admin write: `admin_api` (the bearer-token API) or `console` (a console session).
-- Rows written before this column existed were all the admin API's.
ALTER TABLE admin_audit ADD COLUMN principal TEXT NOT NULL DEFAULT 'admin_api';
