//! The command line: clap types only.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// CI/CD for machine learning: retrain, validate and register models when
/// their code, data, params or environment change.
#[derive(Debug, Parser)]
#[command(
    name = "ferry",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit codes: 0 success, 1 a stage failed (or the run could not be recorded), 2 usage or spec error, 3 a gate failed, 4 over budget (refused before it started), 130 cancelled"
)]
pub struct Cli {
    /// Run as if ferry was started in DIR
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// When to use colour: auto (on a terminal), always, never
    #[arg(long, global = true, default_value = "auto", value_parser = ["auto", "always", "never"])]
    pub color: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a project in the current folder from a template that runs as is
    Init {
        /// `tabular` (a small classifier: prepare, train, evaluate, gates, registration; needs only python3) or `minimal` (one shell stage)
        #[arg(long, short = 't', default_value = "tabular")]
        template: String,
        /// The pipeline's and model's name (default: the folder's name)
        #[arg(long)]
        name: Option<String>,
        /// Overwrite files the template writes
        #[arg(long)]
        force: bool,
    },
    /// Bring the pipeline up to date: run, restore or skip each stage, check the gates, register the model
    Run(RunArgs),
    /// Say, per stage, whether it would run and why
    Status {
        /// Only these stages (and what they need)
        stages: Vec<String>,
        /// Print each stage's decision as JSON on stdout
        #[arg(long)]
        json: bool,
        /// Instead, say which locked outputs are here, on the remote, both or neither (the default remote, or NAME)
        #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
        remote: Option<String>,
    },
    /// Past runs
    Runs(RunsArgs),
    /// What a change does to the model: a run beside its base (the base branch's latest run, a version's run or an earlier one): params, metrics with deltas, gates, data checks and drift, stages and why, cost; `--post` puts it on the pull request
    Report(ReportArgs),
    /// Show the output a run's stages wrote
    Logs {
        /// A run id, a unique prefix of it, `latest` or `latest~N`
        run: String,
        /// Only this stage
        stage: Option<String>,
        #[command(flatten)]
        place: Place,
    },
    /// The model registry
    Models(ModelsArgs),
    /// Remove cache objects nothing refers to any more
    Gc {
        /// Also drop the run cache (outputs of old parameter or data versions)
        #[arg(long)]
        all: bool,
        /// Say what would be removed; remove nothing
        #[arg(long)]
        dry_run: bool,
        /// Collect a remote's garbage instead (the default remote, or NAME): what no lock (the work tree's, and those of the commits --all-commits, --all-branches, --all-tags or --rev name), pointer, registered version or stage's run cache refers to and is over a day old. A dry run unless --yes
        #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
        remote: Option<String>,
        /// With --remote: really delete
        #[arg(long, requires = "remote")]
        yes: bool,
        #[command(flatten)]
        history: HistoryArgs,
        /// With --remote: print the report as JSON
        #[arg(long, requires = "remote")]
        json: bool,
    },
    /// What runs cost: by stage, pipeline, day or month, from each stage's recorded cost
    Cost(CostArgs),
    /// Monthly budgets of workspaces and pipelines: runs their estimate would overspend are refused (exit 4)
    #[command(subcommand)]
    Budget(BudgetCommand),
    /// Users and API tokens of a team server's store
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The audit log: who changed what, when, from where (hash-chained)
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Where the cache is shared: add, list or remove remotes (ferry.yaml's `remotes:`)
    #[command(subcommand)]
    Remote(RemoteCommand),
    /// Send the locked outputs and their run-cache entries to a remote
    Push(TransferArgs),
    /// Bring the locked outputs and run-cache entries from a remote into the cache
    Fetch(TransferArgs),
    /// Fetch, then check the locked outputs out into the work tree
    Pull(PullArgs),
    /// Where a version came from (run, stages, commit, data, environment), or with --data every version built from that data
    Lineage {
        /// A version: `iris/3`, `iris@production` or `iris` (the newest not rejected)
        #[arg(required_unless_present = "data", conflicts_with = "data")]
        model: Option<String>,
        /// A data path (as the pipeline names it), optionally `@DIGEST` (a prefix of it)
        #[arg(long, value_name = "PATH[@DIGEST]")]
        data: Option<String>,
        /// Print it as JSON on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Rebuild a registered version from its recorded commit, data and environment, and say whether the artifact is identical (exit 0) or what differs (exit 1)
    Reproduce {
        /// The version: `iris/3` or `iris@production`
        model: String,
        /// Where to check the commit out (default: .ferry/reproduce/MODEL-VERSION)
        #[arg(long, value_name = "DIR")]
        into: Option<PathBuf>,
        /// The remote the data comes from (default: the default remote)
        #[arg(long, short = 'r')]
        remote: Option<String>,
        /// Print the comparison as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Version data that no stage produces: record each file or folder by digest in PATH.ferry (commit it), keep its bytes in the cache, keep it out of git
    Add {
        /// Files or folders inside the project
        #[arg(required = true)]
        paths: Vec<String>,
        /// Print the pointers as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Put the locked outputs and the data pointer files describe back into the work tree from the cache
    Checkout {
        /// Only these stages' outputs
        stages: Vec<String>,
        #[command(flatten)]
        link: LinkArg,
        /// Print what was done as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Keep an API token for a team server (read from standard input, checked, stored owner-only in the config folder)
    Login {
        /// The server (`https://ferry.example.com`)
        url: String,
    },
    /// Forget the token kept for a server
    Logout {
        /// The server
        url: String,
    },
    /// Print the JSON Schema of ferry.yaml, for editors
    Schema,
    /// Print a shell completion script (e.g. `ferry completions bash > ~/.local/share/bash-completion/completions/ferry`)
    Completions {
        /// The shell
        #[arg(value_parser = ["bash", "zsh", "fish", "elvish", "powershell"])]
        shell: String,
    },
    /// Write manifests to run ferry elsewhere: `ferry export k8s server|gateway` for Kubernetes, `ferry export argo` for Argo Workflows
    #[command(subcommand)]
    Export(ExportCommand),
    /// Continuous integration: `ferry ci export github|gitlab|jenkins` writes the CI file that runs this pipeline when its inputs change
    #[command(subcommand)]
    Ci(CiCommand),
    /// One stage away from its project: what a stage's Kubernetes pod runs (`ferry stage run TASK`)
    #[command(subcommand)]
    Stage(StageCommand),
    /// Serve the MLflow REST API (tracking, artifacts) over this project's store
    Server(ServerArgs),
    /// Serve registered models over HTTP (MLflow scoring, Open Inference Protocol, KServe V1), with canaries and metrics
    Serve(ServeArgs),
    /// Roll out a new version behind `ferry serve`: canary steps or a shadow, judged and rolled back automatically
    Deploy(DeployArgs),
    /// What the monitors of served models found: the latest checks, their history, Prometheus rules
    #[command(subcommand)]
    Monitor(MonitorCommand),
    /// Ask for a run of the pipeline; `ferry agent` runs it (recorded with who asked and why)
    Trigger {
        /// Why, recorded as the run's evidence
        #[arg(long)]
        reason: Option<String>,
        /// Print what came of it as JSON on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Close the loop: run the monitors on a schedule, send alerts, fire the triggers of `on:`, run triggered runs and roll their candidates out
    Agent(AgentArgs),
    /// Describe data: profile a trusted batch into a starting expectation suite
    #[command(subcommand)]
    Data(DataCommand),
    /// Check data: validate a batch against a suite, or compare two batches for drift
    #[command(subcommand)]
    Check(CheckCommand),
}

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// Write (or check) the CI file for this pipeline (a GitHub Actions workflow, a GitLab CI job, a Jenkinsfile): on pushes to the default branch and pull/merge requests that change its inputs, ferry installed from its wheel, the remote's run cache restored, what ran pushed from the default branch only, the reports kept
    Export(CiExportArgs),
}

#[derive(Debug, Args)]
pub struct CiExportArgs {
    /// The CI system: github (GitHub Actions), gitlab (GitLab CI) or jenkins (a declarative Jenkinsfile)
    #[arg(value_parser = ["github", "gitlab", "jenkins"])]
    pub system: String,
    /// Where the file goes, from the repository's root (default: .github/workflows/ferry-PIPELINE.yml, .gitlab-ci.yml, Jenkinsfile; a repository has one .gitlab-ci.yml: write e.g. ci/ferry-PIPELINE.gitlab-ci.yml and `include:` it from yours)
    #[arg(long, value_name = "PATH")]
    pub output: Option<String>,
    /// The branch whose pushes share what ran with the remote
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// What uv installs ferry from: the wheel's package (default: ferry-ml at this version) or a wheel's URL
    #[arg(long, value_name = "SPEC")]
    pub install: Option<String>,
    /// Record the runs to this `ferry server` (the token from the CI's secret FERRY_TOKEN: a GitHub secret, a GitLab CI/CD variable, a Jenkins credential)
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Write nothing: exit 1 when the file is not what this pipeline writes
    #[arg(long)]
    pub check: bool,
}

#[derive(Debug, Subcommand)]
pub enum StageCommand {
    /// Fetch the task's files by digest from the remote, run its stage in its environment, push the outputs to the remote's run cache; exits with the stage command's code
    Run(StageRunArgs),
}

#[derive(Debug, Args)]
pub struct StageRunArgs {
    /// The task's digest (64 hex characters), as `ferry run` sent it
    pub task: String,
    /// The remote's URL (s3://bucket/prefix, gs://..., or a folder)
    #[arg(long, value_name = "URL")]
    pub remote: String,
    /// An S3-compatible service's endpoint (MinIO, Ceph, R2)
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The bucket's region
    #[arg(long)]
    pub region: Option<String>,
    /// Allow a plain-HTTP endpoint
    #[arg(long)]
    pub allow_http: bool,
    /// The folder the stage's files are put in and run from (default: the current folder)
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<std::path::PathBuf>,
}

/// What runs the stage commands of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExecutorArg {
    /// Processes on this machine, in the project
    Local,
    /// Each stage in a folder of its own holding only its declared files, fetched from the remote as a pod would (checks a pipeline is ready for a cluster)
    Isolated,
    /// A Kubernetes Job per stage that must run (`kubernetes:` in ferry.yaml; the kubeconfig's cluster)
    Kubernetes,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Kubernetes manifests (YAML on stdout, for `kubectl apply -f -`): secrets are named, never inlined
    #[command(subcommand)]
    K8s(K8sCommand),
    /// The pipeline as an Argo Workflows WorkflowTemplate (a CronWorkflow with --schedule), YAML on stdout: a task per stage, each restoring what did not change from the remote
    Argo(ArgoArgs),
}

#[derive(Debug, Args)]
pub struct ArgoArgs {
    /// The project's git repository as the cluster clones it (https://..., ssh://... or git@...)
    #[arg(long, value_name = "URL")]
    pub repo: String,
    /// The revision a submitted workflow checks out unless given another (`-p revision=...`)
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// The project's folder inside the repository
    #[arg(long, value_name = "DIR", default_value = "")]
    pub path: String,
    /// Run on this schedule (five-field cron, UTC): a CronWorkflow
    #[arg(long, value_name = "CRON")]
    pub schedule: Option<String>,
    /// The workflow's name (default: the pipeline's, as a Kubernetes name)
    #[arg(long)]
    pub name: Option<String>,
    /// The namespace (default: ferry.yaml's `kubernetes.namespace`, else none)
    #[arg(long)]
    pub namespace: Option<String>,
    /// Record the runs to this `ferry server`
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The image the tasks run (default: ferry.yaml's `kubernetes.image`)
    #[arg(long)]
    pub image: Option<String>,
    /// The remote stages push to and restore from (default: `kubernetes.remote`, else the default remote)
    #[arg(long, short = 'r', value_name = "NAME")]
    pub remote: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum K8sCommand {
    /// The tracking server: replicas over one store and a bucket, a Service, a disruption budget
    Server {
        /// The artifact root every replica shares (s3://bucket/prefix or gs://...)
        #[arg(long, value_name = "URL")]
        artifacts: String,
        /// A Secret with the first admin's password (key `password`), used on an empty store
        #[arg(long, value_name = "SECRET")]
        admin_secret: Option<String>,
        #[command(flatten)]
        common: K8sArgs,
    },
    /// A gateway serving MODEL@ALIAS: replicas, a Service, an autoscaler, a disruption budget, scrape annotations
    Gateway {
        /// What it serves (an alias, so rollouts move every replica)
        model: String,
        /// The bucket the tracking server keeps versions' files in (its --artifacts)
        #[arg(long, value_name = "URL")]
        artifacts: String,
        /// The autoscaler's ceiling (its floor is --replicas)
        #[arg(long, default_value_t = 5)]
        max_replicas: u32,
        /// The CPU use (percent of the request) the autoscaler aims at
        #[arg(long, default_value_t = 70)]
        target_cpu: u32,
        #[command(flatten)]
        common: K8sArgs,
    },
}

/// What every exported service needs.
#[derive(Debug, Args)]
pub struct K8sArgs {
    /// An image with ferry in it (the repository's Dockerfile builds one)
    #[arg(long)]
    pub image: String,
    /// The Secret holding the store's URL (key `store-url`; postgres://...)
    #[arg(long, value_name = "SECRET")]
    pub store_secret: String,
    /// The objects' name (default: ferry-server, or MODEL-ALIAS-gateway)
    #[arg(long)]
    pub name: Option<String>,
    /// Their namespace (default: kubectl's)
    #[arg(long)]
    pub namespace: Option<String>,
    /// Replicas to run (a gateway's autoscaler never goes below)
    #[arg(long, default_value_t = 2)]
    pub replicas: u32,
    /// A Secret whose keys become environment variables (cloud credentials)
    #[arg(long, value_name = "SECRET")]
    pub env_secret: Option<String>,
    /// The pods' service account (IRSA on EKS, Workload Identity on GKE)
    #[arg(long)]
    pub service_account: Option<String>,
    /// CPU requested per replica
    #[arg(long, default_value = "500m")]
    pub cpu: String,
    /// Memory requested (and its limit) per replica
    #[arg(long, default_value = "512Mi")]
    pub memory: String,
}

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// The latest result of each check of each monitored model
    Status {
        /// Only this model
        model: Option<String>,
        /// Print the events as JSON on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Past checks, newest first, and the runs triggers asked for
    History {
        /// Only this model's checks
        model: Option<String>,
        /// At most this many of each (default 50)
        #[arg(long)]
        limit: Option<usize>,
        /// Print them as JSON on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Print Prometheus alerting rules for the project's monitor (for `promtool check rules` and Prometheus' `rule_files`)
    Rules,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// One tick, then exit (for cron, CI and tests)
    #[arg(long)]
    pub once: bool,
    /// With --once: the tick's time (RFC 3339 UTC, or milliseconds), for replays and tests
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// How often to tick
    #[arg(long, default_value = "10s")]
    pub every: String,
    /// This agent's name in the runs it claims (default: USER-PID)
    #[arg(long)]
    pub name: Option<String>,
    /// The prediction log `ferry serve` writes; default: the project's `.ferry/predictions`
    #[arg(long, value_name = "DIR")]
    pub predictions: Option<PathBuf>,
    /// With --once: print what the tick did as JSON on stdout
    #[arg(long, requires = "once")]
    pub json: bool,
    /// The agent's CPU niceness (0-19; its checks and the runs it starts inherit it), so on a machine it shares with `ferry serve` serving goes first; 0 keeps the agent's own
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=19))]
    pub nice: u8,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add a remote to ferry.yaml
    Add {
        /// Its name (letters, digits, `-`, `_`)
        name: String,
        /// s3://BUCKET/PREFIX, gs://BUCKET/PREFIX, file:///PATH or a folder path
        url: String,
        /// Make it the remote used when none is named
        #[arg(long)]
        default: bool,
        /// An S3-compatible endpoint (MinIO, Ceph, R2) or a GCS base URL
        #[arg(long)]
        endpoint: Option<String>,
        /// The bucket's region
        #[arg(long)]
        region: Option<String>,
        /// The AWS profile whose credentials to use
        #[arg(long)]
        profile: Option<String>,
        /// Allow a plain-http endpoint
        #[arg(long)]
        allow_http: bool,
        /// `auto`: `ferry run` pushes what its stages produce; `manual` (the default): only `ferry push` and `run --push` do
        #[arg(long, value_name = "auto|manual")]
        push: Option<String>,
    },
    /// The remotes, with this machine's settings laid over
    List {
        /// Print them as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Remove a remote from ferry.yaml
    Remove {
        /// Its name
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user (password on standard input) or a service account (tokens only)
    CreateUser {
        /// The name they sign in with
        username: String,
        /// A server admin: may do anything, in every workspace
        #[arg(long)]
        admin: bool,
        /// A service account for CI: no password, signs in with tokens
        #[arg(long)]
        service: bool,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        place: Place,
    },
    /// The users and service accounts
    ListUsers {
        /// Print them as JSON on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Delete a user (their own grants go, their tokens are revoked)
    DeleteUser {
        /// Their name
        username: String,
        #[command(flatten)]
        place: Place,
    },
    /// Issue an API token for a user (printed once on stdout)
    CreateToken {
        /// Whose token it is
        username: String,
        /// What the token is for (`ci`, `laptop`)
        #[arg(long)]
        name: String,
        /// Limit it to one workspace
        #[arg(long)]
        workspace: Option<String>,
        /// Limit it to a built-in role: predictor (only predicts through a gateway), viewer, editor, maintainer or admin
        #[arg(long)]
        role: Option<String>,
        /// How long it is valid: 30d, 12h, 90m
        #[arg(long, default_value = "90d")]
        expires_in: String,
        #[command(flatten)]
        place: Place,
    },
    /// Make a user a member of a workspace (a team) with a built-in role
    AddMember {
        /// The user (with --group, the group)
        username: String,
        /// USERNAME names a group: every member holds the role
        #[arg(long)]
        group: bool,
        /// The workspace (MLflow's `X-MLFLOW-WORKSPACE`; `default` when a request names none)
        #[arg(long)]
        workspace: String,
        /// predictor, viewer, editor, maintainer or admin (of the workspace)
        #[arg(long, default_value = "editor")]
        role: String,
        #[command(flatten)]
        place: Place,
    },
    /// Create a group of users; `add-member GROUP --group` gives it a role
    CreateGroup {
        /// The group's name
        name: String,
        #[command(flatten)]
        place: Place,
    },
    /// Delete a group: its members lose the roles it held
    DeleteGroup {
        /// The group's name
        name: String,
        #[command(flatten)]
        place: Place,
    },
    /// Add a user to a group
    AddToGroup {
        /// The user
        username: String,
        /// The group
        group: String,
        #[command(flatten)]
        place: Place,
    },
    /// Take a user out of a group
    RemoveFromGroup {
        /// The user
        username: String,
        /// The group
        group: String,
        #[command(flatten)]
        place: Place,
    },
    /// Every group, its members and the roles it holds
    ListGroups {
        /// Print them as JSON on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Revoke a token by its id (refused from then on)
    RevokeToken {
        /// The token's id (the 16 characters after `ferry_`)
        id: String,
        #[command(flatten)]
        place: Place,
    },
    /// The webhook deliveries of registry and rollout events (`ferry server --hooks FILE` with `deliver:`), newest first
    Deliveries {
        /// Only those to this endpoint (its `name:` in the hooks file)
        #[arg(long)]
        endpoint: Option<String>,
        /// Only those in this state
        #[arg(long, value_parser = ["pending", "delivered", "failed"])]
        state: Option<String>,
        /// At most this many
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Print them as JSON on stdout, each with its attempts
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
}

#[derive(Debug, Args)]
pub struct CostArgs {
    /// Group by `team` (workspace), `project`, `pipeline`, `model` (each version: the run that built it and its serving, per 1,000 predictions), `stage`, `day` or `month` (a stage running across midnight is split by its time in each); `storage`: what the registry and this project's cache keep, by owner, a month
    #[arg(long, default_value = "pipeline", value_parser = ["team", "project", "pipeline", "model", "stage", "day", "month", "storage"])]
    pub by: String,
    /// Only runs started in the last while (`30d`, `12h`) or since a date (`2026-11-01`, midnight in --utc-offset)
    #[arg(long, default_value = "30d")]
    pub since: String,
    /// Only runs started before this date (`2026-12-01`) or this long ago (`7d`)
    #[arg(long)]
    pub until: Option<String>,
    /// The time zone days and months are counted in, as an offset from UTC (`+02:00`, `-05:00`)
    #[arg(long, default_value = "+00:00", allow_hyphen_values = true)]
    pub utc_offset: String,
    /// Print the lines as JSON on stdout
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the lines as CSV on stdout
    #[arg(long)]
    pub csv: bool,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Debug, Subcommand)]
pub enum BudgetCommand {
    /// Set (or change) the monthly budget of a workspace (`research`) or a pipeline (`pipeline:iris`)
    Set {
        /// `WORKSPACE`, `workspace:NAME` or `pipeline:NAME`
        target: String,
        /// US dollars a UTC calendar month
        #[arg(long, value_name = "AMOUNT")]
        monthly: f64,
        /// Percentages of it that send an alert, once each a month
        #[arg(long, value_name = "PERCENTS", default_value = "50,80,100")]
        alert: String,
        /// Post alerts as JSON to this http(s) URL (a Slack or Teams incoming webhook, an alert manager)
        #[arg(long, value_name = "URL")]
        webhook: Option<String>,
        #[command(flatten)]
        place: Place,
    },
    /// Every budget: what it allows, what its runs spent and hold this month, its alerts
    List {
        /// Print them as JSON on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Remove a budget
    Remove {
        /// `WORKSPACE`, `workspace:NAME` or `pipeline:NAME`
        target: String,
        #[command(flatten)]
        place: Place,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// The entries, oldest first
    List {
        /// Only the last while: 7d, 12h, 30m
        #[arg(long)]
        since: Option<String>,
        /// Only this actor's
        #[arg(long)]
        actor: Option<String>,
        /// Only this action, or those under it (`registered_model.alias`)
        #[arg(long)]
        action: Option<String>,
        /// At most this many
        #[arg(long)]
        limit: Option<u64>,
        /// Print them as JSON on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Check the chain: finds an edited, removed, reordered or cut-off entry and says which (exit 3)
    Verify {
        /// Print the verdict as JSON on stdout
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Place,
    },
    /// Every entry as JSON lines on stdout
    Export {
        #[command(flatten)]
        place: Place,
    },
}

/// Which commits `gc --remote` also keeps what they lock (besides the work
/// tree, the registry and the run cache): their `ferry.lock` and pointer files.
#[derive(Debug, Args, Default)]
pub struct HistoryArgs {
    /// Keep what every commit of every branch and tag locks
    #[arg(long, requires = "remote")]
    pub all_commits: bool,
    /// Keep what the tip of every branch locks
    #[arg(long, requires = "remote")]
    pub all_branches: bool,
    /// Keep what every tag locks
    #[arg(long, requires = "remote")]
    pub all_tags: bool,
    /// Keep what this revision locks (a branch, tag or commit; repeatable)
    #[arg(long, value_name = "REV", requires = "remote")]
    pub rev: Vec<String>,
}

impl HistoryArgs {
    pub fn revisions(self) -> ferry_runner::Revisions {
        ferry_runner::Revisions {
            all_commits: self.all_commits,
            all_branches: self.all_branches,
            all_tags: self.all_tags,
            revs: self.rev,
        }
    }
}

/// What `push`, `fetch` and `pull` move, and how.
#[derive(Debug, Args)]
pub struct TransferArgs {
    /// Only these stages' outputs (default: every stage in ferry.lock)
    pub stages: Vec<String>,
    /// The remote (default: the one marked `default`, or the only one)
    #[arg(long, short = 'r')]
    pub remote: Option<String>,
    /// Transfers in flight at once
    #[arg(long, short = 'j', default_value_t = 16)]
    pub jobs: usize,
    /// Ask the remote what it holds instead of trusting what this machine recorded
    #[arg(long)]
    pub verify: bool,
    /// Print a summary as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

/// `ferry pull`: a transfer, then a checkout.
#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub transfer: TransferArgs,
    #[command(flatten)]
    pub link: LinkArg,
}

/// How a checkout puts cached files into the work tree.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct LinkArg {
    /// copy, reflink (copy-on-write where the filesystem can, else a copy) or hardlink (read-only files sharing the cache's bytes) [default: ferry.yaml's `cache.link`, else copy]
    #[arg(long, value_name = "MODE", value_parser = parse_link)]
    pub link: Option<ferry_core::LinkMode>,
}

fn parse_link(s: &str) -> Result<ferry_core::LinkMode, String> {
    s.parse()
}

/// Where runs, models and deployments are read and written: the project's
/// store unless one of these names another. Flattened into every command
/// that reads or writes them, so the options, their environment variables
/// and their help read the same everywhere; a command that cannot work
/// through one of them refuses it (see `place.rs`).
#[derive(Debug, Args, Clone, Default)]
pub struct Place {
    /// Work through this `ferry server` (its MLflow API) instead of the project's store
    #[arg(long, env = "FERRY_SERVER", value_name = "URL", global = true)]
    pub server: Option<String>,
    /// Work on this store directly (`sqlite:///path/ferry.db`, `postgres://…`) instead of the project's `.ferry/ferry.db`
    #[arg(long, env = "FERRY_STORE", value_name = "URL", global = true)]
    pub store: Option<String>,
}

/// How to read a table (CSV, Parquet or JSON lines; a file, a folder or a glob).
#[derive(Debug, Args, Clone)]
pub struct TableArgs {
    /// Format of every file (default: from each file's extension)
    #[arg(long, value_parser = ["csv", "parquet", "jsonl"])]
    pub format: Option<String>,
    /// CSV field delimiter (one character; `tab` for tab)
    #[arg(long, default_value = ",")]
    pub delimiter: String,
    /// CSV files have no header row (columns are named column_1, column_2, ...)
    #[arg(long)]
    pub no_header: bool,
    /// CSV quote character
    #[arg(long, default_value = "\"")]
    pub quote: String,
    /// CSV escape character (default: quotes are escaped by doubling them)
    #[arg(long)]
    pub escape: Option<String>,
    /// A column's type, overriding inference: `--type price=float` (int, float, string, bool, timestamp, date)
    #[arg(long = "type", value_name = "COLUMN=TYPE")]
    pub types: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Profile a trusted batch: types, missing shares, ranges, levels; writes a starting suite
    Profile {
        /// A file, a folder of files or a glob
        table: String,
        /// Write the suite here (default: print it)
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Print the profile as JSON instead
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        read: TableArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// Validate a table against an expectation suite (exit 3 when an expectation fails)
    Data {
        /// A file, a folder of files or a glob
        table: String,
        /// The suite (YAML)
        #[arg(long, short = 'e', value_name = "SUITE")]
        expect: PathBuf,
        /// Print the result as JSON on stdout
        #[arg(long)]
        json: bool,
        /// Also write a self-contained HTML report
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        #[command(flatten)]
        read: TableArgs,
    },
    /// Compare a current table with a reference, column by column (exit 3 on dataset drift)
    Drift {
        /// The table the current one is compared with (a file, folder or glob)
        #[arg(long, value_name = "TABLE")]
        reference: String,
        /// The table to check (e.g. a prediction log)
        #[arg(long, value_name = "TABLE")]
        current: String,
        /// Only these columns (comma-separated)
        #[arg(long, value_delimiter = ',')]
        columns: Option<Vec<String>>,
        /// A method for every column (ks, chisquare, z, wasserstein, jensenshannon, psi, domain_classifier) and/or for one (`review=domain_classifier`), comma-separated (default: chosen per column; text columns: domain_classifier)
        #[arg(long, value_name = "[COLUMN=]METHOD")]
        method: Option<String>,
        /// A threshold for every column (`0.2`) or for one (`f00=0.2`, repeatable); default: the method's (0.05 for p-values, 0.1 for distances; text: a random classifier's 95th percentile ROC AUC, or 0.55 past 1000 reference rows)
        #[arg(long, value_name = "[COLUMN=]X")]
        threshold: Vec<String>,
        /// The dataset drifts when at least this share of columns drift
        #[arg(long, default_value_t = 0.5)]
        drift_share: f64,
        /// Effect size a significant p-value test also needs to count as drift
        #[arg(long)]
        min_effect: Option<f64>,
        /// Print the result as JSON on stdout
        #[arg(long)]
        json: bool,
        /// Also write a self-contained HTML report with a chart per column
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        #[command(flatten)]
        read: TableArgs,
    },
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The address the MLflow API listens on (loopback by default; any other address needs users in the store, or --insecure-no-auth)
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Allow a --host other machines can reach although the store has no users to check who is asking
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// The port (0: any free one, printed at start-up)
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    #[command(flatten)]
    pub place: Place,
    #[command(flatten)]
    pub artifacts: ArtifactArgs,
    /// Log one JSON object per request instead of plain lines
    #[arg(long)]
    pub log_json: bool,
    /// JSON request bodies held at once, in MiB (beyond it requests wait, then get 503)
    #[arg(long, default_value_t = 64)]
    pub max_inflight_mib: usize,
    /// Connections held open at once (beyond it new ones wait to be accepted)
    #[arg(long, default_value_t = ferry_http::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// A host budget alerts may be posted to (`hooks.slack.com`); budgets naming another are refused (repeatable)
    #[arg(long = "webhook-host", value_name = "HOST")]
    pub webhook_hosts: Vec<String>,
    /// The prediction log the dashboard finds request ids in (`ferry serve --log-dir`); default: the project's `.ferry/predictions`
    #[arg(long, value_name = "DIR")]
    pub predictions: Option<PathBuf>,
    #[command(flatten)]
    pub oidc: OidcArgs,
    /// Take GitHub and GitLab webhooks at /hooks/github and /hooks/gitlab: a YAML file naming each forge's secret's environment variable and which repositories and branches trigger which pipeline (`ferry agent` runs them at the pushed commit); and under `deliver:`, the https endpoints the registry's and rollouts' events are posted to in MLflow's webhook format, signed (`ferry admin deliveries` lists them)
    #[arg(long, value_name = "FILE")]
    pub hooks: Option<PathBuf>,
}

/// Single sign-on: accept an OpenID Connect provider's ID tokens as Bearer
/// (`ferry server` and `ferry serve` take the same).
#[derive(Debug, Args, Clone, Default)]
pub struct OidcArgs {
    /// The provider's issuer (`iss` of its ID tokens); turns single sign-on on
    #[arg(long, value_name = "URL", requires_all = ["oidc_audience", "oidc_jwks"])]
    pub oidc_issuer: Option<String>,
    /// The audience its ID tokens must name (`aud`: this server's client id)
    #[arg(long, value_name = "CLIENT_ID", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// The provider's signing keys: a JWKS file, or an https:// URL read once at start
    #[arg(long, value_name = "FILE|URL", requires = "oidc_issuer")]
    pub oidc_jwks: Option<String>,
    /// The claim naming the user
    #[arg(long, default_value = "preferred_username", requires = "oidc_issuer")]
    pub oidc_user_claim: String,
    /// The claim listing the user's groups (ferry groups of those names give them roles)
    #[arg(long, default_value = "groups", requires = "oidc_issuer")]
    pub oidc_groups_claim: String,
}

/// Where artifacts are kept: `ferry server` and `ferry serve` take the same.
#[derive(Debug, Args)]
pub struct ArtifactArgs {
    /// Where artifacts are kept: a folder, `s3://BUCKET/PREFIX` or `gs://BUCKET/PREFIX` (credentials
    /// from the cloud's standard chain); default: the project's `.ferry/artifacts`
    #[arg(long, value_name = "FOLDER|URL")]
    pub artifacts: Option<String>,
    /// The service endpoint of an `--artifacts` bucket (an S3-compatible server, a GCS emulator)
    #[arg(long, value_name = "URL", requires = "artifacts")]
    pub artifacts_endpoint: Option<String>,
    /// The region of an `--artifacts` S3 bucket
    #[arg(long, value_name = "REGION", requires = "artifacts")]
    pub artifacts_region: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Models to serve: `iris@production`, `iris/3` or `iris` (its latest version); the first answers `/invocations`
    #[arg(required = true)]
    pub models: Vec<String>,
    /// The address the gateway listens on (loopback by default; any other address needs --insecure-no-auth)
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Allow a --host other machines can reach although the store has no users to check who is asking
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// The port (0: any free one, printed at start-up)
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    #[command(flatten)]
    pub place: Place,
    #[command(flatten)]
    pub artifacts: ArtifactArgs,
    /// Where versions from a bucket are kept, by digest; default: the project's `.ferry/artifact-cache`
    #[arg(long)]
    pub artifact_cache: Option<PathBuf>,
    /// Where the prediction log goes; default: the project's `.ferry/predictions`
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Share of requests written to the prediction log (0 turns it off)
    #[arg(long, default_value_t = 1.0)]
    pub log_sample: f64,
    /// At most this many requests a second go to the prediction log
    #[arg(long, default_value_t = 1000)]
    pub log_max_per_s: u64,
    /// One prediction-log file per window (e.g. 1h, 10m)
    #[arg(long, default_value = "1h")]
    pub log_window: String,
    /// The prediction log's size limit per model, in MiB (the oldest files go first)
    #[arg(long, default_value_t = 1024)]
    pub log_max_mib: u64,
    /// The largest request body, in MiB
    #[arg(long, default_value_t = 16)]
    pub max_body_mib: usize,
    /// Request bodies held at once, in MiB (beyond it requests wait, then get 503)
    #[arg(long, default_value_t = 64)]
    pub max_inflight_mib: usize,
    /// Connections held open at once (beyond it new ones wait to be accepted)
    #[arg(long, default_value_t = ferry_http::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Threads answering requests (default: one per core)
    #[arg(long)]
    pub threads: Option<usize>,
    /// How often routes are rebuilt from the store and deployments judged
    #[arg(long, default_value = "1s")]
    pub tick: String,
    /// The machine class the gateway runs on, whose vCPU-hour prices its CPU time answering (`ferry cost --by model`)
    #[arg(long, value_name = "CLASS", default_value = ferry_cost::prices::DEFAULT_MACHINE)]
    pub machine: String,
    /// A process runtime this gateway may start for models that are not ONNX: `mlflow` (the built-in
    /// `mlflow models serve` for pyfunc models), or `NAME=PROGRAM ARGS...` with `{model_dir}`, `{port}`,
    /// `{host}` in the arguments; run without a shell. A version uses one by its MLflow flavour or by
    /// naming it in the tag `ferry.serve.runtime` (repeatable)
    #[arg(long = "runtime", value_name = "RUNTIME")]
    pub runtimes: Vec<String>,
    /// Serve versions tagged `ferry.fake` as misbehaving fakes (demos, tests)
    #[arg(long, hide = true)]
    pub allow_fakes: bool,
    /// Log one JSON object per line
    #[arg(long)]
    pub log_json: bool,
    #[command(flatten)]
    pub oidc: OidcArgs,
}

/// No `--version` flag here: `ferry deploy iris --version 2` (the old way
/// to name a candidate) must not print ferry's version and exit 0 without
/// rolling anything out; `ferry --version` says it.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, disable_version_flag = true)]
pub struct DeployArgs {
    #[command(subcommand)]
    pub command: Option<DeployCommand>,
    #[command(flatten)]
    pub start: DeployStart,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Debug, Args)]
pub struct DeployStart {
    /// The version to roll out: `iris/3`, or `iris@candidate` (the version the alias points to)
    #[arg(value_name = "MODEL/VERSION|MODEL@ALIAS")]
    pub candidate: Option<String>,
    /// Gone (the version goes in the reference: `iris/3`); hidden, to say so to old scripts
    #[arg(long = "version", id = "old_version", value_name = "N", hide = true)]
    pub old_version: Option<String>,
    /// Gone (the alias goes in the reference: `iris@candidate`); hidden, to say so to old scripts
    #[arg(
        long = "candidate",
        id = "old_candidate",
        value_name = "ALIAS",
        hide = true
    )]
    pub old_candidate: Option<String>,
    /// `canary` (a share of traffic, stepped up) or `shadow` (mirrored traffic, answers discarded)
    #[arg(long, default_value = "canary")]
    pub strategy: String,
    /// Canary weights in percent, in order
    #[arg(long, default_value = "10,25,50,100", value_delimiter = ',')]
    pub steps: Vec<u32>,
    /// How long each step is watched before it may pass
    #[arg(long, default_value = "1m")]
    pub interval: String,
    /// How long past the interval a step may wait for enough data before it is rolled back
    #[arg(long, default_value = "10m")]
    pub deadline: String,
    /// The alias that serves production: the stable version, and where the candidate goes when promoted
    #[arg(long, default_value = "production")]
    pub alias: String,
    /// Largest share of failed (5xx) answers of the candidate
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Largest 99th percentile latency of the candidate, in ms
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Largest shift of predictions from the stable version's (total variation of class shares; for numbers, of the mean in standard deviations)
    #[arg(long)]
    pub max_prediction_shift: Option<f64>,
    /// Smallest accuracy on labels sent to POST /feedback
    #[arg(long)]
    pub min_accuracy: Option<f64>,
    /// Requests (and labels) a step needs before any verdict
    #[arg(long, default_value_t = 20)]
    pub min_requests: u64,
    /// Shadow: percent of requests mirrored to the candidate
    #[arg(long, default_value_t = 100)]
    pub mirror: u32,
    /// Shadow: smallest agreement with the stable version
    #[arg(long)]
    pub min_agreement: Option<f64>,
    /// Why (recorded with the deployment)
    #[arg(long)]
    pub reason: Option<String>,
    /// Roll out a version that was rejected before (rolled back or aborted)
    #[arg(long)]
    pub allow_rejected: bool,
    /// Follow the rollout until it ends (exit 0 promoted, 3 rolled back)
    #[arg(long)]
    pub wait: bool,
    /// Print the deployment as JSON on stdout
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// A model's deployment: state, step, weight, and every decision with its reason
    Status {
        /// The model (all models' active deployments when absent)
        model: Option<String>,
        /// Follow it until it ends
        #[arg(long)]
        watch: bool,
        /// Print as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Promote the candidate now: the alias moves to it
    Promote {
        /// The model whose rollout to promote
        model: String,
        /// Why (recorded with the decision)
        #[arg(long)]
        reason: Option<String>,
    },
    /// Stop the rollout now: all traffic back to the stable version, the candidate marked rejected (unless no gateway ever picked the rollout up)
    Abort {
        /// The model whose rollout to stop
        model: String,
        /// Why (recorded with the decision)
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Only these stages (and what they need); gates and registration need a full run
    pub stages: Vec<String>,
    /// Run every stage even if it is up to date
    #[arg(long)]
    pub force: bool,
    /// Say what would run, run nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How many stages may run at once (default: the number of cores)
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Print the run report as JSON on stdout (stage output goes to stderr)
    #[arg(long)]
    pub json: bool,
    /// Recorded as the run's trigger (e.g. `ci`, `schedule`)
    #[arg(long, default_value = "cli")]
    pub trigger: String,
    /// The remote whose run cache stages are looked up in before they run (default: the default remote, if any)
    #[arg(long, short = 'r', value_name = "NAME")]
    pub remote: Option<String>,
    /// Look nothing up on a remote
    #[arg(long, conflicts_with_all = ["remote", "push"])]
    pub no_remote: bool,
    /// Send what the stages that ran produced to the remote (the default with a remote's `push: auto`)
    #[arg(long, conflicts_with = "no_push")]
    pub push: bool,
    /// Send nothing, even to a remote set to `push: auto`
    #[arg(long)]
    pub no_push: bool,
    /// Run even if the pipeline's budget cannot cover its estimate, for this reason (a budget holder's call; audited)
    #[arg(long, value_name = "REASON")]
    pub over_budget: Option<String>,
    /// What runs the stage commands (default: ferry.yaml's `executor:`, else local)
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorArg>,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Debug, Args)]
pub struct ModelsArgs {
    #[command(flatten)]
    pub place: Place,
    #[command(subcommand)]
    pub command: ModelsCommand,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    #[command(flatten)]
    pub place: Place,
    #[command(subcommand)]
    pub command: RunsCommand,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run: an id, a unique prefix of it, `latest` or `latest~N` (default: the pipeline's newest run)
    pub run: Option<String>,
    /// The base: a git ref or commit (its latest run, or that of the nearest commit before it with one), a version (`iris@production`, `iris/3`) or a run; default: the pull request's base branch in CI, else the run before
    #[arg(long, value_name = "REF")]
    pub compare: Option<String>,
    /// As Markdown, for a pull-request comment
    #[arg(long, conflicts_with = "json")]
    pub md: bool,
    /// As JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Post it on the pull request, or edit the one comment posted before (GitHub: GITHUB_TOKEN; GitLab: GITLAB_TOKEN; default: the CI system this runs in)
    #[arg(long, value_name = "FORGE", num_args = 0..=1, default_missing_value = "auto", value_parser = ["auto", "github", "gitlab"])]
    pub post: Option<String>,
    /// The pull (merge) request to post on (default: the one CI runs for)
    #[arg(long, value_name = "N", requires = "post")]
    pub pr: Option<u64>,
    #[command(flatten)]
    pub place: Place,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The most recent runs, newest first; runs in which nothing happened are folded into one line
    List {
        /// At most this many lines (with `--json`: runs)
        #[arg(long, default_value_t = 20)]
        limit: i64,
        /// One line per run, no-op runs too (nothing ran, restored or registered)
        #[arg(long)]
        all: bool,
        /// Print as JSON on stdout (every run, each with `noop`)
        #[arg(long)]
        json: bool,
    },
    /// One run: stages, params, metrics and gates
    Show {
        /// A run id, a unique prefix of it, `latest` or `latest~N`
        run: String,
        /// Print as JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Registered models with their latest version and aliases
    List {
        /// Print as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// A model version with its lineage: `iris@candidate`, `iris/3`, or `iris` (latest)
    Show {
        /// The version: `iris@candidate`, `iris/3` or `iris`
        model: String,
        /// Print as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// All versions of a model
    Versions {
        /// The model's name
        model: String,
        /// Print as JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Point an alias at a version: `ferry models alias iris/3 production`
    Alias {
        /// The version, as `name/VERSION` or `name@OTHER_ALIAS`
        model: String,
        /// The alias (e.g. `production`)
        alias: String,
        /// Why, recorded with the move
        #[arg(long)]
        reason: Option<String>,
        /// Print the move as JSON on stdout (`model`, `alias`, `version`, `previous`)
        #[arg(long)]
        json: bool,
    },
    /// Every alias move of a model, oldest first
    History {
        /// The model's name
        model: String,
        /// Print as JSON on stdout
        #[arg(long)]
        json: bool,
    },
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks (unique names, valid conflicts) over
    /// every command, which otherwise only fire when a command is used.
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    /// `ferry deploy`'s defaults are those of the server's deployments API
    /// (a field left out of `deployments/create` means what a flag left
    /// out means).
    #[test]
    fn deploy_defaults_are_the_deployments_apis() {
        use clap::Parser;
        let cli = super::Cli::try_parse_from(["ferry", "deploy", "iris/3"]).unwrap();
        let super::Command::Deploy(a) = cli.command else {
            panic!("not deploy")
        };
        assert_eq!(
            crate::serve::request(a.start),
            ferry_gateway::rollout::Request {
                candidate: Some("iris/3".into()),
                ..Default::default()
            }
        );
    }

    /// Every command that reads or writes runs, models or deployments takes
    /// `--server` and `--store` with the same environment variables and the
    /// same help (the one `Place`, flattened).
    #[test]
    fn every_store_command_takes_the_same_place_options() {
        use clap::CommandFactory;
        let mut root = super::Cli::command();
        root.build();
        let find = |path: &[&str]| {
            let mut cmd = &root;
            for name in path {
                cmd = cmd
                    .find_subcommand(name)
                    .unwrap_or_else(|| panic!("no command {path:?}"));
            }
            cmd
        };
        let shape = |cmd: &clap::Command, id: &str| {
            let a = cmd
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("`ferry {}` has no --{id}", cmd.get_name()));
            (
                a.get_long().map(str::to_owned),
                a.get_env().map(|e| e.to_string_lossy().into_owned()),
                a.get_help().map(ToString::to_string),
            )
        };
        let want = |id: &str| shape(find(&["run"]), id);
        assert_eq!(want("server").1.as_deref(), Some("FERRY_SERVER"));
        assert_eq!(want("store").1.as_deref(), Some("FERRY_STORE"));
        let commands: &[&[&str]] = &[
            &["run"],
            &["runs", "list"],
            &["runs", "show"],
            &["logs"],
            &["models", "list"],
            &["models", "show"],
            &["models", "versions"],
            &["models", "alias"],
            &["models", "history"],
            &["server"],
            &["serve"],
            &["deploy"],
            &["deploy", "status"],
            &["deploy", "promote"],
            &["deploy", "abort"],
        ];
        for path in commands {
            for id in ["server", "store"] {
                assert_eq!(shape(find(path), id), want(id), "ferry {path:?} --{id}");
            }
        }
    }

    /// `--help` explains every flag and argument of every command.
    #[test]
    fn every_flag_has_help() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if a.get_help().is_none() && !matches!(id, "help" | "version") {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "ferry", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
