//! JSON Schemas (draft 2020-12) of the files and messages the crate reads and writes:
//! the policy (as TOML editors such as taplo and Even Better TOML use it), consent
//! events, access requests, decisions and a subject's export. `consent-guard schema
//! NAME` prints them.
//!
//! The policy schema is derived from [`crate::policy::PolicyDocument`] itself, so it
//! follows the format as it grows; events, requests and decisions are described by
//! wire-form mirrors kept in step with the types by the tests that validate every
//! example policy and test data file against these schemas.
//!
//! ```
//! let schema = consent_guard::schema::schema("policy").unwrap();
//! assert_eq!(schema["title"], "PolicyDocument");
//! ```

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

use crate::basis::{ConsentLevel, LegalBasis};
use crate::category::DataCategory;
use crate::policy::Retention;
use crate::purpose::Purpose;
use crate::request::{Action, Deidentification, RecipientKind, Region};

/// The schemas there are, by the name `schema` takes.
pub const NAMES: [&str; 6] = ["policy", "event", "request", "decision", "problem", "export"];

/// The schema called `name` (one of [`NAMES`]), or `None`.
pub fn schema(name: &str) -> Option<serde_json::Value> {
    let schema = match name {
        "policy" => schemars::schema_for!(crate::policy::PolicyDocument),
        "event" => schemars::schema_for!(Event),
        "request" => schemars::schema_for!(Request),
        "decision" => schemars::schema_for!(DecisionWire),
        "problem" => schemars::schema_for!(ProblemWire),
        "export" => schemars::schema_for!(ExportWire),
        _ => return None,
    };
    let mut value = schema.to_value();
    drop_null_defaults(&mut value);
    Some(value)
}

/// Removes the defaults a schema itself refuses (`null` where `null` is not admitted,
/// `[]` under `minItems`): an absent optional field is not a value the reader refuses.
fn drop_null_defaults(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let contradicts = match map.get("default") {
                Some(serde_json::Value::Null) => !admits_null(map),
                // An absent list means no limit; an empty one is refused.
                Some(serde_json::Value::Array(items)) => items.is_empty() && map.contains_key("minItems"),
                _ => false,
            };
            if contradicts {
                map.remove("default");
            }
            map.values_mut().for_each(drop_null_defaults);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_null_defaults),
        _ => {}
    }
}

fn admits_null(schema: &serde_json::Map<String, serde_json::Value>) -> bool {
    let null = serde_json::Value::from("null");
    match schema.get("type") {
        Some(serde_json::Value::Array(types)) if types.contains(&null) => return true,
        Some(kind) if *kind == null => return true,
        _ => {}
    }
    ["anyOf", "oneOf"].iter().any(|key| {
        schema
            .get(*key)
            .and_then(serde_json::Value::as_array)
            .is_some_and(|options| options.iter().any(|option| option.as_object().is_some_and(admits_null)))
    })
}

/// The schemas of the HTTP service's bodies, for `components.schemas` of
/// `docs/openapi.yaml`: `AccessRequest`, `ConsentEvent`, `Decision`, `History`,
/// `Problem`, and the compact batch form's `CompactCheck`, `AccessTemplate` and
/// `CompactAnswer`, generated from the same types as [`schema`], with the definitions they
/// share beside them and every `$ref` pointing into `#/components/schemas/`. The
/// server's tests hold the document to this map.
///
/// ```
/// let components = consent_guard::schema::openapi_components();
/// assert_eq!(components["AccessRequest"]["properties"]["subject"]["minLength"], 1);
/// ```
pub fn openapi_components() -> serde_json::Map<String, serde_json::Value> {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| settings.definitions_path = "/components/schemas/".into())
        .into_generator();
    generator.subschema_for::<Request>();
    generator.subschema_for::<Event>();
    generator.subschema_for::<DecisionWire>();
    generator.subschema_for::<HistoryWire>();
    generator.subschema_for::<ProblemWire>();
    generator.subschema_for::<CompactCheckWire>();
    generator.subschema_for::<CompactAnswerWire>();
    let mut components = serde_json::Map::new();
    for (name, schema) in generator.take_definitions(true) {
        let name = match name.as_str() {
            "Request" => "AccessRequest".to_owned(),
            "Event" => "ConsentEvent".to_owned(),
            _ => name,
        };
        components.insert(name, schema);
    }
    if let Some(template) = components.get("Request").or_else(|| components.get("AccessRequest")).cloned() {
        components.insert("AccessTemplate".to_owned(), access_template_of(template));
    }
    let mut value = serde_json::Value::Object(components);
    rename_refs(&mut value);
    drop_null_defaults(&mut value);
    match value {
        serde_json::Value::Object(components) => components,
        _ => serde_json::Map::new(),
    }
}

