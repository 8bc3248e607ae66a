//! Who is calling a team's `ferry server` or `ferry serve`, and what they
//! hold: the half of authorisation both servers share, read from the store.
//! What each route needs is the server's own (`ferry-tracking`'s route
//! table, `ferry-gateway`'s predict, feedback and metrics rules); the
//! meaning of a grant is `ferry-auth`'s.
//!
//! - **On when the store has users**, or when the server requires it (it
//!   listens beyond loopback). With neither, a server passes every request.
//! - **Who**: HTTP Basic (the stock client's `MLFLOW_TRACKING_USERNAME`/
//!   `_PASSWORD`), a Bearer ferry token, or a Bearer ID token of the
//!   configured OpenID Connect provider (its user made at first sign-in,
//!   its groups claim naming ferry groups). A password costs one argon2id
//!   check, then the credentials are recognised by a keyed tag that also
//!   covers the stored hash (a changed password is checked again) for a
//!   while; password checks run a few at a time so a flood of wrong ones
//!   cannot take the CPU, and each failure waits before it is answered.
//! - **Caches** (users, tokens, grants, memberships, workspaces, callers)
//!   are valid for one auth generation of the store: a change through this
//!   server drops them at once ([`Access::changed`]), one made elsewhere
//!   within [`POLL`]. Each thread also remembers what it saw allowed, by the
//!   credentials' tag ([`Access::seen_allowed`]), so a repeated request is
//!   decided with no shared lock.

use ferry_auth::audit::Event;
use ferry_auth::credentials::{self, Credentials};
use ferry_auth::{Action, Grant, Key, Policy, Requirement, ResourceType, Subject};
use ferry_records::{DEFAULT_WORKSPACE, Error as StoreError, MetadataStore, Role, Token, User};
use http::{HeaderMap, header};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Single sign-on as a server runs it: the provider's verifier, and how to
/// read its keys again when they come from a URL (every [`JWKS_EVERY`], and
/// when a token names a key not known yet, at most every [`RELOAD_AFTER`]).
pub struct Sso {
    pub provider: ferry_auth::oidc::Provider,
    pub reload: Option<Reload>,
}

/// Reads the provider's keys again (blocking: a file or an HTTP request).
pub type Reload =
    Arc<dyn Fn() -> Result<ferry_auth::oidc::Provider, String> + Send + Sync + 'static>;

/// How often keys read from a URL are read again.
pub const JWKS_EVERY: Duration = Duration::from_secs(3600);

/// The least time between two reads of the keys for an unknown key.
pub const RELOAD_AFTER: Duration = Duration::from_secs(60);

struct SsoState {
    current: RwLock<Arc<ferry_auth::oidc::Provider>>,
    reload: Option<Reload>,
    reloaded: std::sync::Mutex<std::time::Instant>,
}

impl SsoState {
    fn provider(&self) -> Arc<ferry_auth::oidc::Provider> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reads the keys again when `after` has passed since the last read;
    /// whether new keys are in use. A failure keeps the keys there are.
    async fn reload(&self, after: Duration) -> bool {
        let Some(reload) = &self.reload else {
            return false;
        };
        {
            let mut last = self.reloaded.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < after {
                return false;
            }
            *last = std::time::Instant::now();
        }
        let reload = reload.clone();
        match tokio::task::spawn_blocking(move || reload())
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
        {
            Ok(p) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(p);
                true
            }
            Err(e) => {
                tracing::warn!("cannot read the identity provider's keys again: {e}");
                false
            }
        }
    }
}

/// See [`Access::tag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tag([u8; 32]);

/// What one thread saw allowed, for one [`Access`] and auth generation.
#[derive(Default)]
struct Seen {
    access: u64,
    generation: i64,
    /// By credentials: (decision code, id, until when).
    by_tag: HashMap<Tag, Vec<(u16, Box<str>, i64)>>,
}

thread_local! {
    static SEEN: std::cell::RefCell<Seen> = std::cell::RefCell::new(Seen::default());
}

