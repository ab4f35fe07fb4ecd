//! `Directory`, the one Durable Object that knows people: users, sessions, personal API
//! tokens, socket tickets, sign-ins in flight, and each project's owner, members and
//! invitations, in its SQLite. The Worker's gate (`auth.rs`) asks it one question per request.
//!
//! Why a Durable Object and not D1: a revoked session or removed member must stop working on
//! the very next request, and a Durable Object is one strongly consistent writer (D1's read
//! replicas may lag); its SQLite lives next to the code that uses it, so a check is one
//! in-process query after one hop; it needs no separate database to create and migrate
//! (`wrangler dev` persists it like the `ProjectRoom`s, and it survives restarts); and it uses
//! the same SQL API the rooms already use. It is a single object, so every check goes to one
//! place: fine for one deployment's people, and shardable by user later if it is not.

use open_replit_core::auth::check_cache::CheckCache;
use open_replit_core::auth::directory::{
    normalize_handle, CheckReply, Credential, DirRequest, Member, PendingLogin, ProjectAccess,
    TokenInfo, User,
};
use open_replit_core::auth::roles::Role;
use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::*;

/// Most personal tokens one person may hold.
const MAX_TOKENS: usize = 50;
/// Most members plus invitations per project.
const MAX_MEMBERS: usize = 100;

#[durable_object]
pub struct Directory {
    state: State,
}

impl DurableObject for Directory {
    fn new(state: State, _env: Env) -> Self {
        let sql = state.storage().sql();
        for ddl in [
            "CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, name TEXT NOT NULL, email TEXT, login TEXT, provider TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS sessions (hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, expires_ms INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS logins (state_hash TEXT PRIMARY KEY, body TEXT NOT NULL, expires_ms INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, user_id TEXT NOT NULL, name TEXT NOT NULL, created_ms INTEGER NOT NULL, last_used_ms INTEGER)",
            "CREATE TABLE IF NOT EXISTS tickets (hash TEXT PRIMARY KEY, user_id TEXT NOT NULL, project TEXT NOT NULL, expires_ms INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS projects (id TEXT PRIMARY KEY, owner TEXT NOT NULL, created_ms INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS members (project TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (project, user_id))",
            "CREATE TABLE IF NOT EXISTS invites (project TEXT NOT NULL, handle TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (project, handle))",
            "CREATE TABLE IF NOT EXISTS slugs (slug TEXT PRIMARY KEY, project TEXT NOT NULL UNIQUE)",
            "CREATE INDEX IF NOT EXISTS members_by_user ON members (user_id)",
            "CREATE INDEX IF NOT EXISTS invites_by_handle ON invites (handle)",
        ] {
            if let Err(e) = sql.exec(ddl, None) {
                console_error!("Directory schema: {e}");
            }
        }
        Directory { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let op: DirRequest = match req.json().await {
            Ok(op) => op,
            Err(e) => return Response::error(format!("bad directory request: {e}"), 400),
        };
        match self.handle(op) {
            Ok(v) => Response::from_json(&v),
            Err(DirError::Bad(m)) => {
                Response::from_json(&json!({ "error": m })).map(|r| r.with_status(400))
            }
            Err(DirError::Worker(e)) => Err(e),
        }
    }
}

enum DirError {
    Bad(String),
    Worker(Error),
}

impl From<Error> for DirError {
    fn from(e: Error) -> Self {
        DirError::Worker(e)
    }
}

impl From<serde_json::Error> for DirError {
    fn from(e: serde_json::Error) -> Self {
        DirError::Worker(e.into())
    }
}

#[derive(Deserialize)]
struct UserRow {
    id: String,
    name: String,
    email: Option<String>,
    login: Option<String>,
    provider: String,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> User {
        User {
            id: r.id,
            name: r.name,
            email: r.email,
            login: r.login,
            provider: r.provider,
        }
    }
}

#[derive(Deserialize)]
struct Str {
    v: String,
}

fn ms(v: u64) -> SqlStorageValue {
    (v.min(i64::MAX as u64) as i64).into()
}

fn opt(v: &Option<String>) -> SqlStorageValue {
    match v {
        Some(s) => s.as_str().into(),
        None => SqlStorageValue::Null,
    }
}

impl Directory {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn rows<T: for<'de> Deserialize<'de>>(
        &self,
        q: &str,
        args: Vec<SqlStorageValue>,
    ) -> Result<Vec<T>> {
        self.sql().exec(q, Some(args))?.to_array()
    }

