//! The README's service recipe ("Run the decision service"), run by bash as written:
//! build, start, wait for `/readyz`, check, stop. One command is not run again: `cargo
//! build`, which a `cargo` on PATH checks for its arguments and answers at once (the
//! test's own build made `target/debug/consent-guard`; a nested cargo would wait for
//! the build directory this test runs from). `.ci/run` also runs the block with the
//! real cargo (`.ci/readme-recipe`). Needs bash, curl and openssl: under CI (`CI`
//! set) a missing one fails the test; elsewhere it is skipped with a message.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The `sh` block of the README's "Run the decision service" section.
fn recipe() -> String {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme.split("## Run the decision service").nth(1).expect("the section");
    let block = section.split("```sh\n").nth(1).expect("a sh block");
    block.split("```").next().unwrap().to_owned()
}

fn have(tool: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success())
}

#[test]
fn the_readme_service_recipe_works_as_written() {
    let missing: Vec<&str> = ["bash", "curl", "openssl"].into_iter().filter(|tool| !have(tool)).collect();
    if !missing.is_empty() {
        assert!(std::env::var_os("CI").is_none(), "CI is set but {missing:?} missing");
        eprintln!("skipped: {missing:?} not installed");
        return;
    }
    if std::net::TcpListener::bind("127.0.0.1:8181").is_err() {
        panic!("the recipe listens on 127.0.0.1:8181, which is in use");
    }
    let recipe = recipe();
    assert!(recipe.starts_with("cargo build --locked -p consent-guard-cli"), "build first:\n{recipe}");
    assert!(recipe.contains("/readyz"), "wait for readiness:\n{recipe}");
    // The binary the recipe starts is the one this test was built with.
    let binary = assert_cmd::cargo::cargo_bin("consent-guard");
    assert_eq!(binary.canonicalize().unwrap(), root().join("target/debug/consent-guard").canonicalize().unwrap());

    let scratch = tempfile::tempdir().unwrap();
    let bin = scratch.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let cargo = bin.join("cargo");
    std::fs::write(
        &cargo,
        "#!/bin/sh\n[ \"$*\" = 'build --locked -p consent-guard-cli' ] || { echo \"cargo $*: not the recipe's build\" >&2; exit 1; }\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let tmp = scratch.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let before = Command::new("git").current_dir(root()).args(["status", "--porcelain"]).output().ok();
    let output = Command::new("bash")
        .current_dir(root())
        .args(["-e", "-c", &recipe])
        .env("PATH", path)
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(r#""allowed":true"#), "{stdout}\n{stderr}");
    assert!(stdout.contains(r#""clause":"exmo.registration""#), "{stdout}\n{stderr}");
    // The token, store and audit log went to the temporary directory, not the tree.
    let state: Vec<_> = std::fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(state.len(), 1, "{state:?}");
    for name in ["tokens", "consent.redb", "audit"] {
        assert!(state[0].join(name).exists(), "{name} in {}", state[0].display());
    }
    let after = Command::new("git").current_dir(root()).args(["status", "--porcelain"]).output().ok();
    if let (Some(before), Some(after)) = (before, after) {
        assert_eq!(String::from_utf8_lossy(&before.stdout), String::from_utf8_lossy(&after.stdout), "the tree changed");
    }
}
