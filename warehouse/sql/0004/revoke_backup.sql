-- Downgrade of 0004: take back what roles.sql granted (the role stays: roles are cluster-wide).
ALTER DEFAULT PRIVILEGES IN SCHEMA dw, bi, qa, meta REVOKE ALL ON TABLES FROM cryptolake_backup;
ALTER DEFAULT PRIVILEGES IN SCHEMA dw, bi, qa, meta REVOKE ALL ON SEQUENCES FROM cryptolake_backup;
REVOKE ALL ON ALL TABLES IN SCHEMA dw, bi, qa, meta FROM cryptolake_backup;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA dw, bi, qa, meta FROM cryptolake_backup;
REVOKE ALL ON SCHEMA dw, bi, qa, meta FROM cryptolake_backup;
