//! consent-guard beside its peers on one consent workload (issue 20).
//!
//! Subjects have an age, and per purpose a consent level (none, implied, explicit,
//! separate), whether the grant is their guardian's, and whether they withdrew it.
//! Three purposes need separate, explicit and implied consent; under-14s need their
//! guardian's grant. Requests pick a subject uniformly at random and one of the three
//! purposes. Every engine's answer on every request is compared with the reference
//! answer computed from the workload itself; a disagreement stops the run.
//!
//! Two native baselines run beside the engines: a `HashMap<u64, record>`, and a dense
//! `Vec<record>` indexed by subject number (the practical limit for a caller with
//! numeric ids). Each engine's figure is given as a ratio to both.
//!
//! ```sh
//! cd benches/peers && cargo run --release               # 10,000 subjects, every engine
//! PEERS_SUBJECTS=1000000 PEERS_ENGINES=native,guard cargo run --release
//! ```
//!
//! `PEERS_SUBJECTS` (default 10,000), `PEERS_REQUESTS` (requests per round for the
//! fast engines, default 1,000,000; the slow ones run a hundredth of it),
//! `PEERS_ROUNDS` (default 5; medians), `PEERS_ENGINES` (comma-separated: `native`,
//! `guard` (check, prepared, handles, and the batches by id and by handle, a chunk of
//! 4,096 rows at a time), `cedar`, `regorus` (interpreter and RVM),
//! `casbin`; default all).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use consent_guard::consent::{GrantEvent, SubjectEvent, WithdrawEvent};
use consent_guard::{
    AccessRequest, ConsentEvent, ConsentLevel, DataCategory, FixedClock, Guard, Policy, PreparedAccess, Purpose,
    SubjectHandle,
};

/// A small, seeded generator (xorshift64*), so every run sees the same workload.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

const PURPOSES: [&str; 3] = ["training", "ads", "recommendations"];
/// The level each purpose needs: 1 implied, 2 explicit, 3 separate.
const REQUIRED: [u8; 3] = [3, 2, 1];
const GUARDIAN_UNDER: u8 = 14;

/// One subject's consent to one purpose: level 0 is none.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, Hash)]
struct Consent {
    level: u8,
    guardian: bool,
    withdrawn: bool,
}

#[derive(Clone, Debug)]
struct Subject {
    age: u8,
    consents: [Consent; 3],
}

fn workload(subjects: u64) -> Vec<Subject> {
    let mut rng = Rng(0x5EED);
    (0..subjects)
        .map(|_| {
            let age = 8 + rng.below(50) as u8;
            let consents = [(); 3].map(|_| {
                let level = rng.below(4) as u8;
                Consent { level, guardian: level > 0 && rng.below(2) == 0, withdrawn: level > 0 && rng.below(5) == 0 }
            });
            Subject { age, consents }
        })
        .collect()
}

/// The reference answer, from the workload itself.
fn reference(subject: &Subject, purpose: usize) -> bool {
    let consent = subject.consents[purpose];
    consent.level >= REQUIRED[purpose] && !consent.withdrawn && (subject.age >= GUARDIAN_UNDER || consent.guardian)
}

/// The requests of one round: (subject, purpose), uniform, from a fixed seed.
fn requests(subjects: u64, count: usize, seed: u64) -> Vec<(u32, u8)> {
    let mut rng = Rng(seed);
    (0..count).map(|_| (rng.below(subjects) as u32, rng.below(3) as u8)).collect()
}

fn id(index: usize) -> String {
    format!("u{index}")
}

/// Resident memory of this process, in bytes (`VmRSS`).
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// What an engine costs to load: wall time, heap bytes it keeps (allocator
/// statistics), resident memory it adds.
struct Load {
    seconds: f64,
    heap: i64,
    resident: i64,
}

fn load<T>(build: impl FnOnce() -> T) -> (T, Load) {
    let before = resident();
    let start = Instant::now();
    let mut built = None;
    let info = allocation_counter::measure(|| built = Some(build()));
    let seconds = start.elapsed().as_secs_f64();
    let after = resident();
    let load = Load { seconds, heap: info.bytes_current, resident: after as i64 - before as i64 };
    (built.unwrap_or_else(|| unreachable!()), load)
}

// ---- native baseline --------------------------------------------------------------

/// The baseline's record: the same yes/no question in plain Rust.
#[derive(Clone, Copy)]
struct Native {
    age: u8,
    /// Per purpose: level in bits 0-1, guardian bit 2, withdrawn bit 3.
    consents: [u8; 3],
}

