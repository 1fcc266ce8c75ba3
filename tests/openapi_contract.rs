//! openapi.yaml documents exactly the routes the router serves: a route added on one
//! side only fails here. (`make test-contract` checks the bodies against a live server.)

use std::collections::BTreeSet;

use login_scorer::http::router::ROUTES;
use serde_json::Value;

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml");
    let text = std::fs::read_to_string(path).expect("openapi.yaml at the repository root");
    serde_norway::from_str(&text).expect("openapi.yaml is valid YAML")
}

/// `(METHOD, path)` of every operation in the spec.
fn documented_routes(spec: &Value) -> BTreeSet<(String, String)> {
    let paths = spec["paths"].as_object().expect("openapi.yaml has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            HTTP_METHODS
                .iter()
                .filter(|method| item.get(**method).is_some())
                .map(|method| (method.to_ascii_uppercase(), path.clone()))
        })
        .collect()
}

fn served_routes() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|route| (route.method.as_str().to_owned(), route.path.to_owned()))
        .collect()
}

#[test]
fn the_spec_documents_exactly_the_served_routes() {
    let documented = documented_routes(&spec());
    let served = served_routes();
    assert_eq!(
        served.len(),
        ROUTES.len(),
        "a route is listed twice in ROUTES"
    );

    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served but not in openapi.yaml: {undocumented:?}; \
         in openapi.yaml but not served: {not_served:?}"
    );
}

#[test]
fn the_spec_is_openapi_3_1_with_one_error_schema() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let detail = &spec["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"];
    let codes: BTreeSet<&str> = detail
        .as_array()
        .expect("ErrorDetail.code lists the error codes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Every code the service can answer with, from the one mapping in http::error.
    for code in [
        "malformed_json",
        "bad_body",
        "unauthorized",
        "not_found",
        "method_not_allowed",
        "request_timeout",
        "reload_rejected",
        "payload_too_large",
        "batch_too_large",
        "unsupported_media_type",
        "invalid_field",
        "invalid_request",
        "not_ready",
        "overloaded",
        "internal",
    ] {
        assert!(codes.contains(code), "ErrorDetail.code lacks `{code}`");
    }
}