    fn run(&self, q: &str, args: Vec<SqlStorageValue>) -> Result<()> {
        self.sql().exec(q, Some(args))?;
        Ok(())
    }

    fn changed(&self, q: &str, args: Vec<SqlStorageValue>) -> Result<bool> {
        let cursor = self.sql().exec(q, Some(args))?;
        // Drain the cursor so the count covers the whole statement.
        let _: Vec<serde_json::Value> = cursor.to_array()?;
        Ok(cursor.rows_written() > 0)
    }

    fn slug_of(&self, project: &str) -> Result<Option<String>> {
        #[derive(Deserialize)]
        struct S {
            slug: String,
        }
        let rows: Vec<S> = self.rows(
            "SELECT slug FROM slugs WHERE project = ?",
            vec![project.into()],
        )?;
        Ok(rows.into_iter().next().map(|r| r.slug))
    }

    fn user(&self, id: &str) -> Result<Option<User>> {
        let rows: Vec<UserRow> = self.rows(
            "SELECT id, name, email, login, provider FROM users WHERE id = ?",
            vec![id.into()],
        )?;
        Ok(rows.into_iter().next().map(User::from))
    }

    fn role(&self, project: &str, user_id: &str) -> Result<Option<Role>> {
        let owner: Vec<Str> = self.rows(
            "SELECT owner AS v FROM projects WHERE id = ?",
            vec![project.into()],
        )?;
        if owner.first().is_some_and(|o| o.v == user_id) {
            return Ok(Some(Role::Owner));
        }
        let m: Vec<Str> = self.rows(
            "SELECT role AS v FROM members WHERE project = ? AND user_id = ?",
            vec![project.into(), user_id.into()],
        )?;
        Ok(m.first().and_then(|r| Role::parse(&r.v)))
    }

