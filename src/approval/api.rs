//! The HTTP JSON API of `lpexec-approvald`, as both the service and the front end see it.
//! Every call but `/healthz` and `/v1/keys` carries `Authorization: Bearer <ID token>`.
//!
//! | method and path | who | body → answer |
//! |---|---|---|
//! | `GET /healthz` | anyone | → `{"status":"ok"}` |
//! | `GET /v1/keys` | anyone | → [`Keys`] |
//! | `POST /v1/requests` | requester | [`Submit`] → 201 [`RequestView`] |
//! | `GET /v1/requests` | approver | → [`RequestList`]: pending requests the caller may approve |
//! | `GET /v1/requests/{id}?wait=SECS&since=STATUS` | requester, approvers | → [`RequestView`]; with `wait`, returns when the status differs from `since` (default `pending`), when an approval or denial is added, or after at most `SECS` (≤ 60) |
//! | `POST /v1/requests/{id}/approve` | approver | [`Act`] → [`RequestView`] |
//! | `POST /v1/requests/{id}/deny` | approver | [`Act`] → [`RequestView`] |
//! | `DELETE /v1/requests/{id}` | requester | → [`RequestView`] (withdrawn) |
//!
//! Errors are `4xx`/`5xx` with [`ErrorBody`]. The token is in a view only for the requester.

use serde::{Deserialize, Serialize};

use super::{Approval, ApprovalRequest, Principal};

/// Largest request body the service reads.
pub const MAX_BODY: usize = 512 * 1024;
/// Longest long-poll, in seconds.
pub const MAX_WAIT: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    pub request: ApprovalRequest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Act {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Expired,
    Withdrawn,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [Status::Pending, Status::Approved, Status::Denied, Status::Expired, Status::Withdrawn]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// A denial (or a withdrawal's author), as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Denial {
    pub iss: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// A request as the service shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestView {
    pub id: String,
    pub status: Status,
    pub requester: Principal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_email: Option<String>,
    /// Seconds since the epoch.
    pub created: i64,
    /// When a pending request expires.
    pub expires: i64,
    /// The request, with `subject.requester` filled in by the service.
    pub request: ApprovalRequest,
    pub approvals: Vec<Approval>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub denials: Vec<Denial>,
    /// The approval token: only for the requester, only once approved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestList {
    pub requests: Vec<RequestView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Key {
    pub kid: String,
    /// `ed25519:<base64url>`.
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keys {
    pub keys: Vec<Key>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: String,
}