fn native(workload: &[Subject]) -> HashMap<u64, Native> {
    workload
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let consents = s.consents.map(|c| c.level | u8::from(c.guardian) << 2 | u8::from(c.withdrawn) << 3);
            (i as u64, Native { age: s.age, consents })
        })
        .collect()
}

/// The practical limit: a caller with numeric ids keeps its records in a dense array
/// indexed by subject number, so a lookup is one bounds check and one load.
fn dense(workload: &[Subject]) -> Vec<Native> {
    let map = native(workload);
    (0..workload.len() as u64).map(|i| map[&i]).collect()
}

#[inline(always)]
fn allows(record: &Native, purpose: usize) -> bool {
    let consent = record.consents[purpose];
    consent & 3 >= REQUIRED[purpose] && consent & 8 == 0 && (record.age >= GUARDIAN_UNDER || consent & 4 != 0)
}

#[inline(always)]
fn dense_check(records: &[Native], subject: usize, purpose: usize) -> bool {
    records.get(subject).is_some_and(|record| allows(record, purpose))
}

#[inline(always)]
fn native_check(map: &HashMap<u64, Native>, subject: u64, purpose: usize) -> bool {
    map.get(&subject).is_some_and(|record| allows(record, purpose))
}

// ---- consent-guard ----------------------------------------------------------------

/// Rows a batch engine takes at a time, as a job reads a chunk of a column (an Arrow
/// record batch).
const CHUNK_ROWS: usize = 4096;

/// Runs a batch engine over a round: per chunk of [`CHUNK_ROWS`] requests and per
/// purpose, `check` answers that purpose's requests in order; the answers are put back
/// in the round's order.
fn by_purpose(batch: &[(u32, u8)], mut check: impl FnMut(usize, &[(u32, u8)], &mut Vec<bool>)) -> Vec<bool> {
    let mut answers = vec![false; batch.len()];
    let (mut requests, mut positions, mut got) = (Vec::new(), Vec::new(), Vec::new());
    for (chunk, rows) in batch.chunks(CHUNK_ROWS).enumerate() {
        for purpose in 0..GUARD_PURPOSES.len() {
            requests.clear();
            positions.clear();
            got.clear();
            for (row, &request) in rows.iter().enumerate() {
                if usize::from(request.1) == purpose {
                    requests.push(request);
                    positions.push(chunk * CHUNK_ROWS + row);
                }
            }
            check(purpose, &requests, &mut got);
            for (&position, &answer) in positions.iter().zip(&got) {
                answers[position] = answer;
            }
        }
    }
    answers
}

fn at(days: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::days(days)
}

const GUARD_PURPOSES: [Purpose; 3] =
    [Purpose::AI_TRAINING_MODEL_TRAINING, Purpose::ADVERTISING_PERSONALIZED, Purpose::PERSONALIZATION_RECOMMENDATION];
const GRANT_PURPOSES: [Purpose; 3] = [Purpose::AI_TRAINING, Purpose::ADVERTISING, Purpose::PERSONALIZATION];
const BEHAVIOR: &[DataCategory] = &[DataCategory::BEHAVIOR_LOG];

fn guard_events(index: usize, subject: &Subject) -> Vec<ConsentEvent> {
    let id = id(index);
    // Born well away from a birthday at the clock's time, so the age is the workload's.
    let birth = (at(150) - chrono::Duration::days(365 * i64::from(subject.age) + 120)).date_naive();
    let mut events = vec![ConsentEvent::from(SubjectEvent::new(id.clone()).birth_date(birth).at(at(1)))];
    for (purpose, consent) in subject.consents.iter().enumerate() {
        if consent.level == 0 {
            continue;
        }
        let level =
            [ConsentLevel::Implied, ConsentLevel::Explicit, ConsentLevel::Separate][usize::from(consent.level) - 1];
        let grant = GrantEvent::new(id.clone(), vec![GRANT_PURPOSES[purpose].clone()], level, at(2))
            .by_guardian(consent.guardian);
        events.push(grant.into());
        if consent.withdrawn {
            events.push(WithdrawEvent::new(id.clone(), vec![GRANT_PURPOSES[purpose].clone()], at(30)).into());
        }
    }
    events
}