    fn handle(&self, op: DirRequest) -> std::result::Result<serde_json::Value, DirError> {
        Ok(match op {
            DirRequest::Check {
                credential,
                project,
                now_ms,
            } => serde_json::to_value(self.check(credential, project, now_ms)?)?,
            DirRequest::SignIn {
                user,
                session_hash,
                expires_ms,
            } => {
                self.run(
                    "INSERT INTO users (id, name, email, login, provider) VALUES (?, ?, ?, ?, ?) \
                     ON CONFLICT(id) DO UPDATE SET name = excluded.name, email = excluded.email, \
                     login = excluded.login, provider = excluded.provider",
                    vec![
                        user.id.as_str().into(),
                        user.name.as_str().into(),
                        opt(&user.email),
                        opt(&user.login),
                        user.provider.as_str().into(),
                    ],
                )?;
                self.accept_invites(&user)?;
                self.run(
                    "INSERT INTO sessions (hash, user_id, expires_ms) VALUES (?, ?, ?)",
                    vec![session_hash.into(), user.id.into(), ms(expires_ms)],
                )?;
                json!({})
            }
            DirRequest::Logout { session_hash } => {
                self.run(
                    "DELETE FROM sessions WHERE hash = ?",
                    vec![session_hash.into()],
                )?;
                json!({})
            }
            DirRequest::PutLogin { state_hash, login } => {
                // Forget abandoned sign-ins while we are here.
                self.run(
                    "DELETE FROM logins WHERE expires_ms < ?",
                    vec![ms(login.expires_ms.saturating_sub(20 * 60 * 1000))],
                )?;
                self.run(
                    "INSERT INTO logins (state_hash, body, expires_ms) VALUES (?, ?, ?)",
                    vec![
                        state_hash.into(),
                        serde_json::to_string(&login)?.into(),
                        ms(login.expires_ms),
                    ],
                )?;
                json!({})
            }
            DirRequest::TakeLogin { state_hash, now_ms } => {
                let rows: Vec<Str> = self.rows(
                    "SELECT body AS v FROM logins WHERE state_hash = ?",
                    vec![state_hash.as_str().into()],
                )?;
                self.run(
                    "DELETE FROM logins WHERE state_hash = ?",
                    vec![state_hash.into()],
                )?;
                let login: Option<PendingLogin> = rows
                    .first()
                    .and_then(|r| serde_json::from_str::<PendingLogin>(&r.v).ok())
                    .filter(|l| l.expires_ms >= now_ms);
                serde_json::to_value(login)?
            }
            DirRequest::CreateToken {
                user_id,
                hash,
                name,
                now_ms,
            } => {
                let n: Vec<Str> = self.rows(
                    "SELECT CAST(COUNT(*) AS TEXT) AS v FROM tokens WHERE user_id = ?",
                    vec![user_id.as_str().into()],
                )?;
                if n.first().and_then(|r| r.v.parse::<usize>().ok()) >= Some(MAX_TOKENS) {
                    return Err(DirError::Bad(format!(
                        "you already have {MAX_TOKENS} tokens; delete one first"
                    )));
                }
                // The id is public (shown in lists, used to delete): a prefix of the hash,
                // which says nothing about the token itself.
                let id = hash[..16.min(hash.len())].to_string();
                self.run(
                    "INSERT INTO tokens (id, hash, user_id, name, created_ms) VALUES (?, ?, ?, ?, ?)",
                    vec![
                        id.as_str().into(),
                        hash.into(),
                        user_id.into(),
                        name.as_str().into(),
                        ms(now_ms),
                    ],
                )?;
                serde_json::to_value(TokenInfo {
                    id,
                    name,
                    created_ms: now_ms,
                    last_used_ms: None,
                })?
            }
            DirRequest::ListTokens { user_id } => {
                #[derive(Deserialize)]
                struct R {
                    id: String,
                    name: String,
                    created_ms: i64,
                    last_used_ms: Option<i64>,
                }
                let rows: Vec<R> = self.rows(
                    "SELECT id, name, created_ms, last_used_ms FROM tokens WHERE user_id = ? ORDER BY created_ms DESC",
                    vec![user_id.into()],
                )?;
                let list: Vec<TokenInfo> = rows
                    .into_iter()
                    .map(|r| TokenInfo {
                        id: r.id,
                        name: r.name,
                        created_ms: r.created_ms.max(0) as u64,
                        last_used_ms: r.last_used_ms.map(|v| v.max(0) as u64),
                    })
                    .collect();
                serde_json::to_value(list)?
            }
            DirRequest::DeleteToken { user_id, id } => {
                let deleted = self.changed(
                    "DELETE FROM tokens WHERE id = ? AND user_id = ?",
                    vec![id.into(), user_id.into()],
                )?;
                json!({ "deleted": deleted })
            }
            DirRequest::CreateTicket {
                hash,
                user_id,
                project,
                expires_ms,
            } => {
                self.run(
                    "DELETE FROM tickets WHERE expires_ms < ?",
                    vec![ms(expires_ms.saturating_sub(10 * 60 * 1000))],
                )?;
                self.run(
                    "INSERT INTO tickets (hash, user_id, project, expires_ms) VALUES (?, ?, ?, ?)",
                    vec![hash.into(), user_id.into(), project.into(), ms(expires_ms)],
                )?;
                json!({})
            }
            DirRequest::ClaimProject {
                project,
                user_id,
                now_ms,
            } => {
                let claimed = self.changed(
                    "INSERT INTO projects (id, owner, created_ms) VALUES (?, ?, ?) ON CONFLICT(id) DO NOTHING",
                    vec![project.into(), user_id.into(), ms(now_ms)],
                )?;
                json!({ "claimed": claimed })
            }
            DirRequest::ListProjects { user_id } => {
                #[derive(Deserialize)]
                struct R {
                    project: String,
                    role: String,
                }
                let rows: Vec<R> = self.rows(
                    "SELECT id AS project, 'owner' AS role FROM projects WHERE owner = ? \
                     UNION ALL SELECT project, role FROM members WHERE user_id = ?",
                    vec![user_id.as_str().into(), user_id.as_str().into()],
                )?;
                let list: Vec<ProjectAccess> = rows
                    .into_iter()
                    .filter_map(|r| {
                        Some(ProjectAccess {
                            role: Role::parse(&r.role)?,
                            project: r.project,
                        })
                    })
                    .collect();
                serde_json::to_value(list)?
            }
            DirRequest::Members { project } => serde_json::to_value(self.members(&project)?)?,
            DirRequest::Invite {
                project,
                handle,
                role,
            } => serde_json::to_value(self.invite(&project, &handle, role)?)?,
            DirRequest::RemoveMember { project, who } => {
                let by_user = self.changed(
                    "DELETE FROM members WHERE project = ? AND user_id = ?",
                    vec![project.as_str().into(), who.as_str().into()],
                )?;
                let handle = normalize_handle(&who).unwrap_or(who);
                let by_handle = self.changed(
                    "DELETE FROM invites WHERE project = ? AND handle = ?",
                    vec![project.into(), handle.into()],
                )?;
                json!({ "removed": by_user || by_handle })
            }
            DirRequest::RemoveProject { project } => {
                let mut removed = false;
                for sql in [
                    "DELETE FROM projects WHERE id = ?",
                    "DELETE FROM members WHERE project = ?",
                    "DELETE FROM invites WHERE project = ?",
                    "DELETE FROM tickets WHERE project = ?",
                    "DELETE FROM slugs WHERE project = ?",
                ] {
                    removed |= self.changed(sql, vec![project.as_str().into()])?;
                }
                json!({ "removed": removed })
            }
            DirRequest::ClaimSlug {
                project,
                candidates,
            } => {
                if let Some(s) = self.slug_of(&project)? {
                    return Ok(json!(s));
                }
                for c in candidates {
                    open_replit_core::deploy::serve::validate_slug(&c).map_err(DirError::Bad)?;
                    if self.changed(
                        "INSERT INTO slugs (slug, project) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        vec![c.as_str().into(), project.as_str().into()],
                    )? {
                        return Ok(json!(c));
                    }
                }
                return Err(DirError::Bad(format!(
                    "every candidate slug for {project} is taken"
                )));
            }
            DirRequest::SlugOf { project } => json!(self.slug_of(&project)?),
            DirRequest::SlugProject { slug } => {
                #[derive(Deserialize)]
                struct P {
                    project: String,
                }
                let rows: Vec<P> = self.rows(
                    "SELECT project FROM slugs WHERE slug = ?",
                    vec![slug.into()],
                )?;
                json!(rows.into_iter().next().map(|r| r.project))
            }
        })
    }

