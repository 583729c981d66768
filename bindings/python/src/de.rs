//! A serde `Deserializer` over Python objects: a request given as a dict is read into
//! the library's own serde types (`AccessRequest`) without writing and re-reading JSON
//! text, so the same derive, the same `deny_unknown_fields` and the same validation
//! run.
//!
//! It reads what the JSON path (`to_json` then `serde_json`) reads, and visits values
//! as `serde_json` does (a non-negative int as `u64`, a negative one as `i64`, a float
//! as `f64`, `None` as unit or an absent option, a str as a unit enum variant). It
//! never explains an error itself: any failure here, whatever its cause, sends the
//! caller back to the JSON path, whose reader gives the command line's `field: message`
//! words. So the words stay the same, and a disagreement between the two readers could
//! only cost speed, never let a malformed request through on the JSON path's behalf.
//!
//! Nesting is bounded by [`DICT_DEPTH`] (which also stops a dict that
//! contains itself). Only exact dicts are walked (a subclass may define `__iter__`),
//! and nothing here runs Python code, so a dict cannot change under the walk.

use std::fmt;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::iter::BoundDictIterator;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use crate::DICT_DEPTH;

/// Why a value could not be read here; the caller falls back to the JSON path, which
/// says why in its own words.
#[derive(Debug)]
pub(crate) struct Unread(String);

impl fmt::Display for Unread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unread {}

impl de::Error for Unread {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Unread(message.to_string())
    }
}

fn unread(what: &str) -> Unread {
    Unread(what.to_owned())
}

/// One Python value at a nesting depth.
pub(crate) struct PyDe<'a, 'py> {
    value: &'a Bound<'py, PyAny>,
    depth: usize,
}

impl<'a, 'py> PyDe<'a, 'py> {
    /// A deserializer over the top-level `value`.
    pub(crate) fn new(value: &'a Bound<'py, PyAny>) -> PyDe<'a, 'py> {
        PyDe { value, depth: 0 }
    }

    fn checked_depth(&self) -> Result<(), Unread> {
        if self.depth > DICT_DEPTH {
            return Err(unread("nested too deep"));
        }
        Ok(())
    }
}

impl<'de> de::Deserializer<'de> for PyDe<'_, '_> {
    type Error = Unread;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unread> {
        self.checked_depth()?;
        let value = self.value;
        if let Ok(text) = value.cast::<PyString>() {
            // A str that is not UTF-8 (a lone surrogate) is not read here.
            let text = text.to_cow().map_err(|_| unread("a str that is not UTF-8"))?;
            return visitor.visit_str(&text);
        }
        if value.is_none() {
            return visitor.visit_unit();
        }
        // `bool` before `int`: in Python a bool is an int.
        if let Ok(flag) = value.cast::<PyBool>() {
            return visitor.visit_bool(flag.is_true());
        }
        if value.cast::<PyInt>().is_ok() {
            if let Ok(n) = value.extract::<u64>() {
                return visitor.visit_u64(n);
            }
            if let Ok(n) = value.extract::<i64>() {
                return visitor.visit_i64(n);
            }
            return Err(unread("an integer out of JSON's range"));
        }
        if let Ok(number) = value.cast::<PyFloat>() {
            let number = number.value();
            if !number.is_finite() {
                return Err(unread("a number JSON cannot carry"));
            }
            return visitor.visit_f64(number);
        }
        // A dict exactly: a subclass could run Python code as it is iterated.
        if let Ok(dict) = value.cast_exact::<PyDict>() {
            return visitor.visit_map(DictAccess { entries: dict.iter(), value: None, depth: self.depth + 1 });
        }
        if let Ok(list) = value.cast::<PyList>() {
            return visitor.visit_seq(Items { items: Sequence::List(list), position: 0, depth: self.depth + 1 });
        }
        if let Ok(tuple) = value.cast::<PyTuple>() {
            return visitor.visit_seq(Items { items: Sequence::Tuple(tuple), position: 0, depth: self.depth + 1 });
        }
        Err(unread("a value that is not JSON"))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Unread> {
        self.checked_depth()?;
        if self.value.is_none() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Unread> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Unread> {
        // Unit variants, the only ones a request names, are strings; any other form is
        // left to the JSON path.
        let text = self.value.cast::<PyString>().map_err(|_| unread("an enum that is not a str"))?;
        let text = text.to_cow().map_err(|_| unread("a str that is not UTF-8"))?;
        visitor.visit_enum(IntoDeserializer::<Unread>::into_deserializer(&*text))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// A dict's entries. The walk holds the GIL and runs no Python code (no `__eq__`,
/// `__hash__` or `__index__` is called), so the dict cannot change under it.
struct DictAccess<'py> {
    entries: BoundDictIterator<'py>,
    value: Option<Bound<'py, PyAny>>,
    depth: usize,
}

impl<'de> MapAccess<'de> for DictAccess<'_> {
    type Error = Unread;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Unread> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        if key.cast::<PyString>().is_err() {
            return Err(unread("a key that is not a str"));
        }
        self.value = Some(value);
        // A key written as a literal in Python source is interned: found by identity,
        // it is named without encoding it to UTF-8 (an allocation in the limited API).
        if let Some(name) = known_field(&key) {
            return seed.deserialize(IntoDeserializer::<Unread>::into_deserializer(name)).map(Some);
        }
        seed.deserialize(PyDe { value: &key, depth: self.depth }).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Unread> {
        let value = self.value.take().ok_or_else(|| unread("a value without its key"))?;
        seed.deserialize(PyDe { value: &value, depth: self.depth })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// The request's field names (`docs/interchange.md`), interned once.
const FIELDS: [&str; 13] = [
    "subject",
    "purpose",
    "action",
    "categories",
    "recipient",
    "deidentification",
    "basis",
    "region",
    "signals",
    "collected_at",
    "collected_session",
    "session",
    "at",
];

static INTERNED: PyOnceLock<Vec<Py<PyString>>> = PyOnceLock::new();

/// The field name `key` is, when it is the interned string of one (an identity
/// test: a key equal to a name but not interned is read as any other str).
fn known_field(key: &Bound<'_, PyAny>) -> Option<&'static str> {
    let py = key.py();
    let interned = INTERNED.get_or_init(py, || FIELDS.iter().map(|name| PyString::intern(py, name).unbind()).collect());
    interned.iter().zip(FIELDS).find(|(name, _)| name.as_ptr() == key.as_ptr()).map(|(_, field)| field)
}

enum Sequence<'a, 'py> {
    List(&'a Bound<'py, PyList>),
    Tuple(&'a Bound<'py, PyTuple>),
}

struct Items<'a, 'py> {
    items: Sequence<'a, 'py>,
    position: usize,
    depth: usize,
}

impl<'de> SeqAccess<'de> for Items<'_, '_> {
    type Error = Unread;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Unread> {
        let item = match self.items {
            Sequence::List(list) if self.position < list.len() => list.get_item(self.position),
            Sequence::Tuple(tuple) if self.position < tuple.len() => tuple.get_item(self.position),
            _ => return Ok(None),
        }
        .map_err(|_| unread("a list that changed"))?;
        self.position += 1;
        seed.deserialize(PyDe { value: &item, depth: self.depth }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        let len = match self.items {
            Sequence::List(list) => list.len(),
            Sequence::Tuple(tuple) => tuple.len(),
        };
        Some(len.saturating_sub(self.position))
    }
}