/// Why a request was refused before its route ran.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No credentials, or credentials that name no one (401).
    #[error("credentials are missing or invalid")]
    Unauthenticated,
    /// A caller who may not do this (403).
    #[error("permission denied")]
    Forbidden,
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The header MLflow 3's clients name the workspace in.
pub const WORKSPACE_HEADER: &str = "x-mlflow-workspace";

/// How often the store's auth generation is read.
pub const POLL: Duration = Duration::from_secs(1);

/// How long verified Basic credentials are recognised without a new check.
const VERIFIED_TTL_MS: i64 = 5 * 60 * 1000;

/// How long a failed login waits before it is answered.
const FAILURE_DELAY: Duration = Duration::from_millis(250);

/// Who sent a request, once authenticated.
#[derive(Debug)]
pub struct Caller {
    pub user: Arc<User>,
    pub token: Option<Arc<Token>>,
    /// The workspace the request works in (header, token scope, the
    /// user's only workspace, else `default`).
    pub workspace: String,
    /// Until when its credentials count without a new check.
    pub until_ms: i64,
    /// The auth generation it was recognised in: what it is allowed is
    /// remembered for that generation only.
    pub generation: i64,
    /// The roles it holds through the groups its identity provider named
    /// (single sign-on); empty for ferry's own credentials, whose groups
    /// the store resolves with the user's roles.
    pub group_roles: Arc<Vec<Role>>,
    /// What this caller was allowed in this auth generation: by the id a
    /// rule named, the server's decision codes.
    allowed: RwLock<HashMap<String, Vec<u16>>>,
}

impl Caller {
    pub fn new(
        user: Arc<User>,
        token: Option<Arc<Token>>,
        workspace: String,
        until_ms: i64,
    ) -> Self {
        Self {
            user,
            token,
            workspace,
            until_ms,
            generation: -1,
            group_roles: Arc::default(),
            allowed: RwLock::new(HashMap::new()),
        }
    }

    pub fn was_allowed(&self, id: &str, code: u16) -> bool {
        self.allowed
            .read()
            .is_ok_and(|d| d.get(id).is_some_and(|codes| codes.contains(&code)))
    }

    pub fn allow(&self, id: &str, code: u16) {
        if let Ok(mut d) = self.allowed.write() {
            if d.len() >= MAX_DECISIONS {
                d.clear();
            }
            d.entry(id.to_owned()).or_default().push(code);
        }
    }
}

impl Clone for Caller {
    fn clone(&self) -> Self {
        let mut c = Self::new(
            self.user.clone(),
            self.token.clone(),
            self.workspace.clone(),
            self.until_ms,
        );
        c.group_roles = self.group_roles.clone();
        c.generation = self.generation;
        c
    }
}

/// Decisions kept per caller, at most.
const MAX_DECISIONS: usize = 10_000;

impl Caller {
    /// A server admin (a token limited to a role is not one).
    pub fn is_admin(&self) -> bool {
        self.user.is_admin && self.token.as_ref().is_none_or(|t| t.role.is_none())
    }

    /// The workspaces whose work the caller may see listed (the dashboard,
    /// cost reports, budgets): `None` for every one (a server admin), else
    /// those it holds a role in, its own and through its groups; only the
    /// one its token is limited to, if it is.
    pub async fn workspaces(
        &self,
        store: &dyn MetadataStore,
    ) -> Result<Option<std::collections::BTreeSet<String>>, StoreError> {
        // A token limited to a workspace works in no other, whoever holds it.
        let scope = self.token.as_ref().and_then(|t| t.workspace.clone());
        if self.is_admin() {
            return Ok(scope.map(|w| std::collections::BTreeSet::from([w])));
        }
        let mut ws: std::collections::BTreeSet<String> = store
            .roles_of(self.user.id)
            .await?
            .into_iter()
            .map(|r| r.workspace)
            .collect();
        ws.extend(self.group_roles.iter().map(|r| r.workspace.clone()));
        if let Some(w) = scope {
            ws.retain(|x| *x == w);
        }
        Ok(Some(ws))
    }
}

