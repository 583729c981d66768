//! The machinery shared by the two hierarchical vocabularies, purposes and data
//! categories: dotted names, the built-in tables, and the per-policy index that turns
//! names into bit positions so that a check tests bits instead of walking strings.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// How many nodes (built-in and declared) one vocabulary of a policy may hold: sets of
/// nodes are `u128` bit masks.
pub(crate) const MAX_NODES: usize = 128;

/// A node of a hierarchy: a built-in name (an index into a static table) or a name a
/// policy declared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Node {
    Builtin(u8),
    Extension(Arc<str>),
}

/// Why a string is not a well-formed dotted name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NameSyntax {
    Empty,
    BadSegment,
}

/// Checks the shape of a dotted name: lower-case ASCII letters, digits and `_`,
/// segments separated by single dots, each starting with a letter.
pub(crate) fn check_syntax(name: &str) -> Result<(), NameSyntax> {
    if name.is_empty() {
        return Err(NameSyntax::Empty);
    }
    for segment in name.split('.') {
        let mut chars = segment.chars();
        let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !starts_with_letter || !rest_ok {
            return Err(NameSyntax::BadSegment);
        }
    }
    Ok(())
}

/// The parent of a dotted name, if it has one.
pub(crate) fn parent_name(name: &str) -> Option<&str> {
    name.rfind('.').and_then(|dot| name.get(..dot))
}

/// Whether `ancestor` is `name` or one of its ancestors, by dotted prefix.
pub(crate) fn covers(ancestor: &str, name: &str) -> bool {
    name == ancestor || (name.starts_with(ancestor) && name.as_bytes().get(ancestor.len()) == Some(&b'.'))
}

/// Resolves a name against a built-in table.
pub(crate) fn builtin_index(table: &[&str], name: &str) -> Option<u8> {
    table.iter().position(|candidate| *candidate == name).and_then(|i| u8::try_from(i).ok())
}

/// The nodes of one hierarchy as a policy sees them: the built-ins first (so a
/// built-in's bit is the same in every policy), then the policy's own declarations.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    names: Vec<Cow<'static, str>>,
    extensions: HashMap<Arc<str>, usize>,
    /// For each node, the mask of itself and all its ancestors.
    up: Vec<u128>,
    /// For each node, the mask of itself and all its descendants.
    down: Vec<u128>,
}

/// Why an extension could not be added to a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ExtendError {
    Syntax(NameSyntax),
    AlreadyKnown,
    NoParent(String),
    Full,
}

impl Tree {
    pub(crate) fn new(builtins: &'static [&'static str]) -> Tree {
        let mut tree = Tree {
            names: Vec::with_capacity(builtins.len()),
            extensions: HashMap::new(),
            up: Vec::with_capacity(builtins.len()),
            down: Vec::with_capacity(builtins.len()),
        };
        for name in builtins {
            // INVARIANT: the built-in tables list parents before children and hold
            // fewer than MAX_NODES names (checked by unit tests).
            tree.push(Cow::Borrowed(name));
        }
        tree
    }

    fn push(&mut self, name: Cow<'static, str>) {
        let index = self.names.len();
        let bit = 1u128 << (index % MAX_NODES);
        let parent = parent_name(&name).and_then(|p| self.index_of_name(p));
        let up = parent.and_then(|p| self.up.get(p).copied()).unwrap_or(0) | bit;
        for (other, down) in self.down.iter_mut().enumerate() {
            if up & (1u128 << (other % MAX_NODES)) != 0 {
                *down |= bit;
            }
        }
        self.names.push(name);
        self.up.push(up);
        self.down.push(bit);
    }

    /// Declares a new node under an existing parent.
    pub(crate) fn extend(&mut self, name: &str) -> Result<(), ExtendError> {
        check_syntax(name).map_err(ExtendError::Syntax)?;
        if self.index_of_name(name).is_some() {
            return Err(ExtendError::AlreadyKnown);
        }
        let parent = parent_name(name).ok_or_else(|| ExtendError::NoParent(String::new()))?;
        if self.index_of_name(parent).is_none() {
            return Err(ExtendError::NoParent(parent.to_owned()));
        }
        if self.names.len() >= MAX_NODES {
            return Err(ExtendError::Full);
        }
        self.extensions.insert(Arc::from(name), self.names.len());
        self.push(Cow::Owned(name.to_owned()));
        Ok(())
    }

    pub(crate) fn index_of_name(&self, name: &str) -> Option<usize> {
        // Declared names are in the map; only built-ins need the scan.
        self.extensions.get(name).copied().or_else(|| self.names.iter().position(|n| n == name))
    }

    #[inline]
    pub(crate) fn index(&self, node: &Node) -> Option<usize> {
        match node {
            Node::Builtin(i) => Some(usize::from(*i)).filter(|i| *i < self.names.len()),
            Node::Extension(name) => self.extensions.get(name).copied(),
        }
    }

    pub(crate) fn name(&self, index: usize) -> &str {
        self.names.get(index).map_or("", |n| n.as_ref())
    }

    #[inline]
    pub(crate) fn up(&self, index: usize) -> u128 {
        self.up.get(index).copied().unwrap_or(0)
    }

    pub(crate) fn down(&self, index: usize) -> u128 {
        self.down.get(index).copied().unwrap_or(0)
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// The names of the nodes declared by the policy, in declaration order.
    pub(crate) fn extension_names(&self, builtins: usize) -> impl Iterator<Item = &str> {
        self.names.iter().skip(builtins).map(|n| n.as_ref())
    }

    /// The first node (in table order) of a mask, for messages.
    pub(crate) fn first_in(&self, mask: u128) -> Option<&str> {
        if mask == 0 {
            None
        } else {
            Some(self.name(mask.trailing_zeros() as usize))
        }
    }
}

