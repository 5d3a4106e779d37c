//! JSON shapes of the HTTP API and their conversions to and from the domain types. Every
//! conversion error names the JSON path of the offending field (`writes[3].subject`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use inferadb_evaluator::{ExpandTree, TraceNode};
use inferadb_protocols::{
    ObjectId, ObjectRef, RelationName, Relationship, Role, SubjectRef, TypeName,
};
use inferadb_vault::{Block, Operation, RelationshipFilter, VaultRecord};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::problem::Problem;

/// A JSON body whose rejections are problems: malformed JSON, a wrong content type and a
/// wrong shape each get a 400 that says what is wrong and where.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(request.headers()) {
            // axum's extractor words the rejection.
            return match axum::Json::<T>::from_request(request, state).await {
                Ok(axum::Json(value)) => Ok(ApiJson(value)),
                Err(rejection) => Err(json_problem(&rejection)),
            };
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| body_problem(rejection.status(), rejection.body_text()))?;
        // The plain parser first: the path-tracking one that names the offending field costs
        // a good share of a write's parsing, and is only needed to word a rejection.
        if let Ok(value) = serde_json::from_slice(&bytes) {
            return Ok(ApiJson(value));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

/// Whether the request says its body is JSON (`application/json`, or a `+json` type), as
/// axum's `Json` extractor requires.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    // Compared without allocating: this runs for every request with a body.
    let essence = value.split(';').next().unwrap_or_default().trim();
    let (kind, subtype) = essence.split_once('/').unwrap_or_default();
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .get(subtype.len().saturating_sub(5)..)
                .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json")))
}

/// A body that could not be read (too large, or the connection failed).
fn body_problem(status: axum::http::StatusCode, text: String) -> Problem {
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return Problem::new(
            status,
            "body-too-large",
            "Body too large",
            "the body exceeds http.request_body_max_bytes",
        );
    }
    Problem::bad_request("invalid-body", text)
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonSyntaxError(_) => Problem::bad_request(
            "malformed-json",
            format!("the body is not valid JSON: {}", rejection.body_text()),
        ),
        JsonRejection::JsonDataError(_) => {
            Problem::bad_request("invalid-body", rejection.body_text())
        }
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "the body must be JSON with `Content-Type: application/json`",
        ),
        _ => body_problem(rejection.status(), rejection.body_text()),
    }
}

/// A relationship as JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelationshipWire {
    /// `type:id`.
    pub resource: String,
    /// The relation.
    pub relation: String,
    /// `type:id`, `type:id#relation` or `type:*`.
    pub subject: String,
    /// RFC 3339 UTC time after which the relationship no longer holds.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// `touch` (default: create or update) or `create` (fails if it exists).
    #[serde(default)]
    pub operation: Option<String>,
}

/// Parses an object reference at `path`.
pub fn object(path: &str, text: &str, role: Role) -> Result<ObjectRef, Problem> {
    ObjectRef::parse_as(text, role).map_err(|error| Problem::invalid_field(path, error))
}

/// Parses a subject reference at `path`.
pub fn subject(path: &str, text: &str) -> Result<SubjectRef, Problem> {
    SubjectRef::parse(text).map_err(|error| Problem::invalid_field(path, error))
}

/// Parses a relation or permission name at `path`.
pub fn relation(path: &str, text: &str) -> Result<RelationName, Problem> {
    text.parse::<RelationName>()
        .map_err(|error| Problem::invalid_field(path, error))
}

/// Parses a type name at `path`.
pub fn type_name(path: &str, text: &str) -> Result<TypeName, Problem> {
    text.parse::<TypeName>()
        .map_err(|error| Problem::invalid_field(path, error))
}

/// Parses an RFC 3339 UTC timestamp into Unix milliseconds.
pub fn timestamp_ms(path: &str, text: &str) -> Result<u64, Problem> {
    let time = humantime::parse_rfc3339(text).map_err(|_| {
        Problem::invalid_field(
            path,
            "must be an RFC 3339 UTC time such as 2030-01-31T12:00:00Z",
        )
    })?;
    let since_epoch = time
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| Problem::invalid_field(path, "must be after 1970-01-01T00:00:00Z"))?;
    Ok(since_epoch.as_millis() as u64)
}

/// Formats Unix milliseconds as RFC 3339 UTC.
pub fn rfc3339(ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(time).to_string()
}

/// Converts a wire relationship at `path` (e.g. `writes[3]`).
pub fn relationship(path: &str, wire: &RelationshipWire) -> Result<Relationship, Problem> {
    let resource = object(&format!("{path}.resource"), &wire.resource, Role::Resource)?;
    let relation = relation(&format!("{path}.relation"), &wire.relation)?;
    let subject = subject(&format!("{path}.subject"), &wire.subject)?;
    let mut relationship = Relationship::new(resource, relation, subject);
    if let Some(expires_at) = &wire.expires_at {
        relationship.expires_at_ms = Some(timestamp_ms(&format!("{path}.expires_at"), expires_at)?);
    }
    Ok(relationship)
}