/// What is cached for one auth generation.
#[derive(Default)]
struct Cached {
    generation: i64,
    users: HashMap<String, Arc<User>>,
    tokens: HashMap<String, Arc<Token>>,
    /// Grants by (user id, workspace).
    grants: HashMap<(i64, String), Arc<Vec<Grant>>>,
    /// The workspaces a user has a role in.
    memberships: HashMap<i64, Arc<Vec<String>>>,
    workspaces: HashMap<(ResourceType, String), String>,
    /// Callers by a keyed tag of their `Authorization` and workspace
    /// headers, with until when they count.
    callers: HashMap<[u8; 32], (Arc<Caller>, i64)>,
}

/// Who is calling and what they hold, read from the store and cached per
/// auth generation; shared by every request of a server.
pub struct Access {
    /// Distinguishes this from other instances in [`SEEN`].
    id: u64,
    /// The auth generation the caches are of (readable without a lock).
    generation: std::sync::atomic::AtomicI64,
    /// Single sign-on: the identity provider whose ID tokens are accepted.
    oidc: Option<SsoState>,
    store: Arc<dyn MetadataStore>,
    policy: Policy,
    on: AtomicBool,
    /// Credentials are needed even with no users (a server reachable
    /// beyond loopback): then nothing passes until an admin is made.
    required: bool,
    verified: ferry_auth::secret::VerifiedCache,
    /// Password checks at once.
    checks: tokio::sync::Semaphore,
    /// The key of the callers' tags (drawn at start-up, never stored).
    tag_key: [u8; 32],
    cached: RwLock<Cached>,
}

impl Access {
    /// A gate over `store`, on when it has users.
    pub async fn new(store: Arc<dyn MetadataStore>) -> Result<Arc<Self>, StoreError> {
        Self::with(store, false).await
    }

    /// A gate that is on whatever the store holds (`required`), or on when
    /// it has users.
    pub async fn with(
        store: Arc<dyn MetadataStore>,
        required: bool,
    ) -> Result<Arc<Self>, StoreError> {
        Self::with_oidc(store, required, None).await
    }

