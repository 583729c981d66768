//! The JSON Schemas of `consent_guard::schema` (and `consent-guard schema NAME`)
//! accept every example policy, every policy, event and request file under
//! `tests/data/` and `tests/golden/`, and every decision the guard makes on them; they
//! refuse what the loaders refuse (unknown fields, missing fields, bad names).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::path::{Path, PathBuf};

use consent_guard::schema::{schema, NAMES};
use consent_guard::{AccessRequest, ConsentEvent, FixedClock, Guard, Policy};
use serde_json::{json, Value};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn validator(name: &str) -> jsonschema::Validator {
    let schema = schema(name).unwrap_or_else(|| panic!("no schema {name}"));
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{name}: not a valid schema: {e}"))
}

fn assert_valid(validator: &jsonschema::Validator, value: &Value, what: &str) {
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}\n{value:#}");
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// A TOML file as JSON (the policies hold no TOML date-times).
fn toml_as_json(path: &Path) -> Value {
    let value: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::to_value(value).unwrap()
}

fn json_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    if text.trim_start().starts_with('{') && !text.trim().contains('\n') {
        return vec![serde_json::from_str(&text).unwrap()];
    }
    let values: Result<Vec<Value>, _> =
        text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect();
    values.unwrap_or_else(|_| serde_json::Deserializer::from_str(&text).into_iter().map(Result::unwrap).collect())
}

#[test]
fn every_schema_is_a_valid_json_schema() {
    for name in NAMES {
        let schema = schema(name).unwrap();
        assert!(schema["$schema"].as_str().unwrap().contains("2020-12"), "{name}");
        validator(name);
    }
    assert!(schema("nonsense").is_none());
}

#[test]
fn every_policy_that_loads_fits_the_policy_schema() {
    let policy = validator("policy");
    let mut checked = 0;
    for path in files("examples/policies", "toml")
        .into_iter()
        .chain(files("tests/data/cli", "toml"))
        .chain(files("tests/data/diff", "toml"))
    {
        if Policy::from_toml_file(&path).is_err() {
            continue;
        }
        assert_valid(&policy, &toml_as_json(&path), &path.display().to_string());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} policies");
}

#[test]
fn the_policy_schema_refuses_what_the_loader_refuses() {
    let policy = validator("policy");
    let good = toml_as_json(&root().join("examples/policies/exmo.toml"));
    let mut typo = good.clone();
    typo["rule"][0]["categorys"] = json!(["behavior"]);
    assert!(!policy.is_valid(&typo), "unknown field");
    let mut missing = good.clone();
    missing["rule"][0].as_object_mut().unwrap().remove("basis");
    assert!(!policy.is_valid(&missing), "missing basis");
    let mut basis = good.clone();
    basis["rule"][0]["basis"] = json!("because");
    assert!(!policy.is_valid(&basis), "unknown basis");
    let mut retention = good;
    retention["rule"][0]["retention"] = json!("forever");
    assert!(!policy.is_valid(&retention), "bad retention");
}

#[test]
fn every_event_request_and_decision_fits_its_schema() {
    let (event, request, decision) = (validator("event"), validator("request"), validator("decision"));
    let mut counts = (0, 0, 0);
    let policy = Policy::from_toml_file(root().join("examples/policies/exmo.toml")).unwrap();
    let guard = Guard::builder(policy).clock(FixedClock::new("2026-06-01T00:00:00Z".parse().unwrap())).build().unwrap();
    for path in files("tests/data/cli", "jsonl").into_iter().chain(files("tests/data/cli", "json")) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for value in json_lines(&path) {
            if name.contains("events") {
                assert_valid(&event, &value, &name);
                // The schema and the type agree.
                serde_json::from_value::<ConsentEvent>(value.clone()).unwrap();
                counts.0 += 1;
            } else if name.contains("request") {
                assert_valid(&request, &value, &name);
                let text = value.to_string();
                let parsed: AccessRequest<'_> = serde_json::from_str(&text).unwrap();
                if guard.policy().validate_request(&parsed).is_ok() {
                    let made = match parsed.at {
                        Some(at) => guard.what_if(&parsed, at),
                        None => guard.check(&parsed),
                    };
                    assert_valid(&decision, &serde_json::to_value(&made).unwrap(), &name);
                    counts.2 += 1;
                }
                counts.1 += 1;
            }
        }
    }
    // The golden files' events and requests too.
    for path in files("tests/golden", "toml") {
        let doc: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for line in doc["events"].as_str().unwrap_or("").lines().filter(|l| !l.trim().is_empty()) {
            assert_valid(&event, &serde_json::from_str(line).unwrap(), &path.display().to_string());
            counts.0 += 1;
        }
        for case in doc["case"].as_array().unwrap() {
            assert_valid(&request, &serde_json::to_value(&case["request"]).unwrap(), &path.display().to_string());
            counts.1 += 1;
        }
    }
    assert!(counts.0 >= 50 && counts.1 >= 80 && counts.2 >= 3, "{counts:?}");
}

#[test]
fn the_wire_schemas_refuse_typos_and_missing_fields() {
    let (event, request, decision) = (validator("event"), validator("request"), validator("decision"));
    assert!(!request
        .is_valid(&json!({"subject":"u1","purpose":"service.core","categories":["content.chat"],"regoin":"CN"})));
    assert!(!request.is_valid(&json!({"subject":"u1","purpose":"service.core","categories":[]})));
    assert!(!request.is_valid(&json!({"subject":"u1","purpose":"Service","categories":["content.chat"]})));
    assert!(request.is_valid(&json!({"subject":"u1","purpose":"service.core.video","categories":["content.chat"]})));
    assert!(
        !event.is_valid(&json!({"type":"grant","subject":"u1","purposes":["ai_training"],"at":"2026-01-02T00:00:00Z"})),
        "no level"
    );
    assert!(!event
        .is_valid(&json!({"type":"revoke","subject":"u1","purposes":["ai_training"],"at":"2026-01-02T00:00:00Z"})));
    assert!(!decision.is_valid(&json!({"allowed":true,"code":"fine","message":"","basis":null,"clause":null,"policy":"p","policy_version":"1","subject":"u","purpose":"service.core","at":"2026-01-02T00:00:00Z"})));
}
#[test]
fn the_command_prints_each_schema() {
    for name in NAMES {
        let output = assert_cmd::Command::cargo_bin("consent-guard").unwrap().args(["schema", name]).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{name}");
        let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(printed, schema(name).unwrap(), "{name}");
    }
    let output =
        assert_cmd::Command::cargo_bin("consent-guard").unwrap().args(["schema", "nonsense"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}
