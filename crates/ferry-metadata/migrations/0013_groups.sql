-- ferry metadata, schema 13: groups of users defined in ferry. A group holds
-- roles as a user does; a member holds, in each workspace, the grants of
-- their own roles and of their groups' roles.
CREATE TABLE auth_groups (
    group_id BIGINT PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE
);
CREATE TABLE auth_group_members (
    group_id BIGINT NOT NULL,
    user_id  BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX auth_group_members_by_user ON auth_group_members (user_id);
CREATE TABLE auth_group_roles (
    group_id BIGINT NOT NULL,
    role_id  BIGINT NOT NULL,
    PRIMARY KEY (group_id, role_id)
);