    /// [`Access::with`], also accepting `oidc`'s ID tokens as Bearer.
    pub async fn with_oidc(
        store: Arc<dyn MetadataStore>,
        required: bool,
        oidc: Option<Sso>,
    ) -> Result<Arc<Self>, StoreError> {
        let oidc = oidc.map(|sso| SsoState {
            current: RwLock::new(Arc::new(sso.provider)),
            reload: sso.reload,
            // A token naming a key not known yet may read them at once.
            reloaded: std::sync::Mutex::new(
                std::time::Instant::now()
                    .checked_sub(RELOAD_AFTER)
                    .unwrap_or_else(std::time::Instant::now),
            ),
        });
        let verified = ferry_auth::secret::VerifiedCache::new(VERIFIED_TTL_MS, 10_000)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let gate = Arc::new(Self {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            generation: std::sync::atomic::AtomicI64::new(-1),
            oidc,
            store,
            policy: Policy::default(),
            on: AtomicBool::new(false),
            required,
            verified,
            checks: tokio::sync::Semaphore::new(2),
            tag_key: {
                let mut k = [0u8; 32];
                k[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                k[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                k
            },
            cached: RwLock::new(Cached {
                generation: -1,
                ..Cached::default()
            }),
        });
        gate.refresh().await?;
        Ok(gate)
    }

    /// The store this reads.
    pub fn store(&self) -> &Arc<dyn MetadataStore> {
        &self.store
    }

    /// Forgets that `username`'s password was verified (it changed, or
    /// the user did).
    pub fn forget_password(&self, username: &str) {
        self.verified.forget(username);
    }

    /// The policy grants are resolved under.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether requests need credentials (the store has users).
    pub fn is_on(&self) -> bool {
        self.required || self.on.load(Ordering::Relaxed)
    }

    /// Reads the store's auth generation; when it moved, drops the caches
    /// and reads whether there are users.
    pub async fn refresh(&self) -> Result<(), StoreError> {
        let generation = self.store.auth_generation().await?;
        let current = self
            .cached
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation;
        if generation != current {
            let on = !self.store.list_users().await?.is_empty();
            *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Cached {
                generation,
                ..Cached::default()
            };
            self.on.store(on, Ordering::Relaxed);
            self.generation.store(generation, Ordering::Release);
        }
        Ok(())
    }

    /// Polls [`Gate::refresh`] every [`POLL`] until the gate is dropped.
    pub fn spawn_poll(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(POLL).await;
                let Some(gate) = weak.upgrade() else { return };
                if let Err(e) = gate.refresh().await {
                    tracing::warn!("cannot read the auth generation: {e}");
                }
                // The provider's keys, read again every hour.
                if let Some(sso) = &gate.oidc {
                    sso.reload(JWKS_EVERY).await;
                }
            }
        });
    }

    /// Forgets everything cached now (after this server changed users,
    /// grants or workspaces; the poll would see it within a second).
    pub async fn changed(&self) {
        if let Err(e) = self.refresh().await {
            tracing::warn!("cannot read the auth generation: {e}");
        }
    }

    /// What `get` finds in this generation's cache, else what `load`
    /// finds in the store, kept there by `put` (nothing found: not kept).
    async fn memo<V: Clone>(
        &self,
        get: impl FnOnce(&Cached) -> Option<V>,
        put: impl FnOnce(&mut Cached, V),
        load: impl std::future::Future<Output = Result<Option<V>, StoreError>>,
    ) -> Result<Option<V>, StoreError> {
        let before = {
            let c = self.cached.read().unwrap_or_else(|e| e.into_inner());
            if let Some(v) = get(&c) {
                return Ok(Some(v));
            }
            c.generation
        };
        let found = load.await?;
        // What was read before a change is not kept for after it.
        if let (Some(v), Ok(mut c)) = (&found, self.cached.write())
            && c.generation == before
        {
            put(&mut c, v.clone());
        }
        Ok(found)
    }

    pub async fn user(&self, name: &str) -> Result<Option<Arc<User>>, StoreError> {
        self.memo(
            |c| c.users.get(name).cloned(),
            |c, u| drop(c.users.insert(name.to_owned(), u)),
            async { Ok(self.store.get_user(name).await?.map(Arc::new)) },
        )
        .await
    }

    pub async fn token(&self, id: &str) -> Result<Option<Arc<Token>>, StoreError> {
        self.memo(
            |c| c.tokens.get(id).cloned(),
            |c, t| drop(c.tokens.insert(id.to_owned(), t)),
            async { Ok(self.store.get_token(id).await?.map(Arc::new)) },
        )
        .await
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<Arc<User>>, StoreError> {
        let found = self
            .cached
            .read()
            .ok()
            .and_then(|c| c.users.values().find(|u| u.id == id).cloned());
        if found.is_some() {
            return Ok(found);
        }
        let Some(u) = self
            .store
            .list_users()
            .await?
            .into_iter()
            .find(|u| u.id == id)
        else {
            return Ok(None);
        };
        let u = Arc::new(u);
        if let Ok(mut c) = self.cached.write() {
            c.users.insert(u.username.clone(), u.clone());
        }
        Ok(Some(u))
    }

    /// A request's credentials as the caches know them: a keyed BLAKE3 tag
    /// of its `Authorization` and workspace headers (the key is drawn at
    /// start-up and never stored; no secret is kept).
    pub fn tag(&self, headers: &HeaderMap) -> Tag {
        let given = headers.get(header::AUTHORIZATION).map(|v| v.as_bytes());
        let named = headers.get(WORKSPACE_HEADER).map(|v| v.as_bytes());
        let mut h = blake3::Hasher::new_keyed(&self.tag_key);
        let given = given.unwrap_or_default();
        h.update(&(given.len() as u64).to_le_bytes());
        h.update(given);
        h.update(named.unwrap_or_default());
        Tag(*h.finalize().as_bytes())
    }

    /// Whether this thread saw the credentials `tag` allowed `code` on `id`
    /// in this auth generation, within their time: a server's hot path
    /// decides a repeated request with no lock and no shared write.
    pub fn seen_allowed(&self, tag: &Tag, id: &str, code: u16) -> bool {
        let generation = self.generation.load(Ordering::Acquire);
        let now = ferry_core::now_ms();
        SEEN.with(|seen| {
            let seen = seen.borrow();
            seen.access == self.id
                && seen.generation == generation
                && seen.by_tag.get(tag).is_some_and(|d| {
                    d.iter()
                        .any(|(c, i, until)| *c == code && now < *until && **i == *id)
                })
        })
    }

    /// Remembers on this thread that `caller` (by `tag`) was allowed
    /// `code` on `id` (see [`Access::seen_allowed`]).
    pub fn note_allowed(&self, tag: &Tag, caller: &Caller, id: &str, code: u16) {
        // Remembered for the generation the caller was recognised in: a
        // decision begun before a change is never kept for after it.
        let generation = caller.generation;
        if generation != self.generation.load(Ordering::Acquire) {
            return;
        }
        SEEN.with(|seen| {
            let mut seen = seen.borrow_mut();
            if seen.access != self.id
                || seen.generation != generation
                || seen.by_tag.len() >= MAX_DECISIONS
            {
                *seen = Seen {
                    access: self.id,
                    generation,
                    by_tag: HashMap::new(),
                };
            }
            let d = seen.by_tag.entry(*tag).or_default();
            if d.len() >= 1000 {
                d.clear();
            }
            d.push((code, id.into(), caller.until_ms));
        });
    }

    /// The caller a request's credentials name, or why not; a refusal is
    /// recorded in the audit log as a denied login by the user it claims.
    pub async fn caller(
        &self,
        headers: &HeaderMap,
        source: Option<std::net::IpAddr>,
    ) -> Result<Arc<Caller>, Refusal> {
        let refusal = match self.authenticate(headers).await {
            Ok(c) => return Ok(c),
            Err(r) => r,
        };
        let what = Audited {
            action: "auth.login",
            resource: String::new(),
            outcome: "denied",
            source,
            reason: None,
        };
        self.audit(None, &claimed_user(headers), what).await;
        Err(refusal)
    }

    /// The caller a request's credentials name, or why not. A caller seen
    /// with the same headers in this generation is recognised by a keyed
    /// tag of them (no secret is kept), until its credentials' time is up.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Caller>, Refusal> {
        let generation = self.generation.load(Ordering::Acquire);
        let tag = self.tag(headers).0;
        let now = ferry_core::now_ms();
        let seen = self
            .cached
            .read()
            .ok()
            .and_then(|c| c.callers.get(&tag).cloned());
        if let Some((caller, until)) = seen
            && now < until
        {
            return Ok(caller);
        }
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let mut group_roles = Vec::new();
        let (user, token, expires) = match credentials::parse_authorization(given) {
            None => return Err(Refusal::Unauthenticated),
            Some(Credentials::Basic { username, password }) => {
                (self.check_password(&username, &password).await?, None, None)
            }
            Some(Credentials::Bearer { token })
                if self.oidc.is_some() && ferry_auth::oidc::Provider::looks_like_jwt(&token) =>
            {
                let (user, roles, expires) = self.check_id_token(&token).await?;
                group_roles = roles;
                (user, None, Some(expires))
            }
            Some(Credentials::Bearer { token }) => {
                let (user, token) = self.check_token(&token).await?;
                let expires = token.expires_ms;
                (user, Some(token), expires)
            }
        };
        let workspace = self
            .workspace_of_request(headers, &user, token.as_deref(), &group_roles)
            .await?;
        let until = expires.map_or(now + VERIFIED_TTL_MS, |e| e.min(now + VERIFIED_TTL_MS));
        let mut caller = Caller::new(user, token, workspace, until);
        caller.group_roles = Arc::new(group_roles);
        caller.generation = generation;
        let caller = Arc::new(caller);
        if let Ok(mut c) = self.cached.write()
            && c.generation == generation
        {
            if c.callers.len() >= 10_000 {
                c.callers.retain(|_, (_, u)| now < *u);
            }
            c.callers.insert(tag, (caller.clone(), until));
        }
        Ok(caller)
    }

    async fn check_password(&self, username: &str, password: &str) -> Result<Arc<User>, Refusal> {
        let now = ferry_core::now_ms();
        let user = self.user(username).await?;
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        // The tag covers the stored hash: a changed password is checked anew.
        let tagged = format!("{}\u{0}{password}", stored.as_deref().unwrap_or(""));
        if let Some(u) = &user
            && stored.is_some()
            && self.verified.check(username, &tagged, now)
        {
            return Ok(u.clone());
        }
        let ok = {
            let _permit = self
                .checks
                .acquire()
                .await
                .map_err(|_| Refusal::Unauthenticated)?;
            let password = password.to_owned();
            let stored = stored.clone();
            tokio::task::spawn_blocking(move || match stored {
                Some(h) => ferry_auth::secret::verify_password(&h, &password),
                None => ferry_auth::secret::verify_unknown(&password),
            })
            .await
            .unwrap_or(false)
        };
        match user {
            Some(u) if ok => {
                self.verified.remember(username, &tagged, now);
                Ok(u)
            }
            _ => {
                tokio::time::sleep(FAILURE_DELAY).await;
                Err(Refusal::Unauthenticated)
            }
        }
    }

    /// The user an identity provider's ID token names (the ferry user of
    /// that name, else one with no roles of their own), the roles of the
    /// ferry groups its groups claim names, and when it expires.
    async fn check_id_token(&self, text: &str) -> Result<(Arc<User>, Vec<Role>, i64), Refusal> {
        let Some(sso) = &self.oidc else {
            return Err(Refusal::Unauthenticated);
        };
        let now_s = ferry_core::now_ms() / 1000;
        let mut verified = sso.provider().verify(text, now_s);
        // A key the provider rotated in: its keys read again, at most once
        // a minute, and the token tried once more.
        if verified == Err(ferry_auth::oidc::OidcError::UnknownKey)
            && sso.reload(RELOAD_AFTER).await
        {
            verified = sso.provider().verify(text, now_s);
        }
        let identity = match verified {
            Ok(i) => i,
            Err(e) => {
                tracing::info!("an ID token was refused: {e}");
                tokio::time::sleep(FAILURE_DELAY).await;
                return Err(Refusal::Unauthenticated);
            }
        };
        let user = match self.user(&identity.user).await? {
            // Only a user single sign-on made (or one like it: no password,
            // no admin, no service account) is the provider's to name: an
            // account `admin` at the provider is not ferry's admin.
            Some(u) if u.is_admin || u.password_hash.is_some() || u.service => {
                tracing::warn!(
                    "an ID token names `{}`, a ferry user with their own credentials: refused",
                    identity.user
                );
                tokio::time::sleep(FAILURE_DELAY).await;
                return Err(Refusal::Unauthenticated);
            }
            Some(u) => u,
            None => self.provision(&identity.user).await?,
        };
        let mut roles = Vec::new();
        for g in &identity.groups {
            roles.extend(self.store.group_roles(g).await?);
        }
        Ok((user, roles, identity.expires_ms))
    }

    /// The ferry user for a name the identity provider vouches for, made
    /// on first sign-in (no password, no roles of their own: what they
    /// create they manage, as any creator), and recorded in the audit log.
    async fn provision(&self, name: &str) -> Result<Arc<User>, Refusal> {
        let new = ferry_records::NewUser {
            username: name.to_owned(),
            password_hash: None,
            is_admin: false,
            service: false,
            created_ms: ferry_core::now_ms(),
        };
        match self.store.create_user(&new).await {
            Ok(_) => {
                let what = Audited {
                    action: "user.create",
                    resource: format!("user:{name}"),
                    outcome: "allowed",
                    source: None,
                    reason: Some("first sign-in through the identity provider"),
                };
                self.audit(None, "oidc", what).await;
            }
            // Made by a request beside this one.
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.changed().await;
        self.user(name).await?.ok_or(Refusal::Unauthenticated)
    }

    async fn check_token(&self, text: &str) -> Result<(Arc<User>, Arc<Token>), Refusal> {
        let Some((id, secret)) = ferry_auth::secret::parse_token(text) else {
            return Err(Refusal::Unauthenticated);
        };
        let token = self.token(id).await?;
        let live = token.as_ref().is_some_and(|t| {
            t.live(ferry_core::now_ms())
                && ferry_auth::secret::token_matches(&t.secret_hash, secret)
        });
        let (true, Some(token)) = (live, token) else {
            tokio::time::sleep(FAILURE_DELAY).await;
            return Err(Refusal::Unauthenticated);
        };
        match self.user_by_id(token.user_id).await? {
            Some(u) => Ok((u, token)),
            None => Err(Refusal::Unauthenticated),
        }
    }

    /// The workspace a request works in: its `X-MLFLOW-WORKSPACE` header
    /// (which a token limited to one workspace must agree with), else the
    /// token's, else the user's only workspace, else `default`.
    async fn workspace_of_request(
        &self,
        headers: &HeaderMap,
        user: &User,
        token: Option<&Token>,
        group_roles: &[Role],
    ) -> Result<String, Refusal> {
        let named = headers
            .get(WORKSPACE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let scoped = token.and_then(|t| t.workspace.as_deref());
        match (named, scoped) {
            // A token limited to one workspace works in no other.
            (Some(n), Some(s)) if n != s => Err(Refusal::Forbidden),
            (Some(n), _) => Ok(n.to_owned()),
            (None, Some(s)) => Ok(s.to_owned()),
            (None, None) => {
                let mut mine = self.memberships(user.id).await?.as_ref().clone();
                mine.extend(group_roles.iter().map(|r| r.workspace.clone()));
                mine.sort();
                mine.dedup();
                Ok(match mine.as_slice() {
                    [only] => only.clone(),
                    _ => DEFAULT_WORKSPACE.to_owned(),
                })
            }
        }
    }

    pub async fn memberships(&self, user_id: i64) -> Result<Arc<Vec<String>>, StoreError> {
        let load = async {
            let mut ws: Vec<String> = self
                .store
                .roles_of(user_id)
                .await?
                .into_iter()
                .map(|r| r.workspace)
                .collect();
            ws.sort();
            ws.dedup();
            Ok(Some(Arc::new(ws)))
        };
        let found = self.memo(
            |c| c.memberships.get(&user_id).cloned(),
            |c, m| drop(c.memberships.insert(user_id, m)),
            load,
        );
        Ok(found.await?.unwrap_or_default())
    }

    /// The caller's grants in `workspace` as a subject; a token limited to
    /// a role holds that role's grants there and nothing elsewhere.
    pub async fn subject(&self, caller: &Caller, workspace: &str) -> Result<Subject, Refusal> {
        if let Some(t) = &caller.token
            && let Some(role) = &t.role
        {
            let in_scope = t.workspace.as_deref().is_none_or(|w| w == workspace);
            let grants = match ferry_auth::builtin_role(role) {
                Some(g) if in_scope => g,
                _ => Vec::new(),
            };
            return Ok(Subject {
                is_admin: false,
                grants,
            });
        }
        let user = caller.user.id;
        let grants = self
            .memo(
                |c| c.grants.get(&(user, workspace.to_owned())).cloned(),
                |c, g| drop(c.grants.insert((user, workspace.to_owned()), g)),
                async { Ok(Some(Arc::new(self.store.grants_in(user, workspace).await?))) },
            )
            .await?
            .unwrap_or_default();
        let mut grants = grants.as_ref().clone();
        let through_groups = caller
            .group_roles
            .iter()
            .filter(|r| r.workspace == workspace);
        grants.extend(through_groups.flat_map(|r| r.grants.iter().map(|g| g.grant.clone())));
        Ok(Subject {
            is_admin: caller.is_admin(),
            grants,
        })
    }

    /// The workspace a resource was created in.
    pub async fn workspace(&self, rt: ResourceType, id: &str) -> Result<String, StoreError> {
        let found = self.memo(
            |c| c.workspaces.get(&(rt, id.to_owned())).cloned(),
            |c, w| drop(c.workspaces.insert((rt, id.to_owned()), w)),
            async { Ok(Some(self.store.workspace_of(rt, id).await?)) },
        );
        Ok(found.await?.unwrap_or_default())
    }

    /// Whether the caller may do `action` on the registered model `name`.
    pub async fn may_model(
        &self,
        caller: &Caller,
        name: &str,
        action: Action,
    ) -> Result<bool, Refusal> {
        self.may_for_model(caller, name, ResourceType::RegisteredModel, action)
            .await
    }

    /// Whether the caller may do `action` on the `rt` named after the
    /// registered model `name` (its deployment), in that model's workspace.
    pub async fn may_for_model(
        &self,
        caller: &Caller,
        name: &str,
        rt: ResourceType,
        action: Action,
    ) -> Result<bool, Refusal> {
        let ws = self.workspace(ResourceType::RegisteredModel, name).await?;
        let subject = self.subject(caller, &ws).await?;
        let req = Requirement::on(Key::new(rt, name), action);
        Ok(subject.may(&self.policy, &req))
    }

    /// Whether the caller may create in their request's workspace: a
    /// member, and `kind` not denied there.
    pub async fn may_create(
        &self,
        caller: &Caller,
        kind: ResourceType,
        id: &str,
    ) -> Result<bool, Refusal> {
        // A token limited to predicting makes nothing.
        if caller.token.as_ref().and_then(|t| t.role.as_deref()) == Some("predictor") {
            return Ok(false);
        }
        let subject = self.subject(caller, &caller.workspace).await?;
        let not_denied = Requirement::on(Key::new(kind, id), Action::NotDenied);
        Ok(subject.is_member() && subject.may(&self.policy, &not_denied))
    }

    /// Appends one audit entry; a failure is logged, never the request's.
    pub async fn audit(&self, caller: Option<&Caller>, actor: &str, what: Audited<'_>) {
        let event = Event {
            time_ms: ferry_core::now_ms(),
            actor: caller.map_or_else(|| actor.to_owned(), |c| c.user.username.clone()),
            token_id: caller.and_then(|c| c.token.as_ref().map(|t| t.id.clone())),
            action: what.action.to_owned(),
            resource: what.resource,
            outcome: what.outcome.to_owned(),
            source: what.source.map(|ip| ip.to_string()).unwrap_or_default(),
            reason: what.reason.map(str::to_owned),
        };
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::error!("cannot append to the audit log: {e}");
        }
    }
}

/// One entry's variable part.
pub struct Audited<'a> {
    pub action: &'a str,
    pub resource: String,
    pub outcome: &'a str,
    /// The peer's address (formatted only when an entry is written).
    pub source: Option<std::net::IpAddr>,
    /// Why, when the caller said (a protected alias moved by hand).
    pub reason: Option<&'a str>,
}

/// The user name a request claims (for the audit entry of a failed login;
/// never the password or token).
fn claimed_user(headers: &HeaderMap) -> String {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match credentials::parse_authorization(given) {
        Some(Credentials::Basic { username, .. }) => username,
        Some(Credentials::Bearer { token }) => ferry_auth::secret::parse_token(&token)
            .map_or_else(|| "token".to_owned(), |(id, _)| format!("token:{id}")),
        None => "anonymous".to_owned(),
    }
}
