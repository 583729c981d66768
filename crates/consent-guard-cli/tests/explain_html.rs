//! The HTML report of `explain --format html`, rendered by a real browser: headless
//! Chromium (Debian's `chromium`, installed by `.ci/run`) loads the file and the
//! rendered DOM must hold the table, a row per rule. Under CI (`CI` set) a missing
//! Chromium fails the test; elsewhere it is skipped with a message. The screenshot is
//! left in `target/explain-html/` for people to look at.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use consent_guard::Policy;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// Chromium from `CHROMIUM`, else the first of the usual names on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs Chromium headless on `args`, killed after two minutes; returns its stdout.
fn run_chromium(chromium: &Path, profile: &Path, args: &[String]) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.join().unwrap()
}

#[test]
fn the_html_report_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "CI is set but Chromium is missing: .ci/run installs it");
        eprintln!("skipped: no chromium on PATH (install Debian's `chromium`, or set CHROMIUM)");
        return;
    };
    let seed = "exmo";
    let policy_file = root().join(format!("examples/policies/{seed}.toml"));
    let policy = Policy::from_toml_file(&policy_file).unwrap();
    let output = assert_cmd::Command::cargo_bin("consent-guard")
        .unwrap()
        .args(["explain", "--format", "html", "--policy"])
        .arg(&policy_file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));

    let out_dir = root().join("target/explain-html");
    std::fs::create_dir_all(&out_dir).unwrap();
    let html = out_dir.join(format!("{seed}.html"));
    std::fs::write(&html, &output.stdout).unwrap();
    let url = format!("file://{}", html.display());

    let profile = tempfile::tempdir().unwrap();
    let dom = run_chromium(&chromium, profile.path(), &["--dump-dom".to_owned(), url.clone()]);
    assert!(dom.contains("<table id=\"rules\">"), "no table in the rendered DOM:\n{dom}");
    let rows = dom.matches("<tr data-clause=").count();
    assert_eq!(rows, policy.rules().len(), "one row per rule");
    for rule in policy.rules() {
        assert!(dom.contains(&format!("data-clause=\"{}\"", rule.id)), "{}", rule.id);
    }
    assert!(dom.contains("<th>The privacy policy says</th>"), "{dom}");
    assert!(dom.contains("This authorization is off by default"), "the quoted sentence is rendered");

    // A picture for people; the file must be a PNG.
    let png = out_dir.join(format!("{seed}.png"));
    let _ = std::fs::remove_file(&png);
    let profile = tempfile::tempdir().unwrap();
    run_chromium(
        &chromium,
        profile.path(),
        &[format!("--screenshot={}", png.display()), "--window-size=1600,1400".to_owned(), url],
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000, "{} bytes", bytes.len());
}
