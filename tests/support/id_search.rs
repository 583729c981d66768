//! A byte search for subject ids in every encoding a file might hold them in: raw
//! UTF-8, JSON-escaped, UTF-16LE, hex (both cases) and base64 (standard and URL-safe
//! alphabets, without padding, at each of the three alignments an id can take inside
//! a longer encoded text). For the erasure tests (issue 27): after an erasure, a
//! store file or an audit directory must hold none of the erased ids in any form.
//!
//! Include it with `#[path = "support/id_search.rs"] mod id_search;`. One pass over
//! the bytes (Aho-Corasick over every encoding of every id), so 100,000 ids over an
//! audit directory cost one read of each file.
#![allow(dead_code, reason = "each test binary uses a different part of the helpers")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test helpers fail loudly")]

use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;

/// Where an id was found, and in which encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The file (none for a search of bytes in memory).
    pub path: Option<PathBuf>,
    /// The offset of the match in the file.
    pub offset: usize,
    /// The id found.
    pub id: String,
    /// How it was encoded: `raw`, `json`, `utf16le`, `hex`, `HEX`, `base64`, `base64url`.
    pub encoding: &'static str,
}

/// The encodings of one id that are searched for (duplicates removed).
pub fn encodings(id: &str) -> Vec<(&'static str, Vec<u8>)> {
    let json = serde_json::to_string(id).unwrap();
    let json = json.get(1..json.len() - 1).unwrap().as_bytes().to_vec();
    let utf16: Vec<u8> = id.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let hex_lower: String = id.bytes().map(|b| format!("{b:02x}")).collect();
    let mut found = vec![
        ("raw", id.as_bytes().to_vec()),
        ("json", json),
        ("utf16le", utf16),
        ("hex", hex_lower.clone().into_bytes()),
        ("HEX", hex_lower.to_uppercase().into_bytes()),
        ("base64", base64(id.as_bytes(), STANDARD).into_bytes()),
        ("base64url", base64(id.as_bytes(), URL_SAFE).into_bytes()),
        ("base64+1", shifted_base64(id.as_bytes(), 1, STANDARD).into_bytes()),
        ("base64+2", shifted_base64(id.as_bytes(), 2, STANDARD).into_bytes()),
        ("base64url+1", shifted_base64(id.as_bytes(), 1, URL_SAFE).into_bytes()),
        ("base64url+2", shifted_base64(id.as_bytes(), 2, URL_SAFE).into_bytes()),
    ];
    let mut seen = std::collections::HashSet::new();
    found.retain(|(_, bytes)| seen.insert(bytes.clone()));
    found
}

pub const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 without padding: the characters that stand for the id's bytes whatever
/// follows them (a trailing partial group is cut, so that the needle is found inside a
/// longer encoded text too).
pub fn base64(bytes: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // Characters fully determined by the chunk's bytes: 4 for 3 bytes, 2 for 2, 1 for 1.
        let whole = match chunk.len() {
            3 => 4,
            2 => 2,
            _ => 1,
        };
        for i in 0..whole {
            out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Base64 of the id inside a longer text, starting `shift` (1 or 2) bytes into a
/// group of three: the characters that stand for the id's bytes alone, whatever came
/// before (the first 2 or 3 characters mix in the bytes before the id) or after.
fn shifted_base64(bytes: &[u8], shift: usize, alphabet: &[u8; 64]) -> String {
    let mut shifted = vec![0u8; shift];
    shifted.extend_from_slice(bytes);
    base64(&shifted, alphabet).chars().skip(shift + 1).collect()
}

/// A search for a set of ids.
pub struct IdSearch {
    automaton: AhoCorasick,
    /// Per pattern: the index of its id, its encoding.
    patterns: Vec<(usize, &'static str)>,
    ids: Vec<String>,
}

impl IdSearch {
    /// A search for `ids` (each at least 8 bytes long, so that a match is no accident).
    pub fn new<S: AsRef<str>>(ids: &[S]) -> IdSearch {
        let mut needles = Vec::new();
        let mut patterns = Vec::new();
        for (index, id) in ids.iter().enumerate() {
            assert!(id.as_ref().len() >= 8, "{:?} is too short to search for", id.as_ref());
            for (encoding, bytes) in encodings(id.as_ref()) {
                needles.push(bytes);
                patterns.push((index, encoding));
            }
        }
        IdSearch {
            automaton: AhoCorasick::new(&needles).unwrap(),
            patterns,
            ids: ids.iter().map(|id| id.as_ref().to_owned()).collect(),
        }
    }

    /// Every match in `bytes` (overlapping matches of one id in several encodings
    /// are all reported).
    pub fn in_bytes(&self, bytes: &[u8], path: Option<&Path>) -> Vec<Hit> {
        self.automaton
            .find_overlapping_iter(bytes)
            .map(|found| {
                let (index, encoding) = self.patterns[found.pattern().as_usize()];
                Hit { path: path.map(Path::to_path_buf), offset: found.start(), id: self.ids[index].clone(), encoding }
            })
            .collect()
    }

    /// Every match in one file.
    pub fn in_file(&self, path: &Path) -> Vec<Hit> {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.in_bytes(&bytes, Some(path))
    }

    /// Every match in every file under `dir` (recursively), but those `skip` names.
    pub fn in_dir(&self, dir: &Path, skip: &dyn Fn(&Path) -> bool) -> Vec<Hit> {
        let mut hits = Vec::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(at) = pending.pop() {
            for entry in std::fs::read_dir(&at).unwrap_or_else(|e| panic!("{}: {e}", at.display())) {
                let path = entry.unwrap().path();
                if skip(&path) {
                    continue;
                }
                if path.is_dir() {
                    pending.push(path);
                } else {
                    hits.extend(self.in_file(&path));
                }
            }
        }
        hits
    }
}