/// The access request's schema without `subject` and `at`: what the compact form
/// takes once for all its subjects.
fn access_template_of(mut request: serde_json::Value) -> serde_json::Value {
    if let Some(object) = request.as_object_mut() {
        if let Some(serde_json::Value::Object(properties)) = object.get_mut("properties") {
            properties.remove("subject");
            properties.remove("at");
        }
        if let Some(serde_json::Value::Array(required)) = object.get_mut("required") {
            required.retain(|name| name != "subject");
        }
        object.insert(
            "description".to_owned(),
            serde_json::Value::String(
                "An access request without `subject` and `at`: the kind of access a compact check decides for every subject.".to_owned(),
            ),
        );
    }
    request
}

fn rename_refs(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    serde_json::Value::String(target) if key == "$ref" => {
                        if target == "#/components/schemas/Request" {
                            *target = "#/components/schemas/AccessRequest".to_owned();
                        } else if target == "#/components/schemas/Event" {
                            *target = "#/components/schemas/ConsentEvent".to_owned();
                        }
                    }
                    _ => rename_refs(value),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(rename_refs),
        _ => {}
    }
}

fn names(names: &[&str]) -> Vec<serde_json::Value> {
    names.iter().map(|n| serde_json::Value::String((*n).to_owned())).collect()
}

/// A dotted vocabulary name: one of the built-in names (offered for completion), or
/// a name the policy declares under one of them.
fn dotted(builtins: &[&str], what: &str) -> Schema {
    json_schema!({
        "description": format!("a {what}: a built-in name, or one the policy declares under [vocabulary]"),
        "anyOf": [
            { "enum": names(builtins) },
            { "type": "string", "pattern": "^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$" }
        ]
    })
}

fn enumeration(values: &[&str], description: &str) -> Schema {
    json_schema!({ "type": "string", "enum": names(values), "description": description })
}

macro_rules! schema_by_hand {
    ($type:ty, $name:literal, $body:expr) => {
        impl JsonSchema for $type {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $body
            }
        }
    };
}

schema_by_hand!(Purpose, "Purpose", dotted(crate::purpose::PURPOSE_NAMES, "purpose"));
schema_by_hand!(DataCategory, "DataCategory", dotted(crate::category::CATEGORY_NAMES, "data category"));
schema_by_hand!(
    Region,
    "Region",
    json_schema!({ "type": "string", "pattern": "^[A-Z]{2}$", "description": "ISO 3166-1 alpha-2 code" })
);
schema_by_hand!(
    LegalBasis,
    "LegalBasis",
    enumeration(&LegalBasis::ALL.map(LegalBasis::as_str), "the legal basis of a rule")
);
schema_by_hand!(crate::basis::Bases, "Bases", {
    let one = enumeration(&LegalBasis::ALL.map(LegalBasis::as_str), "a legal basis");
    json_schema!({
        "description": "the legal basis of a rule, or several (the first is the default; consent is never one of several)",
        "anyOf": [
            one.clone(),
            { "type": "array", "items": one, "minItems": 1, "uniqueItems": true }
        ]
    })
});
schema_by_hand!(
    ConsentLevel,
    "ConsentLevel",
    enumeration(&["implied", "explicit", "separate"], "consent levels, weakest first")
);
schema_by_hand!(Action, "Action", enumeration(&Action::ALL.map(Action::as_str), "what is done with the data"));
schema_by_hand!(
    RecipientKind,
    "RecipientKind",
    enumeration(&RecipientKind::ALL.map(RecipientKind::as_str), "who receives the data")
);
schema_by_hand!(
    Deidentification,
    "Deidentification",
    enumeration(&["none", "pseudonymized", "anonymized"], "how far the data is de-identified")
);
schema_by_hand!(
    Retention,
    "Retention",
    json_schema!({
        "type": "string",
        "pattern": "^(session|[1-9][0-9]*[hdy])$",
        "description": "`session`, or a duration like `12h`, `30d`, `1y` (at most 1000 years)"
    })
);

