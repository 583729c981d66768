//! `consent-guard diff OLD NEW` and `lint --since OLD NEW` on two versions of the EXMO
//! seed (`tests/data/diff/exmo_1.1.toml` says what changed): purpose by purpose,
//! material or not, declared through `changed_in` or not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use assert_cmd::Command;
use serde_json::Value;

const OLD: &str = "examples/policies/exmo.toml";
const NEW: &str = "tests/data/diff/exmo_1.1.toml";

fn cg(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::cargo_bin("consent-guard")
        .unwrap()
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn diff_shows_each_purpose_material_or_not() {
    let (status, out, err) = cg(&["diff", OLD, NEW]);
    assert_eq!(status, Some(1), "undeclared material changes fail the run: {out}{err}");
    for expected in [
        "exmo 1.0 -> exmo 1.1\n",
        "service.upload_processing [clause exmo.uploads]\n  MATERIAL retention: session -> 30d (kept longer)\n",
        "personalization [clause exmo.behavior_logs]\n  MATERIAL default: opt_in -> opt_out (on until withdrawn)\n  reconsent: NOT declared: set changed_in = \"1.1\" on rule exmo.behavior_logs",
        "ai_training [clause exmo.training]\n  MATERIAL categories: behavior -> behavior, content.chat (broader data)\n           retention: not limited -> 1y (kept shorter)\n  reconsent: declared (changed_in is later than 1.0)\n",
        "advertising [clause exmo.advertising_profiling]\n           categories: behavior -> behavior.log (narrower data)\n",
        "marketing.campaigns [clause exmo.marketing]\n  MATERIAL purpose: (denied: no rule) -> permitted on consent (a new purpose)\n  reconsent: NOT declared",
        "7 purposes changed, 5 materially, 3 material changes not declared\n",
    ] {
        assert!(out.contains(expected), "want {expected:?} in:\n{out}");
    }
    // A contract rule has no consent to renew: no reconsent line.
    let uploads = out.split("\n\n").find(|b| b.starts_with("service.upload_processing")).unwrap();
    assert!(!uploads.contains("reconsent"), "{uploads}");
    // Unchanged purposes are not listed.
    assert!(!out.contains("account.registration"), "{out}");
}

#[test]
fn diff_as_json() {
    let (status, out, _) = cg(&["diff", "--format", "json", OLD, NEW]);
    assert_eq!(status, Some(1));
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["old"]["version"], "1.0");
    assert_eq!(json["new"]["version"], "1.1");
    let purposes = json["purposes"].as_array().unwrap();
    let find = |p: &str| purposes.iter().find(|d| d["purpose"] == p).unwrap_or_else(|| panic!("{p}"));
    assert_eq!(
        (find("ai_training")["material"].as_bool(), find("ai_training")["declared"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(find("personalization")["declared"], false);
    assert_eq!(find("advertising")["material"], false);
    assert!(find("advertising")["declared"].is_null());
    let change = &find("service.upload_processing")["changes"][0];
    assert_eq!(
        (change["field"].as_str(), change["old"].as_str(), change["new"].as_str()),
        (Some("retention"), Some("session"), Some("30d"))
    );
}

#[test]
fn diff_of_a_policy_with_itself_is_empty() {
    let (status, out, _) = cg(&["diff", OLD, OLD]);
    assert_eq!(status, Some(0));
    assert!(out.ends_with("0 purposes changed, 0 materially, 0 material changes not declared\n"), "{out}");
}

#[test]
fn lint_since_warns_about_undeclared_material_changes() {
    let (status, out, _) = cg(&["lint", "--format", "short", "--since", OLD, NEW]);
    assert_eq!(status, Some(0), "warnings only: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with(&format!("{NEW}:")), "{out}");
    assert!(
        lines.iter().any(|l| l.contains(": warning: marketing.campaigns changed materially since exmo 1.0: purpose (a new purpose); set changed_in = \"1.1\"") && l.ends_with("[undeclared_material_change]")),
        "{out}"
    );
    let (status, _, _) = cg(&["lint", "--deny-warnings", "--since", OLD, NEW]);
    assert_eq!(status, Some(1));
    // Without --since the new version is clean.
    let (status, out, _) = cg(&["lint", "--deny-warnings", NEW]);
    assert_eq!((status, out.as_str()), (Some(0), ""));

    // Declaring the changes (or allowing one, with a reason) silences the warnings.
    let text =
        std::fs::read_to_string(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(NEW)).unwrap();
    let fixed = text
        .replace("default = \"opt_out\"", "default = \"opt_out\"\nchanged_in = \"1.1\"")
        .replace("id = \"exmo.marketing\"", "id = \"exmo.marketing\"\nallow = [{ warning = \"undeclared_material_change\", reason = \"nobody could consent to marketing before 1.1\" }]");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exmo_1.1.toml");
    std::fs::write(&path, fixed).unwrap();
    let path = path.display().to_string();
    let (status, out, _) = cg(&["lint", "--format", "short", "--deny-warnings", "--since", OLD, &path]);
    assert_eq!((status, out.as_str()), (Some(0), ""));
    let (_, out, _) = cg(&["diff", OLD, &path]);
    assert!(out.contains("1 material changes not declared"), "diff still reports the allowed one: {out}");
}