    fn check(
        &self,
        credential: Credential,
        project: Option<String>,
        now_ms: u64,
    ) -> Result<CheckReply> {
        let none = CheckReply {
            user: None,
            role: None,
        };
        let user_id = match &credential {
            Credential::Session(h) => {
                let rows: Vec<Str> = self.rows(
                    "SELECT user_id AS v FROM sessions WHERE hash = ? AND expires_ms > ?",
                    vec![h.as_str().into(), ms(now_ms)],
                )?;
                rows.into_iter().next().map(|r| r.v)
            }
            Credential::Token(h) => {
                let rows: Vec<Str> = self.rows(
                    "SELECT user_id AS v FROM tokens WHERE hash = ?",
                    vec![h.as_str().into()],
                )?;
                let id = rows.into_iter().next().map(|r| r.v);
                if id.is_some() {
                    self.run(
                        "UPDATE tokens SET last_used_ms = ? WHERE hash = ?",
                        vec![ms(now_ms), h.as_str().into()],
                    )?;
                }
                id
            }
            Credential::Ticket(h) => {
                #[derive(Deserialize)]
                struct R {
                    user_id: String,
                    project: String,
                    expires_ms: i64,
                }
                let rows: Vec<R> = self.rows(
                    "SELECT user_id, project, expires_ms FROM tickets WHERE hash = ?",
                    vec![h.as_str().into()],
                )?;
                // One use only, whatever the outcome.
                self.run(
                    "DELETE FROM tickets WHERE hash = ?",
                    vec![h.as_str().into()],
                )?;
                rows.into_iter()
                    .next()
                    .filter(|t| {
                        t.expires_ms as u64 > now_ms && project.as_deref() == Some(&t.project)
                    })
                    .map(|t| t.user_id)
            }
        };
        let Some(user_id) = user_id else {
            return Ok(none);
        };
        let Some(user) = self.user(&user_id)? else {
            return Ok(none);
        };
        let role = match &project {
            Some(p) => self.role(p, &user.id)?,
            None => None,
        };
        Ok(CheckReply {
            user: Some(user),
            role,
        })
    }