fn guard(workload: &[Subject]) -> Guard {
    let policy = Policy::from_toml_file(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/peers.toml")).unwrap();
    let guard = Guard::builder(policy).clock(FixedClock::new(at(150))).build().unwrap();
    for (index, subject) in workload.iter().enumerate() {
        guard.record_all(&guard_events(index, subject)).unwrap();
    }
    guard
}

/// A subject id as a service receives it, written to the stack: `u<index>`.
#[derive(Clone, Copy)]
struct StackId {
    bytes: [u8; 24],
    len: usize,
}

impl StackId {
    #[inline(always)]
    fn new(index: u32) -> StackId {
        let mut digits = [0u8; 10];
        let mut n = index;
        let mut count = 0;
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            count += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut bytes = [0u8; 24];
        bytes[0] = b'u';
        for i in 0..count {
            bytes[1 + i] = digits[count - 1 - i];
        }
        StackId { bytes, len: count + 1 }
    }
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("u")
    }
}

impl AsRef<str> for StackId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

// ---- cedar ------------------------------------------------------------------------

struct Cedar {
    policies: cedar_policy::PolicySet,
    entities: cedar_policy::Entities,
    users: Vec<cedar_policy::EntityUid>,
    action: cedar_policy::EntityUid,
    purposes: [cedar_policy::EntityUid; 3],
    authorizer: cedar_policy::Authorizer,
}

fn cedar(workload: &[Subject]) -> Cedar {
    use cedar_policy::{Entity, EntityUid, RestrictedExpression};
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/peers.cedar")).unwrap();
    let policies: cedar_policy::PolicySet = text.parse().unwrap();
    let users: Vec<EntityUid> = (0..workload.len()).map(|i| format!("User::\"{}\"", id(i)).parse().unwrap()).collect();
    let entities = workload.iter().zip(&users).map(|(subject, uid)| {
        let mut attributes = HashMap::new();
        attributes.insert("age".to_string(), RestrictedExpression::new_long(i64::from(subject.age)));
        for (purpose, consent) in subject.consents.iter().enumerate() {
            let record = RestrictedExpression::new_record([
                ("level".to_string(), RestrictedExpression::new_long(i64::from(consent.level))),
                ("guardian".to_string(), RestrictedExpression::new_bool(consent.guardian)),
                ("withdrawn".to_string(), RestrictedExpression::new_bool(consent.withdrawn)),
            ])
            .unwrap();
            attributes.insert(PURPOSES[purpose].to_string(), record);
        }
        Entity::new(uid.clone(), attributes, std::collections::HashSet::new()).unwrap()
    });
    let entities = cedar_policy::Entities::from_entities(entities, None).unwrap();
    Cedar {
        policies,
        entities,
        users,
        action: "Action::\"use\"".parse().unwrap(),
        purposes: PURPOSES.map(|p| format!("Purpose::\"{p}\"").parse().unwrap()),
        authorizer: cedar_policy::Authorizer::new(),
    }
}

fn cedar_check(cedar: &Cedar, subject: u32, purpose: usize) -> bool {
    let request = cedar_policy::Request::new(
        cedar.users[subject as usize].clone(),
        cedar.action.clone(),
        cedar.purposes[purpose].clone(),
        cedar_policy::Context::empty(),
        None,
    )
    .unwrap();
    cedar.authorizer.is_authorized(&request, &cedar.policies, &cedar.entities).decision()
        == cedar_policy::Decision::Allow
}

// ---- regorus ----------------------------------------------------------------------

fn rego_data(workload: &[Subject]) -> regorus::Value {
    let subjects: serde_json::Map<String, serde_json::Value> = workload
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut record = serde_json::Map::new();
            record.insert("age".into(), s.age.into());
            for (purpose, consent) in s.consents.iter().enumerate() {
                record.insert(PURPOSES[purpose].into(), serde_json::to_value(consent).unwrap());
            }
            (id(i), serde_json::Value::Object(record))
        })
        .collect();
    let data = serde_json::json!({ "subjects": subjects });
    regorus::Value::from_json_str(&data.to_string()).unwrap()
}

/// The input of each (subject, purpose), built before the timed loop: cloning a
/// `Value` is a reference count, so the loop measures evaluation alone.
fn rego_inputs(subjects: usize) -> Vec<[regorus::Value; 3]> {
    (0..subjects)
        .map(|i| {
            PURPOSES.map(|p| {
                let mut input = regorus::Value::new_object();
                let object = input.as_object_mut().unwrap();
                object.insert("subject".into(), id(i).as_str().into());
                object.insert("purpose".into(), p.into());
                input
            })
        })
        .collect()
}

