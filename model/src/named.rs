//! Enums whose values have names (`high_cpu`, `scale_up`, ...): the name of each value is written once, in
//! [`named_enum!`], and its `ALL`, `NAMES`, `name()`, `FromStr`, `Display` and serde form derive from it.

/// An enum whose values have names: what code generic over the vocabulary (flag parsers, pickers) uses.
/// [`named_enum!`] implements it.
pub trait Named: Copy + Eq + Send + Sync + std::fmt::Display + std::str::FromStr<Err = UnknownName> + 'static {
    /// Every value, in declaration order.
    fn all() -> &'static [Self];
    /// The value's name.
    fn name(self) -> &'static str;
    /// What the value means, for people.
    fn description(self) -> &'static str;
}

/// A text that names none of an enum's values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {name:?}; one of: {}", expected.join(", "))]
pub struct UnknownName {
    /// What was named: `action`, `event type`, ...
    pub what: &'static str,
    /// The text (at most 64 characters of it).
    pub name: String,
    /// The names there are.
    pub expected: &'static [&'static str],
}

/// A wire value that stands for no domain value: UNSPECIFIED, `ACTION_NONE`, or one newer than this build.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{wire} is not {what}")]
pub struct NoValue {
    /// What was expected: `an action`, `an anomaly type`, ...
    pub what: &'static str,
    /// The wire value's name.
    pub wire: &'static str,
}

/// Declares a fieldless enum whose values each have a name, and derives from those names: `ALL` (every
/// value, in declaration order), `NAMES` (their names, in the same order), `name()`, `description()` (the
/// value's doc comment), `FromStr` (errors are [`UnknownName`]), `Display`, `Serialize`/`Deserialize` as the
/// name, and [`Named`].
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $( $(#[doc = $doc:literal])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[doc = $doc])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            /// Every value's name, in the order of `ALL`.
            pub const NAMES: [&'static str; [$($text),+].len()] = [$($text),+];

            /// The value's name, as in the event log, the API's JSON, flags and configuration.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }

            /// What the value means, for people (its doc comment).
            pub fn description(self) -> &'static str {
                match self {
                    $( $name::$variant => concat!($($doc, "\n"),*).trim(), )+
                }
            }
        }

        impl $crate::named::Named for $name {
            fn all() -> &'static [Self] {
                &Self::ALL
            }

            fn name(self) -> &'static str {
                $name::name(self)
            }

            fn description(self) -> &'static str {
                $name::description(self)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::named::UnknownName;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::ALL.into_iter().find(|value| value.name() == text).ok_or_else(|| $crate::named::UnknownName {
                    what: $what,
                    name: text.chars().take(64).collect(),
                    expected: &Self::NAMES,
                })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "{} name", $what)
                    }

                    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<$name, E> {
                        text.parse().map_err(|_| E::unknown_variant(text, &$name::NAMES))
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}