    /// Invitations naming this person's email or GitHub login become memberships.
    fn accept_invites(&self, user: &User) -> Result<()> {
        let mut handles = vec![];
        if let Some(e) = &user.email {
            handles.push(e.to_ascii_lowercase());
        }
        if let Some(l) = &user.login {
            handles.push(format!("@{}", l.to_ascii_lowercase()));
        }
        for h in handles {
            #[derive(Deserialize)]
            struct R {
                project: String,
                role: String,
            }
            let rows: Vec<R> = self.rows(
                "SELECT project, role FROM invites WHERE handle = ?",
                vec![h.as_str().into()],
            )?;
            for r in rows {
                if self.role(&r.project, &user.id)? != Some(Role::Owner) {
                    self.run(
                        "INSERT INTO members (project, user_id, role) VALUES (?, ?, ?) \
                         ON CONFLICT(project, user_id) DO UPDATE SET role = excluded.role",
                        vec![
                            r.project.as_str().into(),
                            user.id.as_str().into(),
                            r.role.into(),
                        ],
                    )?;
                }
                self.run(
                    "DELETE FROM invites WHERE project = ? AND handle = ?",
                    vec![r.project.into(), h.as_str().into()],
                )?;
            }
        }
        Ok(())
    }

    fn members(&self, project: &str) -> Result<Vec<Member>> {
        #[derive(Deserialize, Serialize)]
        struct R {
            user_id: String,
            role: String,
            name: Option<String>,
            email: Option<String>,
            login: Option<String>,
        }
        let rows: Vec<R> = self.rows(
            // The owner first, then members in the order they joined (rowid).
            "SELECT p.owner AS user_id, 'owner' AS role, u.name, u.email, u.login, 0 AS k FROM projects p \
             LEFT JOIN users u ON u.id = p.owner WHERE p.id = ? \
             UNION ALL SELECT m.user_id, m.role, u.name, u.email, u.login, m.rowid AS k FROM members m \
             LEFT JOIN users u ON u.id = m.user_id WHERE m.project = ? ORDER BY k",
            vec![project.into(), project.into()],
        )?;
        let mut out: Vec<Member> = rows
            .into_iter()
            .filter_map(|r| {
                let handle = r
                    .email
                    .clone()
                    .or(r.login.as_ref().map(|l| format!("@{l}")))
                    .unwrap_or_else(|| r.user_id.clone());
                Some(Member {
                    name: r.name.unwrap_or_else(|| handle.clone()),
                    handle,
                    role: Role::parse(&r.role)?,
                    user_id: Some(r.user_id),
                })
            })
            .collect();
        #[derive(Deserialize)]
        struct I {
            handle: String,
            role: String,
        }
        let invites: Vec<I> = self.rows(
            "SELECT handle, role FROM invites WHERE project = ? ORDER BY handle",
            vec![project.into()],
        )?;
        out.extend(invites.into_iter().filter_map(|i| {
            Some(Member {
                user_id: None,
                name: i.handle.clone(),
                handle: i.handle,
                role: Role::parse(&i.role)?,
            })
        }));
        Ok(out)
    }