/// A relationship's JSON.
pub fn relationship_json(relationship: &Relationship) -> Value {
    let mut value = json!({
        "resource": relationship.resource.to_string(),
        "relation": relationship.relation.to_string(),
        "subject": relationship.subject.to_string(),
    });
    if let Some(expires_at_ms) = relationship.expires_at_ms {
        value["expires_at"] = json!(rfc3339(expires_at_ms));
    }
    value
}

/// A relationship filter as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterWire {
    /// The resource's type.
    #[serde(default)]
    pub resource_type: Option<String>,
    /// The resource's id (needs `resource_type`).
    #[serde(default)]
    pub resource_id: Option<String>,
    /// The relation.
    #[serde(default)]
    pub relation: Option<String>,
    /// The subject's type.
    #[serde(default)]
    pub subject_type: Option<String>,
    /// The subject's id, or `*` (needs `subject_type`).
    #[serde(default)]
    pub subject_id: Option<String>,
    /// The subject's userset relation.
    #[serde(default)]
    pub subject_relation: Option<String>,
}

/// Converts a wire filter at `path`.
pub fn filter(path: &str, wire: &FilterWire) -> Result<RelationshipFilter, Problem> {
    let field = |name: &str| format!("{path}.{name}");
    let optional_type = |name: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|text| type_name(&field(name), text))
            .transpose()
    };
    let optional_relation = |name: &str, value: &Option<String>| {
        value
            .as_deref()
            .map(|text| relation(&field(name), text))
            .transpose()
    };
    let resource_id = wire
        .resource_id
        .as_deref()
        .map(|text| {
            text.parse::<ObjectId>()
                .map_err(|error| Problem::invalid_field(&field("resource_id"), error))
        })
        .transpose()?;
    if let Some(subject_id) = wire.subject_id.as_deref() {
        if subject_id != "*" {
            subject_id
                .parse::<ObjectId>()
                .map_err(|error| Problem::invalid_field(&field("subject_id"), error))?;
        }
    }
    let filter = RelationshipFilter {
        resource_type: optional_type("resource_type", &wire.resource_type)?,
        resource_id,
        relation: optional_relation("relation", &wire.relation)?,
        subject_type: optional_type("subject_type", &wire.subject_type)?,
        subject_id: wire.subject_id.clone(),
        subject_relation: optional_relation("subject_relation", &wire.subject_relation)?,
    };
    filter
        .validate()
        .map_err(|error| Problem::invalid_field(&field(error.field.as_str()), error.rule))?;
    Ok(filter)
}

/// A vault record's JSON.
pub fn vault_json(record: &VaultRecord) -> Value {
    json!({
        "id": record.id.to_string(),
        "name": record.name,
        "created_at": rfc3339(record.created_at_ms),
    })
}

fn hex(bytes: &[u8]) -> String {
    inferadb_vault::ledger::hex(bytes)
}

/// A block's JSON, operations included.
pub fn block_json(block: &Block) -> Value {
    let operations: Vec<Value> = block.operations.iter().map(operation_json).collect();
    json!({
        "height": block.height,
        "hash": hex(&block.hash),
        "previous_hash": hex(&block.previous_hash),
        "timestamp": rfc3339(block.timestamp_ms),
        "operations_root": hex(&block.operations_root),
        "state_root": hex(&block.state_root),
        "operations": operations,
    })
}

fn operation_json(operation: &Operation) -> Value {
    match operation {
        Operation::Insert(relationship) => {
            json!({"insert": relationship_json(relationship)})
        }
        Operation::Remove(relationship) => {
            json!({"remove": relationship_json(relationship)})
        }
        Operation::SchemaDeployed {
            version,
            text_sha256,
        } => json!({"schema_deployed": {"version": version, "text_sha256": hex(text_sha256)}}),
    }
}

/// An explanation trace node's JSON.
pub fn trace_json(node: &TraceNode) -> Value {
    let children: Vec<Value> = node.children.iter().map(trace_json).collect();
    json!({
        "allowed": node.allowed,
        "step": node.step.to_string(),
        "children": children,
    })
}

/// An expand tree's JSON.
pub fn expand_json(tree: &ExpandTree) -> Value {
    let many = |trees: &[ExpandTree]| -> Vec<Value> { trees.iter().map(expand_json).collect() };
    match tree {
        ExpandTree::Relation {
            resource,
            relation,
            body,
            forbids,
        } => json!({"relation": {"resource": resource, "relation": relation,
            "body": expand_json(body), "forbids": many(forbids)}}),
        ExpandTree::Direct { subjects, usersets } => {
            let subjects: Vec<String> = subjects.iter().map(ToString::to_string).collect();
            json!({"direct": {"subjects": subjects, "usersets": many(usersets)}})
        }
        ExpandTree::Union(children) => json!({"union": many(children)}),
        ExpandTree::Intersection(children) => json!({"intersection": many(children)}),
        ExpandTree::Exclusion { base, subtract } => {
            json!({"exclusion": {"base": expand_json(base), "subtract": expand_json(subtract)}})
        }
        ExpandTree::Arrow {
            tupleset,
            target,
            branches,
        } => json!({"arrow": {"tupleset": tupleset, "target": target, "branches": many(branches)}}),
        ExpandTree::Module { name } => json!({"module": {"name": name}}),
        ExpandTree::Cycle { resource, relation } => {
            json!({"cycle": {"resource": resource, "relation": relation}})
        }
    }
}
