//! Public, unauthenticated routes: point resolution, jurisdiction lookup and
//! health. Each answer reads one index snapshot from start to end.

pub mod health;
pub mod jurisdictions;
pub mod params;
pub mod resolve;

use crate::AppState;
use axum::Router;

/// Every public route.
pub fn router() -> Router<AppState> {
    Router::new().merge(resolve::router()).merge(jurisdictions::router()).merge(health::router())
}