fn rego_engine(workload: &[Subject]) -> regorus::CompiledPolicy {
    let mut engine = regorus::Engine::new();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/peers.rego")).unwrap();
    engine.add_policy("peers.rego".into(), text).unwrap();
    engine.add_data(rego_data(workload)).unwrap();
    engine.compile_with_entrypoint(&"data.peers.allow".into()).unwrap()
}

fn rvm(workload: &[Subject]) -> regorus::rvm::vm::RegoVM {
    let mut engine = regorus::Engine::new();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/peers.rego")).unwrap();
    engine.add_policy("peers.rego".into(), text).unwrap();
    let compiled = engine.compile_with_entrypoint(&"data.peers.allow".into()).unwrap();
    let program =
        regorus::languages::rego::compiler::Compiler::compile_from_policy(&compiled, &["data.peers.allow"]).unwrap();
    let mut vm = regorus::rvm::vm::RegoVM::new();
    vm.load_program(program);
    vm.set_data(rego_data(workload)).unwrap();
    vm
}

fn is_true(value: &regorus::Value) -> bool {
    value.as_bool().map(|b| *b).unwrap_or(false)
}

// ---- casbin -----------------------------------------------------------------------

fn casbin(runtime: &tokio::runtime::Runtime) -> casbin::Enforcer {
    use casbin::{CoreApi, DefaultModel, MemoryAdapter, MgmtApi};
    runtime.block_on(async {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/peers_casbin.conf")).unwrap();
        let model = DefaultModel::from_str(&text).await.unwrap();
        let mut enforcer = casbin::Enforcer::new(model, MemoryAdapter::default()).await.unwrap();
        for (purpose, name) in PURPOSES.iter().enumerate() {
            let rule = format!(
                "r.sub.level >= {} && r.sub.withdrawn == false && (r.sub.age >= {GUARDIAN_UNDER} || r.sub.guardian == true)",
                REQUIRED[purpose]
            );
            enforcer.add_policy(vec![name.to_string(), rule]).await.unwrap();
        }
        enforcer
    })
}

/// casbin's ABAC takes the attributes with the request: the caller reads them from its
/// own store (here the baseline's map, a lookup the casbin figure includes).
#[derive(serde::Serialize, Hash)]
struct CasbinSubject {
    age: u8,
    level: u8,
    guardian: bool,
    withdrawn: bool,
}

fn casbin_check(enforcer: &casbin::Enforcer, map: &HashMap<u64, Native>, subject: u32, purpose: usize) -> bool {
    use casbin::CoreApi;
    let Some(record) = map.get(&u64::from(subject)) else { return false };
    let consent = record.consents[purpose];
    let attributes =
        CasbinSubject { age: record.age, level: consent & 3, guardian: consent & 4 != 0, withdrawn: consent & 8 != 0 };
    enforcer.enforce((attributes, PURPOSES[purpose])).unwrap()
}

// ---- the run ----------------------------------------------------------------------

type Body<'a> = Box<dyn FnMut(&[(u32, u8)]) -> Vec<bool> + 'a>;

struct Engine<'a> {
    name: &'static str,
    /// Runs a hundredth of the requests.
    slow: bool,
    body: Body<'a>,
    load: Option<Load>,
    samples: Vec<f64>,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

