//! Who may do what on the web side. Roles nest: a clerk (窗口人员) registers, advances
//! and edits cases and reads everything masked; a supervisor (主管) also resolves
//! conflicts and reveals full ID numbers (each reveal an audited event); an admin
//! (管理员) also reads the district report. The table in [`Action::min_role`] is the
//! whole policy; the API refuses with 403 and the pages hide what a role may not use.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::auth::Clerk;
use super::{ApiError, AppState};
use crate::store::{User, UserRole};

/// Something a signed-in user asks for that not every role may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Register,
    Advance,
    Edit,
    Reveal,
    Resolve,
    Report,
}

impl Action {
    pub const ALL: [Action; 6] = [
        Action::Register,
        Action::Advance,
        Action::Edit,
        Action::Reveal,
        Action::Resolve,
        Action::Report,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Register => "register",
            Action::Advance => "advance",
            Action::Edit => "edit",
            Action::Reveal => "reveal",
            Action::Resolve => "resolve",
            Action::Report => "report",
        }
    }

    /// The least role that may do it.
    pub fn min_role(self) -> UserRole {
        match self {
            Action::Register | Action::Advance | Action::Edit => UserRole::Clerk,
            // A full ID number is personal data (PIPL): only a supervisor sees it, and
            // the case records who did. Picking the value that wins a conflict
            // overrides a colleague's write, so it is a supervisor's call too.
            Action::Reveal | Action::Resolve => UserRole::Supervisor,
            Action::Report => UserRole::Admin,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Action::Register => "registering a case",
            Action::Advance => "advancing a case",
            Action::Edit => "editing a case",
            Action::Reveal => "revealing a full ID number",
            Action::Resolve => "resolving a conflict",
            Action::Report => "the district report",
        }
    }
}

/// Roles nest, so a rank orders them.
fn rank(role: UserRole) -> u8 {
    match role {
        UserRole::Clerk => 0,
        UserRole::Supervisor => 1,
        UserRole::Admin => 2,
    }
}

/// Whether `role` may do `action`.
pub fn may(role: UserRole, action: Action) -> bool {
    rank(role) >= rank(action.min_role())
}

/// Every action `role` may do, by name (for `/api/me`).
pub fn permissions(role: UserRole) -> Vec<&'static str> {
    Action::ALL
        .into_iter()
        .filter(|a| may(role, *a))
        .map(Action::as_str)
        .collect()
}

/// Refuses with 403 unless `user` may do `action`.
pub fn require(user: &User, action: Action) -> Result<(), ApiError> {
    if may(user.role, action) {
        return Ok(());
    }
    // The role and the action only: the user's name is personal data.
    tracing::info!(
        role = user.role.as_str(),
        action = action.as_str(),
        "forbidden"
    );
    Err(ApiError::forbidden(format!(
        "{} needs the {} role; you are signed in as {}",
        action.describe(),
        action.min_role(),
        user.role
    )))
}

/// An action a whole endpoint is for, as a type, so the check runs before the body
/// is read (a forbidden caller learns nothing about its input).
pub trait Gate {
    const ACTION: Action;
}

/// Marks an endpoint that resolves conflicts.
#[derive(Debug)]
pub struct ToResolve;

impl Gate for ToResolve {
    const ACTION: Action = Action::Resolve;
}

/// Marks an endpoint that reads the district report.
#[derive(Debug)]
pub struct ToReport;

impl Gate for ToReport {
    const ACTION: Action = Action::Report;
}

/// A signed-in user whose role may do `G`'s action: 401 without a session, 403
/// when the role falls short.
#[derive(Debug)]
pub struct Allowed<G>(pub User, pub(super) PhantomData<G>);

impl<G: Gate + Send + Sync> FromRequestParts<AppState> for Allowed<G> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Clerk(user) = Clerk::from_request_parts(parts, state).await?;
        require(&user, G::ACTION)?;
        Ok(Allowed(user, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_nest() {
        let table = [
            (UserRole::Clerk, "register,advance,edit"),
            (UserRole::Supervisor, "register,advance,edit,reveal,resolve"),
            (
                UserRole::Admin,
                "register,advance,edit,reveal,resolve,report",
            ),
        ];
        for (role, want) in table {
            assert_eq!(permissions(role).join(","), want, "{role}");
        }
        let clerk = User {
            name: "C1".into(),
            role: UserRole::Clerk,
        };
        let e = require(&clerk, Action::Reveal).unwrap_err();
        assert_eq!(e.status.as_u16(), 403);
        assert!(e.message.contains("supervisor"), "{}", e.message);
        assert!(!e.message.contains("C1"), "no name in the message");
    }
}
