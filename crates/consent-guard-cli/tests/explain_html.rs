//! The reviewer's report of `explain --format html`, rendered by a real browser:
//! headless Chromium (Debian's `chromium`, installed by `.ci/run`) loads the file, and
//! the rendered DOM must hold the policy's header and a card per rule listing every
//! permission the guard grants, each with the least consent the guard asks for it.
//! The permissions are not a second list: they are found by asking a guard of the
//! seed, request by request, for every action, recipient and category of each rule,
//! with subjects holding no consent, implied, explicit and separate consent. Under CI
//! (`CI` set) a missing Chromium fails the test; elsewhere it is skipped with a
//! message. The screenshots are left in `target/explain-html/` for people to look at.
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

use std::collections::{BTreeMap, BTreeSet};

use consent_guard::policy::explain::describe;
use consent_guard::request::{Action, RecipientKind};
use consent_guard::{AccessRequest, ConsentEvent, Guard, Policy};
use serde_json::json;

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

const SEEDS: [&str; 5] = ["aiart", "aimate", "exmo", "kmengai", "nexacore"];

/// The least consent the guard asks, as the report writes it.
const LEVELS: [&str; 4] = ["none", "implied", "explicit", "separate"];

/// What the guard grants for one rule: (recipient asked for, action) → the least
/// consent (an index of `LEVELS`) and whether only sensitive data was asked with it.
type Granted = BTreeMap<(String, Action), (usize, bool)>;

/// Asks a guard of `policy_file` everything each rule could permit. Subjects: `s0`
/// withdrew every purpose; `s1`, `s2`, `s3` granted every purpose at implied,
/// explicit and separate consent; all are adults.
fn granted_by_the_guard(policy_file: &Path) -> BTreeMap<String, Granted> {
    let guard = Guard::new(Policy::from_toml_file(policy_file).unwrap());
    let policy = guard.policy();
    let description = describe(policy);
    let purposes: BTreeSet<String> =
        policy.rules().iter().flat_map(|rule| rule.purposes.iter().map(ToString::to_string)).collect();
    let purposes: Vec<String> = purposes.into_iter().collect();
    let at = "2026-01-02T00:00:00Z";
    for (index, subject) in ["s0", "s1", "s2", "s3"].iter().enumerate() {
        let mut events = vec![json!({ "type": "subject", "subject": subject, "age": 30, "at": at })];
        events.push(match LEVELS[index] {
            "none" => json!({ "type": "withdraw", "subject": subject, "purposes": purposes, "at": at }),
            level => json!({ "type": "grant", "subject": subject, "purposes": purposes, "level": level, "at": at }),
        });
        for event in events {
            let event: ConsentEvent = serde_json::from_value(event).unwrap();
            guard.record(&event).unwrap();
        }
    }
    let declared = &policy.document().recipients;
    // (kind, name, the de-identification the recipient asks at least)
    let mut recipients: Vec<(String, Option<String>, Option<String>)> =
        RecipientKind::ALL.iter().map(|kind| (kind.as_str().to_owned(), None, None)).collect();
    recipients.extend(declared.iter().map(|(name, d)| {
        (d.kind.as_str().to_owned(), Some(name.clone()), d.deidentification.map(|level| level.to_string()))
    }));
    // Every purpose the policy knows, as its narrowed schema lists them: a rule is
    // asked about each purpose it governs (a parent purpose may be too broad).
    let known = consent_guard::schema::openapi_components_for(policy);
    let known: Vec<String> =
        known["Purpose"]["enum"].as_array().unwrap().iter().map(|name| name.as_str().unwrap().to_owned()).collect();
    let collected_at = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
    let mut all = BTreeMap::new();
    for (rule, explained) in policy.rules().iter().zip(&description.rules) {
        let mut granted = Granted::new();
        let deidentification = explained.deidentification.to_string();
        let governed = known.iter().filter(|name| {
            name.parse().ok().and_then(|purpose| policy.rule_for(&purpose)).is_some_and(|r| r.id == rule.id)
        });
        for purpose in governed {
            for category in &explained.categories {
                for (kind, name, asks) in &recipients {
                    let order = ["none", "pseudonymized", "anonymized"];
                    let rank = |level: &str| order.iter().position(|l| *l == level).unwrap_or(0);
                    let deidentification = match asks {
                        Some(asks) if rank(asks) > rank(&deidentification) => asks.clone(),
                        _ => deidentification.clone(),
                    };
                    for action in Action::ALL {
                        let mut least = None;
                        for (index, subject) in ["s0", "s1", "s2", "s3"].iter().enumerate() {
                            let request = json!({
                                "subject": subject,
                                "purpose": purpose,
                                "categories": [category.name],
                                "action": action,
                                "recipient": { "kind": kind, "name": name },
                                "deidentification": deidentification,
                                // Just collected, in this session: within any retention.
                                "collected_at": collected_at,
                                "collected_session": "x",
                                "session": "x",
                            });
                            let text = request.to_string();
                            let request: AccessRequest<'_> = serde_json::from_str(&text).unwrap();
                            if guard.check(&request).allowed() {
                                least = Some(index);
                                break;
                            }
                        }
                        let Some(least) = least else { continue };
                        let key = (name.clone().unwrap_or_else(|| kind.clone()), action);
                        let entry = granted.entry(key).or_insert((least, category.sensitive));
                        if (least, category.sensitive) < *entry {
                            *entry = (least, category.sensitive);
                        }
                    }
                }
            }
        }
        all.insert(rule.id.clone(), granted);
    }
    all
}

