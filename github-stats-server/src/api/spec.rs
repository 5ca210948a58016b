//! The OpenAPI document served at `/openapi.json` (and shown at `/docs`, committed as
//! `docs/openapi.json`): poem-openapi's, made to describe the answers exactly and to be
//! accepted by mainstream client generators.
//!
//! Two things poem-openapi 5 gets in the way of:
//!
//! - an `Option` field is optional but not `nullable`, while it is sent as `null` (the PR
//!   average of a repository with one pull request): a client generated from the spec refuses
//!   the answer. Every property that is not `required` is made `nullable`;
//! - a documented field whose type is a named schema becomes `allOf: [{$ref}, {description}]`,
//!   and generators that merge `allOf` parts as objects refuse an enum there
//!   (openapi-python-client: "Cannot take allOf a non-object"). The copy of the description is
//!   dropped, leaving `allOf: [{$ref}]` beside it: the usual OpenAPI 3.0 way to document a
//!   reference.
//!
//! [`GeneratorFriendly`] wraps the API and rewrites the schemas as poem-openapi registers them,
//! so the spec, `/openapi.json` and Swagger UI all show the result, in declaration order.
//!
//! The tests generate a Python client from the served document and call every JSON endpoint
//! with it, and check real answers against the schemas (`tests/api/openapi.rs`).

use std::collections::HashMap;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem_openapi::OpenApi;
use poem_openapi::registry::{MetaApi, MetaSchema, MetaSchemaRef, Registry};

/// An API whose schemas are made generator-friendly (see the [module](self) documentation).
pub struct GeneratorFriendly<T>(pub T);

impl<T: OpenApi> OpenApi for GeneratorFriendly<T> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = T::meta();
        for operation in apis
            .iter_mut()
            .flat_map(|api| api.paths.iter_mut())
            .flat_map(|path| path.operations.iter_mut())
        {
            for response in operation.responses.responses.iter_mut() {
                for content in response.content.iter_mut() {
                    fix_ref(&mut content.schema);
                }
            }
        }
        apis
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
        registry.schemas.values_mut().for_each(fix_schema);
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        self.0.add_routes(route_table);
    }
}

/// One schema and the schemas inside it.
fn fix_schema(schema: &mut MetaSchema) {
    let required = schema.required.clone();
    for (name, property) in schema.properties.iter_mut() {
        fix_ref(property);
        if !required.contains(name) {
            make_nullable(property);
        }
    }
    for child in schema
        .items
        .iter_mut()
        .chain(schema.additional_properties.iter_mut())
    {
        fix_ref(child);
    }
    for child in schema
        .all_of
        .iter_mut()
        .chain(schema.any_of.iter_mut())
        .chain(schema.one_of.iter_mut())
    {
        fix_ref(child);
    }
}

fn fix_ref(schema: &mut MetaSchemaRef) {
    if let MetaSchemaRef::Inline(inline) = schema {
        drop_duplicated_annotations(inline);
        fix_schema(inline);
    }
}

/// `allOf: [{$ref}, {description}]` with the same description beside it: `allOf: [{$ref}]`.
fn drop_duplicated_annotations(schema: &mut MetaSchema) {
    let outer = annotations(schema);
    schema.all_of.retain(|part| match part {
        MetaSchemaRef::Inline(part) => {
            let only_annotations = annotations(part) == **part && !part.is_empty();
            let all_said_beside = (part.description.is_none()
                || part.description == outer.description)
                && (part.title.is_none() || part.title == outer.title)
                && (part.default.is_none() || part.default == outer.default)
                && (part.example.is_none() || part.example == outer.example)
                && (!part.nullable || outer.nullable)
                && (!part.read_only || outer.read_only)
                && (!part.write_only || outer.write_only)
                && (!part.deprecated || outer.deprecated);
            !(only_annotations && all_said_beside)
        }
        MetaSchemaRef::Reference(_) => true,
    });
}

