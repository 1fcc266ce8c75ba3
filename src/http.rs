//! The HTTP service: router and layers, request extractors, routes, and the one mapping
//! from error kind to status and code.

pub mod error;
pub mod extract;
pub mod middleware;
pub mod router;
pub mod routes;
pub mod server;
mod shed;

pub use error::ApiError;
pub use router::{AdminToken, AppState, Exposure, HttpConfig, build_router, build_router_exposing};
pub use server::{ServeLimits, serve, serve_with};
