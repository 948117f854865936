//! The types a setting can have, and how each is read from text (a flag, an environment variable) and from
//! a TOML value.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A type a setting can have.
pub trait Value: Clone + Sized + Send + Sync + 'static {
    /// Reads the value from text: a flag's, an environment variable's, or a string in the file.
    fn parse(text: &str) -> Result<Self, String>;

    /// Reads the value from the configuration file; strings are read as [`Value::parse`] reads text.
    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::String(text) => Self::parse(text),
            other => Err(format!("expected a string, not {}", other.type_str())),
        }
    }
}

/// The clap value parser of a setting's flag (errors then name the flag).
pub fn flag_value<T: Value>(text: &str) -> Result<T, String> {
    T::parse(text)
}

/// The help of a setting's flag: its doc comment's lines (`doc`) joined, then the variables it reads.
pub fn flag_help(doc: &[&str], env: &[&str]) -> String {
    let text: Vec<&str> = doc.iter().flat_map(|line| line.split_whitespace()).collect();
    format!("{} [env: {}]", text.join(" ").trim_end_matches('.'), env.join(" or "))
}

macro_rules! whole_number {
    ($($ty:ty),+) => {$(
        impl Value for $ty {
            fn parse(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|_| format!("{text:?} is not a whole number from 0 to {}", <$ty>::MAX))
            }

            fn from_toml(value: &toml::Value) -> Result<Self, String> {
                match value {
                    toml::Value::Integer(n) => {
                        <$ty>::try_from(*n).map_err(|_| format!("{n} is not a whole number from 0 to {}", <$ty>::MAX))
                    }
                    toml::Value::String(text) => Self::parse(text),
                    other => Err(format!("expected a whole number, not {}", other.type_str())),
                }
            }
        }
    )+};
}

whole_number!(u16, u32, u64, usize);

impl Value for f64 {
    fn parse(text: &str) -> Result<Self, String> {
        text.trim().parse().map_err(|_| format!("{text:?} is not a number"))
    }

    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Float(x) => Ok(*x),
            toml::Value::Integer(n) => Ok(*n as f64),
            toml::Value::String(text) => Self::parse(text),
            other => Err(format!("expected a number, not {}", other.type_str())),
        }
    }
}

impl Value for bool {
    /// `true`/`false`, and `yes`/`no`, `on`/`off`, `1`/`0`, in any case.
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(format!("{text:?} is neither true nor false")),
        }
    }

    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Boolean(b) => Ok(*b),
            toml::Value::String(text) => Self::parse(text),
            other => Err(format!("expected true or false, not {}", other.type_str())),
        }
    }
}

impl Value for String {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
}

impl Value for PathBuf {
    fn parse(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
}

impl Value for SocketAddr {
    fn parse(text: &str) -> Result<Self, String> {
        text.trim().parse().map_err(|_| format!("{text:?} is not an address with a port, such as 127.0.0.1:8080"))
    }
}