/// A card's permission rows: (recipient, action) → (consent, with consent only).
type Rows = BTreeMap<(String, String), (String, bool)>;

/// The value of `attribute` in the tag `tag`.
fn attribute<'a>(tag: &'a str, attribute: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {attribute}=\""))? + attribute.len() + 3;
    let end = tag.get(start..)?.find('"')?;
    tag.get(start..start + end)
}

/// The permission rows of each card of the rendered DOM: clause → (recipient, action)
/// → consent, and whether the row is a with-consent one.
fn permissions_in(dom: &str) -> BTreeMap<String, Rows> {
    let mut cards = BTreeMap::new();
    for card in dom.split("<section class=\"card\" data-clause=\"").skip(1) {
        let clause = card.split('"').next().unwrap().to_owned();
        let card = card.split("</section>").next().unwrap();
        let mut rows = BTreeMap::new();
        for tag in card.split("<tr").skip(1) {
            let tag = tag.split('>').next().unwrap();
            let (Some(recipient), Some(actions), Some(consent)) =
                (attribute(tag, "data-recipient"), attribute(tag, "data-actions"), attribute(tag, "data-consent"))
            else {
                continue;
            };
            for action in actions.split(' ') {
                let with_consent = tag.contains("class=\"with-consent\"");
                let previous =
                    rows.insert((recipient.to_owned(), action.to_owned()), (consent.to_owned(), with_consent));
                assert!(previous.is_none(), "{clause}: {recipient} {action} listed twice");
            }
        }
        cards.insert(clause, rows);
    }
    cards
}

