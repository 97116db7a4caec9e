//! Sign-in and sessions: `POST /api/login` checks an argon2 hash and opens a
//! session whose token is returned in the body (for API clients, as a bearer token)
//! and set as an HttpOnly, SameSite=Strict cookie (for the pages).

use std::sync::OnceLock;

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiJson, ErrorBody};
use super::{ApiError, AppState};
use crate::store::users::{self, SESSION_TTL_MS};
use crate::store::{User, UserRole};

/// The session cookie's name.
pub const COOKIE: &str = "yc_session";

/// The signed-in clerk of an API call; a missing or stale session is a 401.
#[derive(Clone, Debug)]
pub struct Clerk(pub User);

/// The signed-in clerk of a page; a missing session sends the browser to log in.
#[derive(Clone, Debug)]
pub struct PageUser(pub User);

/// The session token of a request: the bearer token, else the cookie.
pub fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = auth.trim().split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
            .filter(|t| !t.is_empty());
    }
    for cookies in headers.get_all(header::COOKIE) {
        let Ok(cookies) = cookies.to_str() else {
            continue;
        };
        for pair in cookies.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=')
                && name == COOKIE
                && !value.is_empty()
            {
                return Some(value.to_owned());
            }
        }
    }
    None
}

/// Tokens are 64 hex digits; anything else is refused before it reaches the store.
fn plausible(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn session_user(parts: &Parts, state: &AppState) -> Result<Option<User>, ApiError> {
    let Some(token) = token_of(&parts.headers).filter(|t| plausible(t)) else {
        return Ok(None);
    };
    Ok(state.store.call(move |s| s.session_user(&token)).await??)
}

impl FromRequestParts<AppState> for Clerk {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match session_user(parts, state).await? {
            Some(user) => Ok(Clerk(user)),
            None => Err(ApiError::unauthorized(
                "sign in first: POST /api/login, then send Authorization: Bearer <token>",
            )),
        }
    }
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match session_user(parts, state).await {
            Ok(Some(user)) => Ok(PageUser(user)),
            Ok(None) => Err(Redirect::to("/login").into_response()),
            Err(e) => Err(e.into_response()),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub name: String,
    #[schema(value_type = String, example = "clerk")]
    pub role: UserRole,
    /// When the session ends (Unix milliseconds).
    pub expires_ms: i64,
}

fn dummy_phc() -> &'static str {
    static PHC: OnceLock<String> = OnceLock::new();
    PHC.get_or_init(|| users::hash_password("not-a-real-password").unwrap_or_default())
}

/// The refusal of a locked name. It says the same for a name with no account, so it
/// tells nothing about which names exist.
fn locked(until_ms: i64, now_ms: i64) -> ApiError {
    // Rounded up, so a client that waits this long is let in.
    let secs = ((until_ms - now_ms).max(0) as u64).div_ceil(1000);
    let mut err = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many wrong passwords for this name; try again after {} China time (in {secs} s)",
            crate::store::cases_fmt_time(until_ms)
        ),
    )
    .field("name");
    err.retry_after_s = Some(secs);
    err
}

/// Checks a name and password and opens a session. An unknown name costs the same
/// argon2 work as a wrong password, so the answer's timing tells nothing; a name
/// with too many recent wrong passwords is refused before either is looked at.
pub async fn login(state: &AppState, name: String, password: String) -> Result<Session, ApiError> {
    let check = || {
        state
            .login_guard
            .check(&name)
            .map_err(|(until_ms, now_ms)| locked(until_ms, now_ms))
    };
    // Before queueing, so a locked name costs no argon2 slot …
    check()?;
    let Ok(_permit) = state.logins.acquire().await else {
        return Err(ApiError::unavailable());
    };
    // … and again with the slot held: a burst of guesses queued behind the first
    // ones must not each get its turn after the name was locked.
    check()?;
    let lookup = name.clone();
    let found = state
        .store
        .call(move |s| s.user_credentials(&lookup))
        .await??;
    let (user, phc) = match found {
        Some((user, phc)) => (Some(user), phc),
        None => (None, dummy_phc().to_owned()),
    };
    let ok = tokio::task::spawn_blocking(move || users::verify_password(&phc, &password))
        .await
        .map_err(|_| ApiError::internal())?;
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!("login refused");
        state.login_guard.failed(&name);
        return Err(ApiError::unauthorized("wrong user name or password"));
    };
    state.login_guard.succeeded(&name);
    let who = user.name.clone();
    let (token, expires_ms) = state.store.call(move |s| s.session_create(&who)).await??;
    tracing::info!(role = user.role.as_str(), "login");
    Ok(Session {
        token,
        name: user.name,
        role: user.role,
        expires_ms,
    })
}

pub fn session_cookie(token: &str) -> HeaderValue {
    let value = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL_MS / 1000
    );
    // Invariant: the token is hex and the rest is ASCII, so this is a valid header.
    HeaderValue::from_str(&value).expect("cookie header is ASCII")
}

pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("yc_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Sign in.
#[utoipa::path(post, path = "/api/login", tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, description = "Signed in; the token is also set as a cookie", body = Session),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 422, description = "A field is missing or of the wrong type", body = ErrorBody),
        (status = 429, description = "Too many wrong passwords for this name lately; the message and `Retry-After` say when to try again", body = ErrorBody),
    ))]
pub async fn api_login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<Response, ApiError> {
    let session = login(&state, body.name, body.password).await?;
    let cookie = session_cookie(&session.token);
    let mut resp = Json(session).into_response();
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(resp)
}

/// Sign out: the session ends at once.
#[utoipa::path(post, path = "/api/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401, body = ErrorBody)))]
pub async fn api_logout(
    State(state): State<AppState>,
    _clerk: Clerk,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = token_of(&headers) {
        state
            .store
            .call(move |s| s.session_delete(&token))
            .await??;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, clear_cookie());
    Ok(resp)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub name: String,
    #[schema(value_type = String)]
    pub role: UserRole,
    pub node: String,
    pub center: String,
    #[schema(value_type = String)]
    pub node_role: yichuang_shared::ids::Role,
    /// What this role may do: register, advance, edit, reveal, resolve, report.
    #[schema(value_type = Vec<String>)]
    pub permissions: Vec<&'static str>,
}

/// Who is signed in, on which node.
#[utoipa::path(get, path = "/api/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn api_me(State(state): State<AppState>, Clerk(user): Clerk) -> Json<Me> {
    Json(Me {
        name: user.name,
        role: user.role,
        node: state.node.name.clone(),
        center: state.node.center.clone(),
        node_role: state.node.role,
        permissions: super::roles::permissions(user.role),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn token_from_bearer_or_cookie() {
        let t = "ab".repeat(32);
        let check = |pairs: &[(&str, &str)], want: Option<&str>| {
            assert_eq!(token_of(&headers(pairs)).as_deref(), want, "{pairs:?}");
        };
        check(&[("authorization", &format!("Bearer {t}"))], Some(&t));
        check(&[("authorization", &format!("bearer   {t} "))], Some(&t));
        check(&[("authorization", "Basic dXNlcjpwYXNz")], None);
        check(&[("authorization", "Bearer")], None);
        check(
            &[("cookie", &format!("a=1; yc_session={t}; b=2"))],
            Some(&t),
        );
        check(&[("cookie", "yc_session=")], None);
        check(
            &[("cookie", "a=1"), ("cookie", &format!("yc_session={t}"))],
            Some(&t),
        );
        check(&[], None);
        assert!(plausible(&t));
        assert!(!plausible("zz"));
        assert!(!plausible(&"g".repeat(64)));
    }
}
