//! Public, unauthenticated routes: point resolution, jurisdiction lookup and
//! health. Each answer reads one index snapshot from start to end.

mod batch_body;
pub mod cache;
pub mod changes;
pub mod discovery;
pub mod health;
pub mod jurisdictions;
pub mod locate;
pub mod params;
pub mod resolve;
pub mod services;

use crate::AppState;
use axum::Router;

/// Every public route.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(resolve::router())
        .merge(services::router())
        .merge(discovery::router())
        .merge(changes::router())
        .merge(jurisdictions::router())
        .merge(health::router())
}