fn main() {
    let subjects = env_number("PEERS_SUBJECTS", 10_000);
    let per_round = env_number("PEERS_REQUESTS", 1_000_000) as usize;
    let rounds = env_number("PEERS_ROUNDS", 5) as usize;
    let engines = std::env::var("PEERS_ENGINES").unwrap_or_else(|_| "native,guard,cedar,regorus,casbin".into());
    let wanted = |name: &str| engines.split(',').any(|e| e.trim() == name);
    let workload = workload(subjects);
    let allowed = (0..subjects as usize).map(|i| (0..3).filter(|p| reference(&workload[i], *p)).count()).sum::<usize>();
    println!(
        "workload: {subjects} subjects, {:.1}% of (subject, purpose) pairs allowed; {rounds} rounds of {per_round} requests (slow engines: {})",
        allowed as f64 / (subjects as f64 * 3.0) * 100.0,
        per_round / 100
    );

    let (map, native_load) = load(|| native(&workload));
    let (records, dense_load) = load(|| dense(&workload));
    let guard_built = wanted("guard").then(|| load(|| guard(&workload)));
    let cedar_built = wanted("cedar").then(|| load(|| cedar(&workload)));
    let rego_built = wanted("regorus").then(|| (load(|| rego_engine(&workload)), load(|| rvm(&workload))));
    let rego_inputs = wanted("regorus").then(|| rego_inputs(subjects as usize));
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let casbin_built = wanted("casbin").then(|| load(|| casbin(&runtime)));

    let templates: Vec<AccessRequest<'static>> =
        GUARD_PURPOSES.iter().map(|p| AccessRequest::new("", p.clone(), BEHAVIOR)).collect();
    let ids: Vec<String> = (0..subjects as usize).map(id).collect();
    let mut list: Vec<Engine<'_>> = Vec::new();
    list.push(Engine {
        name: "native Rust (HashMap<u64, record>)",
        slow: false,
        body: Box::new(|batch| batch.iter().map(|&(s, p)| native_check(&map, u64::from(s), usize::from(p))).collect()),
        load: Some(native_load),
        samples: Vec::new(),
    });
    list.push(Engine {
        name: "native Rust (dense Vec<record> by subject number)",
        slow: false,
        body: Box::new(|batch| batch.iter().map(|&(s, p)| dense_check(&records, s as usize, usize::from(p))).collect()),
        load: Some(dense_load),
        samples: Vec::new(),
    });
    if let Some((guard, load)) = &guard_built {
        let prepared: Arc<Vec<PreparedAccess<'_>>> = Arc::new(templates.iter().map(|t| guard.prepare(t)).collect());
        let handles: Arc<Vec<SubjectHandle<'_>>> = Arc::new(ids.iter().map(|id| guard.subject_handle(id)).collect());
        let templates = &templates;
        list.push(Engine {
            name: "consent-guard check",
            slow: false,
            body: Box::new(move |batch| {
                batch
                    .iter()
                    .map(|&(s, p)| {
                        let id = StackId::new(s);
                        let mut request = templates[usize::from(p)].clone();
                        request.subject = std::borrow::Cow::Borrowed(id.as_str());
                        guard.check(&request).allowed()
                    })
                    .collect()
            }),
            load: Some(Load { seconds: load.seconds, heap: load.heap, resident: load.resident }),
            samples: Vec::new(),
        });
        let by_id = Arc::clone(&prepared);
        list.push(Engine {
            name: "consent-guard prepared",
            slow: false,
            body: Box::new(move |batch| {
                batch.iter().map(|&(s, p)| by_id[usize::from(p)].check(StackId::new(s).as_str()).allowed()).collect()
            }),
            load: None,
            samples: Vec::new(),
        });
        let (by_handle, one_handles) = (Arc::clone(&prepared), Arc::clone(&handles));
        list.push(Engine {
            name: "consent-guard prepared, handles",
            slow: false,
            body: Box::new(move |batch| {
                batch
                    .iter()
                    .map(|&(s, p)| by_handle[usize::from(p)].check_handle(&one_handles[s as usize]).allowed())
                    .collect()
            }),
            load: None,
            samples: Vec::new(),
        });
        let by_ids = Arc::clone(&prepared);
        list.push(Engine {
            name: "consent-guard prepared, id batches",
            slow: false,
            // As the handle batches below, by id: `check_batch` over the ids, written
            // per request.
            body: Box::new(move |batch| {
                by_purpose(batch, |purpose, requests, answers| {
                    let subjects: Vec<StackId> = requests.iter().map(|&(s, _)| StackId::new(s)).collect();
                    answers.extend(by_ids[purpose].check_batch(&subjects).iter().map(|d| d.allowed()));
                })
            }),
            load: None,
            samples: Vec::new(),
        });
        let (by_batch, handles) = (Arc::clone(&prepared), Arc::clone(&handles));
        list.push(Engine {
            name: "consent-guard prepared, handle batches",
            slow: false,
            // A batch job checks one kind of access for many subjects, a chunk of rows
            // at a time: `check_handles` over the chunk's handles of one purpose (their
            // copies are timed).
            body: Box::new(move |batch| {
                by_purpose(batch, |purpose, requests, answers| {
                    let subjects: Vec<SubjectHandle<'_>> = requests.iter().map(|&(s, _)| handles[s as usize]).collect();
                    answers.extend(by_batch[purpose].check_handles(&subjects).iter().map(|d| d.allowed()));
                })
            }),
            load: None,
            samples: Vec::new(),
        });
    }
    if let Some((cedar, load)) = &cedar_built {
        list.push(Engine {
            name: "cedar-policy 4",
            slow: true,
            body: Box::new(move |batch| batch.iter().map(|&(s, p)| cedar_check(cedar, s, usize::from(p))).collect()),
            load: Some(Load { seconds: load.seconds, heap: load.heap, resident: load.resident }),
            samples: Vec::new(),
        });
    }
    if let (Some(((compiled, load_i), (vm, load_v))), Some(inputs)) = (rego_built, &rego_inputs) {
        list.push(Engine {
            name: "regorus 0.14 interpreter",
            slow: true,
            body: Box::new(move |batch| {
                batch
                    .iter()
                    .map(|&(s, p)| {
                        is_true(&compiled.eval_with_input(inputs[s as usize][usize::from(p)].clone()).unwrap())
                    })
                    .collect()
            }),
            load: Some(load_i),
            samples: Vec::new(),
        });
        let mut vm = vm;
        list.push(Engine {
            name: "regorus 0.14 RVM",
            slow: true,
            body: Box::new(move |batch| {
                batch
                    .iter()
                    .map(|&(s, p)| {
                        vm.set_input(inputs[s as usize][usize::from(p)].clone());
                        is_true(&vm.execute().unwrap())
                    })
                    .collect()
            }),
            load: Some(load_v),
            samples: Vec::new(),
        });
    }
    if let Some((enforcer, load)) = &casbin_built {
        let map = &map;
        list.push(Engine {
            name: "casbin 2 ABAC",
            slow: true,
            body: Box::new(move |batch| {
                batch.iter().map(|&(s, p)| casbin_check(enforcer, map, s, usize::from(p))).collect()
            }),
            load: Some(Load { seconds: load.seconds, heap: load.heap, resident: load.resident }),
            samples: Vec::new(),
        });
    }

    // Rounds: every engine in turn, so that the machine's noise falls on all of them.
    let mut checked = 0u64;
    for round in 0..rounds {
        let fast = requests(subjects, per_round, 42 + round as u64);
        let slow = requests(subjects, (per_round / 100).max(1), 4242 + round as u64);
        for engine in &mut list {
            let batch = if engine.slow { &slow } else { &fast };
            let start = Instant::now();
            let answers = (engine.body)(batch);
            let elapsed = start.elapsed().as_nanos() as f64;
            for (&(s, p), answer) in batch.iter().zip(&answers) {
                let expected = reference(&workload[s as usize], usize::from(p));
                assert_eq!(
                    *answer,
                    expected,
                    "{}: subject {s} purpose {} {:?}",
                    engine.name,
                    PURPOSES[usize::from(p)],
                    workload[s as usize]
                );
            }
            checked += batch.len() as u64;
            engine.samples.push(elapsed / batch.len() as f64);
        }
    }
    let median = |samples: &[f64]| {
        let mut sorted = samples.to_vec();
        sorted.sort_by(|a, b| a.total_cmp(b));
        sorted[sorted.len() / 2]
    };
    let native_ns = median(&list[0].samples);
    let dense_ns = median(&list[1].samples);
    let fastest_peer = list.iter().filter(|e| e.slow).map(|e| median(&e.samples)).fold(f64::INFINITY, f64::min);
    println!("every answer of every engine matched the reference: {checked} requests");
    println!();
    println!("| engine | ns per decision | × native (HashMap) | × dense | fastest peer ÷ this | load | heap kept | resident added |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for engine in &list {
        let ns = median(&engine.samples);
        let vs_peer = if fastest_peer.is_finite() { format!("{:.1}", fastest_peer / ns) } else { "—".into() };
        let (seconds, heap, rss) = match &engine.load {
            Some(l) => (
                format!("{:.0} ms", l.seconds * 1e3),
                format!("{:.1} MiB ({:.0} B/subject)", l.heap as f64 / 1048576.0, l.heap as f64 / subjects as f64),
                format!("{:.1} MiB", l.resident as f64 / 1048576.0),
            ),
            None => ("(same guard)".into(), "".into(), "".into()),
        };
        println!(
            "| {} | {ns:.1} | {:.1} | {:.1} | {vs_peer} | {seconds} | {heap} | {rss} |",
            engine.name,
            ns / native_ns,
            ns / dense_ns
        );
    }
}