fn date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time", "description": "RFC 3339" })
}

/// An optional time the reader also takes as `null` (absent).
fn nullable_date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "null"], "format": "date-time", "description": "RFC 3339; `null` is the same as absent" })
}

/// An optional date the reader also takes as `null` (absent).
fn nullable_date(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": ["string", "null"], "format": "date", "description": "`null` is the same as absent" })
}

/// A policy version: up to four dotted numbers, as `PolicyVersion::parse` reads them.
fn policy_version(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "null"],
        "pattern": "^v?\\+?[0-9]{1,9}([.-]\\+?[0-9]{1,9}){0,3}$",
        "description": "up to four dotted numbers, like `1.0`; `null` is the same as absent"
    })
}

/// A subject: any non-empty string.
fn subject(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "minLength": 1, "description": "the subject (not empty)" })
}

// The wire forms of `interchange.md`, field for field.

/// A consent event (one JSON line of an events file).
#[derive(Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
enum Event {
    /// Attributes of a data subject.
    Subject {
        /// The subject.
        #[schemars(schema_with = "subject")]
        subject: String,
        /// Date of birth.
        #[serde(default)]
        #[schemars(schema_with = "nullable_date")]
        birth_date: Option<String>,
        /// Age in whole years at `at`.
        #[serde(default)]
        age: Option<u16>,
        /// When it was stated.
        #[serde(default)]
        #[schemars(schema_with = "nullable_date_time")]
        at: Option<String>,
    },
    /// The subject (or a guardian) agreed to purposes.
    Grant {
        /// The subject.
        #[schemars(schema_with = "subject")]
        subject: String,
        /// The purposes (each covers its children).
        #[schemars(length(min = 1))]
        purposes: Vec<Purpose>,
        /// The consent level given.
        level: ConsentLevel,
        /// When.
        #[schemars(schema_with = "date_time")]
        at: String,
        /// The policy version agreed to; the enforced version when absent.
        #[serde(default)]
        #[schemars(schema_with = "policy_version")]
        policy_version: Option<String>,
        /// Given by a guardian for a minor.
        #[serde(default)]
        by_guardian: bool,
        /// When the grant ends.
        #[serde(default)]
        #[schemars(schema_with = "nullable_date_time")]
        expires_at: Option<String>,
        /// What was agreed, when narrower than the purposes.
        #[serde(default)]
        scope: Option<Scope>,
    },
    /// The subject withdrew consent.
    Withdraw {
        /// The subject.
        #[schemars(schema_with = "subject")]
        subject: String,
        /// The purposes (and their children).
        #[schemars(length(min = 1))]
        purposes: Vec<Purpose>,
        /// From when.
        #[schemars(schema_with = "date_time")]
        at: String,
    },
    /// The account was cancelled.
    Erase {
        /// The subject.
        #[schemars(schema_with = "subject")]
        subject: String,
        /// From when.
        #[schemars(schema_with = "date_time")]
        at: String,
    },
    /// The purposes are over for the subject: data collected for them until `at` is
    /// kept only for the rule's `retention_after_end`.
    End {
        /// The subject.
        #[schemars(schema_with = "subject")]
        subject: String,
        /// The purposes (and their children).
        #[schemars(length(min = 1))]
        purposes: Vec<Purpose>,
        /// When the purposes ended.
        #[schemars(schema_with = "date_time")]
        at: String,
    },
}

