//! What each route of `ferry server` needs, as one table: MLflow 3.x's
//! auth app's `before_request` validators (see `mlflow/server/auth/`),
//! with ferry's stricter answers where MLflow's let a request through (an
//! artifact path that names no run is denied, as is any route the table
//! does not know). Pure: the gate resolves ids and asks `ferry-auth`.

use ferry_auth::Action;

/// What a route needs from the caller (a non-admin; admins may do all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No credentials needed.
    Public,
    /// Any authenticated user.
    Authenticated,
    /// The users, permissions and roles API: its handlers decide.
    AuthApi,
    /// `action` on the experiment named by `experiment_id`.
    Experiment(Action),
    /// Read on the experiment named by `experiment_name`.
    ExperimentByName,
    /// Creating an experiment: a member of the request's workspace.
    CreateExperiment,
    /// Creating a run or logged model: update on `experiment_id`.
    CreateIn,
    /// `action` on the run named by `run_id` (or `run_uuid`), through its
    /// experiment.
    Run(Action),
    /// `action` on the logged model in the path, through its experiment.
    LoggedModel(Action),
    /// `action` on the registered model named by `name`.
    Model(Action),
    /// Creating a registered model: a member of the request's workspace.
    CreateModel,
    /// A new version: update on `name`, and read on `run_id` when given.
    CreateVersion,
    /// An artifact path: read (GET), update (PUT) or delete (DELETE), on
    /// the run or logged model whose folder holds it.
    Artifact,
    /// A listing, answered and then filtered to what the caller may read.
    Search(Listing),
    /// A server admin's only (budgets).
    Admin,
    /// Nothing a non-admin may call.
    Deny,
}

/// Listings filtered by what the caller may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    Experiments,
    Runs,
    LoggedModels,
    Models,
    Versions,
    /// ferry's deployments (by model).
    Deployments,
}

/// A route's rule and, for a change worth recording, its audit action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub rule: Rule,
    /// `Some` for changes the audit log records (every denial is recorded
    /// whatever this says); data a run logs (metrics, params, tags,
    /// artifacts) is not.
    pub audit: Option<&'static str>,
}

const fn r(rule: Rule) -> Route {
    Route { rule, audit: None }
}

const fn audited(rule: Rule, action: &'static str) -> Route {
    Route {
        rule,
        audit: Some(action),
    }
}

