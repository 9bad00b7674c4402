//! HTTP plumbing shared by enrich's HTTP connectors: a client that follows no redirect, the limits a
//! request waits for (concurrency, pace, the service's announced window, a fatal answer that stops
//! every later request), retries with backoff, the common status-to-failure mapping, and transport
//! errors worded without the URL (which may carry a key or an email).
//!
//! Each connector keeps what is its service's own: the endpoint, the headers it reads, the meaning of
//! a body. Error texts here name the service by the `provider` given, never by a fixed name.

mod client;
mod failure;
mod limits;
mod retry;

pub use client::{
    USER_AGENT, base_url_problem, client, endpoint, read_body, redirected, shown_url, transport_failure,
};
pub use failure::{Failure, status_failure};
pub use limits::{Limits, Window};
pub use retry::RetryPolicy;