/// A grant's scope.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct Scope {
    /// Declared recipient names and/or recipient kinds; absent: no limit (an empty
    /// list is refused).
    #[serde(default)]
    #[schemars(length(min = 1))]
    recipients: Vec<String>,
    /// Regions; absent: no limit (an empty list is refused).
    #[serde(default)]
    #[schemars(length(min = 1))]
    regions: Vec<Region>,
    /// Categories; absent: no limit (an empty list is refused).
    #[serde(default)]
    #[schemars(length(min = 1))]
    categories: Vec<DataCategory>,
}

/// An access request.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct Request {
    /// The subject.
    #[schemars(schema_with = "subject")]
    subject: String,
    /// The most specific purpose.
    purpose: Purpose,
    /// At least one category.
    #[schemars(length(min = 1))]
    categories: Vec<DataCategory>,
    /// `use` when absent (not `null`).
    #[serde(default)]
    #[schemars(with = "Action")]
    action: Option<Action>,
    /// `{"kind":"first_party"}` when absent (not `null`).
    #[serde(default)]
    #[schemars(with = "RecipientWire")]
    recipient: Option<RecipientWire>,
    /// `none` when absent (not `null`).
    #[serde(default)]
    #[schemars(with = "Deidentification")]
    deidentification: Option<Deidentification>,
    /// The legal basis relied on, where the rule lists several; its first when absent.
    #[serde(default)]
    basis: Option<LegalBasis>,
    /// The policy's home region when absent.
    #[serde(default)]
    region: Option<Region>,
    /// Browser signals; none when absent (not `null`).
    #[serde(default)]
    #[schemars(with = "SignalsWire")]
    signals: Option<SignalsWire>,
    /// When the data was collected.
    #[serde(default)]
    #[schemars(schema_with = "nullable_date_time")]
    collected_at: Option<String>,
    /// The session that collected it.
    #[serde(default)]
    collected_session: Option<String>,
    /// The current session.
    #[serde(default)]
    session: Option<String>,
    /// Asks what would have been decided at that time (a what-if); `null` is the
    /// same as absent.
    #[serde(default)]
    #[schemars(schema_with = "nullable_date_time")]
    at: Option<String>,
}

/// Who receives the data.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Recipient")]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct RecipientWire {
    /// The kind.
    kind: RecipientKind,
    /// A declared recipient name.
    #[serde(default)]
    name: Option<String>,
}

/// Browser privacy signals.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Signals")]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct SignalsWire {
    /// Do Not Track.
    #[serde(default)]
    dnt: bool,
    /// Global Privacy Control.
    #[serde(default)]
    gpc: bool,
}

fn reason_code(_: &mut SchemaGenerator) -> Schema {
    let codes: Vec<&str> = crate::ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
    enumeration(&codes, "the reason code: stable, machine-readable")
}

fn access_template(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "$ref": "#/components/schemas/AccessTemplate" })
}

fn reason_codes(generator: &mut SchemaGenerator) -> Schema {
    let code = reason_code(generator);
    json_schema!({ "type": "array", "items": code })
}

/// Many subjects for one kind of access (`POST /v1/check/compact`): the request
/// without its subject, once, and the subjects.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "CompactCheck")]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct CompactCheckWire {
    /// An access request without `subject` (and without `at`: the compact form
    /// decides now).
    #[schemars(schema_with = "access_template")]
    request: serde_json::Value,
    /// The subjects, each not empty; answered in this order.
    #[schemars(length(min = 1), inner(length(min = 1)))]
    subjects: Vec<String>,
}

