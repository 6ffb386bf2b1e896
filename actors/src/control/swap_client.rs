//! `mgrpo swap`'s client side: joins the run, finds its control endpoint and waits for the
//! answer, which comes once the swap took effect at a step boundary (or failed).
use std::time::Duration;

use crate::control::client::{ClientError, Target, connect};
use crate::control::endpoint::ControlMsg;
use crate::role::group;
use crate::rpc::{self, Wire, members};
use crate::swap::queue::{SwapOutcome, SwapRequest};

/// Why a swap did not happen (or its answer was lost).
#[derive(Debug, thiserror::Error)]
pub enum SwapClientError {
    /// Connecting failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No control endpoint in the run.
    #[error(
        "the run has no control endpoint (is its coordinator's node up? runs started before hot-swap have none)"
    )]
    NoEndpoint,
    /// The swap was refused or failed.
    #[error("swap failed: {0}")]
    Failed(String),
}

/// Sends `request` to the run of `target` and waits for its outcome (up to the request's wait
/// plus `connect_timeout` for the answer to travel).
pub async fn swap(
    target: &Target,
    request: SwapRequest,
    connect_timeout: Duration,
) -> Result<SwapOutcome, SwapClientError> {
    // Other nodes may be down (the swap then waits for its role); the endpoint's may not.
    let client = connect(target, connect_timeout, false).await?;
    let Some(endpoint) = members::<ControlMsg>(&client.ctx, group::CONTROL)
        .into_iter()
        .next()
    else {
        return Err(if client.down.is_empty() {
            SwapClientError::NoEndpoint
        } else {
            ClientError::Unreachable(client.down.join(", "), connect_timeout).into()
        });
    };
    // The endpoint answers once the swap is in effect: allow its whole wait, plus the
    // swap itself (loading and health-checking on every instance).
    let wait = Duration::from_secs(request.wait_s) + Duration::from_secs(60) + connect_timeout;
    let r = rpc::call_member(
        &endpoint,
        |reply| ControlMsg::Swap {
            request: Wire(request.clone()),
            reply,
        },
        Some(wait),
    )
    .await;
    r.map_err(|e| SwapClientError::Failed(e.to_string()))
}
