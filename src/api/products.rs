//! Product reads (from the cache) and admin writes.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};

use super::{
    docs::{
        LocationPath, MalformedJson, PayloadTooLarge, RequestTimeout, Unauthorized, Unavailable,
        UnsupportedMediaType,
    },
    error::{ApiError, ApiResult, classify},
    extract::{Admin, PathId},
    input::Valid,
    requests::{CreateProduct, Restock, UpdateProduct},
    responses::ProductList,
    state::AppState,
};
use crate::{
    broker::Event,
    db::products::{self, Unchanged},
    domain::Product,
    problem::Problem,
};

#[utoipa::path(get, path = "/api/v1/products", operation_id = "listProducts", summary = "List the products", tag = "products",
    responses(
        (status = 200, description = "Every product, by id", body = ProductList),
        (status = 503, response = Unavailable)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<ProductList>> {
    let data = if state.cache.is_fresh() {
        state.cache.list()
    } else {
        products::list(&state.pool).await?
    };
    Ok(Json(ProductList { data }))
}

#[utoipa::path(get, path = "/api/v1/products/{id}", operation_id = "getProduct", summary = "Read a product", tag = "products",
    params(("id" = i64, Path, minimum = 1, maximum = 9_223_372_036_854_775_807_i64,
        description = "A product id; anything else in its place is 404")),
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "`not_found`: no such product", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn get(State(state): State<AppState>, path: PathId) -> ApiResult<Json<Product>> {
    let id = path.product_id()?;
    Ok(Json(find(&state, id).await?))
}

/// A product from the cache, or from the database when the cache has not
/// seen it yet (created a moment ago through another replica).
pub async fn find(state: &AppState, id: i64) -> ApiResult<Product> {
    if let Some(product) = state.cache.get(id) {
        return Ok(product);
    }
    match products::get(&state.pool, id).await? {
        Some(product) => {
            state.cache.put(product.clone());
            Ok(product)
        }
        None => Err(ApiError::not_found(format_args!("product {id}"))),
    }
}

#[utoipa::path(post, path = "/api/v1/admin/products", operation_id = "createProduct", summary = "Create a product (admin)", tag = "admin",
    security(("adminToken" = [])),
    request_body = CreateProduct,
    responses(
        (status = 201, description = "Created, with its opening stock", body = Product,
            headers(("Location" = inline(LocationPath), description = "`/api/v1/products/{id}`")),
            links(
                ("getProduct" = (operation_id = "getProduct", parameters(("id" = "$response.body#/id")))),
                ("restockProduct" = (operation_id = "restockProduct", parameters(("id" = "$response.body#/id"))))
            )),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "`validation_failed`: `errors` names each bad field", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn create(
    _admin: Admin,
    State(state): State<AppState>,
    Valid(body): Valid<CreateProduct>,
) -> ApiResult<impl IntoResponse> {
    let product = create_product(&state, body).await?;
    let location = format!("/api/v1/products/{}", product.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(product),
    ))
}

#[utoipa::path(post, path = "/api/v1/admin/products/{id}/restock", operation_id = "restockProduct", summary = "Add stock to a product (admin)", tag = "admin",
    security(("adminToken" = [])),
    params(("id" = i64, Path, minimum = 1, maximum = 9_223_372_036_854_775_807_i64,
        description = "A product id; anything else in its place is 404")),
    request_body = Restock,
    responses(
        (status = 200, description = "Restocked: the product with its new stock", body = Product,
            links(("getProduct" = (operation_id = "getProduct", parameters(("id" = "$response.body#/id")))))),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such product", body = Problem, content_type = "application/problem+json"),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "`validation_failed`: `errors` names each bad field", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn restock(
    _admin: Admin,
    State(state): State<AppState>,
    path: PathId,
    Valid(Restock { qty }): Valid<Restock>,
) -> ApiResult<Json<Product>> {
    let id = path.product_id()?;
    Ok(Json(restock_product(&state, id, qty).await?))
}

/// Creates a product (the route's and the console's way).
pub(super) async fn create_product(state: &AppState, body: CreateProduct) -> ApiResult<Product> {
    let product = products::create(&state.pool, &body.into_new_product())
        .await
        .map_err(classify)?;
    announce(state, &product).await;
    Ok(product)
}

/// Adds `qty` to product `id`'s stock.
pub(super) async fn restock_product(state: &AppState, id: i64, qty: i64) -> ApiResult<Product> {
    let product = products::restock(&state.pool, id, qty)
        .await
        .map_err(classify)?
        .ok_or_else(|| ApiError::not_found(format_args!("product {id}")))?;
    announce(state, &product).await;
    Ok(product)
}

#[utoipa::path(patch, path = "/api/v1/admin/products/{id}", operation_id = "updateProduct", summary = "Change a product's name, price, limit or sale window (admin)", tag = "admin",
    description = "Changes only the fields the body names; `null` clears `max_per_customer`, `sale_starts_at` or `sale_ends_at`. Stock changes only by restock. Every api replica serves the change within 1 s.",
    security(("adminToken" = [])),
    params(("id" = i64, Path, minimum = 1, maximum = 9_223_372_036_854_775_807_i64,
        description = "A product id; anything else in its place is 404")),
    request_body = UpdateProduct,
    responses(
        (status = 200, description = "Changed: the product as it is now", body = Product,
            links(("getProduct" = (operation_id = "getProduct", parameters(("id" = "$response.body#/id")))))),
        (status = 400, response = MalformedJson),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such product", body = Problem, content_type = "application/problem+json"),
        (status = 408, response = RequestTimeout),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "`validation_failed`: `errors` names each bad field; a sale window that would end before it starts names `sale_ends_at`; a limit below the units a buyer already has names `max_per_customer`", body = Problem, content_type = "application/problem+json"),
        (status = 503, response = Unavailable)))]
pub async fn update(
    _admin: Admin,
    State(state): State<AppState>,
    path: PathId,
    Valid(body): Valid<UpdateProduct>,
) -> ApiResult<Json<Product>> {
    let id = path.product_id()?;
    Ok(Json(change_product(&state, id, body).await?))
}

/// Changes the fields `body` names of product `id`.
pub(super) async fn change_product(
    state: &AppState,
    id: i64,
    body: UpdateProduct,
) -> ApiResult<Product> {
    let changed = products::change(&state.pool, id, &body.into_change())
        .await
        .map_err(classify)?;
    let product = match changed {
        Ok(product) => product,
        Err(Unchanged::NotFound) => return Err(ApiError::not_found(format_args!("product {id}"))),
        Err(Unchanged::WindowOutOfOrder) => {
            return Err(ApiError::field(
                "sale_ends_at",
                "must be after sale_starts_at (as stored, where the body leaves one out)",
            ));
        }
        Err(Unchanged::LimitBelowHeld(most)) => {
            return Err(ApiError::field(
                "max_per_customer",
                format!(
                    "a buyer already has {most} units of this product; the limit cannot go below that"
                ),
            ));
        }
    };
    announce(state, &product).await;
    Ok(product)
}

/// Updates this replica's cache and tells the others. The write is already
/// committed; a lost event only delays other replicas until their next full
/// refresh, so it is logged, not failed.
async fn announce(state: &AppState, product: &Product) {
    state.cache.put(product.clone());
    let event = Event::StockChanged {
        product_id: product.id,
    };
    if let Err(e) = state.broker.publish_event(&event).await {
        tracing::warn!(error = %format!("{e:#}"), product_id = product.id, "stock event not published");
    }
}