/// The answers of a compact check, as columns in the order of its `subjects`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "CompactAnswer")]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct CompactAnswerWire {
    /// The policy's version, the same for every answer.
    policy_version: String,
    /// Allowed or denied, per subject.
    allowed: Vec<bool>,
    /// The reason code, per subject.
    #[schemars(schema_with = "reason_codes")]
    codes: Vec<String>,
    /// The rule that decided, per subject (`null` where none did).
    clauses: Vec<Option<String>>,
}

/// A decision.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Decision")]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct DecisionWire {
    /// Allowed or denied.
    allowed: bool,
    /// Exactly one reason code.
    #[schemars(schema_with = "reason_code")]
    code: String,
    /// For people; may change between versions.
    message: String,
    /// The legal basis of an allow.
    basis: Option<LegalBasis>,
    /// The rule that decided.
    clause: Option<String>,
    /// The policy's name.
    policy: String,
    /// The policy's version.
    policy_version: String,
    /// The subject.
    subject: String,
    /// The purpose asked for.
    purpose: Purpose,
    /// When it was decided (or asked about).
    #[schemars(schema_with = "date_time")]
    at: String,
    /// Present and true only on an answer about another time.
    #[serde(default)]
    what_if: bool,
}

/// A subject's consent history (`GET /v1/subjects/{id}/history`).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "History")]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct HistoryWire {
    /// The subject.
    subject: String,
    /// Every event of the subject, in store order.
    events: Vec<Event>,
}

fn problem_code(_: &mut SchemaGenerator) -> Schema {
    enumeration(
        &[
            "bad_request",
            "inconsistent_record",
            "unauthenticated",
            "forbidden",
            "not_found",
            "method_not_allowed",
            "request_timeout",
            "body_too_large",
            "policy_rejected",
            "unavailable",
            "internal",
        ],
        "the stable code of the error",
    )
}

/// An RFC 9457 problem, the body of every error of the HTTP service
/// (`application/problem+json`; docs/deploying.md, "Errors").
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Problem")]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct ProblemWire {
    /// `urn:consent-guard:error:<code>`.
    #[serde(rename = "type")]
    kind: String,
    /// A short summary, the same for every problem of the code.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What is wrong, as the command line says it: `field: message`, after `line N: `
    /// or `item N: ` in a batch.
    detail: String,
    /// Stable, machine-readable.
    #[schemars(schema_with = "problem_code")]
    code: String,
    /// The field at fault, when the error names one.
    #[serde(default)]
    #[schemars(with = "String")]
    field: Option<String>,
    /// The 1-based line of a JSON-lines batch the record at fault starts on.
    #[serde(default)]
    #[schemars(with = "u64")]
    line: Option<u64>,
    /// The 1-based item of a JSON array batch at fault.
    #[serde(default)]
    #[schemars(with = "u64")]
    item: Option<u64>,
    /// 413: the body limit in bytes (`--body-limit`).
    #[serde(default)]
    #[schemars(with = "u64")]
    limit: Option<u64>,
    /// 422: every error of the policy that did not load.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    errors: Option<Vec<String>>,
}

