//! Golden test files (`tests/golden/*.toml`, format in `docs/interchange.md`): the
//! seeds' files pass through the library API `consent_guard::testing` and through
//! `consent-guard test`; a wrong expectation fails with a diff and exit status 1.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::path::{Path, PathBuf};

use consent_guard::testing::{self, TestingError};

const SEEDS: [&str; 5] = ["exmo", "kmengai", "aimate", "nexacore", "aiart"];

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn golden(seed: &str) -> PathBuf {
    root().join("tests/golden").join(format!("{seed}.toml"))
}

/// A golden file in a fresh directory, naming the EXMO seed policy by absolute path.
fn temp_golden(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.toml");
    let policy = root().join("examples/policies/exmo.toml");
    std::fs::write(&path, format!("policy = {:?}\n{body}", policy.display().to_string())).unwrap();
    (dir, path)
}

const GRANT: &str =
    r#"{"type":"grant","subject":"u1","purposes":["ai_training"],"level":"separate","at":"2026-01-02T00:00:00Z"}"#;

#[test]
fn every_seed_golden_file_passes_through_the_library() {
    for seed in SEEDS {
        let report = testing::run_file(golden(seed)).unwrap_or_else(|e| panic!("{seed}: {e}"));
        assert!(report.is_success(), "{report}");
        assert!(report.results.len() >= 12, "{seed}: only {} cases", report.results.len());
        // Both kinds of answer are covered, and every case names its clause.
        assert!(report.results.iter().any(|r| r.expected.allowed), "{seed}: no allow case");
        assert!(report.results.iter().any(|r| !r.expected.allowed), "{seed}: no deny case");
    }
}
#[test]
fn every_seed_golden_file_passes_through_the_command_line() {
    let files: Vec<PathBuf> = SEEDS.iter().map(|s| golden(s)).collect();
    let output = assert_cmd::Command::cargo_bin("consent-guard").unwrap().arg("test").args(&files).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    // The total counts every case of the five files.
    let cases: usize =
        SEEDS.iter().map(|s| std::fs::read_to_string(golden(s)).unwrap().matches("\n[[case]]").count()).sum();
    assert!(stdout.trim_end().ends_with(&format!("{cases} passed, 0 failed")), "{stdout}");
    for seed in SEEDS {
        assert!(stdout.contains(&format!("ok {}", golden(seed).display())), "{stdout}");
    }
}

#[test]
fn a_wrong_expectation_fails_with_a_diff() {
    let (_dir, path) = temp_golden(&format!(
        r#"at = "2026-06-01T00:00:00Z"
events = '''
{GRANT}
'''

[[case]]
name = "right"
request = {{ subject = "u1", purpose = "ai_training.model_training", categories = ["behavior.log"], deidentification = "anonymized" }}
allowed = true
code = "consent_given"
clause = "exmo.training"

[[case]]
name = "wrong"
request = {{ subject = "u2", purpose = "ai_training.model_training", categories = ["behavior.log"], deidentification = "anonymized" }}
allowed = true
code = "consent_given"
clause = "exmo.training"
"#
    ));
    let report = testing::run_file(&path).unwrap();
    assert_eq!((report.passed(), report.failed()), (1, 1));
    let text = report.to_string();
    assert!(text.contains("case.toml:14: wrong"), "{text}");
    assert!(text.contains("  -allowed = true\n  +allowed = false\n"), "{text}");
    assert!(text.contains("  -code = \"consent_given\"\n  +code = \"consent_missing\"\n"), "{text}");
    assert!(text.contains("   clause = \"exmo.training\"\n"), "{text}");
    assert!(text.ends_with("1 passed, 1 failed"), "{text}");
    {
        let output = assert_cmd::Command::cargo_bin("consent-guard").unwrap().arg("test").arg(&path).output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains("+code = \"consent_missing\""), "{stdout}");
        assert!(stdout.trim_end().ends_with("1 passed, 1 failed"), "{stdout}");
    }
}

