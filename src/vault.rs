//! The secrets vault in the Worker: a person's deploy credentials (`/api/vault…`, sealed in
//! their `UserQuota` object) and a project's runtime secrets (`/projects/{id}/secrets…`,
//! sealed in its room's SQLite), with core's `vault` doing the sealing; and what deploys and
//! dev-server starts ask for: one credential, or the project's runtime environment. No route
//! ever answers a value: values leave only toward the one request or process that uses them.

use crate::azure::random_bytes;
use crate::config::Config;
use crate::error::ApiError;
use crate::room_state::Room;
use open_replit_core::paths::percent_decode;
use open_replit_core::vault::{self, PutSecret, Scope, SecretEnv, SecretList, StoredSecret};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use worker::{Env, Method, Request, Response, State};

/// The room's kv key holding the project's sealed runtime secrets (one JSON map).
const KV_SECRETS: &str = "secrets";
/// The `UserQuota` storage key holding the person's sealed credentials.
const STORAGE_VAULT: &str = "vault";

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

fn operator_secret(env: &Env) -> Result<String, ApiError> {
    Config::from_env(env)
        .key_encryption_secret
        .filter(|s| s.trim().len() >= 16)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "this server cannot store secrets: KEY_ENCRYPTION_SECRET is not set (16 \
                 characters or more)"
                    .into(),
            )
        })
}

fn bad(e: vault::SealError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// The name in `…/{NAME}`, decoded and checked for `scope`.
fn name_of(scope: Scope, raw: &str) -> Result<String, ApiError> {
    let name = percent_decode(raw).map_err(ApiError::BadRequest)?;
    vault::validate_name(scope, &name).map_err(bad)?;
    Ok(name)
}

async fn put_body(req: &mut Request) -> Result<PutSecret, ApiError> {
    let text = req.text().await?;
    if text.len() > vault::MAX_SECRET_BYTES * 2 + 64 {
        return Err(ApiError::BadRequest(format!(
            "a secret's value must be at most {} bytes",
            vault::MAX_SECRET_BYTES
        )));
    }
    let body: PutSecret = serde_json::from_str(&text)
        .map_err(|_| ApiError::BadRequest("expected {\"value\": \"...\"}".into()))?;
    vault::validate_value(&body.value).map_err(bad)?;
    Ok(body)
}

/// Adds `name` = `value` to `stored`, within [`vault::MAX_SECRETS`].
fn insert(
    stored: &mut BTreeMap<String, StoredSecret>,
    secret: &str,
    scope: Scope,
    owner: &str,
    name: &str,
    value: &str,
) -> Result<(), ApiError> {
    if !stored.contains_key(name) && stored.len() >= vault::MAX_SECRETS {
        return Err(ApiError::BadRequest(format!(
            "at most {} secrets; delete one first",
            vault::MAX_SECRETS
        )));
    }
    let s = StoredSecret::new(
        secret,
        scope,
        owner,
        name,
        value,
        random_bytes::<12>(),
        now_ms(),
    )
    .map_err(bad)?;
    stored.insert(name.to_string(), s);
    Ok(())
}

fn listing(scope: Scope, stored: &BTreeMap<String, StoredSecret>) -> SecretList {
    vault::list(scope, stored.iter().map(|(k, v)| (k.as_str(), v)))
}

// ---- a person's deploy credentials ----

/// `GET /api/vault`, `PUT /api/vault/{NAME}` `{"value"}`, `DELETE /api/vault/{NAME}`.
pub async fn person_route(mut req: Request, env: &Env, user: &str) -> Result<Response, ApiError> {
    crate::quota::hit(
        env,
        &Config::from_env(env),
        user,
        open_replit_core::quota::RateKind::Request,
    )
    .await?;
    let path = req.path();
    let rest = path.trim_start_matches("/api/vault");
    let list: SecretList = match (req.method(), rest) {
        (Method::Get, "") => crate::quota::call(env, user, Method::Get, "/vault", None).await?,
        (Method::Put, r) if r.starts_with('/') => {
            let name = name_of(Scope::Person, &r[1..])?;
            operator_secret(env)?;
            let body = put_body(&mut req).await?;
            crate::quota::call(
                env,
                user,
                Method::Put,
                &format!("/vault/{name}"),
                Some(json!({ "value": body.value })),
            )
            .await?
        }
        (Method::Delete, r) if r.starts_with('/') => {
            let name = name_of(Scope::Person, &r[1..])?;
            crate::quota::call(env, user, Method::Delete, &format!("/vault/{name}"), None).await?
        }
        (m, _) => return Err(ApiError::NotFound(format!("{m:?} {path}"))),
    };
    Ok(Response::from_json(&list)?)
}

#[derive(Serialize, Deserialize)]
struct Opened {
    value: Option<String>,
}

/// Inside `UserQuota`: the vault's requests for `user` (`/vault…`; `/vault/open/{NAME}` only
/// ever comes from this Worker's own rooms: the object is not reachable from outside).
pub async fn object(
    state: &State,
    env: &Env,
    user: &str,
    mut req: Request,
) -> Result<Response, ApiError> {
    let path = req.path();
    let storage = state.storage();
    let mut stored: BTreeMap<String, StoredSecret> =
        storage.get(STORAGE_VAULT).await?.unwrap_or_default();
    match (req.method(), path.as_str()) {
        (Method::Get, "/vault") => {}
        (Method::Get, p) if p.starts_with("/vault/open/") => {
            let name = &p["/vault/open/".len()..];
            let value = match stored.get(name) {
                Some(s) => Some(
                    s.open(&operator_secret(env)?, Scope::Person, user, name)
                        .map_err(bad)?,
                ),
                None => None,
            };
            return Ok(Response::from_json(&Opened { value })?);
        }
        (Method::Put, p) if p.starts_with("/vault/") => {
            let name = name_of(Scope::Person, &p["/vault/".len()..])?;
            let body: PutSecret = req.json().await?;
            insert(
                &mut stored,
                &operator_secret(env)?,
                Scope::Person,
                user,
                &name,
                &body.value,
            )?;
            storage.put(STORAGE_VAULT, &stored).await?;
        }
        (Method::Delete, p) if p.starts_with("/vault/") => {
            stored.remove(&p["/vault/".len()..]);
            storage.put(STORAGE_VAULT, &stored).await?;
        }
        (m, p) => return Err(ApiError::NotFound(format!("vault: {m:?} {p}"))),
    }
    Ok(Response::from_json(&listing(Scope::Person, &stored))?)
}

/// The person's credential `name`, for the one request or command that needs it.
pub async fn credential(env: &Env, user: &str, name: &str) -> Result<Option<String>, ApiError> {
    let o: Opened =
        crate::quota::call(env, user, Method::Get, &format!("/vault/open/{name}"), None).await?;
    Ok(o.value)
}

/// Like [`credential`], but a missing one is a 400 saying where to add it.
pub async fn require(
    env: &Env,
    user: &str,
    name: &str,
    for_what: &str,
) -> Result<String, ApiError> {
    credential(env, user, name).await?.ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{for_what} needs your {name}: add it under Settings → Deploy credentials"
        ))
    })
}

