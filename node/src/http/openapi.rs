//! The API's routes and its OpenAPI document, both from the same handler list, so
//! the document cannot describe an endpoint that does not exist.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, api, auth, report, sse};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Yichuang node API",
        description = "Cases (办件), the conflict queue, the catalog and sync status of one Yichuang node. \
            Sign in with POST /api/login and send the token as `Authorization: Bearer <token>`. \
            Errors are `{\"error\": {\"message\": …, \"field\": …}}`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign in and out"),
        (name = "cases", description = "Register, list, show and advance cases"),
        (name = "conflicts", description = "Values and events the copies disagree on"),
        (name = "catalog", description = "The district's service items"),
        (name = "node", description = "Health, sync status, dashboard"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every API route, documented.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::node::health))
        .routes(routes!(auth::api_login))
        .routes(routes!(auth::api_logout))
        .routes(routes!(auth::api_me))
        .routes(routes!(api::catalog::catalog))
        .routes(routes!(api::list::list_cases, api::register::create_case))
        .routes(routes!(api::cases::get_case, api::cases::edit_case))
        .routes(routes!(api::cases::add_event))
        .routes(routes!(api::conflicts::resolve))
        .routes(routes!(api::conflicts::conflicts))
        .routes(routes!(api::node::sync_status))
        .routes(routes!(sse::sync_stream))
        .routes(routes!(api::node::dashboard))
        .routes(routes!(report::report))
        .route("/api/openapi.json", axum::routing::get(openapi_json))
}

/// The OpenAPI 3.1 document of this API.
pub fn document() -> utoipa::openapi::OpenApi {
    api_router().split_for_parts().1
}

/// Served to signed-in clients only: every API call but `/api/health` needs a session.
async fn openapi_json(_clerk: auth::Clerk) -> Json<utoipa::openapi::OpenApi> {
    static DOC: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(document).clone())
}