/// The MLflow API routes under `/api/2.0/mlflow/`, by method and path.
pub(super) const MLFLOW: &[(&str, &str, Route)] = {
    use Action::*;
    use Listing as L;
    use Rule::*;
    &[
        (
            "POST",
            "experiments/create",
            audited(CreateExperiment, "experiment.create"),
        ),
        ("GET", "experiments/get", r(Experiment(Read))),
        ("GET", "experiments/get-by-name", r(ExperimentByName)),
        ("POST", "experiments/search", r(Search(L::Experiments))),
        ("GET", "experiments/search", r(Search(L::Experiments))),
        (
            "POST",
            "experiments/update",
            audited(Experiment(Update), "experiment.update"),
        ),
        (
            "POST",
            "experiments/set-experiment-tag",
            r(Experiment(Update)),
        ),
        (
            "POST",
            "experiments/delete-experiment-tag",
            r(Experiment(Update)),
        ),
        (
            "POST",
            "experiments/delete",
            audited(Experiment(Delete), "experiment.delete"),
        ),
        (
            "POST",
            "experiments/restore",
            audited(Experiment(Delete), "experiment.restore"),
        ),
        ("POST", "runs/create", r(CreateIn)),
        ("GET", "runs/get", r(Run(Read))),
        ("POST", "runs/update", r(Run(Update))),
        ("POST", "runs/delete", audited(Run(Delete), "run.delete")),
        ("POST", "runs/restore", audited(Run(Delete), "run.restore")),
        ("POST", "runs/log-metric", r(Run(Update))),
        ("POST", "runs/log-parameter", r(Run(Update))),
        ("POST", "runs/set-tag", r(Run(Update))),
        ("POST", "runs/delete-tag", r(Run(Update))),
        ("POST", "runs/log-batch", r(Run(Update))),
        ("POST", "runs/log-inputs", r(Run(Update))),
        ("POST", "runs/outputs", r(Run(Update))),
        ("POST", "runs/search", r(Search(L::Runs))),
        ("GET", "metrics/get-history", r(Run(Read))),
        ("GET", "artifacts/list", r(Run(Read))),
        ("POST", "logged-models", r(CreateIn)),
        ("POST", "logged-models/search", r(Search(L::LoggedModels))),
        (
            "POST",
            "registered-models/create",
            audited(CreateModel, "registered_model.create"),
        ),
        ("GET", "registered-models/get", r(Model(Read))),
        (
            "PATCH",
            "registered-models/update",
            audited(Model(Update), "registered_model.update"),
        ),
        (
            "POST",
            "registered-models/rename",
            audited(Model(Update), "registered_model.rename"),
        ),
        (
            "DELETE",
            "registered-models/delete",
            audited(Model(Delete), "registered_model.delete"),
        ),
        (
            "POST",
            "registered-models/set-tag",
            audited(Model(Update), "registered_model.tag.set"),
        ),
        (
            "DELETE",
            "registered-models/delete-tag",
            audited(Model(Update), "registered_model.tag.delete"),
        ),
        (
            "POST",
            "registered-models/get-latest-versions",
            r(Model(Read)),
        ),
        (
            "GET",
            "registered-models/get-latest-versions",
            r(Model(Read)),
        ),
        (
            "POST",
            "registered-models/alias",
            audited(Model(Update), "registered_model.alias.set"),
        ),
        ("GET", "registered-models/alias", r(Model(Read))),
        (
            "DELETE",
            "registered-models/alias",
            audited(Model(Delete), "registered_model.alias.delete"),
        ),
        ("GET", "registered-models/search", r(Search(L::Models))),
        (
            "POST",
            "model-versions/create",
            audited(CreateVersion, "model_version.create"),
        ),
        ("GET", "model-versions/get", r(Model(Read))),
        (
            "PATCH",
            "model-versions/update",
            audited(Model(Update), "model_version.update"),
        ),
        (
            "DELETE",
            "model-versions/delete",
            audited(Model(Delete), "model_version.delete"),
        ),
        (
            "POST",
            "model-versions/set-tag",
            audited(Model(Update), "model_version.tag.set"),
        ),
        (
            "DELETE",
            "model-versions/delete-tag",
            audited(Model(Delete), "model_version.tag.delete"),
        ),
        ("GET", "model-versions/search", r(Search(L::Versions))),
        ("GET", "model-versions/get-download-uri", r(Model(Read))),
    ]
};

/// ferry's own routes under `/api/2.0/ferry/`: rollouts, decided on their
/// model as the registry's routes are (a promotion by hand is raised to
/// MANAGE by the gate's protection of aliases).
pub(super) const FERRY: &[(&str, &str, Route)] = {
    use Action::*;
    use Rule::*;
    &[
        ("POST", "deployments/create", r(Model(Update))),
        ("POST", "deployments/end", r(Model(Update))),
        ("GET", "deployments/get", r(Model(Read))),
        ("GET", "deployments/list", r(Search(Listing::Deployments))),
        // Costs and budgets, decided on the pipeline run (its experiment's
        // roles) they name; budgets are set by server admins.
        ("POST", "costs/stage", r(Run(Update))),
        ("POST", "costs/finish", r(Run(Update))),
        ("GET", "costs/recent", r(Run(Read))),
        ("GET", "costs/report", r(Authenticated)),
        ("GET", "budgets/covers", r(Run(Read))),
        ("POST", "budgets/hold", r(Run(Update))),
        (
            "POST",
            "budgets/override",
            audited(Run(Manage), "budget.override"),
        ),
        ("POST", "budgets/set", r(Admin)),
        ("POST", "budgets/remove", r(Admin)),
        ("GET", "budgets/list", r(Authenticated)),
    ]
};

