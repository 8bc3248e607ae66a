-- ferry metadata, schema 11: who may do what on a team server. As in
-- MLflow 3.x's auth app, grants are rows on roles (a user's own grants on a
-- role named __user_<id>__ in a workspace); tokens are kept as hashes; the
-- audit log is append-only and hash-chained, with its head kept apart.
CREATE TABLE auth_users (
    user_id       BIGINT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    is_admin      BIGINT NOT NULL,
    service       BIGINT NOT NULL,
    created_ms    BIGINT NOT NULL
);

CREATE TABLE auth_roles (
    role_id     BIGINT PRIMARY KEY,
    workspace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT,
    UNIQUE (workspace, name)
);

CREATE TABLE auth_role_grants (
    grant_id      BIGINT PRIMARY KEY,
    role_id       BIGINT NOT NULL,
    resource_type TEXT NOT NULL,
    pattern       TEXT NOT NULL,
    permission    TEXT NOT NULL,
    UNIQUE (role_id, resource_type, pattern)
);

CREATE TABLE auth_assignments (
    assignment_id BIGINT PRIMARY KEY,
    user_id       BIGINT NOT NULL,
    role_id       BIGINT NOT NULL,
    UNIQUE (user_id, role_id)
);
CREATE INDEX auth_assignments_by_role ON auth_assignments (role_id);

CREATE TABLE auth_tokens (
    token_id    TEXT PRIMARY KEY,
    user_id     BIGINT NOT NULL,
    name        TEXT NOT NULL,
    workspace   TEXT,
    role        TEXT,
    secret_hash TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    expires_ms  BIGINT,
    revoked_ms  BIGINT
);
CREATE INDEX auth_tokens_by_user ON auth_tokens (user_id);

CREATE TABLE audit_log (
    seq      BIGINT PRIMARY KEY,
    time_ms  BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    token_id TEXT,
    action   TEXT NOT NULL,
    resource TEXT NOT NULL,
    outcome  TEXT NOT NULL,
    source   TEXT NOT NULL,
    reason   TEXT,
    prev     TEXT NOT NULL,
    hash     TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (time_ms);

CREATE TABLE audit_head (
    one  BIGINT PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