/// The keywords of `schema` that only describe it.
fn annotations(schema: &MetaSchema) -> MetaSchema {
    MetaSchema {
        description: schema.description,
        title: schema.title.clone(),
        default: schema.default.clone(),
        example: schema.example.clone(),
        nullable: schema.nullable,
        read_only: schema.read_only,
        write_only: schema.write_only,
        deprecated: schema.deprecated,
        ..MetaSchema::ANY
    }
}

/// Allows `null`: `nullable: true`, on a reference through `allOf` (OpenAPI 3.0 ignores
/// keywords beside a `$ref`).
fn make_nullable(schema: &mut MetaSchemaRef) {
    match schema {
        MetaSchemaRef::Inline(inline) => inline.nullable = true,
        MetaSchemaRef::Reference(name) => {
            *schema = MetaSchemaRef::Inline(Box::new(MetaSchema {
                all_of: vec![MetaSchemaRef::Reference(name.clone())],
                nullable: true,
                ..MetaSchema::ANY
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::payload::Json;
    use poem_openapi::{Enum, Object, OpenApiService};
    use serde_json::{Value, json};

    use super::*;

    /// A state.
    #[derive(Debug, Clone, Copy, Enum)]
    enum State {
        On,
        Off,
    }

    /// Inner.
    #[derive(Debug, Clone, Object)]
    struct Inner {
        /// Maybe a time.
        at: Option<chrono::DateTime<chrono::Utc>>,
    }

    /// A body.
    #[derive(Debug, Clone, Object)]
    struct Body {
        /// The state now.
        state: State,
        /// A count.
        count: u64,
        /// `null` when none.
        average: Option<f64>,
        /// Absent when none.
        #[oai(skip_serializing_if_is_none)]
        error: Option<String>,
        inner: Option<Inner>,
        /// Every inner.
        list: Vec<Inner>,
    }

    struct Api;

    #[poem_openapi::OpenApi]
    impl Api {
        #[oai(path = "/body", method = "get")]
        async fn body(&self) -> Json<Body> {
            unreachable!()
        }

        #[oai(path = "/list", method = "get")]
        async fn list(&self) -> Json<Vec<Inner>> {
            unreachable!()
        }
    }

    fn spec<T: OpenApi>(api: T) -> Value {
        serde_json::from_str(&OpenApiService::new(api, "t", "1").spec()).unwrap()
    }

    #[test]
    fn optional_properties_become_nullable_and_references_lose_duplicates() {
        let before = spec(Api);
        let body = &before["components"]["schemas"]["Body"]["properties"];
        // What poem-openapi gives: the problems fixed below.
        assert_eq!(
            body["state"]["allOf"].as_array().unwrap().len(),
            2,
            "{body}"
        );
        assert!(body["average"].get("nullable").is_none(), "{body}");

        let after = spec(GeneratorFriendly(Api));
        let body = &after["components"]["schemas"]["Body"]["properties"];
        assert_eq!(
            body["state"],
            json!({
                "description": "The state now.",
                "allOf": [{"$ref": "#/components/schemas/State"}]
            })
        );
        assert_eq!(body["count"].get("nullable"), None);
        assert_eq!(body["average"]["nullable"], true);
        assert_eq!(body["error"]["nullable"], true);
        assert_eq!(
            body["inner"],
            json!({"allOf": [{"$ref": "#/components/schemas/Inner"}], "nullable": true})
        );
        assert_eq!(body["list"].get("nullable"), None);
        let inner = &after["components"]["schemas"]["Inner"]["properties"];
        assert_eq!(inner["at"]["nullable"], true);
        // Declaration order is kept.
        let text = OpenApiService::new(GeneratorFriendly(Api), "t", "1").spec();
        let at = |name: &str| text.find(&format!("\"{name}\": {{")).unwrap();
        assert!(at("state") < at("count") && at("count") < at("average"));
        assert!(at("average") < at("error") && at("error") < at("inner"));
        // Nothing else changes: paths, operations, the other schemas.
        assert_eq!(after["paths"], before["paths"]);
        assert_eq!(
            after["components"]["schemas"]["State"],
            before["components"]["schemas"]["State"]
        );
    }
}