/// The rule for `method` on `path` (the URI's path, not decoded).
pub fn route(method: &str, path: &str) -> Route {
    use Action::*;
    // What a browser asks every site for: no content, to anyone.
    if path == "/health" || path == "/api/3.0/mlflow/server-info" || path == "/favicon.ico" {
        return r(Rule::Public);
    }
    if path == "/version" {
        return r(Rule::Authenticated);
    }
    // A forge's webhook delivery carries no ferry credentials: the route
    // authenticates it by its signature (GitHub) or token (GitLab) before
    // reading anything of it (`routes/hooks.rs`).
    if method == "POST" && (path == "/hooks/github" || path == "/hooks/gitlab") {
        return r(Rule::Public);
    }
    // The dashboard's pages show each caller only the workspaces they hold
    // a role in (`ferry_dashboard::view`); it only reads.
    if ferry_dashboard::serves(path) {
        return r(if method == "GET" {
            Rule::Authenticated
        } else {
            Rule::Deny
        });
    }
    if path.starts_with("/api/2.0/mlflow/users/")
        || path.starts_with("/api/3.0/mlflow/users/")
        || path.starts_with("/api/3.0/mlflow/roles/")
    {
        return r(Rule::AuthApi);
    }
    if path == "/get-artifact" && method == "GET" {
        return r(Rule::Run(Read));
    }
    if path == "/api/2.0/mlflow-artifacts/artifacts"
        || path.starts_with("/api/2.0/mlflow-artifacts/artifacts/")
    {
        return match method {
            "GET" | "PUT" => r(Rule::Artifact),
            "DELETE" => audited(Rule::Artifact, "artifact.delete"),
            _ => r(Rule::Deny),
        };
    }
    if let Some(rest) = path.strip_prefix("/api/2.0/ferry/") {
        return FERRY
            .iter()
            .find(|(m, p, _)| *m == method && *p == rest)
            .map_or(r(Rule::Deny), |&(_, _, route)| route);
    }
    let Some(rest) = path.strip_prefix("/api/2.0/mlflow/") else {
        return r(Rule::Deny);
    };
    if let Some(&(_, _, route)) = MLFLOW.iter().find(|(m, p, _)| *m == method && *p == rest) {
        return route;
    }
    // `logged-models/{id}`, `.../tags`, `.../tags/{key}`.
    if let Some(tail) = rest.strip_prefix("logged-models/") {
        let parts: Vec<&str> = tail.split('/').collect();
        return match (method, parts.as_slice()) {
            ("GET", [_]) => r(Rule::LoggedModel(Read)),
            ("PATCH", [_]) | ("PATCH", [_, "tags"]) => r(Rule::LoggedModel(Update)),
            ("DELETE", [_, "tags", _]) => r(Rule::LoggedModel(Delete)),
            _ => r(Rule::Deny),
        };
    }
    r(Rule::Deny)
}

/// The logged model id in a `logged-models/{id}...` path.
pub fn logged_model_id(path: &str) -> Option<&str> {
    path.strip_prefix("/api/2.0/mlflow/logged-models/")?
        .split('/')
        .next()
        .filter(|s| !s.is_empty())
}

