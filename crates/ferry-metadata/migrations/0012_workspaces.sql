-- ferry metadata, schema 12: the workspace (team) each experiment and
-- registered model belongs to (none: `default`), set when it is created
-- through a server with users; and the auth generation, bumped by every
-- change to users, roles, grants, tokens and workspaces, which servers poll
-- to drop what they cached.
CREATE TABLE auth_workspaces (
    resource_type TEXT NOT NULL,
    resource_id   TEXT NOT NULL,
    workspace     TEXT NOT NULL,
    PRIMARY KEY (resource_type, resource_id)
);
CREATE INDEX auth_workspaces_by_workspace ON auth_workspaces (workspace, resource_type);

CREATE TABLE auth_generation (
    one BIGINT PRIMARY KEY,
    n   BIGINT NOT NULL
);
INSERT INTO auth_generation (one, n) VALUES (1, 0);