// ---- a project's runtime secrets ----

fn project_stored(room: &Room) -> BTreeMap<String, StoredSecret> {
    room.get_kv(KV_SECRETS)
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// `GET /projects/{id}/secrets`, `PUT …/secrets/{NAME}` `{"value"}`, `DELETE …/secrets/{NAME}`
/// (editors only: the gate maps them to `Write`). A change applies at the next start of the
/// dev servers and the next publish.
pub async fn project_route(
    room: &Room,
    mut req: Request,
    id: &str,
    rest: &str,
) -> Result<Response, ApiError> {
    let mut stored = project_stored(room);
    let sub = rest.trim_start_matches("/secrets");
    match (req.method(), sub) {
        (Method::Get, "") => {}
        (Method::Put, r) if r.starts_with('/') => {
            let name = name_of(Scope::Project, &r[1..])?;
            let secret = operator_secret(room.env())?;
            let body = put_body(&mut req).await?;
            insert(&mut stored, &secret, Scope::Project, id, &name, &body.value)?;
            room.set_kv(KV_SECRETS, &serde_json::to_string(&stored)?)?;
        }
        (Method::Delete, r) if r.starts_with('/') => {
            let name = name_of(Scope::Project, &r[1..])?;
            if stored.remove(&name).is_none() {
                return Err(ApiError::NotFound(format!("no secret named {name}")));
            }
            room.set_kv(KV_SECRETS, &serde_json::to_string(&stored)?)?;
        }
        (m, _) => return Err(ApiError::NotFound(format!("{m:?} /projects/{id}{rest}"))),
    }
    Ok(Response::from_json(&listing(Scope::Project, &stored))?)
}

/// The project's runtime secrets as an environment for its app's processes (dev servers and
/// the deployed backend; never the agent's or the terminal's commands).
pub fn runtime_env(room: &Room, id: &str) -> Result<SecretEnv, ApiError> {
    let stored = project_stored(room);
    if stored.is_empty() {
        return Ok(SecretEnv::default());
    }
    let secret = operator_secret(room.env())?;
    let mut env = BTreeMap::new();
    for (name, s) in &stored {
        let v = s
            .open(&secret, Scope::Project, id, name)
            .map_err(|e| ApiError::BadRequest(format!("runtime secret {name}: {e}")))?;
        env.insert(name.clone(), v);
    }
    Ok(SecretEnv(env))
}