#[test]
fn events_as_tables_json_requests_and_the_clock_of_a_case() {
    // The grant expires on 1 March: consent before, expired after (case `at`), and a
    // request with its own `at` is a what-if about that time.
    let (_dir, path) = temp_golden(
        r#"at = "2026-02-01T00:00:00Z"
events = [{ type = "grant", subject = "u1", purposes = ["ai_training"], level = "separate", at = "2026-01-02T00:00:00Z", expires_at = "2026-03-01T00:00:00Z" }]

[[case]]
request = '{"subject":"u1","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}'
allowed = true
code = "consent_given"

[[case]]
at = "2026-04-01T00:00:00Z"
request = { subject = "u1", purpose = "ai_training.model_training", categories = ["behavior.log"], deidentification = "anonymized" }
allowed = false
code = "consent_expired"

[[case]]
request = { subject = "u1", purpose = "ai_training.model_training", categories = ["behavior.log"], deidentification = "anonymized", at = 2026-05-01T00:00:00Z }
allowed = false
code = "consent_expired"

[[case]]
events = '''
{"type":"withdraw","subject":"u1","purposes":["ai_training"],"at":"2026-01-10T00:00:00Z"}
'''
request = { subject = "u1", purpose = "ai_training.model_training", categories = ["behavior.log"], deidentification = "anonymized" }
allowed = false
code = "consent_withdrawn"
"#,
    );
    let report = testing::run_file(&path).unwrap();
    assert!(report.is_success(), "{report}");
    assert_eq!(report.results.len(), 4);
    assert_eq!(report.results[0].name, "case 1");
}

#[test]
fn invalid_files_are_errors_with_their_place() {
    // An unknown field: a typo must not silently pass.
    let (_dir, path) = temp_golden(
        "[[case]]\nrequest = { subject = \"u1\", purpose = \"service.core\", categories = [\"content.chat\"] }\nallowed = true\ncode = \"legal_basis\"\nclauses = \"x\"\n",
    );
    let error = testing::run_file(&path).unwrap_err();
    assert!(matches!(error, TestingError::Invalid { .. }), "{error}");
    assert!(error.to_string().contains("clauses"), "{error}");

    // A request naming a purpose the policy does not know.
    let (_dir, path) = temp_golden(
        "[[case]]\nrequest = { subject = \"u1\", purpose = \"nonsense.thing\", categories = [\"content.chat\"] }\nallowed = false\ncode = \"no_rule\"\n",
    );
    let error = testing::run_file(&path).unwrap_err();
    assert!(error.to_string().contains(":2:1: request: purpose: unknown purpose `nonsense.thing`"), "{error}");

    // A policy that does not exist.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml");
    std::fs::write(&path, "policy = \"nowhere.toml\"\n").unwrap();
    assert!(matches!(testing::run_file(&path).unwrap_err(), TestingError::Policy { .. }));
    {
        let output = assert_cmd::Command::cargo_bin("consent-guard")
            .unwrap()
            .arg("test")
            .arg(&path)
            .arg(golden("exmo"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2));
        // The other file still ran.
        assert!(String::from_utf8_lossy(&output.stdout).contains("16 passed, 0 failed"));
        assert!(String::from_utf8_lossy(&output.stderr).contains("nowhere.toml"));
    }
}

#[test]
fn the_same_engine_from_rust_without_a_file() {
    use consent_guard::testing::Scenario;
    let policy = consent_guard::Policy::from_toml_file(root().join("examples/policies/exmo.toml")).unwrap();
    let scenario = Scenario::new(policy).at("2026-06-01T00:00:00Z").unwrap().events(GRANT).unwrap();
    let request = |who: &str| {
        format!(
            r#"{{"subject":"{who}","purpose":"ai_training.model_training","categories":["behavior.log"],"deidentification":"anonymized"}}"#
        )
    };
    let result = scenario.expect(&request("u1"), true, "consent_given", Some("exmo.training")).unwrap();
    assert!(result.passed(), "{}", result.diff());
    let result = scenario.expect(&request("u2"), true, "consent_given", None).unwrap();
    assert!(!result.passed());
    assert!(
        result.diff().contains("  -code = \"consent_given\"\n  +code = \"consent_missing\"\n"),
        "{}",
        result.diff()
    );
    // Bad input is an error, not a failed expectation.
    assert!(scenario
        .expect(r#"{"subject":"u1","purpose":"nonsense.x","categories":["behavior.log"]}"#, false, "no_rule", None)
        .is_err());
    let bad = Scenario::new(consent_guard::Policy::from_toml_file(root().join("examples/policies/exmo.toml")).unwrap())
        .events("\n{\"type\":\"grant\"}");
    assert!(matches!(bad.unwrap_err(), TestingError::Invalid { line: 2, .. }));
}

/// The example of `docs/interchange.md` ("Golden test files") runs and passes.
#[test]
fn the_documented_example_passes() {
    let doc = std::fs::read_to_string(root().join("docs/interchange.md")).unwrap();
    let section = doc.split("## Golden test files").nth(1).unwrap();
    let block = section.split("```toml\n").nth(1).unwrap().split("```").next().unwrap();
    let file = testing::GoldenFile::from_toml_str(block, "docs/interchange.md", &root().join("tests/golden")).unwrap();
    let report = file.run().unwrap();
    assert!(report.is_success() && report.results.len() == 1, "{report}");
}