/// Implements the common surface of a hierarchical name type (`Purpose`,
/// `DataCategory`): built-in constants, parsing, printing and serde by name.
macro_rules! hierarchical_name {
    (
        $(#[$meta:meta])*
        $type:ident, $index:ident, $table:ident, $what:literal;
        $( $(#[$const_meta:meta])* $constant:ident = $name:literal, )*
    ) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $type(pub(crate) crate::name::Node);

        #[expect(non_camel_case_types, clippy::upper_case_acronyms, reason = "one variant per constant, named like it")]
        #[repr(u8)]
        enum $index { $( $constant, )* }

        /// Every built-in name, parents before children.
        pub(crate) static $table: &[&str] = &[ $( $name, )* ];

        impl $type {
            $(
                #[doc = concat!("`", $name, "`")]
                $(#[$const_meta])*
                pub const $constant: $type = $type(crate::name::Node::Builtin($index::$constant as u8));
            )*

            /// Parses a dotted name. Built-in names resolve to their constant; any other
            /// well-formed name is an extension, which only a policy that declares it
            /// knows.
            ///
            /// # Errors
            ///
            /// When the name is empty or a segment is not lower-case ASCII letters,
            /// digits and `_` starting with a letter.
            pub fn new(name: &str) -> Result<$type, crate::error::NameError> {
                if let Some(index) = crate::name::builtin_index($table, name) {
                    return Ok($type(crate::name::Node::Builtin(index)));
                }
                crate::name::check_syntax(name)
                    .map_err(|_| crate::error::NameError::new($what, name))?;
                Ok($type(crate::name::Node::Extension(std::sync::Arc::from(name))))
            }

            /// The dotted name.
            pub fn as_str(&self) -> &str {
                match &self.0 {
                    crate::name::Node::Builtin(i) => $table.get(usize::from(*i)).copied().unwrap_or(""),
                    crate::name::Node::Extension(name) => name,
                }
            }

            /// Whether this is one of the vocabulary's built-in names.
            pub fn is_builtin(&self) -> bool {
                matches!(self.0, crate::name::Node::Builtin(_))
            }

            /// The parent node, if any (`advertising` for `advertising.personalized`).
            pub fn parent(&self) -> Option<$type> {
                crate::name::parent_name(self.as_str()).and_then(|p| $type::new(p).ok())
            }

            /// Whether `self` is `other` or one of its ancestors: a rule or a grant for
            /// `self` covers `other`.
            pub fn covers(&self, other: &$type) -> bool {
                crate::name::covers(self.as_str(), other.as_str())
            }

            /// Every built-in name of this vocabulary.
            pub fn builtins() -> impl Iterator<Item = $type> {
                (0..$table.len()).filter_map(|i| u8::try_from(i).ok()).map(|i| $type(crate::name::Node::Builtin(i)))
            }
        }

        impl std::fmt::Debug for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({})", stringify!($type), self.as_str())
            }
        }

        impl std::fmt::Display for $type {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $type {
            type Err = crate::error::NameError;
            fn from_str(s: &str) -> Result<$type, Self::Err> {
                $type::new(s)
            }
        }

        impl AsRef<str> for $type {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl serde::Serialize for $type {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $type {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$type, D::Error> {
                let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                $type::new(&name).map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use hierarchical_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax() {
        assert!(check_syntax("advertising.personalized").is_ok());
        assert!(check_syntax("a1.b_2").is_ok());
        for bad in ["", ".", "a.", ".a", "A", "a..b", "1a", "a-b", "a b"] {
            assert!(check_syntax(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn covering_is_by_whole_segments() {
        assert!(covers("advertising", "advertising.personalized"));
        assert!(covers("advertising", "advertising"));
        assert!(!covers("advert", "advertising"));
        assert!(!covers("advertising.personalized", "advertising"));
    }

    #[test]
    fn masks_follow_the_hierarchy() {
        static NAMES: &[&str] = &["a", "a.b", "a.b.c", "d"];
        let mut tree = Tree::new(NAMES);
        tree.extend("a.b.x").unwrap();
        let abx = tree.index_of_name("a.b.x").unwrap();
        assert_eq!(tree.up(abx), 0b10011);
        assert_eq!(tree.down(0), 0b10111);
        assert_eq!(tree.down(3), 0b01000);
        assert_eq!(tree.extend("q.r"), Err(ExtendError::NoParent("q".into())));
        assert_eq!(tree.extend("a.b"), Err(ExtendError::AlreadyKnown));
    }
}