#[test]
fn the_report_shows_every_permission_the_guard_grants_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        assert!(std::env::var_os("CI").is_none(), "CI is set but Chromium is missing: .ci/run installs it");
        eprintln!("skipped: no chromium on PATH (install Debian's `chromium`, or set CHROMIUM)");
        return;
    };
    let out_dir = root().join("target/explain-html");
    std::fs::create_dir_all(&out_dir).unwrap();
    let mut problems = Vec::new();
    for seed in SEEDS {
        let policy_file = root().join(format!("examples/policies/{seed}.toml"));
        let policy = Policy::from_toml_file(&policy_file).unwrap();
        // The policy as a path, as `lint`, `diff` and `test` take it.
        let output = assert_cmd::Command::cargo_bin("consent-guard")
            .unwrap()
            .arg("explain")
            .arg(&policy_file)
            .args(["--format", "html"])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{seed}");
        let html = out_dir.join(format!("{seed}.html"));
        std::fs::write(&html, &output.stdout).unwrap();
        let url = format!("file://{}", html.display());
        let profile = tempfile::tempdir().unwrap();
        let dom = run_chromium(&chromium, profile.path(), &["--dump-dom".to_owned(), url.clone()]);

        // The header: regions, separate-consent triggers, minors, denied purposes, and
        // each named recipient.
        for needle in ["<dt>Regions</dt>", "<dt>Separate consent</dt>", "<dt>Minors</dt>", "<dt>Denied</dt>"] {
            assert!(dom.contains(needle), "{seed}: no {needle} in the rendered DOM");
        }
        for name in policy.document().recipients.keys() {
            assert!(dom.contains(&format!("<dt data-recipient=\"{name}\">")), "{seed}: recipient {name}");
        }
        // A card per rule, with the sentence it encodes; no wide table.
        assert!(!dom.contains("<table id=\"rules\">"), "{seed}");
        let cards = permissions_in(&dom);
        assert_eq!(cards.len(), policy.rules().len(), "{seed}: one card per rule");

        for (clause, granted) in granted_by_the_guard(&policy_file) {
            let Some(rows) = cards.get(&clause) else {
                problems.push(format!("{seed}: no card for {clause}"));
                continue;
            };
            let rule = policy.rules().iter().find(|r| r.id == clause).unwrap();
            for ((recipient, action), (least, only_sensitive)) in &granted {
                // A declared recipient is covered by a row for it, or for its kind.
                let kind = policy.document().recipients.get(recipient).map(|d| d.kind.as_str().to_owned());
                let row = rows
                    .get(&(recipient.clone(), action.as_str().to_owned()))
                    .or_else(|| kind.and_then(|kind| rows.get(&(kind, action.as_str().to_owned()))));
                let Some((consent, _)) = row else {
                    problems.push(format!(
                        "{seed} {clause}: the guard grants {action} to {recipient} at {}, the report does not show it",
                        LEVELS[*least]
                    ));
                    continue;
                };
                let shown = LEVELS.iter().position(|l| l == consent).unwrap();
                // Sensitive data raises consent to separate; anonymized data a rule
                // exempts needs none: the card says so in words, the row gives the rule's.
                let exempt = rule.anonymized_exempt == Some(true);
                let raised = *only_sensitive && LEVELS[*least] == "separate";
                if shown != *least && !(raised && shown < *least) && !(exempt && *least == 0) {
                    problems.push(format!(
                        "{seed} {clause}: {action} to {recipient}: the guard asks {}, the report says {consent}",
                        LEVELS[*least]
                    ));
                }
            }
            // And nothing the guard refuses is shown.
            for (recipient, action) in rows.keys() {
                let action: Action = serde_json::from_value(json!(action)).unwrap();
                let by_kind_or_name = granted.keys().any(|(r, a)| {
                    *a == action
                        && (r == recipient
                            || policy.document().recipients.get(r).is_some_and(|d| d.kind.as_str() == recipient))
                });
                if !by_kind_or_name {
                    problems.push(format!(
                        "{seed} {clause}: the report shows {action} to {recipient}, the guard never grants it"
                    ));
                }
            }
        }
        let screenshot = out_dir.join(format!("{seed}.png"));
        let _ = std::fs::remove_file(&screenshot);
        let profile = tempfile::tempdir().unwrap();
        run_chromium(
            &chromium,
            profile.path(),
            &[format!("--screenshot={}", screenshot.display()), "--window-size=1280,2400".to_owned(), url],
        );
        let bytes = std::fs::read(&screenshot).unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000, "{seed}: {} bytes", bytes.len());
    }
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// AI Art's core rule is on contract, and its `[rule.with_consent]` lets consent add
/// sharing, transfer and disclosure to third parties and the public: the card shows
/// them, each at separate consent (the policy's triggers), marked as with consent.
#[test]
fn ai_art_core_shows_what_consent_adds() {
    let output = assert_cmd::Command::cargo_bin("consent-guard")
        .unwrap()
        .args(["explain", "--format", "html", "--policy"])
        .arg(root().join("examples/policies/aiart.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let html = String::from_utf8(output.stdout).unwrap();
    let cards = permissions_in(&html);
    let core = &cards["aiart.core"];
    for recipient in ["third_party", "public"] {
        for action in ["share", "transfer", "disclose"] {
            let (consent, with_consent) = &core[&(recipient.to_owned(), action.to_owned())];
            assert_eq!(consent, "separate", "{recipient} {action}");
            assert!(with_consent, "{recipient} {action}");
        }
    }
    assert!(html.contains("<dt>With consent</dt>"), "{html}");
}
