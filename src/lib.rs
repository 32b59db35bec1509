//! ges-sidecar: makes the engine nodes of a GES graph look like one engine.
//!
//! # Architecture
//!
//! A request from the *downstream* (the client) reaches one Pingora proxy
//! service ([`proxy::Sidecar`]). [`routing`] classifies it:
//!
//! - the cluster-wide job list (`GET .../jobs/status`) is answered by
//!   [`aggregate`]: one *call* per engine node (an *upstream* *backend*), each
//!   answer a *part*, merged into the documented cluster order and sliced by
//!   `offset`/`limit`;
//! - everything else is forwarded to one node picked by [`upstream`].
//!
//! [`config`] turns flags, environment and a TOML file into a validated
//! [`config::Config`]; [`server`] builds the Pingora server from it;
//! [`error`] is the one place where failures become HTTP statuses and GES
//! error bodies; [`telemetry`] sets up tracing. [`engine`] is a stand-in GES
//! engine node used by the tests, the demo and the benchmarks, and [`demo`]
//! runs a small cluster of them behind the sidecar. [`allocator`] pins
//! glibc's mmap threshold at start, so memory goes back after big requests.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod admin;
pub mod aggregate;
pub mod allocator;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod headers;
pub mod lifecycle;
pub mod locate;
pub mod metrics;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod telemetry;
pub mod upstream;