/// What an artifact request may do: reading lists and downloads, putting
/// uploads, deleting needs MANAGE.
pub fn artifact_action(method: &str) -> Action {
    match method {
        "GET" => Action::Read,
        "PUT" => Action::Update,
        _ => Action::Delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    #[test]
    fn every_route_of_the_server_has_a_rule_and_unknown_ones_are_denied() {
        let rule = |m, p| route(m, p).rule;
        assert_eq!(rule("GET", "/health"), Rule::Public);
        assert_eq!(
            rule("POST", "/api/2.0/mlflow/runs/log-metric"),
            Rule::Run(Update)
        );
        assert_eq!(
            rule("GET", "/api/2.0/mlflow/runs/log-metric"),
            Rule::Deny,
            "wrong method"
        );
        assert_eq!(rule("POST", "/api/2.0/mlflow/runs/frobnicate"), Rule::Deny);
        assert_eq!(rule("GET", "/anything/else"), Rule::Deny);
        // Webhooks are authenticated by their forge's signature, and only
        // these two paths, by POST.
        assert_eq!(rule("POST", "/hooks/github"), Rule::Public);
        assert_eq!(rule("POST", "/hooks/gitlab"), Rule::Public);
        assert_eq!(rule("GET", "/hooks/github"), Rule::Deny);
        assert_eq!(rule("POST", "/hooks/github/"), Rule::Deny);
        assert_eq!(rule("POST", "/hooks/bitbucket"), Rule::Deny);
        assert_eq!(rule("POST", "/hooks"), Rule::Deny);
        assert_eq!(
            rule("DELETE", "/api/2.0/mlflow/registered-models/alias"),
            Rule::Model(Delete)
        );
        assert_eq!(
            rule("GET", "/api/2.0/mlflow/logged-models/m-1"),
            Rule::LoggedModel(Read)
        );
        assert_eq!(
            rule("DELETE", "/api/2.0/mlflow/logged-models/m-1/tags/k"),
            Rule::LoggedModel(Delete)
        );
        assert_eq!(
            rule("GET", "/api/2.0/mlflow-artifacts/artifacts/1/x"),
            Rule::Artifact
        );
        assert_eq!(
            rule("POST", "/api/2.0/mlflow-artifacts/artifacts/1/x"),
            Rule::Deny
        );
        assert_eq!(
            rule("POST", "/api/3.0/mlflow/users/permissions/grant"),
            Rule::AuthApi
        );
        assert_eq!(
            logged_model_id("/api/2.0/mlflow/logged-models/m-1/tags"),
            Some("m-1")
        );
        // Changes to the registry are audited, data a run logs is not.
        assert_eq!(
            route("POST", "/api/2.0/mlflow/registered-models/alias").audit,
            Some("registered_model.alias.set")
        );
        assert_eq!(route("POST", "/api/2.0/mlflow/runs/log-batch").audit, None);
    }

    /// Every `.route(...)` of the server's router (`lib.rs`), by method.
    fn routes_of_the_router() -> Vec<(String, String)> {
        let src = include_str!("../lib.rs");
        let mut out = Vec::new();
        let mut rest = src;
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            // The call's text, up to its closing parenthesis.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(rest.len(), |(j, _)| j);
            let call = &rest[..end];
            let path = call.split('"').nth(1).unwrap_or_default();
            // Routes of the nested MLflow and ferry routers are relative to
            // their prefixes.
            let absolute = ["/api/", "/get-artifact", "/health", "/version", "/hooks/"];
            let path = if absolute.iter().any(|a| path.starts_with(a)) {
                path.to_owned()
            } else if ["/deployments/", "/costs/", "/budgets/"]
                .iter()
                .any(|f| path.starts_with(f))
            {
                format!("/api/2.0/ferry{path}")
            } else {
                format!("/api/2.0/mlflow{path}")
            };
            let methods: &[&str] = if call.contains("artifact_file") {
                &["GET", "PUT", "DELETE"]
            } else {
                &[]
            };
            let mut found: Vec<&str> = methods.to_vec();
            for (m, name) in [
                ("post(", "POST"),
                ("get(", "GET"),
                ("patch(", "PATCH"),
                ("delete(", "DELETE"),
            ] {
                if call.contains(m) {
                    found.push(name);
                }
            }
            for m in found {
                let concrete = path
                    .replace("{model_id}", "m-1")
                    .replace("{key}", "k")
                    .replace("{*path}", "1/r/artifacts/x");
                out.push((m.to_owned(), concrete));
            }
        }
        out
    }

    #[test]
    fn every_route_the_router_serves_has_a_rule_other_than_deny() {
        let routes = routes_of_the_router();
        assert!(routes.len() > 50, "{routes:?}");
        for (m, p) in &routes {
            assert_ne!(
                route(m, p).rule,
                Rule::Deny,
                "{m} {p} has no rule: add it to MLFLOW"
            );
        }
    }

    #[test]
    fn the_table_names_each_method_and_path_once() {
        let mut seen = std::collections::HashSet::new();
        for (m, p, _) in MLFLOW {
            assert!(seen.insert((m, p)), "{m} {p} twice");
        }
    }
}