/// [`openapi_components`] narrowed to what `policy` accepts: `Purpose` and
/// `DataCategory` list the names it knows (built in and declared), a recipient names a
/// declared recipient of its declared kind, and a grant's scope names declared
/// recipients or kinds. A request or event valid under these schemas names nothing
/// the service refuses as unknown; API testers (`.ci/contract`) test against it.
pub fn openapi_components_for(policy: &crate::policy::Policy) -> serde_json::Map<String, serde_json::Value> {
    let mut components = openapi_components();
    let (purposes, categories) = policy.extensions();
    let purposes: Vec<&str> = crate::purpose::PURPOSE_NAMES.iter().copied().chain(purposes).collect();
    let categories: Vec<&str> = crate::category::CATEGORY_NAMES.iter().copied().chain(categories).collect();
    components.insert(
        "Purpose".to_owned(),
        serde_json::json!({ "description": "a purpose the policy knows", "type": "string", "enum": purposes }),
    );
    components.insert(
        "DataCategory".to_owned(),
        serde_json::json!({ "description": "a data category the policy knows", "type": "string", "enum": categories }),
    );
    let declared = &policy.document().recipients;
    let mut recipients = vec![serde_json::json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["kind"],
        "properties": { "kind": { "$ref": "#/components/schemas/RecipientKind" }, "name": { "type": "null" } }
    })];
    recipients.extend(declared.iter().map(|(name, declaration)| {
        serde_json::json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["kind", "name"],
            "properties": { "kind": { "const": declaration.kind.as_str() }, "name": { "const": name } }
        })
    }));
    components.insert(
        "Recipient".to_owned(),
        serde_json::json!({ "description": "who receives the data: a kind, or a declared recipient", "anyOf": recipients }),
    );
    let scope_recipients: Vec<&str> =
        declared.keys().map(String::as_str).chain(RecipientKind::ALL.iter().map(|kind| kind.as_str())).collect();
    if let Some(items) = components.get_mut("Scope").and_then(|scope| scope.pointer_mut("/properties/recipients/items"))
    {
        *items = serde_json::json!({ "type": "string", "enum": scope_recipients });
    }
    components
}

fn export_format(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "const": crate::interchange::export::FORMAT, "description": "the format and its version" })
}

/// A subject's own export (`consent-guard export`, `GET /v1/subjects/{id}/export`):
/// the consent history and the decisions about the subject from the audit log.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SubjectExport")]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct ExportWire {
    /// `consent-guard/subject-export/1`.
    #[schemars(schema_with = "export_format")]
    format: String,
    /// The subject.
    subject: String,
    /// When the export was made.
    #[schemars(schema_with = "date_time")]
    generated_at: String,
    /// The subject's consent events, in recorded order.
    history: HistoryWire,
    /// The decisions about the subject in the audit log, in log order.
    decisions: Vec<AuditRecordWire>,
    /// How much of the audit log was read.
    audit: CoverageWire,
}

/// One audit record: the request as asked and the decision given.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AuditRecord")]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct AuditRecordWire {
    /// The request as asked.
    request: Request,
    /// The decision given.
    decision: DecisionWire,
}

fn verdict(_: &mut SchemaGenerator) -> Schema {
    enumeration(&["intact", "torn_tail", "tampered", "none"], "what verifying the audit log found")
}

/// How much of the audit log the export covers.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AuditCoverage")]
#[expect(dead_code, reason = "a description of the wire form, read only by schemars")]
struct CoverageWire {
    /// `intact`, `torn_tail`, `tampered` (records after the first altered line are not
    /// read) or `none` (no audit log was read).
    #[schemars(schema_with = "verdict")]
    verdict: String,
    /// Records read from the log, of every subject.
    records_read: u64,
    /// The head of the log read, `N:HASH`.
    #[serde(default)]
    head: Option<String>,
    /// Every committed decision of the log was read.
    complete: bool,
    /// Where the log does not verify.
    #[serde(default)]
    problem: Option<String>,
    /// `found` (the store keeps the subject's key: the records carrying its pseudonym
    /// are in `decisions`) or `none` (no key: the subject was erased or never audited,
    /// and no record of a format-3 log can be linked to it); absent when no audit log
    /// was read, or it is of format 2 (searched by the plain id).
    #[serde(default)]
    #[schemars(schema_with = "subject_key")]
    subject_key: Option<String>,
}

fn subject_key(_: &mut SchemaGenerator) -> Schema {
    enumeration(&["found", "none"], "whether the subject's key was found, to find its records by its pseudonym")
}