    fn invite(
        &self,
        project: &str,
        handle: &str,
        role: Role,
    ) -> std::result::Result<Member, DirError> {
        if role == Role::Owner {
            return Err(DirError::Bad(
                "invite as viewer or editor; a project has one owner".into(),
            ));
        }
        let handle = normalize_handle(handle).map_err(DirError::Bad)?;
        if self.members(project)?.len() >= MAX_MEMBERS {
            return Err(DirError::Bad(format!(
                "a project has at most {MAX_MEMBERS} members and invitations"
            )));
        }
        // Someone who already signed in with that email or login joins at once.
        let known: Vec<UserRow> = match handle.strip_prefix('@') {
            Some(login) => self.rows(
                "SELECT id, name, email, login, provider FROM users WHERE lower(login) = ?",
                vec![login.into()],
            )?,
            None => self.rows(
                "SELECT id, name, email, login, provider FROM users WHERE lower(email) = ?",
                vec![handle.as_str().into()],
            )?,
        };
        if let Some(u) = known.into_iter().next() {
            if self.role(project, &u.id)? == Some(Role::Owner) {
                return Err(DirError::Bad(format!("{handle} owns this project")));
            }
            self.run(
                "INSERT INTO members (project, user_id, role) VALUES (?, ?, ?) \
                 ON CONFLICT(project, user_id) DO UPDATE SET role = excluded.role",
                vec![project.into(), u.id.as_str().into(), role.as_str().into()],
            )?;
            return Ok(Member {
                user_id: Some(u.id),
                name: u.name,
                handle,
                role,
            });
        }
        self.run(
            "INSERT INTO invites (project, handle, role) VALUES (?, ?, ?) \
             ON CONFLICT(project, handle) DO UPDATE SET role = excluded.role",
            vec![project.into(), handle.as_str().into(), role.as_str().into()],
        )?;
        Ok(Member {
            user_id: None,
            name: handle.clone(),
            handle,
            role,
        })
    }
}

thread_local! {
    /// Recent answers to checks in this isolate (core's `auth::check_cache`): emptied before
    /// any call that changes who may do what.
    static CHECKS: std::cell::RefCell<CheckCache> = std::cell::RefCell::new(CheckCache::default());
}

/// Who holds `credential`, and their role on `project`: a remembered answer when this isolate
/// asked within the last 5 s, else the Directory's.
pub async fn check(
    env: &Env,
    credential: Credential,
    project: Option<&str>,
    now_ms: u64,
) -> std::result::Result<CheckReply, crate::error::ApiError> {
    if let Some(r) = CHECKS.with(|c| c.borrow_mut().get(&credential, project, now_ms)) {
        return Ok(r);
    }
    let reply: CheckReply = call(
        env,
        &DirRequest::Check {
            credential: credential.clone(),
            project: project.map(String::from),
            now_ms,
        },
    )
    .await?;
    CHECKS.with(|c| c.borrow_mut().put(&credential, project, &reply, now_ms));
    Ok(reply)
}

/// The Worker's client for the Directory: one typed call per request.
pub async fn call<T: for<'de> Deserialize<'de>>(
    env: &Env,
    op: &DirRequest,
) -> std::result::Result<T, crate::error::ApiError> {
    use crate::error::ApiError;
    if open_replit_core::auth::check_cache::changes_access(op) {
        CHECKS.with(|c| c.borrow_mut().clear());
    }
    let stub = env.durable_object("DIRECTORY")?.get_by_name("directory")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_body(Some(serde_json::to_string(op)?.into()));
    let req = Request::new_with_init("https://directory/op", &init)?;
    let mut resp = stub.fetch_with_request(req).await?;
    let status = resp.status_code();
    let text = resp.text().await?;
    if status == 400 {
        let msg = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(String::from))
            .unwrap_or(text);
        return Err(ApiError::BadRequest(msg));
    }
    if status != 200 {
        return Err(ApiError::Internal(format!(
            "the directory answered {status}: {text}"
        )));
    }
    serde_json::from_str(&text)
        .map_err(|e| ApiError::Internal(format!("the directory's answer: {e}")))
}
